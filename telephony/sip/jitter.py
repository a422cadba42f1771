"""An adaptive jitter buffer for inbound RTP audio, pulled on a clock tick.

UDP reorders, duplicates and loses packets, and their arrival times wobble. The bot
wants one gap-free 16 kHz stream whose sample count matches the caller's media clock,
so the buffer sorts packets by extended sequence number, drops duplicates and
stragglers, and turns a known hole into a concealment frame.

Pure object: time is passed in (`push(packet, now)`, `pop(now)`), so every behaviour
is unit-tested with a fake clock and no sleeps.

Playout schedule. A packet with media time `t = ts / rate` is due at
`t + base + delay`, where `base` is the smallest transit time (`arrival - t`) seen over
the last couple of seconds and `delay` is the target depth. Using the minimum transit
means the fastest packets define the schedule and `delay` is exactly the slack given to
slower ones; a sliding window lets the schedule follow a route change or a sender
whose clock runs slow, and silence suppression (timestamps jumping with the wall
clock) needs no special case. `delay` adapts from the RFC 3550 interarrival jitter
estimate `J` as `clamp(20 ms + 3 J, min, max)` (20-120 ms by default).

Because our listener is VAD and ASR rather than a loudspeaker, changing the depth
needs no time stretching: a deeper target just holds frames a little longer, a
shallower one releases a short burst. Nothing is dropped or duplicated to adapt.

Loss. A frame is declared lost only when a *later* packet is already here and the
missing one's due time has passed; then `pop` yields a frame with `payload=None`
(callers conceal it: repeat once, then silence). When nothing later is known the
buffer waits, because the far end may simply have stopped sending (hold, DTX). Holes
longer than `max_conceal` frames are skipped, not filled: the stream resumes at the
next packet and the timestamps tell the consumer how much time passed.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from telephony.sip.rtp import RtpPacket, SequenceExtender, ts_diff

#: The RFC 3550 jitter estimator's gain.
_JITTER_GAIN = 1 / 16
#: Played sequence numbers remembered to tell a duplicate from a late packet.
_PLAYED_MEMORY = 64


class PushResult(enum.Enum):
    """What the buffer did with a pushed packet."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    LATE = "late"


@dataclass(frozen=True, slots=True)
class JitterFrame:
    """One frame in playout order; `payload` is None for a lost frame to conceal.

    `sequence` is the extended sequence number and `timestamp` the media time in clock
    units since the stream began (both keep counting across wraps and restarts).
    """

    sequence: int
    timestamp: int
    payload: bytes | None
    samples: int


@dataclass(slots=True)
class JitterStats:
    """Counters for the call's media report."""

    accepted: int = 0
    duplicates: int = 0
    late: int = 0
    lost: int = 0
    overflow: int = 0
    restarts: int = 0


