"""Sans-I/O codec for Asterisk AudioSocket (a TCP stream of type-length-value frames).

Each frame is one type byte, a two-byte big-endian payload length, then the payload:
0x00 hang-up (no payload), 0x01 the call's UUID (16 bytes, always first), 0x03 a DTMF
digit (one ASCII byte), 0x10 audio (signed linear 16-bit little-endian, 8 kHz mono;
320 bytes = 20 ms), 0xff an error (an optional one-byte code). TCP has no message
boundaries, so `receive()` takes whatever bytes a read returned, keeps a partial frame
for the next read, and returns the events of the whole frames so far.

AudioSocket has no marks and no clear: Asterisk plays what it gets as it gets it. So
outbound audio is paced by us (the bot's playout already sends 20 ms frames in real
time), marks are emulated exactly as for Vonage (`telephony.marks.MarkEmulator`,
reported through `poll()`), and `clear()` sends nothing: it only stops the codec from
counting audio that will no longer be sent. Audio is resampled 8 <-> 16 kHz here, once.
Reference: https://docs.asterisk.org/Configuration/Channel-Drivers/AudioSocket/
"""

from __future__ import annotations

import struct
import time
import uuid
from types import MappingProxyType

import numpy as np

from telephony.events import (
    BOT_SAMPLE_RATE,
    PCM16,
    AudioIn,
    CallEnded,
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
    pcm16_from_bytes,
    pcm16_to_bytes,
)

CARRIER = "audiosocket"
RATE = 8000
FRAME_BYTES = 320
KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_AUDIO = 0x10
KIND_ERROR = 0xFF
HEADER = struct.Struct(">BH")
#: One second of 8 kHz audio; Asterisk sends 20 ms. A longer frame is skipped.
MAX_AUDIO_BYTES = 16_000
ERROR_CODES = {0x00: "none", 0x01: "hangup", 0x02: "frame forwarding", 0x04: "memory"}


def frame(kind: int, payload: bytes = b"") -> bytes:
    """One AudioSocket frame."""
    return HEADER.pack(kind, len(payload)) + payload


class AudioSocketCodec:
    """One AudioSocket connection, as seen from our server."""

    carrier = CARRIER

    def __init__(self, clock: TimeSource = time.monotonic, *, mark_latency_s: float = 0.04) -> None:
        self.call_id: str | None = None
        self.ended = False
        self.marks = MarkEmulator(clock, mark_latency_s)
        self._buffer = bytearray()
        self._framer = FrameSplitter(FRAME_BYTES)
        self._inbound = StreamResampler(RATE, BOT_SAMPLE_RATE)
        self._outbound = StreamResampler(BOT_SAMPLE_RATE, RATE)

    # ----------------------------------------------------------------- inbound

    def receive(self, message: WireMessage) -> list[Event]:
        """Feed bytes from the socket; returns the events of every whole frame in them."""
        if isinstance(message, str):
            return [ProtocolError("text received; AudioSocket is a binary stream")]
        if self.ended:
            return [ProtocolError("data after hang-up ignored")] if message else []
        self._buffer += message
        events: list[Event] = []
        while len(self._buffer) >= HEADER.size and not self.ended:
            kind, length = HEADER.unpack_from(self._buffer)
            if len(self._buffer) < HEADER.size + length:
                break
            payload = bytes(self._buffer[HEADER.size : HEADER.size + length])
            del self._buffer[: HEADER.size + length]
            events.extend(self._on_frame(kind, payload))
            if any(isinstance(e, ProtocolError) and e.fatal for e in events):
                self.ended = True
        if self.ended:
            self._buffer.clear()
        return events

    @property
    def buffered(self) -> int:
        """Bytes of a partial frame waiting for the next read."""
        return len(self._buffer)

    def _on_frame(self, kind: int, payload: bytes) -> list[Event]:
        if kind == KIND_UUID:
            return self._on_uuid(payload)
        if kind == KIND_HANGUP:
            self.ended = True
            return [CallEnded("hangup")]
        if self.call_id is None:
            return [ProtocolError(f"frame of type 0x{kind:02x} before the UUID", fatal=True)]
        if kind == KIND_AUDIO:
            return self._on_audio(payload)
        if kind == KIND_DTMF:
            digit = payload.decode("ascii", "replace")
            if digit not in DTMF_DIGITS:
                return [ProtocolError(f"DTMF frame with invalid digit {digit[:8]!r}")]
            return [DtmfDigit(digit)]
        if kind == KIND_ERROR:
            code = payload[0] if payload else 0
            return [ProtocolError(f"Asterisk reported error {ERROR_CODES.get(code, hex(code))}")]
        return [ProtocolError(f"unknown frame type 0x{kind:02x} ({len(payload)} bytes) skipped")]

    def _on_uuid(self, payload: bytes) -> list[Event]:
        if self.call_id is not None:
            return [ProtocolError("second UUID frame ignored")]
        if len(payload) != 16:
            return [ProtocolError(f"UUID frame of {len(payload)} bytes, not 16", fatal=True)]
        self.call_id = str(uuid.UUID(bytes=payload))
        return [
            CallStarted(
                carrier=CARRIER,
                call_id=self.call_id,
                stream_id=self.call_id,
                media_format=MediaFormat("audio/l16", RATE, 1),
                custom_parameters=MappingProxyType({}),
            )
        ]

    def _on_audio(self, payload: bytes) -> list[Event]:
        if len(payload) % 2:
            return [ProtocolError(f"audio frame of {len(payload)} bytes is not whole samples")]
        if len(payload) > MAX_AUDIO_BYTES:
            return [ProtocolError(f"audio frame of {len(payload)} bytes is too large; skipped")]
        if not payload:
            return []
        return [AudioIn(self._inbound.process(pcm16_from_bytes(payload)))]

    def poll(self) -> list[Event]:
        """Emulated marks whose audio has played by now (the server calls this on a timer)."""
        return self.marks.due()

    # ---------------------------------------------------------------- outbound

    def _require_start(self) -> None:
        if self.call_id is None:
            raise CodecStateError("cannot send before AudioSocket's UUID frame")

    def send_audio(self, pcm: PCM16) -> list[WireMessage]:
        """Bot audio (16 kHz PCM16) -> audio frames of 20 ms at 8 kHz."""
        self._require_start()
        resampled = self._outbound.process(np.asarray(pcm, dtype=np.int16))
        chunks = self._framer.push(pcm16_to_bytes(resampled))
        self.marks.sent(len(chunks) * FRAME_BYTES / 2 / RATE)
        return [frame(KIND_AUDIO, chunk) for chunk in chunks]

    def mark(self, name: str) -> list[WireMessage]:
        """Nothing goes on the wire: the mark is reported by `poll()` when it is due."""
        self._require_start()
        self.marks.mark(name)
        return []

    def clear(self) -> list[WireMessage]:
        """AudioSocket has no buffer to clear: forget a partial frame, report pending marks."""
        self._require_start()
        self._framer.reset()
        self._outbound.reset()
        self.marks.clear()
        return []

    def hangup(self) -> bytes:
        """The frame that asks Asterisk to hang up (sent when we end the call)."""
        return frame(KIND_HANGUP)
