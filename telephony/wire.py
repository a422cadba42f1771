"""Small parsing helpers that every carrier codec needs, so each codec stays about its format.

Carriers send JSON objects with numbers as strings (or not), base64 that may be junk,
and PCM in frames whose size we cannot trust. These helpers turn each of those into a
value or `None` / a `ProtocolError`, never an exception, so a codec's `receive()` keeps
its promise of never raising on bad input.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from telephony.events import PCM16, AudioIn, DtmfDigit, Event, MarkPlayed, ProtocolError
from telephony.resample import StreamResampler

#: Digits a phone keypad can send (RFC 4733 events 0-15).
DTMF_DIGITS = frozenset("0123456789*#ABCD")


def as_int(value: Any) -> int | None:
    """Carriers send numbers as strings or numbers; accept both and reject junk quietly."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def parse_json_object(
    message: str | bytes, max_chars: int, key: str = "event"
) -> dict[str, Any] | ProtocolError:
    """One text frame as a JSON object with a string `key`, or why it is not one."""
    if isinstance(message, bytes):
        return ProtocolError("binary frame received where JSON text was expected")
    if len(message) > max_chars:
        return ProtocolError(f"message of {len(message)} chars exceeds {max_chars}")
    try:
        data = json.loads(message)
    except json.JSONDecodeError as exc:
        return ProtocolError(f"invalid JSON: {exc.msg} at char {exc.pos}")
    except RecursionError:
        return ProtocolError("invalid JSON: nested too deeply")
    if not isinstance(data, dict) or not isinstance(data.get(key), str):
        return ProtocolError(f"message is not a JSON object with a {key!r} string")
    return data


def decode_base64(text: Any) -> bytes | None:
    """Strict base64 (no junk characters), or None."""
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def string_map(value: Any) -> dict[str, str]:
    """A JSON object of parameters as str -> str (anything else: empty)."""
    if not isinstance(value, dict):
        return {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def dtmf_event(data: dict[str, Any]) -> Event:
    """A `{"dtmf": {"digit": ...}}` message (Twilio, Telnyx) as a digit, or why it is not one."""
    dtmf = data.get("dtmf")
    digit = dtmf.get("digit") if isinstance(dtmf, dict) else None
    if not isinstance(digit, str) or digit not in DTMF_DIGITS:
        return ProtocolError(f"'dtmf' with invalid digit {str(digit)[:8]!r}")
    return DtmfDigit(digit)


def mark_event(data: dict[str, Any]) -> Event:
    """A `{"mark": {"name": ...}}` echo (Twilio, Telnyx) as a played mark, or why it is not one."""
    mark = data.get("mark")
    name = mark.get("name") if isinstance(mark, dict) else None
    if not isinstance(name, str):
        return ProtocolError("'mark' without a name")
    return MarkPlayed(name)


def media_audio(
    data: dict[str, Any],
    *,
    max_bytes: int,
    decode: Callable[[bytes], PCM16],
    resampler: StreamResampler,
) -> list[Event]:
    """A Twilio-style `media` message (Twilio, Telnyx) as bot audio.

    Only the inbound track is the caller; the payload is base64 G.711 of at most
    `max_bytes`; anything else is a `ProtocolError`, never an exception.
    """
    media = data.get("media")
    if not isinstance(media, dict) or not isinstance(media.get("payload"), str):
        return [ProtocolError("'media' without a payload string")]
    if media.get("track", "inbound") not in ("inbound", "inbound_track"):
        return []
    encoded = decode_base64(media["payload"])
    if encoded is None:
        return [ProtocolError("'media' payload is not valid base64")]
    if not encoded:
        return []
    if len(encoded) > max_bytes:
        return [ProtocolError(f"'media' payload of {len(encoded)} bytes is too large")]
    pcm = resampler.process(decode(encoded))
    return [AudioIn(pcm, as_int(media.get("timestamp")), as_int(media.get("chunk")))]


def pcm16_from_bytes(data: bytes, *, big_endian: bool = False) -> PCM16:
    """Signed 16-bit PCM bytes as native int16 samples (the caller checks even length)."""
    return np.frombuffer(data, dtype=">i2" if big_endian else "<i2").astype(np.int16)


def pcm16_to_bytes(pcm: PCM16, *, big_endian: bool = False) -> bytes:
    """int16 samples as signed 16-bit PCM bytes in the carrier's byte order."""
    return np.asarray(pcm, dtype=">i2" if big_endian else "<i2").tobytes()


class FrameSplitter:
    """Cuts an outbound byte stream into whole carrier frames, keeping the remainder.

    Vonage and Asterisk want exactly one 20 ms frame (or a multiple) per message: a short
    frame is padded or dropped by the carrier, which the caller hears as a click. The bot
    sends 20 ms frames already, so the remainder is normally empty; it matters only after
    a resampler or an odd-sized chunk.
    """

    def __init__(self, frame_bytes: int) -> None:
        if frame_bytes <= 0:
            raise ValueError(f"frame size must be positive, got {frame_bytes}")
        self.frame_bytes = frame_bytes
        self._pending = b""

    def push(self, data: bytes) -> list[bytes]:
        """Whole frames from what was pending plus `data`."""
        buffer = self._pending + data
        whole = len(buffer) - len(buffer) % self.frame_bytes
        self._pending = buffer[whole:]
        step = self.frame_bytes
        return [buffer[i : i + step] for i in range(0, whole, step)]

    def reset(self) -> None:
        """Drop a partial frame (on clear: it belongs to audio the caller will not hear)."""
        self._pending = b""


class CodecStateError(RuntimeError):
    """Outbound use before the stream has started (a bug in the caller of the codec)."""
