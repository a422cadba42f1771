"""Reading and writing WAV files in the formats phone audio comes in.

The stdlib `wave` module reads only integer PCM; call recordings are often G.711
(mu-law or A-law, WAVE format tags 7 and 6) and tools write float WAVs, so this reads
the RIFF chunks itself. Everything comes out as mono PCM16 (channels averaged).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from telephony.g711 import alaw_decode, ulaw_decode

PCM16 = npt.NDArray[np.int16]

FORMAT_PCM = 1
FORMAT_FLOAT = 3
FORMAT_ALAW = 6
FORMAT_MULAW = 7
FORMAT_EXTENSIBLE = 0xFFFE


class WavError(ValueError):
    """The file is not a WAV file this reader understands."""


@dataclass(frozen=True, slots=True)
class WavAudio:
    """Decoded audio, plus the raw G.711 bytes when the file was mono G.711."""

    pcm: PCM16
    sample_rate: int
    format_tag: int
    raw_g711: bytes | None = None


def _chunks(data: bytes) -> dict[bytes, bytes]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError("not a RIFF/WAVE file")
    chunks: dict[bytes, bytes] = {}
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        chunks.setdefault(cid, body)
        pos += 8 + size + (size & 1)
    if b"fmt " not in chunks or b"data" not in chunks:
        raise WavError("WAV file lacks a fmt or data chunk")
    return chunks


def read_wav(path: str | Path) -> WavAudio:
    """Read a WAV file (PCM 8/16/24/32-bit, float32, mu-law, A-law; any channels)."""
    chunks = _chunks(Path(path).read_bytes())
    fmt = chunks[b"fmt "]
    if len(fmt) < 16:
        raise WavError("fmt chunk too short")
    tag, channels, rate, _byte_rate, _align, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == FORMAT_EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]
    if channels < 1 or rate < 1:
        raise WavError(f"bad channel count {channels} or rate {rate}")
    body = chunks[b"data"]
    raw_g711 = None
    if tag in (FORMAT_MULAW, FORMAT_ALAW):
        samples = (ulaw_decode if tag == FORMAT_MULAW else alaw_decode)(body).astype(np.float64)
        raw_g711 = body if channels == 1 else None
    elif tag == FORMAT_PCM and bits == 8:
        samples = (np.frombuffer(body, np.uint8).astype(np.float64) - 128) * 256
    elif tag == FORMAT_PCM and bits == 16:
        samples = np.frombuffer(body[: len(body) // 2 * 2], "<i2").astype(np.float64)
    elif tag == FORMAT_PCM and bits == 24:
        raw = np.frombuffer(body[: len(body) // 3 * 3], np.uint8).reshape(-1, 3).astype(np.int32)
        value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        samples = (np.where(value >= 1 << 23, value - (1 << 24), value) >> 8).astype(np.float64)
    elif tag == FORMAT_PCM and bits == 32:
        samples = np.frombuffer(body[: len(body) // 4 * 4], "<i4").astype(np.float64) / 65536
    elif tag == FORMAT_FLOAT and bits == 32:
        samples = np.frombuffer(body[: len(body) // 4 * 4], "<f4").astype(np.float64) * 32767
    else:
        raise WavError(f"unsupported WAV format tag {tag} with {bits} bits")
    usable = samples.size // channels * channels
    mono = samples[:usable].reshape(-1, channels).mean(axis=1)
    pcm = np.clip(np.rint(mono), -32768, 32767).astype(np.int16)
    return WavAudio(pcm, rate, tag, raw_g711)


def write_wav(path: str | Path, pcm: PCM16, sample_rate: int, channels: int = 1) -> None:
    """Write PCM16 (interleaved if `channels` > 1) as a plain WAV file."""
    data = np.asarray(pcm, dtype="<i2").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    fmt = struct.pack(
        "<4sIHHIIHH",
        b"fmt ",
        16,
        FORMAT_PCM,
        channels,
        sample_rate,
        sample_rate * 2 * channels,
        2 * channels,
        16,
    )
    Path(path).write_bytes(header + fmt + b"data" + struct.pack("<I", len(data)) + data)


def write_ulaw_wav(path: str | Path, ulaw: bytes, sample_rate: int = 8000) -> None:
    """Write mono G.711 mu-law bytes as a WAV file (format tag 7), as phone recordings come."""
    padded = len(ulaw) + (len(ulaw) & 1)
    header = b"RIFF" + struct.pack("<I", 4 + 26 + 12 + 8 + padded) + b"WAVE"
    fmt = struct.pack(
        "<4sIHHIIHHH", b"fmt ", 18, FORMAT_MULAW, 1, sample_rate, sample_rate, 1, 8, 0
    )
    fact = b"fact" + struct.pack("<II", 4, len(ulaw))
    data = b"data" + struct.pack("<I", len(ulaw)) + ulaw + (b"\x00" if len(ulaw) & 1 else b"")
    Path(path).write_bytes(header + fmt + fact + data)


def read_pcm16_channels(data: bytes) -> tuple[npt.NDArray[np.int16], int]:
    """A PCM16 WAV file's bytes as (samples, channels) int16 and its sample rate.

    For recordings whose channels mean different things (caller left, bot right), where
    `read_wav`'s downmix would lose what replay and reports need.
    """
    chunks = _chunks(data)
    tag, channels, rate, _byte_rate, _align, bits = struct.unpack("<HHIIHH", chunks[b"fmt "][:16])
    if tag != FORMAT_PCM or bits != 16 or channels < 1:
        raise WavError(f"expected PCM16, got format tag {tag} with {bits} bits")
    body = chunks[b"data"]
    frames = len(body) // (2 * channels)
    samples = np.frombuffer(body[: frames * 2 * channels], dtype="<i2").reshape(frames, channels)
    return samples.astype(np.int16), rate
