"""Convert CTranslate2 Whisper files into an openai-whisper checkpoint.

The only Whisper weights that install offline here ship in CTranslate2's format (see
WEIGHTS.md), but the GPU path is PyTorch (CTranslate2 needs cuBLAS 12, the GPU machine
has CUDA 13). The two hold the same numbers in a different layout, so a converter
gives the PyTorch backend real weights without a download: read `model.bin`, split the
fused attention projections, rename, and save `{"dims", "model_state_dict"}` exactly as
`whisper.load_model` reads it.

`model.bin` (binary version 6) is little-endian: u32 version, string spec name, u32
spec revision, u32 variable count, then per variable: string name, u8 rank, u32 per
dimension, u8 dtype id, u32 byte count, raw bytes; then u32 alias count and (alias,
target) string pairs. A string is a u16 length (including a NUL) and the bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from models.weights import WeightsError, default_cache_dir, resolve

log = logging.getLogger(__name__)

Array = npt.NDArray[Any]

#: CTranslate2's dtype ids (the order of its `DataType` enum).
_DTYPES: dict[int, str] = {
    0: "float32",
    1: "int8",
    2: "int16",
    3: "int32",
    4: "float16",
    5: "bfloat16",
}


class ConversionError(ValueError):
    """The CTranslate2 files are not a Whisper model this converter understands."""


def _read(handle: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize("<" + fmt)
    data = handle.read(size)
    if len(data) != size:
        raise ConversionError("model.bin ends early")
    return struct.unpack("<" + fmt, data)[0]


def _read_string(handle: BinaryIO) -> str:
    length = _read(handle, "H")
    return str(handle.read(length)[:-1].decode("utf-8"))


def _decode(raw: bytes, dtype_id: int, shape: tuple[int, ...]) -> Array:
    dtype = _DTYPES.get(dtype_id)
    if dtype is None:
        raise ConversionError(f"unknown CTranslate2 dtype id {dtype_id}")
    if dtype == "bfloat16":  # numpy has no bfloat16: widen the top half of a float32
        wide = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
        return wide.view(np.float32).reshape(shape)
    return np.frombuffer(raw, np.dtype(dtype).newbyteorder("<")).reshape(shape)


def read_ct2_model(path: Path) -> tuple[str, int, dict[str, Array]]:
    """Read a CTranslate2 `model.bin`: (spec name, revision, variables with aliases resolved)."""
    with open(path, "rb") as handle:
        version = _read(handle, "I")
        if version != 6:
            raise ConversionError(f"{path}: CTranslate2 binary version {version}, expected 6")
        spec = _read_string(handle)
        revision = _read(handle, "I")
        variables: dict[str, Array] = {}
        for _ in range(_read(handle, "I")):
            name = _read_string(handle)
            shape = tuple(_read(handle, "I") for _ in range(_read(handle, "B")))
            dtype_id = _read(handle, "B")
            raw = handle.read(_read(handle, "I"))
            variables[name] = _decode(raw, dtype_id, shape)
        for _ in range(_read(handle, "I")):
            alias, target = _read_string(handle), _read_string(handle)
            variables[alias] = variables[target]
    return spec, revision, variables


def _weight(variables: dict[str, Array], name: str) -> Array:
    """A float weight; int8 weights are dequantized with their per-row scales."""
    try:
        value = variables[name]
    except KeyError:
        raise ConversionError(f"model.bin lacks {name}") from None
    scale = variables.get(f"{name}_scale")
    if value.dtype == np.int8 and scale is not None:
        return value.astype(np.float32) / scale.astype(np.float32).reshape(-1, 1)
    return value


def _linear(v: dict[str, Array], src: str, dst: str, out: dict[str, Array]) -> None:
    out[f"{dst}.weight"] = _weight(v, f"{src}/weight")
    out[f"{dst}.bias"] = v[f"{src}/bias"]


def _norm(v: dict[str, Array], src: str, dst: str, out: dict[str, Array]) -> None:
    out[f"{dst}.weight"] = v[f"{src}/gamma"]
    out[f"{dst}.bias"] = v[f"{src}/beta"]


def _split(
    v: dict[str, Array], src: str, names: list[str], dst: str, out: dict[str, Array]
) -> None:
    """Split a fused projection into openai-whisper's query/key/value (key has no bias)."""
    weights = np.split(_weight(v, f"{src}/weight"), len(names))
    biases = np.split(v[f"{src}/bias"], len(names))
    for name, weight, bias in zip(names, weights, biases, strict=True):
        out[f"{dst}.{name}.weight"] = weight
        if name == "key":
            if np.abs(bias.astype(np.float32)).max() > 1e-6:
                raise ConversionError(f"{src}: key bias is not zero; openai-whisper has none")
        else:
            out[f"{dst}.{name}.bias"] = bias


