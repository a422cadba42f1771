"""The AudioSocket front door: an asyncio TCP server that runs the same call handler.

AudioSocket is not a websocket, so it cannot be a route on the aiohttp `MediaServer`; it
gets this small server with the same guarantees: each connection is its own call with
its own task (an exception in one call closes that call only), the same limits from
`ServerSettings` (idle timeout, maximum call length, inbound buffer, send timeout), the
same admission callable (refused calls get a hang-up frame before any audio), and the
same shutdown: refuse new calls, let calls finish, then ask the rest to say goodbye.
It binds 127.0.0.1 by default: AudioSocket has no authentication at all, so it belongs
on the host or private network that Asterisk shares with the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from telephony.asterisk.audiosocket import AudioSocketCodec
from telephony.calls import CallTasks
from telephony.connection import CallConnection
from telephony.events import CallEnded, ProtocolError, WireMessage
from telephony.marks import run_mark_timer
from telephony.server import DROPPED, CallHandler, ServerSettings

log = logging.getLogger(__name__)

#: Bytes asked of the socket per read (a 20 ms audio frame is 323).
READ_BYTES = 4096


class AudioSocketServer:
    """Accepts Asterisk AudioSocket connections and hands each call to `handler`."""

    def __init__(
        self,
        handler: CallHandler,
        settings: ServerSettings | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        accept_call: Callable[[], bool] | None = None,
    ) -> None:
        self.handler = handler
        self.settings = settings or ServerSettings()
        self.host = host
        self.requested_port = port
        self.accept_call = accept_call or (lambda: True)
        self.draining = False
        self._server: asyncio.Server | None = None
        self.calls = CallTasks(
            handler, label="AudioSocket", handler_grace_s=self.settings.handler_grace_s
        )

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("AudioSocket server is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def active_connections(self) -> int:
        """Calls currently connected."""
        return self.calls.active

    async def start(self) -> None:
        """Start listening."""
        self._server = await asyncio.start_server(self._serve, self.host, self.requested_port)
        log.info("AudioSocket listening on %s:%d", self.host, self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        codec = AudioSocketCodec()
        peer = writer.get_extra_info("peername")
        remote = str(peer[0]) if isinstance(peer, tuple) else ""
        if self.draining or not self.accept_call():
            log.warning("AudioSocket call from %s refused: %s", remote,
                        "shutting down" if self.draining else "at capacity")  # fmt: skip
            with contextlib.suppress(ConnectionError):
                writer.write(codec.hangup())
                await asyncio.wait_for(writer.drain(), self.settings.send_timeout_s)
            writer.close()
            return

        async def send(message: WireMessage) -> None:
            writer.write(message.encode() if isinstance(message, str) else message)
            await writer.drain()

        async def close(code: int, reason: str) -> None:
            with contextlib.suppress(ConnectionError):
                writer.write(codec.hangup())
                await writer.drain()
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

        conn = CallConnection(
            codec,
            send,
            close,
            remote=remote,
            capacity=self.settings.inbound_capacity,
            send_timeout_s=self.settings.send_timeout_s,
        )
        task = self.calls.start(conn)
        timer = asyncio.create_task(run_mark_timer(codec, conn.push), name="audiosocket-marks")
        try:
            await self._pump(reader, codec, conn, task)
        finally:
            timer.cancel()
            conn.push(CallEnded(DROPPED))  # ignored after the caller's own hang-up
            await self.calls.finish(task)
            await conn.close()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        codec: AudioSocketCodec,
        conn: CallConnection,
        task: asyncio.Task[None],
    ) -> None:
        """Read until EOF, hang-up, a limit, a fatal error or the end of the call."""
        settings, loop = self.settings, asyncio.get_running_loop()
        deadline = loop.time() + settings.max_call_s
        while not (task.done() or conn.closed):
            left = deadline - loop.time()
            try:
                if left <= 0:
                    raise TimeoutError
                data = await asyncio.wait_for(
                    reader.read(READ_BYTES), min(settings.idle_timeout_s, left)
                )
            except TimeoutError:
                reason = "maximum call duration" if left <= 0 else "idle timeout: no messages"
                log.warning("audiosocket call ended: %s", reason)
                conn.push(CallEnded(reason))
                await conn.close(1000, reason)
                return
            except ConnectionError as exc:
                log.info("audiosocket connection lost: %r", exc)
                return
            if not data:
                return
            if conn.tap is not None:
                conn.tap("in", data)
            for event in codec.receive(data):
                if isinstance(event, ProtocolError):
                    log.warning("audiosocket protocol error: %s", event.message)
                    if event.fatal:
                        await conn.close(1008, event.message)
                        return
                    continue
                conn.push(event)
            if conn.overflowed:
                log.error("audiosocket peer flooded the control channel; closing")
                await conn.close(1008, "too many messages")
                return

    async def shutdown(self, grace_s: float, goodbye_s: float = 15.0) -> None:
        """Refuse new calls, let calls finish for `grace_s`, then ask the rest to say goodbye."""
        self.draining = True
        await self.calls.shutdown(grace_s, goodbye_s)

    async def drain(self, timeout_s: float) -> None:
        """Wait for the calls in progress to finish."""
        await self.calls.drain(timeout_s)

    async def close(self) -> None:
        """Stop listening and hang up whatever is left."""
        if self._server is not None:
            self._server.close()
        await self.calls.cancel_all("server stopped")
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
