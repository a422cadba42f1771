"""Whisper speech recognition through openai-whisper (PyTorch), the GPU path.

CTranslate2 (faster-whisper) cannot use the GPU machine's CUDA 13 libraries, so on a
GPU Whisper runs in PyTorch. The weights are the same packaged CTranslate2 files,
converted once into an openai-whisper checkpoint (`models.whisper_convert`), so this
backend runs offline on real weights; any other openai-whisper checkpoint loads by path,
and an openai-whisper model name downloads it (only where the machine has internet).

Decoding matches the faster-whisper backend: greedy, no timestamps, no temperature
fallback, the same token budget, English unless told otherwise. fp16 on CUDA (layer
norms stay fp32, as openai-whisper computes them in fp32 anyway), fp32 on CPU.

The loaded `whisper.model.Whisper` (`.model`), its tokenizer (`.tokenizer`) and the
decoding options (`.options`) are public so that a batching worker can share one model
between calls and decode many utterances at once (`transcribe_batch` is the simple form).
One decode runs at a time per model: openai-whisper keeps its key/value cache in forward
hooks installed on the shared modules, so two threads decoding at once would write into
each other's caches. Concurrency comes from batching, not from threads.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.protocols import PCM16, SAMPLE_RATE, Transcript
from models.weights import WeightsError, default_cache_dir, packaged_names
from models.whisper_windows import token_budget

if TYPE_CHECKING:
    import torch
    from whisper.model import Whisper

log = logging.getLogger(__name__)

#: Whisper's window: 30 s of audio, 3,000 mel frames.
WINDOW_SAMPLES = 30 * SAMPLE_RATE


def load_whisper(spec: str, device: str, cache_dir: Path | None = None) -> tuple[Whisper, str]:
    """Load an openai-whisper model; returns it and where it came from.

    `spec` is a checkpoint file, a CTranslate2 directory or packaged name (converted
    once, then cached), or an openai-whisper model name (downloaded). Packaged names
    win over download names ("tiny.en", "base"), so the default never needs a network.
    """
    import whisper

    from models.whisper_convert import converted_checkpoint

    cache = cache_dir or default_cache_dir()
    path = Path(spec).expanduser()
    if path.is_file():
        return _load_checkpoint(path, device), f"checkpoint {path}"
    if path.is_dir() or spec in packaged_names("whisper"):
        checkpoint = converted_checkpoint(spec, cache)
        return _load_checkpoint(checkpoint, device), f"converted {checkpoint}"
    if spec in whisper.available_models():
        log.warning("whisper %r is not packaged; downloading it (needs internet)", spec)
        model = whisper.load_model(spec, device=device, download_root=str(cache / "whisper"))
        return model, f"download {spec}"
    raise WeightsError(
        f"whisper model {spec!r}: not a checkpoint file, CTranslate2 directory, packaged "
        f"name ({', '.join(packaged_names('whisper'))}) or openai-whisper name"
    )


def _load_checkpoint(path: Path, device: str) -> Whisper:
    """`whisper.load_model` for a file, plus the alignment heads a conversion stored."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    checkpoint = torch.load(path, map_location=device, weights_only=True)
    model = Whisper(ModelDimensions(**checkpoint["dims"]))
    model.load_state_dict(checkpoint["model_state_dict"])
    heads = checkpoint.get("alignment_heads")
    if heads:
        dims = model.dims
        mask = torch.zeros(dims.n_text_layer, dims.n_text_head, dtype=torch.bool)
        for layer, head in heads:
            mask[layer, head] = True
        model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
    return model.to(device)


