"""Sans-I/O codec for Twilio Media Streams (bidirectional, `<Connect><Stream>`).

No sockets and no awaits: `receive()` turns one websocket text message into
carrier-neutral events, and `send_audio()`, `mark()` and `clear()` return the text
messages to send. Malformed input never raises: it becomes a `ProtocolError` event
(fatal only when the stream cannot go on), so one bad message cannot take the server
loop down. Wire format: https://www.twilio.com/docs/voice/media-streams/websocket-messages
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from telephony.events import (
    BOT_SAMPLE_RATE,
    PCM16,
    CallEnded,
    CallStarted,
    Event,
    MediaFormat,
    ProtocolError,
    WireMessage,
)
from telephony.g711 import ulaw_decode, ulaw_encode
from telephony.resample import StreamResampler
from telephony.wire import (
    CodecStateError,
    as_int,
    dtmf_event,
    mark_event,
    media_audio,
    parse_json_object,
)

__all__ = ["CodecStateError", "TwilioCodec"]

CARRIER = "twilio"
TWILIO_ENCODING = "audio/x-mulaw"
TWILIO_RATE = 8000
#: Twilio sends 20 ms (160 bytes); anything above one second of audio is not Twilio.
MAX_MEDIA_BYTES = TWILIO_RATE
#: No legitimate Twilio message comes close to this.
MAX_MESSAGE_CHARS = 64 * 1024


class TwilioCodec:
    """One Twilio media stream, as seen from our server."""

    carrier = CARRIER

    def __init__(self) -> None:
        self.stream_sid: str | None = None
        self.call_sid: str | None = None
        self.ended = False
        self.duplicates_dropped = 0
        self._last_sequence = 0
        self._inbound = StreamResampler(TWILIO_RATE, BOT_SAMPLE_RATE)
        self._outbound = StreamResampler(BOT_SAMPLE_RATE, TWILIO_RATE)

    # ----------------------------------------------------------------- inbound

    def receive(self, message: WireMessage) -> list[Event]:
        """Parse one websocket message from Twilio."""
        data = parse_json_object(message, MAX_MESSAGE_CHARS)
        if isinstance(data, ProtocolError):
            return [data]
        if self.ended:
            return [ProtocolError(f"'{data['event']}' after stop ignored")]
        sequence = as_int(data.get("sequenceNumber"))
        if sequence is not None:
            if sequence <= self._last_sequence:
                self.duplicates_dropped += 1
                return []
            self._last_sequence = sequence
        handler = self._HANDLERS.get(data["event"])
        if handler is None:
            return [ProtocolError(f"unknown event {data['event'][:40]!r} ignored")]
        return handler(self, data)

    def _on_connected(self, data: dict[str, Any]) -> list[Event]:
        return []

    def _on_start(self, data: dict[str, Any]) -> list[Event]:
        if self.stream_sid is not None:
            return [ProtocolError("second 'start' ignored")]
        start = data.get("start")
        if not isinstance(start, dict):
            return [ProtocolError("'start' without a start object", fatal=True)]
        stream_sid = start.get("streamSid") or data.get("streamSid")
        call_sid = start.get("callSid")
        if not isinstance(stream_sid, str) or not isinstance(call_sid, str):
            return [ProtocolError("'start' lacks streamSid or callSid", fatal=True)]
        fmt = start.get("mediaFormat") or {}
        if not isinstance(fmt, dict):
            fmt = {}
        encoding = str(fmt.get("encoding", TWILIO_ENCODING))
        rate = as_int(fmt.get("sampleRate", TWILIO_RATE))
        channels = as_int(fmt.get("channels", 1))
        if encoding != TWILIO_ENCODING or rate != TWILIO_RATE or channels != 1:
            return [ProtocolError(f"unsupported media format {fmt!r}", fatal=True)]
        raw_params = start.get("customParameters") or {}
        params = (
            {str(k): str(v) for k, v in raw_params.items()} if isinstance(raw_params, dict) else {}
        )
        tracks = start.get("tracks") or ["inbound"]
        self.stream_sid, self.call_sid = stream_sid, call_sid
        return [
            CallStarted(
                carrier=CARRIER,
                call_id=call_sid,
                stream_id=stream_sid,
                account_id=str(start.get("accountSid", "")),
                media_format=MediaFormat(encoding, rate, channels),
                custom_parameters=MappingProxyType(params),
                tracks=tuple(str(t) for t in tracks) if isinstance(tracks, list) else ("inbound",),
            )
        ]

    def _on_media(self, data: dict[str, Any]) -> list[Event]:
        if self.stream_sid is None:
            return [ProtocolError("'media' before 'start' dropped")]
        return media_audio(
            data, max_bytes=MAX_MEDIA_BYTES, decode=ulaw_decode, resampler=self._inbound
        )

    def _on_dtmf(self, data: dict[str, Any]) -> list[Event]:
        return [dtmf_event(data)]

    def _on_mark(self, data: dict[str, Any]) -> list[Event]:
        return [mark_event(data)]

    def _on_stop(self, data: dict[str, Any]) -> list[Event]:
        self.ended = True
        return [CallEnded("stop")]

    _HANDLERS: ClassVar[dict[str, Callable[[TwilioCodec, dict[str, Any]], list[Event]]]] = {
        "connected": _on_connected,
        "start": _on_start,
        "media": _on_media,
        "dtmf": _on_dtmf,
        "mark": _on_mark,
        "stop": _on_stop,
    }

    # ---------------------------------------------------------------- outbound

    def _sid(self) -> str:
        if self.stream_sid is None:
            raise CodecStateError("cannot send before Twilio's 'start' message")
        return self.stream_sid

    def send_audio(self, pcm: PCM16) -> list[WireMessage]:
        """Bot audio (16 kHz PCM16) -> one Twilio `media` message (8 kHz mu-law)."""
        sid = self._sid()
        ulaw = ulaw_encode(self._outbound.process(np.asarray(pcm, dtype=np.int16)))
        if not ulaw:
            return []
        payload = base64.b64encode(ulaw).decode("ascii")
        return [json.dumps({"event": "media", "streamSid": sid, "media": {"payload": payload}})]

    def mark(self, name: str) -> list[WireMessage]:
        """Ask Twilio to tell us when everything sent so far has been played."""
        return [json.dumps({"event": "mark", "streamSid": self._sid(), "mark": {"name": name}})]

    def clear(self) -> list[WireMessage]:
        """Drop everything Twilio has buffered but not yet played (barge-in)."""
        self._outbound.reset()
        return [json.dumps({"event": "clear", "streamSid": self._sid()})]
