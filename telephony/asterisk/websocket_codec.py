"""Sans-I/O codec for Asterisk's WebSocket channel driver (chan_websocket).

Asterisk (20.16/21.11/22.6/23.0 and later) streams the channel's media as BINARY frames
in the dial string's codec and talks control over TEXT frames, in one of two formats:
the original plain text (`MEDIA_START connection_id:... channel:... format:ulaw
optimal_frame_size:160 ptime:20`) or, from 20.18/22.8/23.2, JSON (`{"event":
"MEDIA_START", ...}`). We accept both, per message, and answer in the format the
`MEDIA_START` came in. Formats we take: ulaw, alaw (8 kHz), slin (8 kHz) and slin16
(signed linear, little-endian); anything else (opus in passthrough mode) is refused.

Outbound media goes in frames of the `optimal_frame_size` Asterisk announced (it drops
the remainder of an odd-sized message). `MARK_MEDIA <name>` is answered with
`MEDIA_MARK_PROCESSED` when Asterisk reaches it; `FLUSH_MEDIA` drops queued media. The
documentation does not promise that a flushed mark is still reported, so on flush the
codec reports its outstanding marks itself through `poll()` (as Twilio echoes the marks a
`clear` dropped) and ignores a late echo of them. A call ends when Asterisk closes the
socket (it hangs up by closing), or on a `HANGUP` text if a proxy sends one.
Wire format: https://docs.asterisk.org/Configuration/Channel-Drivers/WebSocket/
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from telephony.events import (
    BOT_SAMPLE_RATE,
    PCM16,
    AudioIn,
    CallEnded,
    CallStarted,
    DtmfDigit,
    Event,
    MarkPlayed,
    MediaFormat,
    ProtocolError,
    WireMessage,
)
from telephony.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from telephony.resample import StreamResampler
from telephony.wire import (
    DTMF_DIGITS,
    CodecStateError,
    FrameSplitter,
    as_int,
    parse_json_object,
    pcm16_from_bytes,
    pcm16_to_bytes,
    string_map,
)

CARRIER = "asterisk"
#: Asterisk's own limit for one websocket message.
MAX_MESSAGE_BYTES = 65_500
MAX_CONTROL_CHARS = 16 * 1024
#: Control events that need nothing from the call.
QUIET_EVENTS = frozenset({"STATUS", "MEDIA_BUFFERING_COMPLETED", "QUEUE_DRAINED"})


@dataclass(frozen=True)
class _Format:
    rate: int
    sample_bytes: int
    decode: Callable[[bytes], PCM16]
    encode: Callable[[PCM16], bytes]


FORMATS = {
    "ulaw": _Format(8000, 1, ulaw_decode, ulaw_encode),
    "alaw": _Format(8000, 1, alaw_decode, alaw_encode),
    "slin": _Format(8000, 2, pcm16_from_bytes, pcm16_to_bytes),
    "slin16": _Format(16000, 2, pcm16_from_bytes, pcm16_to_bytes),
}


def parse_control(message: str) -> tuple[str, dict[str, Any], list[str]] | ProtocolError:
    """A control message as (name, named parameters, positional parameters)."""
    if len(message) > MAX_CONTROL_CHARS:
        return ProtocolError(f"control message of {len(message)} chars is too long")
    if message.lstrip().startswith("{"):
        data = parse_json_object(message, MAX_CONTROL_CHARS)
        if isinstance(data, ProtocolError):
            return data
        return data["event"], data, []
    name, *words = message.split()
    named: dict[str, Any] = {}
    positional: list[str] = []
    for word in words:
        key, sep, value = word.partition(":")
        if sep and key:
            named[key] = value
        else:
            positional.append(word)
    return name, named, positional


class AsteriskWebSocketCodec:
    """One chan_websocket media connection, as seen from our server."""

    carrier = CARRIER
    #: Asterisk hangs up by closing the websocket.
    ends_by_closing = True

    def __init__(self) -> None:
        self.format: _Format | None = None
        self.json_control = False
        self.call_id: str | None = None
        self.xoff = False
        self.ended = False
        self._framer: FrameSplitter | None = None
        self._inbound: StreamResampler | None = None
        self._outbound: StreamResampler | None = None
        self._outstanding: list[str] = []
        self._dropped: list[str] = []

    # ----------------------------------------------------------------- inbound

    def receive(self, message: WireMessage) -> list[Event]:
        """BINARY frames are media; TEXT frames are control events."""
        if isinstance(message, bytes):
            return self._on_media(message)
        if not message.strip():
            return [ProtocolError("empty control message ignored")]
        parsed = parse_control(message)
        if isinstance(parsed, ProtocolError):
            return [parsed]
        name, params, positional = parsed
        if self.ended:
            return [ProtocolError(f"{name[:40]!r} after hangup ignored")]
        if name == "MEDIA_START":
            return self._on_start(params, json_control=message.lstrip().startswith("{"))
        if name == "DTMF_END":
            digit = params.get("digit")
            if not isinstance(digit, str) or digit not in DTMF_DIGITS:
                return [ProtocolError(f"DTMF_END with invalid digit {str(digit)[:8]!r}")]
            return [DtmfDigit(digit)]
        if name == "MEDIA_MARK_PROCESSED":
            return self._on_mark(params.get("correlation_id") or next(iter(positional), None))
        if name in ("MEDIA_XOFF", "MEDIA_XON"):
            self.xoff = name == "MEDIA_XOFF"
            return []
        if name in ("HANGUP", "MEDIA_END"):
            self.ended = True
            return [CallEnded("hangup")]
        if name in QUIET_EVENTS:
            return []
        return [ProtocolError(f"unknown control message {name[:40]!r} ignored")]

    def _on_start(self, params: dict[str, Any], *, json_control: bool) -> list[Event]:
        if self.format is not None:
            return [ProtocolError("second MEDIA_START ignored")]
        name = str(params.get("format", ""))
        fmt = FORMATS.get(name)
        if fmt is None:
            return [ProtocolError(f"unsupported media format {name[:40]!r}", fatal=True)]
        frame_bytes = as_int(params.get("optimal_frame_size")) or fmt.rate // 50 * fmt.sample_bytes
        if not 0 < frame_bytes <= MAX_MESSAGE_BYTES or frame_bytes % fmt.sample_bytes:
            return [ProtocolError(f"bad optimal_frame_size {frame_bytes}", fatal=True)]
        connection_id = str(params.get("connection_id") or "")
        call_id = str(params.get("channel_id") or connection_id or f"asterisk-{uuid.uuid4().hex}")
        custom = string_map(params.get("channel_variables"))
        if params.get("channel"):
            custom.setdefault("channel", str(params["channel"]))
        self.format, self.json_control, self.call_id = fmt, json_control, call_id
        self._framer = FrameSplitter(frame_bytes)
        self._inbound = StreamResampler(fmt.rate, BOT_SAMPLE_RATE)
        self._outbound = StreamResampler(BOT_SAMPLE_RATE, fmt.rate)
        return [
            CallStarted(
                carrier=CARRIER,
                call_id=call_id,
                stream_id=connection_id or call_id,
                media_format=MediaFormat(name, fmt.rate, 1),
                custom_parameters=MappingProxyType(custom),
            )
        ]

    def _on_media(self, data: bytes) -> list[Event]:
        if self.format is None or self._inbound is None:
            return [ProtocolError("media before MEDIA_START dropped")]
        if len(data) > MAX_MESSAGE_BYTES:
            return [ProtocolError(f"media message of {len(data)} bytes is too large")]
        if len(data) % self.format.sample_bytes:
            return [ProtocolError(f"media message of {len(data)} bytes is not whole samples")]
        if not data:
            return []
        return [AudioIn(self._inbound.process(self.format.decode(data)))]

    def _on_mark(self, name: Any) -> list[Event]:
        if not isinstance(name, str) or not name:
            return [ProtocolError("MEDIA_MARK_PROCESSED without a correlation id")]
        if name not in self._outstanding:
            return []  # already reported when a flush dropped it, or never ours
        self._outstanding.remove(name)
        return [MarkPlayed(name)]

    def poll(self) -> list[Event]:
        """Marks a `FLUSH_MEDIA` dropped (the server calls this on a timer)."""
        dropped, self._dropped = self._dropped, []
        return [MarkPlayed(name) for name in dropped]

    # ---------------------------------------------------------------- outbound

    def _command(self, name: str, argument: str | None = None) -> str:
        if self.json_control:
            body = {"command": name}
            if argument is not None:
                body["correlation_id"] = argument
            return json.dumps(body)
        return name if argument is None else f"{name} {argument}"

    def _started(self) -> tuple[_Format, FrameSplitter, StreamResampler]:
        if self.format is None or self._framer is None or self._outbound is None:
            raise CodecStateError("cannot send before Asterisk's MEDIA_START")
        return self.format, self._framer, self._outbound

    def send_audio(self, pcm: PCM16) -> list[WireMessage]:
        """Bot audio (16 kHz PCM16) -> BINARY frames of `optimal_frame_size` in the codec."""
        fmt, framer, outbound = self._started()
        encoded = fmt.encode(outbound.process(np.asarray(pcm, dtype=np.int16)))
        return list(framer.push(encoded))

    def mark(self, name: str) -> list[WireMessage]:
        """Asterisk answers `MARK_MEDIA` with `MEDIA_MARK_PROCESSED` when it plays that point."""
        self._started()
        if any(c.isspace() for c in name):
            raise ValueError(f"mark names cannot contain white space: {name!r}")
        self._outstanding.append(name)
        return [self._command("MARK_MEDIA", name)]

    def clear(self) -> list[WireMessage]:
        """Drop what Asterisk has queued (barge-in); its pending marks are reported by `poll()`."""
        _, framer, outbound = self._started()
        framer.reset()
        outbound.reset()
        self._dropped.extend(self._outstanding)
        self._outstanding.clear()
        return [self._command("FLUSH_MEDIA")]
