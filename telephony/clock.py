"""Injected clocks, so timing logic is testable without sleeping.

Everything that measures or waits goes through a `Clock`: the live server uses the
event loop's monotonic time; tests use `ManualClock`, advanced by hand. It lives in
`telephony` (which imports nothing of ours) so the RTP pacer and the call brain share
one clock type; `voicebot.clock` re-exports it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds and a way to sleep until a moment."""

    def now(self) -> float: ...
    async def sleep_until(self, deadline: float) -> None: ...


class MonotonicClock:
    """The real clock (time.monotonic, shared with asyncio's default loop clock)."""

    def now(self) -> float:
        """Seconds on the monotonic clock."""
        return time.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until `deadline` (returns at once if it has passed)."""
        delay = deadline - time.monotonic()
        await asyncio.sleep(delay if delay > 0 else 0)


class ManualClock:
    """A clock that only moves when told to; sleepers wake when time passes their deadline."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._changed = asyncio.Event()
        self._deadlines: list[float] = []

    def due(self) -> bool:
        """True when a sleeper's deadline has passed (it will run once the loop turns)."""
        return any(deadline <= self._now for deadline in self._deadlines)

    def now(self) -> float:
        """The current manual time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward and wake sleepers whose deadline has come."""
        self._now += seconds
        self._changed.set()

    async def sleep_until(self, deadline: float) -> None:
        """Wait until the manual time reaches `deadline`."""
        self._deadlines.append(deadline)
        try:
            while self._now < deadline:
                self._changed.clear()
                await self._changed.wait()
        finally:
            self._deadlines.remove(deadline)