class JitterBuffer:
    """Reorders, de-duplicates and schedules one inbound RTP audio stream."""

    def __init__(
        self,
        *,
        clock_rate: int = 8000,
        frame_samples: int = 160,
        min_delay_s: float = 0.02,
        max_delay_s: float = 0.12,
        start_delay_s: float = 0.04,
        capacity: int = 64,
        max_conceal: int = 25,
        window: int = 100,
    ) -> None:
        if not 0 < min_delay_s <= start_delay_s <= max_delay_s:
            raise ValueError("need 0 < min_delay_s <= start_delay_s <= max_delay_s")
        self.clock_rate = clock_rate
        self.frame_samples = frame_samples
        self.min_delay_s = min_delay_s
        self.max_delay_s = max_delay_s
        self.capacity = capacity
        self.max_conceal = max_conceal
        self.stats = JitterStats()
        # Start as if J already gave `start_delay_s`; the estimate converges from there.
        self._jitter_s = max(0.0, (start_delay_s - 0.02) / 3)
        self._window = window
        self._transits: deque[tuple[int, float]] = deque()  # (arrival index, transit), min-queue
        self._arrivals = 0
        self._last_transit: float | None = None
        self._ssrc: int | None = None
        self._extender = SequenceExtender()
        self._seq_base = 0
        self._ts_ref_raw = 0
        self._ts_ref_rel = 0
        self._packets: dict[int, tuple[int, bytes]] = {}
        self._played: deque[int] = deque(maxlen=_PLAYED_MEMORY)
        self._next: int | None = None
        self._last_rel = 0
        self._origin = 0  # media time of the first frame played: output timestamps start at 0
        self._last_samples = frame_samples

    # ---------------------------------------------------------------- reading

    @property
    def jitter_s(self) -> float:
        """The RFC 3550 interarrival jitter estimate, in seconds."""
        return self._jitter_s

    @property
    def target_delay_s(self) -> float:
        """The depth the buffer currently aims for."""
        wanted = round(0.02 + 3 * self._jitter_s, 3)  # whole ms: no float-noise wobble
        return min(self.max_delay_s, max(self.min_delay_s, wanted))

    def __len__(self) -> int:
        return len(self._packets)

    # ------------------------------------------------------------------ input

    def push(self, packet: RtpPacket, now: float) -> PushResult:
        """Offer one packet that arrived at `now` (seconds on the caller's clock)."""
        if packet.ssrc != self._ssrc:
            if self._ssrc is not None:
                self._restart()
            self._ssrc = packet.ssrc
        fresh = self._extender.highest is None
        extended = self._extender.extend(packet.sequence)
        if extended is None:  # the sender jumped: treat it as a new stream
            self._restart()
            fresh = True
            extended = packet.sequence
            self._extender.extend(extended)
        if fresh:
            self._on_origin(packet)
        sequence = extended + self._seq_base
        if sequence in self._packets or sequence in self._played:
            self.stats.duplicates += 1
            return PushResult.DUPLICATE
        rel = self._ts_ref_rel + ts_diff(packet.timestamp, self._ts_ref_raw)
        self._observe_transit(now - rel / self.clock_rate)
        if self._next is not None and sequence < self._next:
            self.stats.late += 1
            return PushResult.LATE
        if rel > self._ts_ref_rel:
            self._ts_ref_raw, self._ts_ref_rel = packet.timestamp, rel
        if len(self._packets) >= self.capacity:
            del self._packets[min(self._packets)]
            self.stats.overflow += 1
        self._packets[sequence] = (rel, packet.payload)
        self.stats.accepted += 1
        return PushResult.ACCEPTED

    def _on_origin(self, packet: RtpPacket) -> None:
        """First packet of a (re)started stream: continue the extended clocks from here."""
        if self._next is not None:
            self._seq_base = self._next - packet.sequence
        self._ts_ref_raw = packet.timestamp
        self._ts_ref_rel = self._last_rel + (self._last_samples if self._next is not None else 0)

    def _restart(self) -> None:
        """A new SSRC or a sequence jump: drop the old stream's leftovers and re-sync."""
        self.stats.restarts += 1
        self.stats.overflow += len(self._packets)
        self._packets.clear()
        self._extender.reset()
        self._transits.clear()
        self._last_transit = None

    def _observe_transit(self, transit: float) -> None:
        if self._last_transit is not None:
            d = abs(transit - self._last_transit)
            self._jitter_s += (d - self._jitter_s) * _JITTER_GAIN
        self._last_transit = transit
        self._arrivals += 1
        while self._transits and self._transits[-1][1] >= transit:
            self._transits.pop()
        self._transits.append((self._arrivals, transit))
        while self._transits[0][0] <= self._arrivals - self._window:
            self._transits.popleft()

    # ----------------------------------------------------------------- output

    def _due(self, rel: int) -> float:
        return rel / self.clock_rate + self._transits[0][1] + self.target_delay_s

    @property
    def pending(self) -> int:
        """Packets held, waiting to be played."""
        return len(self._packets)

    def pop(self, now: float) -> list[JitterFrame]:
        """Every frame due by `now`, in order (lost ones with `payload=None`)."""
        out: list[JitterFrame] = []
        while self._packets:
            if self._next is None:  # not started: begin once the earliest packet is due
                head = min(self._packets)
                if self._due(self._packets[head][0]) > now:
                    break
                self._next = head
                self._origin = self._packets[head][0]
            entry = self._packets.get(self._next)
            if entry is not None:
                rel, payload = entry
                if self._due(rel) > now:
                    break
                del self._packets[self._next]
                # One byte per sample: true of G.711, the only codecs the bridge offers.
                samples = len(payload) or self.frame_samples
                out.append(JitterFrame(self._next, rel - self._origin, payload, samples))
                self._played.append(self._next)
                self._advance(rel, samples)
                continue
            following = min(self._packets)
            gap = following - self._next
            spacing = (self._packets[following][0] - self._last_rel) // (gap + 1)
            spacing = spacing if 0 < spacing <= self.clock_rate else self.frame_samples
            expected = self._last_rel + spacing
            if self._due(expected) > now:
                break
            if gap > self.max_conceal:
                self.stats.lost += gap
                self._next = following
                continue
            self.stats.lost += 1
            out.append(JitterFrame(self._next, expected - self._origin, None, spacing))
            self._advance(expected, spacing)
        return out

    def _advance(self, rel: int, samples: int) -> None:
        assert self._next is not None
        self._next += 1
        self._last_rel = rel
        self._last_samples = samples


def conceal(last: npt.NDArray[np.int16], losses_in_row: int, samples: int) -> npt.NDArray[np.int16]:
    """PCM for a lost frame: the last good frame once at half level, then silence.

    Repeating once bridges a single lost packet (the common case) without a click;
    repeating longer turns into a buzz, and for VAD and ASR silence is the honest fill.
    """
    if losses_in_row == 1 and last.size == samples:
        return (last // 2).astype(np.int16)
    return np.zeros(samples, dtype=np.int16)
