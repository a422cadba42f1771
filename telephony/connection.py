"""One carrier connection as a call handler sees it: inbound events, outbound commands.

The server's reader task pushes events in; it must never block on a slow call (the
socket would back up and the carrier would see us as dead), so the inbound buffer is
bounded with an explicit overflow policy: when full, the oldest *audio* event is
dropped and counted; control events (start, DTMF, marks, stop) are never dropped. If
the buffer is full of control events only, the peer is flooding us and the connection
is marked overflowed, which ends the call cleanly.
Outbound commands go through the carrier's sans-I/O codec and one send lock, each send
with a timeout, so a peer that stops reading cannot wedge the call forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from telephony.events import PCM16, AudioIn, CallEnded, Event, WireMessage

log = logging.getLogger(__name__)


class CarrierCodec(Protocol):
    """What every carrier codec offers (sans-I/O; see DESIGN.md)."""

    carrier: str

    def receive(self, message: WireMessage) -> list[Event]: ...
    def send_audio(self, pcm: PCM16) -> list[WireMessage]: ...
    def mark(self, name: str) -> list[WireMessage]: ...
    def clear(self) -> list[WireMessage]: ...


Sender = Callable[[WireMessage], Awaitable[None]]
Closer = Callable[[int, str], Awaitable[None]]
#: Hands the call to a person (SIP REFER, a Twilio REST redirect); takes the reason.
Transferer = Callable[[str], Awaitable[None]]


class ConnectionClosed(Exception):
    """The carrier connection is gone; nothing more can be sent."""


class TransferFailed(Exception):
    """The carrier could not hand the call to a person (no target, refused, timed out)."""


class CallConnection:
    """Bounded inbound event buffer plus outbound commands for one carrier stream."""

    def __init__(
        self,
        codec: CarrierCodec,
        send: Sender,
        close: Closer,
        *,
        remote: str = "",
        capacity: int = 500,
        send_timeout_s: float = 5.0,
    ) -> None:
        self.codec = codec
        self.carrier = codec.carrier
        self.remote = remote
        self.capacity = capacity
        self.send_timeout_s = send_timeout_s
        self.audio_dropped = 0
        self.overflowed = False
        #: Sees every raw message in ("in") and out ("out"), e.g. to capture a call.
        self.tap: Callable[[str, WireMessage], None] | None = None
        #: Set by the front door that knows how to hand this carrier's calls to a person.
        self.transferer: Transferer | None = None
        self._send = send
        self._close = close
        self._events: deque[Event] = deque()
        self._wakeup = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._ended = False
        self._closed = False

    # ---------------------------------------------------------------- inbound

    def push(self, event: Event) -> None:
        """Called by the reader task; never blocks and never raises."""
        if self._ended:
            return
        if isinstance(event, CallEnded):
            self._ended = True
        elif len(self._events) >= self.capacity and not self._drop_oldest_audio():
            self.overflowed = True
            self._ended = True
            self._events.append(CallEnded("inbound overflow"))
            self._wakeup.set()
            return
        self._events.append(event)
        self._wakeup.set()

    def _drop_oldest_audio(self) -> bool:
        for index, queued in enumerate(self._events):
            if isinstance(queued, AudioIn):
                del self._events[index]
                self.audio_dropped += 1
                return True
        return False

    @property
    def pending(self) -> int:
        """Inbound events not yet taken by the call handler."""
        return len(self._events)

    async def events(self) -> AsyncIterator[Event]:
        """Inbound events in order; ends after the `CallEnded` event."""
        while True:
            while self._events:
                event = self._events.popleft()
                yield event
                if isinstance(event, CallEnded):
                    return
            self._wakeup.clear()
            await self._wakeup.wait()

    # --------------------------------------------------------------- outbound

    @property
    def closed(self) -> bool:
        """True once the connection can no longer carry outbound messages."""
        return self._closed

    async def _send_all(self, messages: list[WireMessage]) -> None:
        if self._closed:
            raise ConnectionClosed("connection already closed")
        task = asyncio.current_task()
        async with self._send_lock:
            for message in messages:
                if self.tap is not None:
                    self.tap("out", message)
                cancels = task.cancelling() if task is not None else 0
                try:
                    await asyncio.wait_for(self._send(message), self.send_timeout_s)
                except (ConnectionError, RuntimeError, TimeoutError) as exc:
                    self._closed = True
                    raise ConnectionClosed(f"send failed: {exc!r}") from exc
                if task is not None and task.cancelling() > cancels:
                    # Python 3.11's wait_for returns the send's result when this task is
                    # cancelled in the loop turn the send finished in (CPython gh-86296,
                    # fixed in 3.12), swallowing the cancel: a cancelled playout would go
                    # on and wait for audio forever, and a call's teardown with it.
                    raise asyncio.CancelledError

    async def send_audio(self, pcm: PCM16) -> None:
        """Send bot audio (16 kHz PCM16); the codec converts it to the carrier's format."""
        await self._send_all(self.codec.send_audio(pcm))

    async def mark(self, name: str) -> None:
        """Ask the carrier to echo `name` once everything sent so far has been played."""
        await self._send_all(self.codec.mark(name))

    async def clear(self) -> None:
        """Drop audio the carrier has queued but not played."""
        await self._send_all(self.codec.clear())

    @property
    def can_transfer(self) -> bool:
        """True when this carrier connection can hand the call to a person."""
        return self.transferer is not None

    async def transfer(self, reason: str) -> None:
        """Hand the call to a person; raises `TransferFailed` (the call is then still ours)."""
        if self.transferer is None:
            raise TransferFailed(f"{self.carrier} calls cannot be transferred here")
        await self.transferer(reason)

    async def close(self, code: int = 1000, reason: str = "call ended") -> None:
        """End the connection (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.wait_for(self._close(code, reason), self.send_timeout_s)
        except (ConnectionError, RuntimeError, TimeoutError) as exc:
            log.info("close of %s connection failed: %r", self.carrier, exc)
