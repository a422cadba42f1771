"""Files that are valid after every write: a growing WAV and an encrypted append log.

A call may end with a crash, a dropped socket or `kill -9`. Audio is appended in small
chunks (every `flush_ms`), and after each chunk the WAV header's two size fields are
patched, so whatever is on disk is always a playable file holding everything up to the
last flush. Data is written before the header is patched: at worst the header
undercounts by one chunk, which every reader tolerates.

Encrypted recordings cannot patch a header in place (it is ciphertext), so they are a
sequence of independently sealed AES-256-GCM records, each one chunk of the plain WAV
stream (whose header carries the "unknown size" marker 0xFFFFFFFF). A crash loses at
most the record being written; `decrypt_recording` rebuilds a normal WAV.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from pathlib import Path
from typing import BinaryIO

MAGIC = b"VBREC1\n"
_AAD = b"voicebot-recording"
UNKNOWN_SIZE = 0xFFFFFFFF


class RecordingKeyError(ValueError):
    """The recording key is missing, malformed or wrong."""


def wav_header(sample_rate: int, channels: int, data_bytes: int = UNKNOWN_SIZE) -> bytes:
    """A 44-byte PCM16 WAV header (sizes may be the streaming 'unknown' marker)."""
    riff = UNKNOWN_SIZE if data_bytes == UNKNOWN_SIZE else 36 + data_bytes
    return (
        b"RIFF"
        + struct.pack("<I", riff)
        + b"WAVE"
        + struct.pack(
            "<4sIHHIIHH",
            b"fmt ",
            16,
            1,
            channels,
            sample_rate,
            sample_rate * 2 * channels,
            2 * channels,
            16,
        )
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def parse_key(text: str) -> bytes:
    """A base64 (or hex) 32-byte key, as kept in an environment variable."""
    text = text.strip()
    for decode in (base64.b64decode, bytes.fromhex):
        try:
            key = decode(text)
        except (binascii.Error, ValueError):
            continue
        if len(key) == 32:
            return key
    raise RecordingKeyError("recording key must be 32 bytes, base64 or hex encoded")


class _AppendOnly:
    """A file held open for a whole call; closing makes what was written durable."""

    _handle: BinaryIO

    def close(self) -> None:
        """Flush to stable storage and close."""
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()


class GrowingWav(_AppendOnly):
    """A PCM16 WAV file appended to in chunks, valid after every `append`."""

    def __init__(self, path: Path, sample_rate: int, channels: int) -> None:
        self.path = path
        self.data_bytes = 0
        self._handle: BinaryIO = open(path, "wb")  # noqa: SIM115 (kept open for the call)
        self._header = (sample_rate, channels)
        self._handle.write(wav_header(sample_rate, channels, 0))
        self._handle.flush()

    def append(self, pcm: bytes) -> None:
        """Append interleaved PCM16 bytes, then make the header count them."""
        if not pcm:
            return
        self._handle.seek(0, os.SEEK_END)
        self._handle.write(pcm)
        self.data_bytes += len(pcm)
        self._handle.seek(4)
        self._handle.write(struct.pack("<I", 36 + self.data_bytes))
        self._handle.seek(40)
        self._handle.write(struct.pack("<I", self.data_bytes))
        self._handle.flush()


class SealedFile(_AppendOnly):
    """An append-only file of AES-256-GCM sealed records (one per flush)."""

    def __init__(self, path: Path, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.path = path
        self._aead = AESGCM(key)
        self._index = 0
        self._handle: BinaryIO = open(path, "wb")  # noqa: SIM115 (kept open for the call)
        self._handle.write(MAGIC)

    def append(self, plain: bytes) -> None:
        """Seal one chunk; its index is authenticated, so records cannot be reordered."""
        if not plain:
            return
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plain, _AAD + struct.pack(">Q", self._index))
        self._index += 1
        self._handle.write(struct.pack(">I", len(sealed)) + nonce + sealed)
        self._handle.flush()


class EncryptedWav:
    """A sealed WAV stream: the header is the first record, audio chunks follow."""

    def __init__(self, path: Path, sample_rate: int, channels: int, key: bytes) -> None:
        self.path = path
        self.data_bytes = 0
        self._sealed = SealedFile(path, key)
        self._sealed.append(wav_header(sample_rate, channels))

    def append(self, pcm: bytes) -> None:
        """Seal and append one chunk of audio."""
        self._sealed.append(pcm)
        self.data_bytes += len(pcm)

    def close(self) -> None:
        """Flush to stable storage and close."""
        self._sealed.close()


def unseal(path: Path, key: bytes) -> list[bytes]:
    """The plain records of a sealed file, in order (stops at a torn last record)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise RecordingKeyError(f"{path} is not an encrypted voicebot file")
    aead = AESGCM(key)
    pos, index, chunks = len(MAGIC), 0, []
    while pos + 4 + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        nonce = data[pos + 4 : pos + 16]
        sealed = data[pos + 16 : pos + 16 + length]
        if len(sealed) < length:
            break  # the record being written when the process died
        try:
            chunks.append(aead.decrypt(nonce, sealed, _AAD + struct.pack(">Q", index)))
        except InvalidTag:
            if index == 0:
                raise RecordingKeyError("wrong recording key") from None
            break
        pos += 16 + length
        index += 1
    return chunks


def decrypt_recording(path: Path, key: bytes) -> bytes:
    """An encrypted recording as a normal WAV file's bytes."""
    chunks = unseal(path, key)
    if not chunks:
        raise RecordingKeyError(f"{path} holds no readable audio")
    header, body = chunks[0], b"".join(chunks[1:])
    channels = struct.unpack("<H", header[22:24])[0]
    sample_rate = struct.unpack("<I", header[24:28])[0]
    return wav_header(sample_rate, channels, len(body)) + body
