"""Whisper speech recognition through faster-whisper (CTranslate2), the CPU default.

The model is loaded once per process and shared by every call; CTranslate2 releases
the GIL while it computes, so transcriptions run in worker threads without stalling the
event loop. Greedy decoding (beam 1) with no timestamps and no conditioning on earlier
text: a phone turn is one short utterance, and every saved decoder step is latency.
Two guards against Whisper's runaway decodes, which on hard audio cost seconds while
the caller waits (seen on the shared banking calls: 2.9 s for one 2 s turn): no
temperature fallback (a bad first decode is re-run up to five times by default), and a
token budget proportional to the audio's length.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from models.protocols import PCM16, SAMPLE_RATE, Transcript
from models.weights import resolve

log = logging.getLogger(__name__)


class FasterWhisperRecognizer:
    """faster-whisper on the packaged weights (or a path, or a hub name)."""

    def __init__(
        self,
        model: str = "tiny.en",
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 2,
        num_workers: int = 1,
        beam_size: int = 1,
        language: str | None = "en",
    ) -> None:
        from faster_whisper import WhisperModel

        weights = resolve("whisper", model)
        started = time.perf_counter()
        self._model = WhisperModel(
            weights.location,
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=num_workers,
        )
        self.name = model
        self.beam_size = beam_size
        self.language = language
        log.info(
            "whisper %s (%s) loaded in %.2f s on %s/%s",
            model,
            weights.source,
            time.perf_counter() - started,
            device,
            compute_type,
        )

    @staticmethod
    def token_budget(audio_s: float) -> int:
        """At most ~10 tokens per second of audio (speech is 3-5), and never over 200."""
        return min(200, 16 + int(10 * audio_s))

    def transcribe(self, audio: PCM16) -> Transcript:
        """Transcribe one utterance of 16 kHz PCM16."""
        samples = np.asarray(audio, dtype=np.float32) / 32768.0
        if samples.size < SAMPLE_RATE // 10:
            return Transcript("", no_speech_prob=1.0, audio_s=samples.size / SAMPLE_RATE)
        segments, _info = self._model.transcribe(
            samples,
            language=self.language,
            beam_size=self.beam_size,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
            temperature=0.0,
            max_new_tokens=self.token_budget(samples.size / SAMPLE_RATE),
        )
        texts: list[str] = []
        no_speech = 1.0
        logprob_sum = 0.0
        tokens = 0
        for segment in segments:
            texts.append(segment.text.strip())
            no_speech = min(no_speech, segment.no_speech_prob)
            count = max(len(segment.tokens), 1)
            logprob_sum += segment.avg_logprob * count
            tokens += count
        avg_logprob = logprob_sum / tokens if tokens else -math.inf
        return Transcript(
            " ".join(t for t in texts if t),
            no_speech_prob=float(no_speech),
            avg_logprob=float(avg_logprob),
            audio_s=samples.size / SAMPLE_RATE,
        )
