"""The capabilities the call brain needs, one small Protocol each.

All audio is mono PCM16 (numpy int16) at 16 kHz. Methods are blocking: callers run
them in worker threads (see `voicebot.workers`), so a backend never needs to know about
asyncio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

PCM16 = npt.NDArray[np.int16]
SAMPLE_RATE = 16_000


class VoiceActivityDetector(Protocol):
    """Says whether one 20 ms frame (320 samples at 16 kHz) holds speech."""

    def is_speech(self, frame: PCM16) -> bool: ...


@dataclass(frozen=True, slots=True)
class Transcript:
    """One recognised utterance.

    `no_speech_prob` and `avg_logprob` let the caller reject noise that Whisper would
    otherwise "transcribe" as a stock phrase ("Thank you.").
    """

    text: str
    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0
    audio_s: float = 0.0


class SpeechRecognizer(Protocol):
    """Turns one utterance of audio into text."""

    def transcribe(self, audio: PCM16) -> Transcript: ...


class SpeechSynthesizer(Protocol):
    """Turns one sentence of text into 16 kHz PCM16 audio."""

    def synthesize(self, text: str) -> PCM16: ...


class TextEmbedder(Protocol):
    """Maps sentences to L2-normalised vectors (cosine similarity = dot product)."""

    dimension: int

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...
