"""Whisper as a `BatchBackend`: one encoder pass and static-KV greedy decoding per batch.

Windows: Whisper's encoder runs on a shorter mel if its positional embedding is sliced
(`models.whisper_arch.encode`), and a 2 s utterance then costs 10 s of encoder work
instead of 30 s. The buckets are faster-whisper's (`models.whisper_windows`): 10, 20 or
30 s, the shortest that holds the utterance plus a second of trailing silence, and a
trimmed window's mel is padded with zeros after the audio, as faster-whisper pads it.
Measured on the 16 real clips with tiny.en (bench/RESULTS.md, "Batched Whisper: trimmed
windows"): 2.7% WER at 16 kHz, within one error of the 30 s window's 2.3%, and 3.8% at
8 kHz, the same as 30 s; 31 of the 32 decodes are faster-whisper's own text. The
padding is what mattered: with log-mel silence after the audio (openai-whisper's
padding, right for 30 s) the same 10/20/30 s windows gave 27.6%, one 7 s clip repeating
"mixed letter" to the 96-token limit after the correct text; the margin alone changes
nothing there. A trimmed decode that still runs away (its whole token budget used, or
text that compresses like a loop) is answered `Redo`, and the worker decodes it again on
the 30 s window with that bucket's next batch. `buckets_s=FULL_BUCKETS_S` restores the
plain 30 s decode (`[asr] min_window_s = 30`, as for faster-whisper).

Buckets are few and fixed because each (batch size, window) pair is one captured CUDA
graph of the decoder step; batch sizes round up to powers of two for the same reason
(on the CPU there are no graphs and batches are not padded).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.asr_batch import BatchingRecognizer, BatchPolicy, Redo
from models.protocols import PCM16, SAMPLE_RATE, Transcript
from models.whisper_arch import (
    HOP_LENGTH,
    TokenSpec,
    encode,
    log_mel,
    mel_filters,
    model_dims,
    token_spec,
)
from models.whisper_windows import (
    FULL_WINDOW_S,
    WINDOW_MARGIN_S,
    ran_away,
    step_windows,
    token_budget,
    window_index,
)

#: Encoder windows (seconds of audio): faster-whisper's 10 s steps (see the docstring).
DEFAULT_BUCKETS_S = step_windows(10.0)
#: Whisper's own window only: no trimming (the decode openai-whisper does).
FULL_BUCKETS_S = step_windows(FULL_WINDOW_S)


class WhisperBatchBackend:
    """Batched Whisper transcription on one device (any openai-whisper-shaped model)."""

    def __init__(
        self,
        model: Any,
        *,
        spec: TokenSpec | None = None,
        language: str = "en",
        buckets_s: Sequence[float] = DEFAULT_BUCKETS_S,
        max_tokens: int = 96,
        cuda_graphs: bool | None = None,
        compile: bool = False,
        static: bool = True,
        margin_s: float = WINDOW_MARGIN_S,
        zero_mel_padding: bool = True,
        redo_runaways: bool = True,
    ) -> None:
        import torch

        from models.whisper_static import StaticGreedyDecoder

        self.model = model.eval()
        self.dims = model_dims(model)
        self.spec = spec or token_spec(self.dims, language)
        if any(b <= 0 or b > 30 for b in buckets_s) or list(buckets_s) != sorted(buckets_s):
            raise ValueError(f"buckets must rise within (0, 30] s: {buckets_s}")
        self.buckets_s = tuple(buckets_s)
        #: Trailing silence a trimmed window keeps after the audio (0: the bench's old rule).
        self.margin_s = margin_s
        #: Pad trimmed windows' mels with 0 as faster-whisper does, not with log-mel silence.
        self.zero_mel_padding = zero_mel_padding
        #: Answer `Redo` for a trimmed decode that ran away (off: the bench sees raw decodes).
        self.redo_runaways = redo_runaways
        self.device = next(model.parameters()).device
        self.dtype = model.decoder.token_embedding.weight.dtype
        self.filters = mel_filters(self.dims.n_mels).to(self.device)
        self.max_tokens = max_tokens
        self.static = static
        self.decoder = StaticGreedyDecoder(
            model, self.spec, max_tokens=max_tokens, cuda_graphs=cuda_graphs, compile=compile
        )
        self._torch = torch

    def bucket(self, samples: int) -> int:
        """Index of the shortest window that holds `samples` plus the margin (as faster-whisper).

        Longer audio than the last window gets the last one (truncated).
        """
        return window_index(samples / SAMPLE_RATE, self.buckets_s, self.margin_s)

    def batch_bucket(self, n: int) -> int:
        """The batch size a graph is kept for: the next power of two on CUDA."""
        if not self.decoder.cuda_graphs:
            return n
        return 1 << max(0, (n - 1).bit_length())

    def features(self, audios: Sequence[PCM16], bucket: int) -> Any:
        """Encoder output [n, window * 50, d] for utterances zero-padded to the bucket.

        On the full 30 s window the padding is log-mel silence, as openai-whisper computes
        it. On a trimmed window the mel frames after the audio are 0, as faster-whisper
        pads (`pad_or_trim` of the features): with log-mel silence there, tiny.en looped
        on trimmed windows (27.6% WER on the real clips at 10/20/30 s, 2.7% with zeros).
        """
        torch = self._torch
        window_s = self.buckets_s[bucket]
        samples = int(window_s * SAMPLE_RATE)
        batch = np.zeros((len(audios), samples), dtype=np.float32)
        for row, audio in enumerate(audios):
            clip = audio[:samples]
            batch[row, : clip.size] = clip.astype(np.float32) / 32768.0
        with torch.no_grad():
            wave = torch.from_numpy(batch).to(self.device, non_blocking=True)
            mel = log_mel(wave, self.filters)
            if self.zero_mel_padding and window_s < FULL_WINDOW_S:
                # faster-whisper's frames of the audio (+160 samples, last frame dropped)
                for row, audio in enumerate(audios):
                    mel[row, :, audio.size // HOP_LENGTH + 1 :] = 0.0
            return encode(self.model, mel.to(self.dtype))

    def transcribe_batch(self, audios: Sequence[PCM16], bucket: int) -> list[Transcript | Redo]:
        """Encode once, decode greedily together; one answer per input, in order.

        The answer is `Redo(last bucket)` for a decode on a shorter window that ran away
        (see `redo_runaways`): the worker decodes it again with the next batch of that
        bucket rather than making this batch's other callers wait for it.
        """
        from models.whisper_static import dynamic_greedy

        features = self.features(audios, bucket)
        decode_text = self.spec.decode_text
        answers: list[Transcript | Redo] = []
        if not self.static:  # the eager baseline (benchmarks): tokens only, no scores
            for tokens, audio in zip(
                dynamic_greedy(self.model, self.spec, features, self.max_tokens),
                audios,
                strict=True,
            ):
                text = decode_text(tokens) if decode_text else ""
                answers.append(
                    self._redo(bucket, audio, len(tokens), text)
                    or Transcript(text, audio_s=audio.size / SAMPLE_RATE)
                )
            return answers
        results = self.decoder.decode(features, self.batch_bucket(len(audios)))
        for result, audio in zip(results, audios, strict=True):
            text = decode_text(result.tokens) if decode_text else ""
            answers.append(
                self._redo(bucket, audio, len(result.tokens), text)
                or Transcript(
                    text,
                    no_speech_prob=result.no_speech_prob,
                    avg_logprob=result.avg_logprob,
                    audio_s=audio.size / SAMPLE_RATE,
                )
            )
        return answers

    def _redo(self, bucket: int, audio: PCM16, tokens: int, text: str) -> Redo | None:
        """`Redo` on the last window for a runaway on a shorter one (faster-whisper's rule).

        The budget is faster-whisper's for the audio's length, capped by the decoder's
        `max_tokens` (a decode cannot be longer, so reaching it also counts).
        """
        last = len(self.buckets_s) - 1
        if not self.redo_runaways or bucket >= last:
            return None
        budget = min(self.max_tokens, token_budget(audio.size / SAMPLE_RATE))
        return Redo(last, text) if ran_away(tokens, budget, text) else None

    def transcribe(self, audio: PCM16) -> Transcript:
        """One utterance, its runaway redone on the last window (benchmarks, tests)."""
        answer = self.transcribe_batch([audio], self.bucket(audio.size))[0]
        if isinstance(answer, Redo):
            answer = self.transcribe_batch([audio], answer.bucket)[0]
        assert isinstance(answer, Transcript)  # the last bucket is never redone
        return answer

    def warm_up(self, max_batch: int) -> None:
        """Capture every graph a batch of up to `max_batch` can need, before the first call."""
        silence = np.zeros(SAMPLE_RATE // 2, dtype=np.int16)
        for bucket in range(len(self.buckets_s)):
            size = 1
            while True:
                self.transcribe_batch([silence] * size, bucket)
                if size >= max_batch or not self.decoder.cuda_graphs:
                    break
                size = min(size * 2, max_batch)


def batched_whisper(
    model: Any, policy: BatchPolicy | None = None, *, warm: bool = True, **backend: Any
) -> BatchingRecognizer:
    """The shared ASR worker for a loaded Whisper model (e.g. the openai-whisper backend's)."""
    whisper = WhisperBatchBackend(model, **backend)
    policy = policy or BatchPolicy()
    if warm:
        whisper.warm_up(policy.max_batch)
    return BatchingRecognizer(whisper, policy)
