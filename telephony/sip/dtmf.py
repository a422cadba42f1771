"""RFC 4733 telephone-events: DTMF key presses carried inside the RTP stream.

In-band tones do not survive G.711 over lossy links reliably and are hard to detect
under speech, so SIP trunks send key presses as RTP "telephone-event" packets. One
press is many packets: the first (marker bit set) starts the event, updates repeat it
with a growing duration, and the end packet is sent three times. Every packet of one
event carries the same RTP timestamp (the event's start), which is what
`DtmfReceiver` keys on so that one press becomes exactly one digit, even when the
start packets were lost and only the end packets arrived.

Payload (4 bytes): event (8 bits) | E (end) | R | volume (6 bits) | duration (16 bits,
in timestamp units since the event began).
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from telephony.sip.rtp import RtpError

#: Events 0-15 are the DTMF keys, in this order (RFC 4733 section 3.2).
DTMF_KEYS = "0123456789*#ABCD"
_PAYLOAD = struct.Struct("!BBH")
#: Remembered event timestamps; far more than can overlap on one stream.
_SEEN_MEMORY = 32


class DtmfError(RtpError):
    """A telephone-event payload is malformed."""


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One telephone-event payload."""

    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str | None:
        """The DTMF key, or None for non-DTMF events (flash, tones)."""
        return DTMF_KEYS[self.event] if self.event < len(DTMF_KEYS) else None

    def to_bytes(self) -> bytes:
        """Serialize to the 4-byte payload."""
        if not 0 <= self.event < 256 or not 0 <= self.volume < 64:
            raise ValueError(f"event {self.event} or volume {self.volume} out of range")
        flags = (0x80 if self.end else 0) | self.volume
        return _PAYLOAD.pack(self.event, flags, min(self.duration, 0xFFFF))


def parse_event(payload: bytes) -> TelephoneEvent:
    """Parse a telephone-event payload; raises `DtmfError` when it is malformed."""
    if len(payload) < _PAYLOAD.size:
        raise DtmfError(f"telephone-event payload of {len(payload)} bytes, need 4")
    # Several events may be stacked (RFC 4733 2.5.1.5 redundancy); the first is current.
    event, flags, duration = _PAYLOAD.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


def digit_event(digit: str) -> int:
    """The event code of a DTMF key; raises ValueError for anything else."""
    if len(digit) != 1 or digit.upper() not in DTMF_KEYS:
        raise ValueError(f"{digit!r} is not a DTMF key (0-9, *, #, A-D)")
    return DTMF_KEYS.index(digit.upper())


class DtmfReceiver:
    """Turns the packets of key presses into one digit per press.

    A digit is reported on the first packet seen for a new event timestamp (start or
    end alike), so the bot hears it as soon as possible and retransmissions are
    silent. Non-DTMF events are ignored.
    """

    def __init__(self) -> None:
        self._seen: deque[tuple[int, int]] = deque(maxlen=_SEEN_MEMORY)
        self.duplicates = 0

    def receive(self, timestamp: int, payload: bytes) -> str | None:
        """Feed one telephone-event packet; returns the digit once per press."""
        event = parse_event(payload)
        digit = event.digit
        if digit is None:
            return None
        key = (timestamp, event.event)
        if key in self._seen:
            self.duplicates += 1
            return None
        self._seen.append(key)
        return digit


@dataclass(frozen=True, slots=True)
class EventPacket:
    """One packet of an outbound key press: RTP marker bit and payload.

    All packets of a press go out with the same RTP timestamp (the press's start).
    """

    marker: bool
    payload: bytes


def digit_packets(
    digit: str,
    *,
    duration_ms: int = 100,
    interval_ms: int = 20,
    volume: int = 10,
    clock_rate: int = 8000,
) -> list[EventPacket]:
    """The packets to send one key press, one per `interval_ms`.

    The first has the marker bit; each update's duration grows by one interval; the
    end packet repeats three times with the final duration (RFC 4733 2.5.1.4), so a
    receiver that loses one or two of them still sees the press end.
    """
    event = digit_event(digit)
    if duration_ms < interval_ms or interval_ms <= 0:
        raise ValueError(f"duration {duration_ms} ms must cover at least one {interval_ms} ms")
    step = clock_rate * interval_ms // 1000
    updates = duration_ms // interval_ms
    packets = [
        EventPacket(i == 0, TelephoneEvent(event, False, volume, step * (i + 1)).to_bytes())
        for i in range(updates)
    ]
    end = TelephoneEvent(event, True, volume, step * updates).to_bytes()
    packets.extend(EventPacket(False, end) for _ in range(3))
    return packets


@dataclass(slots=True)
class _Press:
    packets: deque[EventPacket]
    on_done: Callable[[bool], None]
    timestamp: int | None = None


class DtmfSender:
    """Outbound key presses, one packet per media tick (sans-I/O; the ticker sends).

    Every packet of a press reuses the RTP timestamp of the tick it started on, while
    the media clock keeps running, so audio after the press resumes at the right time.
    """

    def __init__(self) -> None:
        self._presses: deque[_Press] = deque()

    def __bool__(self) -> bool:
        return bool(self._presses)

    def add(self, digit: str, on_done: Callable[[bool], None], *, duration_ms: int = 100) -> None:
        """Queue a press; `on_done(True)` once its last packet is taken, `(False)` if cancelled."""
        self._presses.append(_Press(deque(digit_packets(digit, duration_ms=duration_ms)), on_done))

    def next_packet(self, timestamp: int) -> tuple[EventPacket, int] | None:
        """The packet for the tick at `timestamp` and the RTP timestamp to send it with."""
        if not self._presses:
            return None
        press = self._presses[0]
        if press.timestamp is None:
            press.timestamp = timestamp
        packet = press.packets.popleft()
        if not press.packets:
            self._presses.popleft()
            press.on_done(True)
        return packet, press.timestamp

    def cancel(self) -> None:
        """Drop every queued press (the call is closing)."""
        while self._presses:
            self._presses.popleft().on_done(False)
