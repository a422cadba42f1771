"""Sans-I/O codec for Telnyx media streaming over websockets (bidirectional, RTP mode).

Telnyx's JSON is close to Twilio's (connected, start, media, dtmf, mark, stop, plus an
error frame), with snake_case fields, PCMU or PCMA chosen in the start's `media_format`,
and one difference that matters: Telnyx says media frame order is not guaranteed. So
messages that carry a `sequence_number` pass through a small reorder window: a message
that arrives early waits until the ones before it have come (at most `reorder_window`
messages, 100 ms of audio at the default, then the gap is given up as lost), and
duplicates or messages older than what was already delivered are dropped and counted.
Audio is decoded in delivery order, so the stateful resampler sees a continuous stream.

Outbound: `media` with a base64 payload in the stream's codec, `mark` (echoed by Telnyx
once the audio before it has played, or when a `clear` drops it) and `clear`.
Wire format: https://developers.telnyx.com/docs/voice/programmable-voice/media-streaming
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
from telephony.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from telephony.resample import StreamResampler
from telephony.wire import (
    CodecStateError,
    as_int,
    dtmf_event,
    mark_event,
    media_audio,
    parse_json_object,
    string_map,
)

CARRIER = "telnyx"
RATE = 8000
#: Telnyx sends 20 ms (160 bytes); anything above one second of G.711 is not Telnyx.
MAX_MEDIA_BYTES = RATE
MAX_MESSAGE_CHARS = 64 * 1024
#: Messages held back waiting for a missing sequence number before it counts as lost.
REORDER_WINDOW = 5
#: A sequence number this far ahead of the next expected one is junk, not reordering.
MAX_SEQUENCE_JUMP = 1000
_CODECS: dict[str, tuple[Callable[[bytes], PCM16], Callable[[PCM16], bytes]]] = {
    "PCMU": (ulaw_decode, ulaw_encode),
    "PCMA": (alaw_decode, alaw_encode),
}


class TelnyxCodec:
    """One Telnyx media stream, as seen from our server."""

    carrier = CARRIER

    def __init__(self, reorder_window: int = REORDER_WINDOW) -> None:
        self.reorder_window = reorder_window
        self.stream_id: str | None = None
        self.call_id: str | None = None
        self.encoding = "PCMU"
        self.ended = False
        self.duplicates_dropped = 0
        self.gaps_skipped = 0
        self._next_sequence: int | None = None
        self._held: dict[int, dict[str, Any]] = {}
        self._inbound = StreamResampler(RATE, BOT_SAMPLE_RATE)
        self._outbound = StreamResampler(BOT_SAMPLE_RATE, RATE)

    # ----------------------------------------------------------------- inbound

    def receive(self, message: WireMessage) -> list[Event]:
        """Parse one websocket message from Telnyx; may release messages held for order."""
        data = parse_json_object(message, MAX_MESSAGE_CHARS)
        if isinstance(data, ProtocolError):
            return [data]
        if self.ended:
            return [ProtocolError(f"{data['event'][:40]!r} after stop ignored")]
        sequence = as_int(data.get("sequence_number"))
        if sequence is None or data["event"] == "start":
            # The start sets up decoding: it is never held back behind a gap.
            if sequence is not None and (self._next_sequence or 0) <= sequence:
                self._next_sequence = sequence + 1
            return self._handle(data)
        return self._sequenced(sequence, data)

    def _sequenced(self, sequence: int, data: dict[str, Any]) -> list[Event]:
        if self._next_sequence is None:
            self._next_sequence = sequence
        if sequence < self._next_sequence or sequence in self._held:
            self.duplicates_dropped += 1
            return []
        if sequence - self._next_sequence > MAX_SEQUENCE_JUMP:
            return [ProtocolError(f"sequence number {sequence} is far ahead; dropped")]
        self._held[sequence] = data
        return self._release(flush=data["event"] == "stop")

    def _release(self, *, flush: bool) -> list[Event]:
        """Hand on held messages in order; skip a gap once the window is full (or on stop)."""
        events: list[Event] = []
        while self._held and not self.ended:
            assert self._next_sequence is not None
            if self._next_sequence not in self._held:
                if not flush and len(self._held) <= self.reorder_window:
                    break
                self.gaps_skipped += 1
                self._next_sequence = min(self._held)
            data = self._held.pop(self._next_sequence)
            self._next_sequence += 1
            events.extend(self._handle(data))
        if self.ended:
            self._held.clear()
        return events

    def _handle(self, data: dict[str, Any]) -> list[Event]:
        handler = self._HANDLERS.get(data["event"])
        if handler is None:
            return [ProtocolError(f"unknown event {data['event'][:40]!r} ignored")]
        return handler(self, data)

    def _on_connected(self, data: dict[str, Any]) -> list[Event]:
        return []

    def _on_start(self, data: dict[str, Any]) -> list[Event]:
        if self.stream_id is not None:
            return [ProtocolError("second 'start' ignored")]
        start = data.get("start")
        if not isinstance(start, dict):
            return [ProtocolError("'start' without a start object", fatal=True)]
        stream_id = data.get("stream_id") or start.get("stream_id")
        call_id = start.get("call_control_id")
        if not isinstance(stream_id, str) or not isinstance(call_id, str) or not call_id:
            return [ProtocolError("'start' lacks stream_id or call_control_id", fatal=True)]
        fmt = start.get("media_format")
        fmt = fmt if isinstance(fmt, dict) else {}
        encoding = str(fmt.get("encoding", "PCMU")).upper()
        rate = as_int(fmt.get("sample_rate", RATE))
        channels = as_int(fmt.get("channels", 1))
        if encoding not in _CODECS or rate != RATE or channels != 1:
            return [ProtocolError(f"unsupported media format {fmt!r}"[:200], fatal=True)]
        params = string_map(start.get("custom_parameters"))
        for key in ("from", "to"):
            if isinstance(start.get(key), str):
                params.setdefault(key, start[key])
        self.stream_id, self.call_id, self.encoding = stream_id, call_id, encoding
        return [
            CallStarted(
                carrier=CARRIER,
                call_id=call_id,
                stream_id=stream_id,
                account_id=str(start.get("user_id", "")),
                media_format=MediaFormat(encoding, rate, channels),
                custom_parameters=MappingProxyType(params),
            )
        ]

    def _on_media(self, data: dict[str, Any]) -> list[Event]:
        if self.stream_id is None:
            return [ProtocolError("'media' before 'start' dropped")]
        decode = _CODECS[self.encoding][0]
        return media_audio(data, max_bytes=MAX_MEDIA_BYTES, decode=decode, resampler=self._inbound)

    def _on_dtmf(self, data: dict[str, Any]) -> list[Event]:
        return [dtmf_event(data)]

    def _on_mark(self, data: dict[str, Any]) -> list[Event]:
        return [mark_event(data)]

    def _on_error(self, data: dict[str, Any]) -> list[Event]:
        payload = data.get("payload")
        detail = json.dumps(payload)[:200] if payload is not None else "no detail"
        return [ProtocolError(f"Telnyx reported an error: {detail}")]

    def _on_stop(self, data: dict[str, Any]) -> list[Event]:
        self.ended = True
        return [CallEnded("stop")]

    _HANDLERS: ClassVar[dict[str, Callable[[TelnyxCodec, dict[str, Any]], list[Event]]]] = {
        "connected": _on_connected,
        "start": _on_start,
        "media": _on_media,
        "dtmf": _on_dtmf,
        "mark": _on_mark,
        "error": _on_error,
        "stop": _on_stop,
    }

    # ---------------------------------------------------------------- outbound

    def _require_start(self) -> None:
        if self.stream_id is None:
            raise CodecStateError("cannot send before Telnyx's 'start' message")

    def send_audio(self, pcm: PCM16) -> list[WireMessage]:
        """Bot audio (16 kHz PCM16) -> one Telnyx `media` message in the stream's codec."""
        self._require_start()
        encode = _CODECS[self.encoding][1]
        encoded = encode(self._outbound.process(np.asarray(pcm, dtype=np.int16)))
        if not encoded:
            return []
        payload = base64.b64encode(encoded).decode("ascii")
        return [json.dumps({"event": "media", "media": {"payload": payload}})]

    def mark(self, name: str) -> list[WireMessage]:
        """Ask Telnyx to echo `name` once everything sent so far has been played."""
        self._require_start()
        return [json.dumps({"event": "mark", "mark": {"name": name}})]

    def clear(self) -> list[WireMessage]:
        """Drop what Telnyx has queued but not played (barge-in); it echoes dropped marks."""
        self._require_start()
        self._outbound.reset()
        return [json.dumps({"event": "clear"})]
