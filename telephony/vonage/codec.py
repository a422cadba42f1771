"""Sans-I/O codec for the Vonage Voice API websocket (NCCO `connect` to a websocket).

Vonage's first message is text: `{"event": "websocket:connected", "content-type":
"audio/l16;rate=16000", ...}`, where the `...` are the `headers` of the NCCO's websocket
endpoint (we pass them on as custom parameters; a `uuid` or conversation id among them
becomes the call id, else one is generated). Then audio flows as binary frames of
16-bit signed little-endian linear PCM, 20 ms each (640 bytes at 16 kHz, 320 at 8 kHz),
in both directions. Text frames carry events (`websocket:dtmf`) and our commands
(`{"action": "clear"}` drops what Vonage has buffered). There is no stop message: the
call ends when Vonage closes the socket, so `ends_by_closing` tells the server that a
clean close is a hang-up, not a dropped stream.

Marks: Vonage plays what it is sent in real time and does not echo a mark, so the
codec emulates them (`telephony.marks.MarkEmulator`): `mark()` sends nothing and the
mark is reported by `poll()`, which the server calls on a timer, once the audio sent
before it has had time to play. See `telephony.marks` for what that estimate can and
cannot know. Wire format: https://developer.vonage.com/en/voice/voice-api/concepts/websockets
"""

from __future__ import annotations

import json
import re
import time
import uuid
from types import MappingProxyType
from typing import Any

import numpy as np

from telephony.events import (
    BOT_SAMPLE_RATE,
    PCM16,
    AudioIn,
    CallStarted,
    DtmfDigit,
    Event,
    MediaFormat,
    ProtocolError,
    WireMessage,
)
from telephony.marks import MarkEmulator, TimeSource
from telephony.resample import StreamResampler
from telephony.wire import (
    DTMF_DIGITS,
    CodecStateError,
    FrameSplitter,
    parse_json_object,
    pcm16_from_bytes,
    pcm16_to_bytes,
    string_map,
)

CARRIER = "vonage"
ENCODING = "audio/l16"
RATES = (8000, 16000)
#: One second of 16 kHz L16; Vonage sends 20 ms frames.
MAX_AUDIO_BYTES = 32_000
MAX_MESSAGE_CHARS = 64 * 1024
#: NCCO header names that carry the call's identity, in order of preference.
CALL_ID_HEADERS = ("uuid", "call_uuid", "conversation_uuid", "conversation_id")
_RATE = re.compile(r"^\s*audio/l16\s*;\s*rate\s*=\s*(\d{4,5})\s*$", re.IGNORECASE)


def parse_content_type(value: Any) -> int | None:
    """The sample rate of an `audio/l16;rate=N` content type we can take, else None."""
    match = _RATE.match(value) if isinstance(value, str) else None
    rate = int(match.group(1)) if match else None
    return rate if rate in RATES else None


class VonageCodec:
    """One Vonage websocket call leg, as seen from our server."""

    carrier = CARRIER
    #: Vonage ends a call by closing the socket (there is no stop message).
    ends_by_closing = True

    def __init__(self, clock: TimeSource = time.monotonic, *, mark_latency_s: float = 0.04) -> None:
        self.rate: int | None = None
        self.call_id: str | None = None
        self.stream_id: str | None = None
        self.marks = MarkEmulator(clock, mark_latency_s)
        self._framer: FrameSplitter | None = None
        self._inbound: StreamResampler | None = None
        self._outbound: StreamResampler | None = None

    # ----------------------------------------------------------------- inbound

    def receive(self, message: WireMessage) -> list[Event]:
        """Binary frames are audio; text frames are JSON events."""
        if isinstance(message, bytes):
            return self._on_audio(message)
        data = parse_json_object(message, MAX_MESSAGE_CHARS)
        if isinstance(data, ProtocolError):
            return [data]
        event = data["event"]
        if event == "websocket:connected":
            return self._on_connected(data)
        if event == "websocket:dtmf":
            digit = data.get("digit")
            if not isinstance(digit, str) or digit not in DTMF_DIGITS:
                return [ProtocolError(f"'websocket:dtmf' with invalid digit {str(digit)[:8]!r}")]
            return [DtmfDigit(digit)]
        if event in ("websocket:cleared", "websocket:notify"):
            return []  # acknowledgements of our own commands: nothing for the call
        return [ProtocolError(f"unknown event {event[:40]!r} ignored")]

    def _on_connected(self, data: dict[str, Any]) -> list[Event]:
        if self.rate is not None:
            return [ProtocolError("second 'websocket:connected' ignored")]
        rate = parse_content_type(data.get("content-type"))
        if rate is None:
            why = f"unsupported content-type {str(data.get('content-type'))[:60]!r}"
            return [ProtocolError(why, fatal=True)]
        headers = string_map({k: v for k, v in data.items() if k not in ("event", "content-type")})
        call_id = next((headers[k] for k in CALL_ID_HEADERS if headers.get(k)), None)
        self.stream_id = uuid.uuid4().hex
        self.call_id = call_id or f"vonage-{self.stream_id}"
        self.rate = rate
        self._framer = FrameSplitter(rate // 50 * 2)
        self._inbound = StreamResampler(rate, BOT_SAMPLE_RATE)
        self._outbound = StreamResampler(BOT_SAMPLE_RATE, rate)
        return [
            CallStarted(
                carrier=CARRIER,
                call_id=self.call_id,
                stream_id=self.stream_id,
                media_format=MediaFormat(ENCODING, rate, 1),
                custom_parameters=MappingProxyType(headers),
            )
        ]

    def _on_audio(self, data: bytes) -> list[Event]:
        if self._inbound is None:
            return [ProtocolError("audio before 'websocket:connected' dropped")]
        if len(data) % 2:
            return [ProtocolError(f"audio frame of {len(data)} bytes is not whole samples")]
        if len(data) > MAX_AUDIO_BYTES:
            return [ProtocolError(f"audio frame of {len(data)} bytes is too large")]
        if not data:
            return []
        return [AudioIn(self._inbound.process(pcm16_from_bytes(data)))]

    def poll(self) -> list[Event]:
        """Emulated marks whose audio has played by now (the server calls this on a timer)."""
        return self.marks.due()

    # ---------------------------------------------------------------- outbound

    def _started(self) -> tuple[FrameSplitter, StreamResampler, int]:
        if self._framer is None or self._outbound is None or self.rate is None:
            raise CodecStateError("cannot send before Vonage's 'websocket:connected'")
        return self._framer, self._outbound, self.rate

    def send_audio(self, pcm: PCM16) -> list[WireMessage]:
        """Bot audio (16 kHz PCM16) -> binary L16 frames of exactly 20 ms at Vonage's rate."""
        framer, outbound, rate = self._started()
        resampled = outbound.process(np.asarray(pcm, dtype=np.int16))
        frames: list[WireMessage] = list(framer.push(pcm16_to_bytes(resampled)))
        self.marks.sent(sum(len(f) for f in frames) / 2 / rate)
        return frames

    def mark(self, name: str) -> list[WireMessage]:
        """Nothing goes on the wire: the mark is reported by `poll()` when it is due."""
        self._started()
        self.marks.mark(name)
        return []

    def clear(self) -> list[WireMessage]:
        """Drop what Vonage has buffered (barge-in); pending marks are reported at once."""
        framer, outbound, _ = self._started()
        framer.reset()
        outbound.reset()
        self.marks.clear()
        return [json.dumps({"action": "clear"})]
