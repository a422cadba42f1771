"""The calls one front door is running: each call's task and connection, and their end.

Every front door (the websocket `MediaServer`, the AudioSocket TCP server, the SIP
bridge) runs each call in its own task so that an exception in one call closes that call
only, gives a handler a grace period to finish after the carrier has gone, and on
shutdown lets calls finish before asking the rest to say goodbye. That bookkeeping is
the same everywhere, so it lives here once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from telephony.connection import CallConnection
from telephony.events import ShutdownRequested

log = logging.getLogger(__name__)

CallHandler = Callable[[CallConnection], Awaitable[None]]

#: RFC 6455 close code for "internal error" (carriers without close codes ignore it).
CLOSE_INTERNAL = 1011


class CallTasks:
    """Starts, tracks, finishes and shuts down the calls of one front door."""

    def __init__(self, handler: CallHandler, *, label: str, handler_grace_s: float) -> None:
        self.handler = handler
        self.label = label
        self.handler_grace_s = handler_grace_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._conns: set[CallConnection] = set()

    @property
    def active(self) -> int:
        """Calls whose handler is still running."""
        return len(self._tasks)

    def start(self, conn: CallConnection, serve: CallHandler | None = None) -> asyncio.Task[None]:
        """Run the handler for `conn` in its own task (its failure closes this call only).

        `serve` runs instead of the handler for this call: a front door whose call owns
        more than the connection (the SIP bridge: an RTP port, a dialog) passes a wrapper
        that runs the handler and then releases them, so that `drain` waits for both.
        """
        run = self._run(conn, serve or self.handler)
        task = asyncio.create_task(run, name=f"call-{conn.carrier}")
        self._tasks.add(task)
        self._conns.add(conn)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._conns.discard(conn))
        return task

    async def _run(self, conn: CallConnection, serve: CallHandler) -> None:
        try:
            await serve(conn)
        except Exception:
            log.exception("call handler failed; closing this %s call only", self.label)
            await conn.close(CLOSE_INTERNAL, "internal error")

    async def finish(self, task: asyncio.Task[None]) -> None:
        """The carrier is gone: give the handler its grace period, then cancel it."""
        try:
            await asyncio.wait_for(asyncio.shield(task), self.handler_grace_s)
        except TimeoutError:
            log.error(
                "%s call handler did not finish within %.0f s; cancelling",
                self.label,
                self.handler_grace_s,
            )
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def shutdown(self, grace_s: float, goodbye_s: float) -> None:
        """Let calls finish for `grace_s`, then ask the rest to say goodbye and hang up."""
        await self.drain(grace_s)
        if self._conns:
            log.warning(
                "shutdown: ending %d %s call(s) still in progress", len(self._conns), self.label
            )
            for conn in list(self._conns):
                conn.push(ShutdownRequested("server shutdown"))
            await self.drain(goodbye_s)

    async def drain(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` for the calls in progress to finish."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def cancel_all(self, reason: str, timeout_s: float = 5.0) -> None:
        """Hang up and cancel whatever is left (the front door is closing)."""
        for conn in list(self._conns):
            await conn.close(1001, reason)
        for task in list(self._tasks):
            task.cancel()
        await self.drain(timeout_s)