def _block(v: dict[str, Array], src: str, dst: str, out: dict[str, Array], cross: bool) -> None:
    _norm(v, f"{src}/self_attention/layer_norm", f"{dst}.attn_ln", out)
    _split(v, f"{src}/self_attention/linear_0", ["query", "key", "value"], f"{dst}.attn", out)
    _linear(v, f"{src}/self_attention/linear_1", f"{dst}.attn.out", out)
    if cross:
        _norm(v, f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln", out)
        _linear(v, f"{src}/attention/linear_0", f"{dst}.cross_attn.query", out)
        _split(v, f"{src}/attention/linear_1", ["key", "value"], f"{dst}.cross_attn", out)
        _linear(v, f"{src}/attention/linear_2", f"{dst}.cross_attn.out", out)
    _norm(v, f"{src}/ffn/layer_norm", f"{dst}.mlp_ln", out)
    _linear(v, f"{src}/ffn/linear_0", f"{dst}.mlp.0", out)
    _linear(v, f"{src}/ffn/linear_1", f"{dst}.mlp.2", out)


def _layer_count(variables: dict[str, Array], stack: str) -> int:
    pattern = re.compile(rf"^{stack}/layer_(\d+)/")
    found = {int(m.group(1)) for name in variables if (m := pattern.match(name))}
    if found != set(range(len(found))):
        raise ConversionError(f"{stack} layers are not numbered 0..n-1: {sorted(found)}")
    return len(found)


def to_openai_whisper(variables: dict[str, Array]) -> tuple[dict[str, int], dict[str, Array]]:
    """Map CTranslate2 Whisper variables to openai-whisper's `dims` and state dict (numpy)."""
    conv1 = _weight(variables, "encoder/conv1/weight")
    embedding = _weight(variables, "decoder/embeddings/weight")
    dims = {
        "n_mels": int(conv1.shape[1]),
        "n_audio_ctx": int(variables["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": int(conv1.shape[0]),
        "n_audio_head": int(variables["encoder/num_heads"]),
        "n_audio_layer": _layer_count(variables, "encoder"),
        "n_vocab": int(embedding.shape[0]),
        "n_text_ctx": int(variables["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(embedding.shape[1]),
        "n_text_head": int(variables["decoder/num_heads"]),
        "n_text_layer": _layer_count(variables, "decoder"),
    }
    out: dict[str, Array] = {
        "encoder.conv1.weight": conv1,
        "encoder.conv1.bias": variables["encoder/conv1/bias"],
        "encoder.conv2.weight": _weight(variables, "encoder/conv2/weight"),
        "encoder.conv2.bias": variables["encoder/conv2/bias"],
        "encoder.positional_embedding": variables["encoder/position_encodings/encodings"],
        "decoder.token_embedding.weight": embedding,
        "decoder.positional_embedding": variables["decoder/position_encodings/encodings"],
    }
    for i in range(dims["n_audio_layer"]):
        _block(variables, f"encoder/layer_{i}", f"encoder.blocks.{i}", out, cross=False)
    _norm(variables, "encoder/layer_norm", "encoder.ln_post", out)
    for i in range(dims["n_text_layer"]):
        _block(variables, f"decoder/layer_{i}", f"decoder.blocks.{i}", out, cross=True)
    _norm(variables, "decoder/layer_norm", "decoder.ln", out)
    projection = variables.get("decoder/projection/weight")
    if projection is not None and not np.array_equal(projection, embedding):
        raise ConversionError("the output projection is not tied to the token embedding")
    return dims, out


def check_vocabulary(ct2_dir: Path, n_vocab: int) -> None:
    """Fail unless openai-whisper's tokenizer has the same tokens at the same ids.

    The checkpoint carries no vocabulary: openai-whisper picks "gpt2" or "multilingual"
    from `n_vocab`. A model fine-tuned with a changed vocabulary would decode to wrong
    words without this check. Ordinary tokens are compared byte for byte (CTranslate2
    writes them in GPT-2's printable byte alphabet); special tokens by position.
    """
    from whisper.tokenizer import get_tokenizer

    vocabulary = (ct2_dir / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    vocabulary = vocabulary[:-1] if vocabulary and vocabulary[-1] == "" else vocabulary
    if len(vocabulary) != n_vocab:
        raise ConversionError(f"vocabulary.txt has {len(vocabulary)} tokens, model {n_vocab}")
    multilingual = n_vocab >= 51865
    tokenizer = get_tokenizer(multilingual, num_languages=n_vocab - 51765 - int(multilingual))
    printable = _gpt2_byte_alphabet()
    eot = tokenizer.eot
    for index in range(eot):
        ours = "".join(printable[b] for b in tokenizer.encoding.decode_single_token_bytes(index))
        if ours != vocabulary[index]:
            raise ConversionError(f"token {index}: {vocabulary[index]!r} != openai {ours!r}")
    for name, index in (("endoftext", eot), ("startoftranscript", tokenizer.sot)):
        if vocabulary[index] != f"<|{name}|>":
            raise ConversionError(f"token {index} is {vocabulary[index]!r}, not <|{name}|>")
    if vocabulary[tokenizer.timestamp_begin] != "<|0.00|>":
        raise ConversionError("timestamp tokens do not start where openai-whisper's do")


def _gpt2_byte_alphabet() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (byte-level BPE)."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    shifted = [b for b in range(256) if b not in keep]
    table = {b: chr(b) for b in keep}
    table.update({b: chr(256 + i) for i, b in enumerate(shifted)})
    return table


def convert(ct2_dir: Path, out: Path) -> dict[str, int]:
    """Convert a CTranslate2 Whisper directory to an openai-whisper checkpoint file."""
    import torch

    spec, revision, variables = read_ct2_model(ct2_dir / "model.bin")
    if spec != "WhisperSpec":
        raise ConversionError(f"{ct2_dir}: a {spec} model, not Whisper")
    if revision != 3:
        log.warning("WhisperSpec revision %d (converter written for 3)", revision)
    dims, state = to_openai_whisper(variables)
    check_vocabulary(ct2_dir, dims["n_vocab"])
    checkpoint: dict[str, Any] = {
        "dims": dims,
        "model_state_dict": {k: torch.from_numpy(v.copy()) for k, v in state.items()},
    }
    config = ct2_dir / "config.json"
    if config.is_file():  # extra key, ignored by whisper.load_model; used for word timing
        heads = json.loads(config.read_text()).get("alignment_heads")
        if heads:
            checkpoint["alignment_heads"] = [[int(a), int(b)] for a, b in heads]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    torch.save(checkpoint, tmp)
    tmp.replace(out)
    log.info("converted %s to %s", ct2_dir, out)
    return dims


def ct2_directory(spec: str) -> Path:
    """The CTranslate2 directory for a packaged name ("tiny.en", "base") or a path."""
    weights = resolve("whisper", spec)
    if not weights.is_local:
        raise WeightsError(f"whisper {spec!r} is neither packaged nor a local directory")
    path = Path(weights.location)
    if not (path / "model.bin").is_file():
        raise WeightsError(f"{path} holds no CTranslate2 model.bin")
    return path


def converted_checkpoint(spec: str, cache_dir: Path | None = None) -> Path:
    """The openai-whisper checkpoint for CTranslate2 weights `spec`, converted once and cached.

    The cache key is the source's size and first MiB, so a changed model is reconverted.
    """
    source = ct2_directory(spec)
    model_bin = source / "model.bin"
    digest = hashlib.sha1(str(model_bin.stat().st_size).encode())
    with open(model_bin, "rb") as handle:
        digest.update(handle.read(1 << 20))
    label = re.sub(r"[^A-Za-z0-9.]+", "-", source.name if Path(spec).exists() else spec)
    target = (
        cache_dir or default_cache_dir()
    ) / f"whisper-{label}-openai-{digest.hexdigest()[:10]}.pt"
    if not target.is_file():
        convert(source, target)
    return target