def _to_half(model: torch.nn.Module) -> None:
    """fp16 weights everywhere but layer norms (whisper's LayerNorm computes in fp32)."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            continue
        for parameter in module.parameters(recurse=False):
            parameter.data = parameter.data.half()


class OpenAiWhisperRecognizer:
    """openai-whisper on converted packaged weights (or a checkpoint, or a download name)."""

    def __init__(
        self,
        model: str = "tiny.en",
        *,
        device: str = "cpu",
        fp16: bool | None = None,
        language: str | None = "en",
        cache_dir: Path | None = None,
    ) -> None:
        import whisper
        from whisper.tokenizer import get_tokenizer

        started = time.perf_counter()
        self.model, source = load_whisper(model, device, cache_dir)
        self.model.eval()
        self.fp16 = device.startswith("cuda") if fp16 is None else fp16
        if self.fp16:
            _to_half(self.model)
        multilingual = self.model.is_multilingual
        self.language = language if multilingual else "en"
        self.tokenizer = get_tokenizer(
            multilingual,
            num_languages=self.model.num_languages,
            language=self.language,
            task="transcribe",
        )
        self.options = whisper.DecodingOptions(
            task="transcribe",
            language=self.language,
            temperature=0.0,
            without_timestamps=True,
            fp16=self.fp16,
        )
        self.name = model
        self.device = device
        self._lock = threading.Lock()  # see the module docstring: decodes must not overlap
        log.info(
            "whisper %s (%s) loaded in %.2f s on %s/%s",
            model,
            source,
            time.perf_counter() - started,
            device,
            "float16" if self.fp16 else "float32",
        )

    def log_mel(self, samples: Any) -> torch.Tensor:
        """Log-mel features of up to 30 s of float audio, in Whisper's 3,000-frame window.

        Exactly as openai-whisper's `transcribe` and faster-whisper prepare a window: the
        spectrogram of the audio followed by 30 s of silence (its features are scaled to
        the loudest frame), cut back to the audio's own frames, then zero-padded as
        features. Padding the audio alone gives different numbers and, now and then, a
        different comma.
        """
        import torch
        import whisper

        audio = torch.as_tensor(samples[:WINDOW_SAMPLES], dtype=torch.float32)
        mel = whisper.log_mel_spectrogram(
            audio, self.model.dims.n_mels, padding=WINDOW_SAMPLES, device=self.device
        )
        frames = mel.shape[-1] - whisper.audio.N_FRAMES
        window: torch.Tensor = whisper.pad_or_trim(mel[:, :frames], whisper.audio.N_FRAMES)
        return window

    def transcribe(self, audio: PCM16) -> Transcript:
        """Transcribe one utterance of 16 kHz PCM16."""
        return self.transcribe_batch([audio])[0]

    def transcribe_batch(self, audios: Sequence[PCM16]) -> list[Transcript]:
        """Transcribe utterances together in one padded batch (one encoder and decoder pass).

        The token budget is the longest utterance's; each result is cut at its own end
        of text, so short utterances are unaffected except for the shared compute.
        """
        import torch
        import whisper

        samples = [np.asarray(a, dtype=np.float32) / 32768.0 for a in audios]
        results: list[Transcript | None] = [None] * len(samples)
        batch: list[int] = []
        for index, clip in enumerate(samples):
            seconds = clip.size / SAMPLE_RATE
            if clip.size < SAMPLE_RATE // 10:
                results[index] = Transcript("", no_speech_prob=1.0, audio_s=seconds)
            elif clip.size > WINDOW_SAMPLES:
                results[index] = self._transcribe_long(clip)
            else:
                batch.append(index)
        if batch:
            mels = torch.stack([self.log_mel(samples[i]) for i in batch])
            longest = max(samples[i].size for i in batch) / SAMPLE_RATE
            options = replace(self.options, sample_len=token_budget(longest))
            with self._lock:
                decoded = whisper.decode(self.model, mels, options)
            for index, result in zip(batch, decoded, strict=True):
                results[index] = Transcript(
                    result.text.strip(),
                    no_speech_prob=float(result.no_speech_prob),
                    avg_logprob=float(result.avg_logprob),
                    audio_s=samples[index].size / SAMPLE_RATE,
                )
        return [r for r in results if r is not None]

    def _transcribe_long(self, clip: Any) -> Transcript:
        """Audio over 30 s (not a phone turn; evaluation files): openai-whisper's windowing."""
        import whisper

        with self._lock:
            output = whisper.transcribe(
                self.model,
                clip,
                language=self.language,
                temperature=0.0,
                without_timestamps=True,
                condition_on_previous_text=False,
                fp16=self.fp16,
                verbose=None,
            )
        segments = output["segments"]
        tokens = [max(len(s["tokens"]), 1) for s in segments]
        logprob = sum(s["avg_logprob"] * n for s, n in zip(segments, tokens, strict=True))
        return Transcript(
            str(output["text"]).strip(),
            no_speech_prob=float(min((s["no_speech_prob"] for s in segments), default=1.0)),
            avg_logprob=float(logprob / sum(tokens)) if tokens else -math.inf,
            audio_s=clip.size / SAMPLE_RATE,
        )
