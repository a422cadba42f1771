"""Marks for carriers that have none: report a mark played when its audio has played.

Twilio, Telnyx and Asterisk's chan_websocket echo a mark once the audio queued before it
has been played; the Call uses that to know what the caller heard (barge-in) and when a
reply is over. Vonage's websocket and Asterisk AudioSocket only play what they get, in
real time, from the moment it arrives. So we model their playback buffer here:

- every chunk we send starts playing when the previous one ends, or now if the carrier's
  buffer has run dry (the carrier plays at exactly the sample rate);
- a mark is due at the play-out end of the audio sent before it, plus `latency_s` for
  the network and the carrier's jitter buffer;
- `clear` empties the carrier's buffer, so every pending mark is due at once (as Twilio
  echoes the marks a `clear` dropped).

This is an estimate, and honest about it: it cannot see network delay or a carrier that
stalls, so a mark may come up to a few tens of milliseconds early or late. It never
comes back before its audio could have played, which is what barge-in accounting needs.
The codec stays sans-I/O: it reads an injected clock; the server calls `poll()` on a
timer (`run_mark_timer`) and pushes what is due into the call's event stream.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from telephony.events import Event, MarkPlayed

#: Seconds from a monotonic source, e.g. `time.monotonic`. Only read, never slept on, so
#: a plain callable, not the `telephony.clock.Clock` protocol (now() and sleep_until()).
TimeSource = Callable[[], float]
#: How often the server asks a codec for marks that have come due.
POLL_INTERVAL_S = 0.02


class MarkEmulator:
    """A model of the carrier's playback buffer: audio durations in, due marks out."""

    def __init__(self, clock: TimeSource = time.monotonic, latency_s: float = 0.04) -> None:
        self._clock = clock
        self.latency_s = latency_s
        self._played_until = 0.0
        self._pending: deque[tuple[float, str]] = deque()

    def sent(self, seconds: float) -> None:
        """Audio of this duration was just handed to the carrier."""
        now = self._clock()
        self._played_until = max(self._played_until, now) + seconds

    def mark(self, name: str) -> None:
        """A mark after everything sent so far."""
        due = max(self._played_until, self._clock()) + self.latency_s
        self._pending.append((due, name))

    def clear(self) -> None:
        """The carrier dropped its buffer: pending marks are due now, in order."""
        now = self._clock()
        self._played_until = now
        self._pending = deque((now, name) for _, name in self._pending)

    def due(self) -> list[Event]:
        """Marks whose audio has played by now, oldest first."""
        now = self._clock()
        out: list[Event] = []
        while self._pending and self._pending[0][0] <= now:
            out.append(MarkPlayed(self._pending.popleft()[1]))
        return out

    @property
    def pending(self) -> int:
        """Marks not yet reported."""
        return len(self._pending)


@runtime_checkable
class TimedCodec(Protocol):
    """A codec with events that come due with time rather than with a message."""

    def poll(self) -> list[Event]: ...


async def run_mark_timer(
    codec: TimedCodec, push: Callable[[Event], None], interval_s: float = POLL_INTERVAL_S
) -> None:
    """Push the codec's due events every `interval_s` until cancelled (one per call)."""
    while True:
        await asyncio.sleep(interval_s)
        for event in codec.poll():
            push(event)
