"""Whisper speech recognition through faster-whisper (CTranslate2), the CPU default.

The model is loaded once per process and shared by every call; CTranslate2 releases
the GIL while it computes, so transcriptions run in worker threads without stalling the
event loop. Greedy decoding (beam 1) with no timestamps and no conditioning on earlier
text: a phone turn is one short utterance, and every saved decoder step is latency.
Two guards against Whisper's runaway decodes, which on hard audio cost seconds while
the caller waits (seen on the shared banking calls: 2.9 s for one 2 s turn): no
temperature fallback (a bad first decode is re-run up to five times by default), and a
token budget proportional to the audio's length.

Short turns are not padded to Whisper's 30 s window: the encoder, which is ~80% of a
turn's CPU time at 30 s, runs on the smallest multiple of `min_window_s` (10 s by
default: 10, 20 or 30 s) that holds the audio plus a second of trailing silence, about a
quarter of the work for a typical 2-8 s phone turn. Measured on the shared real speech
and banking calls (bench/RESULTS.md, "Shorter encoder windows"): WER within one error of
the 30 s window's for tiny.en and base (word errors on the banking calls 25.0% -> 22.0%,
though 3 more of 90 turns got the wrong intent). Windows cut to the audio itself (no
margin, or 5 s steps) make Whisper repeat itself, so a trimmed decode that looks like a
runaway (it used its whole token budget, or its text compresses like a loop) is decoded
again on the full window.
`min_window_s = 30` restores the plain 30 s decode.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from models.protocols import PCM16, SAMPLE_RATE, Transcript
from models.weights import resolve
from models.whisper_windows import encoder_window_s, ran_away, token_budget

log = logging.getLogger(__name__)

#: As in faster-whisper: a decode is dropped as silence when Whisper thinks it is probably
#: not speech and is not confident in the words either.
NO_SPEECH_THRESHOLD = 0.6
LOG_PROB_THRESHOLD = -1.0


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
        min_window_s: float = 10.0,
    ) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

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
        self.min_window_s = min_window_s
        #: Trimmed decodes that looked like runaways and were decoded again on 30 s.
        self.full_window_retries = 0
        multilingual = self._model.model.is_multilingual
        self._tokenizer = Tokenizer(
            self._model.hf_tokenizer,
            multilingual,
            task="transcribe",
            language=(language or "en") if multilingual else "en",
        )
        self._prompt = self._model.get_prompt(self._tokenizer, [], without_timestamps=True)
        #: A multilingual model with no language set detects it per utterance, which only
        #: faster-whisper's own 30 s path does; such a recognizer never trims.
        self.trims = not (multilingual and language is None)
        self._suppress = list(get_suppressed_tokens(self._tokenizer, (-1,)) or ())
        self._mel_frames_per_s = self._model.feature_extractor.sampling_rate // (
            self._model.feature_extractor.hop_length
        )
        log.info(
            "whisper %s (%s) loaded in %.2f s on %s/%s",
            model,
            weights.source,
            time.perf_counter() - started,
            device,
            compute_type,
        )

    def _ct2_max_length(self, budget: int) -> int:
        """The `max_length` that lets CTranslate2 generate `budget` tokens.

        CTranslate2's Whisper caps decoding at half the `max_length` it is given
        (`min(max_length / 2, max_length - prompt)`, after OpenAI's 224-of-448 rule;
        CTranslate2 issue #1856), so faster-whisper's `max_new_tokens` really allows only
        about half as many: measured here, `max_length` 28 stops "Please freeze my card,
        I think it was stolen this morning." after 13 tokens, 20 after 10.
        """
        return min(448, max(2 * budget, budget + len(self._prompt)))

    @staticmethod
    def token_budget(audio_s: float) -> int:
        """`models.whisper_windows.token_budget`, passed through `_ct2_max_length` so that
        CTranslate2 really allows it (until that, it halved the budget: 16 + 10/s gave
        8 + 5/s). A method so a test can stand in a tiny budget for a runaway."""
        return token_budget(audio_s)

    def transcribe(self, audio: PCM16) -> Transcript:
        """Transcribe one utterance of 16 kHz PCM16."""
        samples = np.asarray(audio, dtype=np.float32) / 32768.0
        audio_s = samples.size / SAMPLE_RATE
        if samples.size < SAMPLE_RATE // 10:
            return Transcript("", no_speech_prob=1.0, audio_s=audio_s)
        window_s = encoder_window_s(audio_s, self.min_window_s)
        if (
            self.trims
            and window_s is not None
            and (trimmed := self._decode_trimmed(samples, window_s))
        ):
            return trimmed
        return self._decode_full(samples)

    def _decode_trimmed(self, samples: np.ndarray[Any, Any], window_s: float) -> Transcript | None:
        """One greedy decode on a `window_s` encoder window; None if it looks like a runaway.

        The same prompt, suppressed tokens, scoring and silence rule as faster-whisper's
        own decode of one 30 s window, so the two paths differ only in the padding.
        """
        audio_s = samples.size / SAMPLE_RATE
        # As faster-whisper: the extractor's last frame is left out.
        features = self._model.feature_extractor(samples)[:, :-1]
        frames = int(window_s * self._mel_frames_per_s)
        window = np.zeros((features.shape[0], frames), dtype=features.dtype)
        window[:, : min(frames, features.shape[1])] = features[:, :frames]
        budget = self.token_budget(audio_s)
        result = self._model.model.generate(
            self._model.encode(window),
            [self._prompt],
            beam_size=self.beam_size,
            max_length=self._ct2_max_length(budget),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
        )[0]
        tokens = result.sequences_ids[0]
        text = self._tokenizer.decode(tokens).strip()
        if ran_away(len(tokens), budget, text):
            self.full_window_retries += 1
            log.info(
                "whisper: %.0f s window ran away (%d tokens); decoding on 30 s",
                window_s,
                len(tokens),
            )
            return None
        avg_logprob = float(result.scores[0] * len(tokens) / (len(tokens) + 1))
        no_speech = float(result.no_speech_prob)
        silence = no_speech > NO_SPEECH_THRESHOLD and avg_logprob <= LOG_PROB_THRESHOLD
        return Transcript(
            "" if silence else text,
            no_speech_prob=no_speech,
            avg_logprob=avg_logprob,
            audio_s=audio_s,
        )

    def _decode_full(self, samples: np.ndarray[Any, Any]) -> Transcript:
        """faster-whisper's own transcription over 30 s windows."""
        segments, _info = self._model.transcribe(
            samples,
            language=self.language,
            beam_size=self.beam_size,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
            temperature=0.0,
            max_new_tokens=self._ct2_max_length(self.token_budget(samples.size / SAMPLE_RATE))
            - len(self._prompt),
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
