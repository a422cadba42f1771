"""Whisper's architecture, mel front end and token ids, for the batched static decoder.

openai-whisper's `whisper.model.Whisper` is used when it is installed, so any of its
checkpoints (and the model the openai-whisper backend loaded) works unchanged. The GPU
benchmark image has torch but not openai-whisper, and no internet to fetch it, so this
file also holds a minimal copy of the architecture: same module names and parameter
shapes (a checkpoint's state dict loads into either), only the forward passes the
batched path needs (the encoder; the decoder step lives in `models.whisper_static`).

Whisper is trained on 30 s windows, but nothing in the encoder needs 30 s except
openai-whisper's shape assertion: `encode` runs the encoder on a shorter mel by slicing
the positional embedding, which costs up to 15x less compute for a 2 s utterance.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

N_FFT = 400
HOP_LENGTH = 160
#: Mel frames per second (10 ms hop); the encoder halves it (20 ms per audio position).
FRAMES_PER_SECOND = 100


@dataclass(frozen=True)
class Dims:
    """The ten numbers of a Whisper shape (the fields of openai-whisper's ModelDimensions)."""

    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int


#: Published shapes; speed depends on these, not on the weights' values.
SHAPES: dict[str, Dims] = {
    "tiny.en": Dims(80, 1500, 384, 6, 4, 51864, 448, 384, 6, 4),
    "base": Dims(80, 1500, 512, 8, 6, 51865, 448, 512, 8, 6),
    "small": Dims(80, 1500, 768, 12, 12, 51865, 448, 768, 12, 12),
    "large-v3-turbo": Dims(128, 1500, 1280, 20, 32, 51866, 448, 1280, 20, 4),
}


def have_openai_whisper() -> bool:
    """Whether openai-whisper is importable (without importing it)."""
    return importlib.util.find_spec("whisper") is not None


class LayerNorm(nn.LayerNorm):
    """Normalises in float32 whatever the activations' dtype, as openai-whisper does."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.float()).type(x.dtype)


class _Attention(nn.Module):
    def __init__(self, n_state: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.query = nn.Linear(n_state, n_state)
        self.key = nn.Linear(n_state, n_state, bias=False)
        self.value = nn.Linear(n_state, n_state)
        self.out = nn.Linear(n_state, n_state)


class _Block(nn.Module):
    def __init__(self, n_state: int, n_head: int, cross: bool) -> None:
        super().__init__()
        self.attn = _Attention(n_state, n_head)
        self.attn_ln = LayerNorm(n_state)
        self.cross_attn = _Attention(n_state, n_head) if cross else None
        self.cross_attn_ln = LayerNorm(n_state) if cross else None
        self.mlp = nn.Sequential(
            nn.Linear(n_state, 4 * n_state), nn.GELU(), nn.Linear(4 * n_state, n_state)
        )
        self.mlp_ln = LayerNorm(n_state)

    def forward(self, x: Tensor) -> Tensor:
        """Encoder block: unmasked self-attention and MLP."""
        b, t, d = x.shape
        h = self.attn_ln(x)
        heads = self.attn.n_head

        def split(y: Tensor) -> Tensor:
            return y.view(b, t, heads, d // heads).transpose(1, 2)

        a = F.scaled_dot_product_attention(
            split(self.attn.query(h)), split(self.attn.key(h)), split(self.attn.value(h))
        )
        x = x + self.attn.out(a.transpose(1, 2).reshape(b, t, d))
        out: Tensor = x + self.mlp(self.mlp_ln(x))
        return out


class _Encoder(nn.Module):
    def __init__(self, d: Dims) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(d.n_mels, d.n_audio_state, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d.n_audio_state, d.n_audio_state, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(d.n_audio_ctx, d.n_audio_state))
        self.blocks = nn.ModuleList(
            _Block(d.n_audio_state, d.n_audio_head, False) for _ in range(d.n_audio_layer)
        )
        self.ln_post = LayerNorm(d.n_audio_state)


class _Decoder(nn.Module):
    def __init__(self, d: Dims) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(d.n_vocab, d.n_text_state)
        self.positional_embedding = nn.Parameter(torch.zeros(d.n_text_ctx, d.n_text_state))
        self.blocks = nn.ModuleList(
            _Block(d.n_text_state, d.n_text_head, True) for _ in range(d.n_text_layer)
        )
        self.ln = LayerNorm(d.n_text_state)


class FallbackWhisper(nn.Module):
    """openai-whisper's module tree without openai-whisper (state dicts are interchangeable)."""

    def __init__(self, dims: Dims) -> None:
        super().__init__()
        self.dims = dims
        self.encoder = _Encoder(dims)
        self.decoder = _Decoder(dims)


def sinusoids(length: int, channels: int, max_timescale: float = 10_000) -> Tensor:
    """The encoder's fixed positional embedding (same formula as openai-whisper)."""
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-increment * torch.arange(channels // 2))
    scaled = torch.arange(length)[:, None] * inv[None, :]
    return torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=1)


def build_model(dims: Dims, *, fallback: bool | None = None) -> nn.Module:
    """An untrained Whisper of this shape: openai-whisper's class, or ours without it."""
    if fallback is None:
        fallback = not have_openai_whisper()
    if fallback:
        return FallbackWhisper(dims)
    from whisper.model import ModelDimensions, Whisper

    model: nn.Module = Whisper(ModelDimensions(**vars(dims)))
    return model


def random_model(
    dims: Dims, *, seed: int = 0, std: float = 0.02, fallback: bool | None = None
) -> nn.Module:
    """A Whisper of this shape with random weights (for speed, and for tests of exactness)."""
    model = build_model(dims, fallback=fallback)
    generator = torch.Generator().manual_seed(seed)
    norms = {id(p) for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
    with torch.no_grad():
        for param in model.parameters():
            if id(param) not in norms:
                param.copy_(torch.randn(param.shape, generator=generator) * std)
    return model.eval()


def load_checkpoint(path: str, *, device: str = "cpu", fallback: bool | None = None) -> nn.Module:
    """An openai-whisper checkpoint file ({"dims": ..., "model_state_dict": ...})."""
    checkpoint: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(Dims(**checkpoint["dims"]), fallback=fallback)
    model.load_state_dict(checkpoint["model_state_dict"], strict=False)
    return model.to(device).eval()


def to_device(model: nn.Module, device: str, half: bool) -> nn.Module:
    """Move a model; in half precision keep layer norms in float32 (they compute in it)."""
    model = model.to(device)
    if half:
        for module in model.modules():
            if not isinstance(module, nn.LayerNorm):
                for param in module.parameters(recurse=False):
                    param.data = param.data.half()
                for name, buffer in module.named_buffers(recurse=False):
                    if buffer.is_floating_point():
                        setattr(module, name, buffer.half())
    return model


def model_dims(model: nn.Module) -> Dims:
    """The shape of a loaded model (openai-whisper's ModelDimensions or ours)."""
    return Dims(**vars(model.dims))


def encode(model: nn.Module, mel: Tensor) -> Tensor:
    """Encoder forward on a mel of any length up to 30 s (openai-whisper insists on 30 s).

    The blocks are the model's own; only the positional embedding is sliced to the
    input's length, so a mel that is a prefix of the 30 s mel gives what Whisper would
    compute if its attention were restricted to that prefix.
    """
    enc: Any = model.encoder
    x = F.gelu(enc.conv1(mel))
    x = F.gelu(enc.conv2(x)).permute(0, 2, 1)
    positions = enc.positional_embedding
    if x.shape[1] > positions.shape[0]:
        raise ValueError(f"mel of {mel.shape[-1]} frames is longer than Whisper's 30 s window")
    x = (x + positions[: x.shape[1]]).to(x.dtype)
    for block in enc.blocks:
        x = block(x)
    out: Tensor = enc.ln_post(x)
    return out


def mel_filters(n_mels: int) -> Tensor:
    """Whisper's mel filterbank: its packaged file, or the same Slaney filters computed."""
    if have_openai_whisper():
        from whisper.audio import mel_filters as packaged

        filters: Tensor = packaged("cpu", n_mels).float()
        return filters
    return torch.from_numpy(slaney_mel(16_000, N_FFT, n_mels))


def slaney_mel(sr: int, n_fft: int, n_mels: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """librosa.filters.mel(sr, n_fft, n_mels) with its defaults (Slaney scale and norm)."""

    def hz_to_mel(f: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
        mels = f / f_sp
        log_region = f >= min_log_hz
        mels[log_region] = min_log_hz / f_sp + np.log(f[log_region] / min_log_hz) / logstep
        return mels

    def mel_to_hz(m: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
        freqs = f_sp * m
        min_log_mel = min_log_hz / f_sp
        log_region = m >= min_log_mel
        freqs[log_region] = min_log_hz * np.exp(logstep * (m[log_region] - min_log_mel))
        return freqs

    fft_freqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    edges = hz_to_mel(np.array([0.0, sr / 2.0]))
    mel_f = mel_to_hz(np.linspace(edges[0], edges[1], n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def log_mel(audio: Tensor, filters: Tensor) -> Tensor:
    """Batched Whisper log-mel of float audio [B, samples] -> [B, n_mels, samples // 160].

    The floor (max - 8) is taken per utterance, as it would be for each one alone, so
    the mel of audio zero-padded to a bucket is the prefix of its 30 s mel.
    """
    window = torch.hann_window(N_FFT, device=audio.device)
    stft = torch.stft(audio, N_FFT, HOP_LENGTH, window=window, return_complex=True)
    power = stft[..., :-1].abs() ** 2
    spec = torch.clamp(filters.to(audio.device) @ power, min=1e-10).log10()
    floor = spec.amax(dim=(-2, -1), keepdim=True) - 8.0
    out: Tensor = (torch.maximum(spec, floor) + 4.0) / 4.0
    return out


@dataclass(frozen=True)
class TokenSpec:
    """The token ids greedy decoding needs, and how to turn tokens into text.

    From openai-whisper's tokenizer when installed (its non-speech suppress list and
    text decoding); without it, from the layout of Whisper's special tokens, which
    follow the text vocabulary in a fixed order (no text, special tokens suppressed).
    """

    prompt: tuple[int, ...]
    eot: int
    no_speech: int | None
    suppress: tuple[int, ...]
    #: Suppressed at the first sampled position only (a blank, and EOT: no empty text).
    suppress_first: tuple[int, ...]
    decode_text: Callable[[Sequence[int]], str] | None = field(default=None, compare=False)


def token_spec(dims: Dims, language: str = "en", *, fallback: bool | None = None) -> TokenSpec:
    """Transcribe without timestamps: `<|sot|>[<|en|><|transcribe|>]<|notimestamps|>`."""
    multilingual = dims.n_vocab >= 51865
    if fallback is None:
        fallback = not have_openai_whisper()
    if not fallback:
        from whisper.tokenizer import get_tokenizer

        num_languages = dims.n_vocab - 51765 - int(multilingual)
        tok = get_tokenizer(
            multilingual, num_languages=num_languages, language=language, task="transcribe"
        )
        extra = [tok.transcribe, tok.translate, tok.sot, tok.sot_prev, tok.sot_lm]
        if tok.no_speech is not None:
            extra.append(tok.no_speech)
        suppress = tuple(sorted(set(tok.non_speech_tokens) | set(extra)))
        return TokenSpec(
            tuple(tok.sot_sequence_including_notimestamps),
            tok.eot,
            tok.no_speech,
            suppress,
            (*tok.encode(" "), tok.eot),
            lambda tokens: str(tok.decode([t for t in tokens if t < tok.eot])).strip(),
        )
    n_languages = dims.n_vocab - 51765 - int(multilingual)
    eot = 50257 if multilingual else 50256
    sot = eot + 1
    # <|endoftext|> <|startoftranscript|> <|en|>... <|translate|> <|transcribe|>
    # <|startoflm|> <|startofprev|> <|nospeech|> <|notimestamps|> <|0.00|>...
    after_langs = sot + 1 + n_languages
    translate, transcribe, sot_lm, sot_prev, no_speech, no_timestamps = range(
        after_langs, after_langs + 6
    )
    prompt = (sot, sot + 1, transcribe, no_timestamps) if multilingual else (sot, no_timestamps)
    suppress = tuple(sorted((translate, transcribe, sot, sot_lm, sot_prev, no_speech)))
    return TokenSpec(prompt, eot, no_speech, suppress, (220, eot))
