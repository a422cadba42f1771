"""Paced outbound audio: 20 ms frames at the pace the carrier plays them, plus marks.

Carriers buffer whatever we send and play it in order. Sending a whole reply at once
would make barge-in slow (the carrier's `clear` must throw away more) and would hide
from us what the caller has actually heard. So frames go out at real-time pace, a small
`lead` ahead of the carrier's play position (enough to ride out scheduling jitter), and
a mark after each sentence tells us, when the carrier echoes it, that the caller heard
it. The queue is bounded: a producer that runs ahead waits (backpressure to TTS).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from telephony.connection import ConnectionClosed
from telephony.events import BOT_FRAME_SAMPLES, BOT_SAMPLE_RATE, PCM16
from voicebot.clock import Clock

FRAME_S = BOT_FRAME_SAMPLES / BOT_SAMPLE_RATE

log = logging.getLogger(__name__)


class OutboundLink(Protocol):
    """The part of a carrier connection playout needs."""

    async def send_audio(self, pcm: PCM16) -> None: ...
    async def mark(self, name: str) -> None: ...


@dataclass(frozen=True, slots=True)
class _Audio:
    pcm: PCM16
    owner: str


@dataclass(frozen=True, slots=True)
class _Mark:
    name: str
    owner: str


class Playout:
    """Sends queued audio in paced 20 ms frames; `flush()` drops what is not yet sent."""

    def __init__(
        self,
        link: OutboundLink,
        clock: Clock,
        *,
        lead_ms: int = 120,
        capacity: int = 32,
        on_first_frame: Callable[[str, float], None] | None = None,
        on_frame: Callable[[PCM16, float], None] | None = None,
    ) -> None:
        self._link = link
        self._clock = clock
        self._lead = lead_ms / 1000
        self._queue: asyncio.Queue[_Audio | _Mark] = asyncio.Queue(maxsize=capacity)
        self._on_first_frame = on_first_frame
        self._on_frame = on_frame
        self._anchor = 0.0
        self._frames_since_anchor = 0
        self._last_owner: str | None = None
        self._generation = 0
        self.frames_sent = 0
        #: The carrier connection failed while sending; nothing more goes out.
        self.link_closed = False

    # -------------------------------------------------------------- producer

    async def play(self, pcm: PCM16, owner: str) -> None:
        """Queue audio (any length) for `owner` (a reply id); waits if the queue is full."""
        if pcm.size:
            await self._queue.put(_Audio(np.asarray(pcm, dtype=np.int16), owner))

    async def mark(self, name: str, owner: str) -> None:
        """Queue a mark after the audio queued so far."""
        await self._queue.put(_Mark(name, owner))

    def flush(self) -> None:
        """Drop everything queued but not yet sent (barge-in); the sender stops mid-item."""
        self._generation += 1
        while not self._queue.empty():
            self._queue.get_nowait()
        self._frames_since_anchor = 0
        self._anchor = self._clock.now()

    def played_until(self) -> float:
        """Clock time at which the carrier will have played everything sent so far."""
        return self._anchor + self._frames_since_anchor * FRAME_S

    # -------------------------------------------------------------- consumer

    async def run(self) -> None:
        """Sender loop; runs for the whole call (cancel it to stop).

        A connection that fails mid-send is the call ending (the server's reader sees
        the close and ends the call); it is not an error of this call's task group.
        From then on queued audio is dropped, so producers never block on a dead link.
        """
        while True:
            item = await self._queue.get()
            if self.link_closed:
                continue
            try:
                if isinstance(item, _Mark):
                    await self._link.mark(item.name)
                else:
                    await self._send(item)
            except ConnectionClosed as exc:
                log.info("playout stopped: %s", exc)
                self.link_closed = True

    async def _send(self, item: _Audio) -> None:
        generation = self._generation
        now = self._clock.now()
        if now >= self.played_until():
            # The carrier's buffer has run dry: start a new talk spurt from now.
            self._anchor = now
            self._frames_since_anchor = 0
        pcm = item.pcm
        for start in range(0, pcm.size, BOT_FRAME_SAMPLES):
            frame = pcm[start : start + BOT_FRAME_SAMPLES]
            if frame.size < BOT_FRAME_SAMPLES:
                frame = np.pad(frame, (0, BOT_FRAME_SAMPLES - frame.size))
            due = self.played_until() - self._lead
            if due > self._clock.now():
                await self._clock.sleep_until(due)
            if generation != self._generation:
                return
            await self._link.send_audio(frame)
            if self._on_frame is not None:
                self._on_frame(frame, self.played_until())
            self.frames_sent += 1
            self._frames_since_anchor += 1
            if item.owner != self._last_owner:
                self._last_owner = item.owner
                if self._on_first_frame is not None:
                    self._on_first_frame(item.owner, self._clock.now())


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a task and wait for it, swallowing its cancellation."""
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
