"""Whisper as a `BatchBackend`: one encoder pass and static-KV greedy decoding per batch.

Windows: Whisper's encoder runs on a shorter mel if its positional embedding is sliced
(`models.whisper_arch.encode`), and a 2 s utterance then costs 4 s of encoder work
instead of 30 s. But the decoder was trained on 30 s windows, and on short windows it
loops ("Yes. No. Go. Stop." became 44 words): on the 16 real clips tiny.en's WER went
from 2.3% (30 s) to 27.6% (10/20/30 s buckets) and 84.7% (4/8/15/30 s), see
bench/RESULTS.md. So the default is the full 30 s window; `buckets_s` trims for models
that tolerate it, and the GPU benchmark measures what trimming would save.

Buckets are few and fixed because each (batch size, window) pair is one captured CUDA
graph of the decoder step; batch sizes round up to powers of two for the same reason
(on the CPU there are no graphs and batches are not padded).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.asr_batch import BatchingRecognizer, BatchPolicy
from models.protocols import PCM16, SAMPLE_RATE, Transcript
from models.whisper_arch import TokenSpec, encode, log_mel, mel_filters, model_dims, token_spec

#: Encoder windows (seconds of audio): Whisper's own 30 s (trimming costs accuracy).
DEFAULT_BUCKETS_S = (30.0,)
#: Trimmed windows for phone utterances (mostly 1-8 s), for models that tolerate them.
TRIMMED_BUCKETS_S = (4.0, 8.0, 15.0, 30.0)


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
    ) -> None:
        import torch

        from models.whisper_static import StaticGreedyDecoder

        self.model = model.eval()
        self.dims = model_dims(model)
        self.spec = spec or token_spec(self.dims, language)
        if any(b <= 0 or b > 30 for b in buckets_s) or list(buckets_s) != sorted(buckets_s):
            raise ValueError(f"buckets must rise within (0, 30] s: {buckets_s}")
        self.buckets_s = tuple(buckets_s)
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
        """Index of the shortest window that holds `samples` (the last one: truncated)."""
        seconds = samples / SAMPLE_RATE
        for index, limit in enumerate(self.buckets_s):
            if seconds <= limit:
                return index
        return len(self.buckets_s) - 1

    def batch_bucket(self, n: int) -> int:
        """The batch size a graph is kept for: the next power of two on CUDA."""
        if not self.decoder.cuda_graphs:
            return n
        return 1 << max(0, (n - 1).bit_length())

    def features(self, audios: Sequence[PCM16], bucket: int) -> Any:
        """Encoder output [n, window * 50, d] for utterances zero-padded to the bucket."""
        torch = self._torch
        samples = int(self.buckets_s[bucket] * SAMPLE_RATE)
        batch = np.zeros((len(audios), samples), dtype=np.float32)
        for row, audio in enumerate(audios):
            clip = audio[:samples]
            batch[row, : clip.size] = clip.astype(np.float32) / 32768.0
        with torch.no_grad():
            wave = torch.from_numpy(batch).to(self.device, non_blocking=True)
            mel = log_mel(wave, self.filters).to(self.dtype)
            return encode(self.model, mel)

    def transcribe_batch(self, audios: Sequence[PCM16], bucket: int) -> list[Transcript]:
        """Encode once, decode greedily together; one transcript per input, in order."""
        from models.whisper_static import dynamic_greedy

        features = self.features(audios, bucket)
        decode_text = self.spec.decode_text
        if not self.static:  # the eager baseline (benchmarks): tokens only, no scores
            tokens = dynamic_greedy(self.model, self.spec, features, self.max_tokens)
            return [
                Transcript(decode_text(t) if decode_text else "", audio_s=a.size / SAMPLE_RATE)
                for t, a in zip(tokens, audios, strict=True)
            ]
        results = self.decoder.decode(features, self.batch_bucket(len(audios)))
        return [
            Transcript(
                decode_text(r.tokens) if decode_text else "",
                no_speech_prob=r.no_speech_prob,
                avg_logprob=r.avg_logprob,
                audio_s=a.size / SAMPLE_RATE,
            )
            for r, a in zip(results, audios, strict=True)
        ]

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
