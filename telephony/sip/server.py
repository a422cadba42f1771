"""The SIP front door: the sans-I/O user agent on a UDP socket, RTP per call, a handler per call.

Thin glue, like `telephony.server.MediaServer`: datagrams go into
`UserAgentServer.receive`, a ticker feeds it the time, and the actions it returns are
carried out here (send a datagram, admit or refuse a call, reconfigure media, end a
call). Each admitted call gets an `RtpMedia` (codec and paced sender in one) and the
same `CallConnection` the websocket carriers build, so the same `Call` handles it.
Calls run under the `CallTasks` every front door shares: an exception in one is logged
and hangs up that call only, a handler still running `handler_grace_s` after the dialog
ended is cancelled, and shutdown refuses new calls (503 to INVITE and OPTIONS), lets
calls finish, asks the rest to say goodbye, then cancels. What is SIP's own: a call is
admitted (and counted) from the INVITE, but reaches `CallTasks` only once its RTP port
is open and it is answered; its handler is wrapped so that the port and the dialog are
released inside the call's task, and `drain` therefore means "ports free, BYEs sent".
Malformed datagrams cost one log line (rate-limited per source), nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import MappingProxyType

from telephony.calls import CallHandler, CallTasks
from telephony.connection import CallConnection, TransferFailed
from telephony.events import CallEnded, CallStarted, DtmfDigit, Event, MediaFormat
from telephony.sip.media import RtpMedia
from telephony.sip.ports import PortAllocator, PortsExhausted
from telephony.sip.transaction import (
    Action,
    Addr,
    BadMessage,
    DialogEnded,
    DtmfInfo,
    IncomingCall,
    MediaChanged,
    Send,
    TransferResult,
)
from telephony.sip.uas import UserAgentServer

log = logging.getLogger(__name__)

WILDCARDS = ("", "0.0.0.0", "::")


@dataclass
class SipSettings:
    """Where the SIP bridge listens and how it treats calls it cannot take."""

    host: str = "127.0.0.1"
    port: int = 5060
    #: The address peers reach us at (Contact, SDP); default: `host`, or a guess if wildcard.
    public_host: str = ""
    rtp_ports: tuple[int, int] = (10000, 10999)
    #: Where transfers go (a SIP URI); "" = calls cannot be transferred.
    agent_uri: str = ""
    #: Answer to a call over capacity: 486 Busy Here or 503 Service Unavailable.
    busy_code: int = 486
    retry_after_s: int = 30
    inbound_capacity: int = 500
    send_timeout_s: float = 5.0
    max_call_s: float = 3600.0
    #: End a call after this long without RTP from the caller (not counted while on hold);
    #: a caller gone without a BYE otherwise holds the call until `max_call_s`. 0 = off.
    idle_timeout_s: float = 30.0
    #: After the dialog ends, how long the handler may take to finish before it is cancelled.
    handler_grace_s: float = 15.0
    transfer_timeout_s: float = 30.0
    #: How often the user agent's timers are checked (RFC 3261 T1 is 500 ms).
    tick_s: float = 0.05
    #: One log line per source per this many seconds for malformed datagrams.
    bad_log_interval_s: float = 5.0


def parse_port_range(text: str) -> tuple[int, int]:
    """`"10000-10999"` -> (10000, 10999); raises ValueError."""
    first, sep, last = text.partition("-")
    if not sep or not first.strip().isdigit() or not last.strip().isdigit():
        raise ValueError(f"RTP port range {text!r}: expected FIRST-LAST, e.g. 10000-10999")
    low, high = int(first), int(last)
    if not 0 < low <= high < 65536:
        raise ValueError(f"RTP port range {text!r} is out of order or out of range")
    return low, high


def _guess_public_host() -> str:
    """The address of the interface that routes outward (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only the routing table is asked
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: SipServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.server._datagram(data, (str(addr[0]), int(str(addr[1]))))

    def error_received(self, exc: Exception) -> None:
        log.info("sip socket error: %r", exc)


class _SipCall:
    """One admitted call: its media and connection (the dialog lives in the UAS)."""

    def __init__(self, offer: IncomingCall) -> None:
        self.offer = offer
        self.media: RtpMedia | None = None
        self.conn: CallConnection | None = None
        #: Opens the RTP port and answers; then the call is in `SipServer.calls`.
        self.opening: asyncio.Task[None] | None = None
        #: The handler's deadline: none while the dialog lasts, the grace period after.
        self.deadline: asyncio.Timeout | None = None
        self.ended: str | None = None
        self.transfer: asyncio.Future[tuple[bool, str]] | None = None

    def push(self, event: Event) -> None:
        """Media events reach the call once its connection exists."""
        if self.conn is not None:
            self.conn.push(event)


class SipServer:
    """Answers SIP calls on UDP and hands each one to `handler` as a `CallConnection`."""

    def __init__(
        self,
        handler: CallHandler,
        settings: SipSettings | None = None,
        *,
        accept_call: Callable[[], bool] | None = None,
    ) -> None:
        self.handler = handler
        self.settings = settings or SipSettings()
        self.accept_call = accept_call or (lambda: True)
        self.ports = PortAllocator(*self.settings.rtp_ports)
        host = self.settings.public_host or self.settings.host
        self.public_host = _guess_public_host() if host in WILDCARDS else host
        self.uas = UserAgentServer(
            self.public_host,
            self.settings.port,
            transfer_timeout_s=self.settings.transfer_timeout_s,
        )
        self.draining = False
        self.calls = CallTasks(handler, label="SIP", handler_grace_s=self.settings.handler_grace_s)
        self._calls: dict[str, _SipCall] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._bad: dict[str, tuple[float, int]] = {}

    @property
    def active_connections(self) -> int:
        """Calls admitted and not yet over (counted from admission, so bursts see them)."""
        return len(self._calls)

    @property
    def port(self) -> int:
        """The UDP port we listen on (the real one when configured as 0)."""
        return self.uas.local.port

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Bind the UDP socket and start the timers."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(self.settings.host, self.settings.port)
        )
        self._transport = transport
        port = int(transport.get_extra_info("sockname")[1])
        self.uas.local = replace(self.uas.local, port=port)
        self._ticker = asyncio.create_task(self._tick_forever(), name="sip-timers")
        log.info(
            "SIP listening on udp %s:%d (contact %s)", self.settings.host, port, self.public_host
        )

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_s)
            self._apply(self.uas.tick(self._now()))

    async def shutdown(self, grace_s: float, goodbye_s: float = 15.0) -> None:
        """Refuse new calls (503), let calls finish, then ask the rest to say goodbye."""
        self.draining = True
        self.uas.unavailable_retry_after = self.settings.retry_after_s
        await self._opened()
        await self.calls.shutdown(grace_s, goodbye_s)

    async def drain(self, timeout_s: float) -> None:
        """Wait for the calls in progress to finish (their ports freed, their BYEs sent)."""
        await self._opened()
        await self.calls.drain(timeout_s)

    async def _opened(self, timeout_s: float = 5.0) -> None:
        """Wait for the calls still opening their RTP port, so that `self.calls` has them."""
        opening = {c.opening for c in self._calls.values() if c.opening and not c.opening.done()}
        if opening:
            await asyncio.wait(opening, timeout=timeout_s)

    async def close(self) -> None:
        """Hang up whatever is left (BYE), stop the timers and close the socket."""
        self.draining = True
        await self._opened()
        await self.calls.cancel_all("server stopped")
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._transport is not None:
            self._transport.close()

    # ----------------------------------------------------------------- input

    def _datagram(self, data: bytes, addr: Addr) -> None:
        try:
            actions = self.uas.receive(data, addr, self._now())
        except Exception:  # the UAS promises not to raise; if it does, lose one datagram only
            log.exception("sip: datagram from %s:%d could not be handled", *addr)
            return
        self._apply(actions)

    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                if self._transport is not None and not self._transport.is_closing():
                    self._transport.sendto(action.data, action.addr)
            elif isinstance(action, IncomingCall):
                self._incoming(action)
            elif isinstance(action, DialogEnded):
                self._ended(action)
            elif isinstance(action, MediaChanged):
                self._media_changed(action)
            elif isinstance(action, DtmfInfo):
                if call := self._calls.get(action.call_id):
                    call.push(DtmfDigit(action.digit))
            elif isinstance(action, TransferResult):
                call = self._calls.get(action.call_id)
                if call and call.transfer is not None and not call.transfer.done():
                    call.transfer.set_result((action.ok, action.detail))
            elif isinstance(action, BadMessage):
                self._log_bad(action)

    def _log_bad(self, bad: BadMessage) -> None:
        """One line per source per interval; the count of those not logged goes with it."""
        now = self._now()
        last, skipped = self._bad.get(bad.addr[0], (-1e9, 0))
        if now - last < self.settings.bad_log_interval_s:
            self._bad[bad.addr[0]] = (last, skipped + 1)
            return
        if len(self._bad) > 10_000:
            self._bad.clear()
        self._bad[bad.addr[0]] = (now, 0)
        more = f" (+{skipped} more since the last line)" if skipped else ""
        answer = "answered with an error" if bad.answered else "dropped"
        log.warning("sip: bad message from %s:%d %s: %s%s", *bad.addr, answer, bad.reason, more)

    # ------------------------------------------------------------------ calls

    def _incoming(self, offer: IncomingCall) -> None:
        now, settings = self._now(), self.settings
        if self.draining or not self.accept_call():
            code = 503 if self.draining else settings.busy_code
            why = "shutting down" if self.draining else "at capacity"
            log.warning("sip call %s refused (%d): %s", offer.call_id, code, why)
            retry = settings.retry_after_s if code == 503 else None
            self._apply(self.uas.reject(offer.call_id, code, now, retry_after=retry))
            return
        call = _SipCall(offer)
        self._calls[offer.call_id] = call
        self._apply(self.uas.ringing(offer.call_id, now))
        call.opening = asyncio.create_task(self._open(call), name=f"sip-open-{offer.call_id[:16]}")

    def _ended(self, ended: DialogEnded) -> None:
        call = self._calls.get(ended.call_id)
        if call is None:
            return
        call.ended = ended.reason
        call.push(CallEnded(ended.reason))
        if call.deadline is not None and call.deadline.when() is None:
            # the dialog is over: the handler's grace period starts now (as `CallTasks.finish`)
            call.deadline.reschedule(self._now() + self.settings.handler_grace_s)
        if call.transfer is not None and not call.transfer.done():
            call.transfer.set_result((False, f"call ended: {ended.reason}"))

    def _media_changed(self, change: MediaChanged) -> None:
        call = self._calls.get(change.call_id)
        if call is not None and call.media is not None:
            _configure(call.media, change)
            log.info("sip call %s: media now %s", change.call_id, change.agreed.direction)

    async def _open(self, call: _SipCall) -> None:
        """Answer the call and hand it to `self.calls`, or hang up and forget it."""
        call_id = call.offer.call_id
        try:
            answered = await self._answer(call)
        except Exception:  # one call that cannot be set up must not leak its port or entry
            log.exception("sip call %s could not be set up; hanging up this call only", call_id)
            answered = False
        if not answered:
            self._apply(self.uas.hangup(call_id, self._now()))  # 480 if never answered
            await self._release(call)
            return
        conn = self._connect(call)
        self.calls.start(conn, lambda conn: self._serve(call, conn))

    async def _answer(self, call: _SipCall) -> bool:
        """Open RTP and answer 200 OK; False when the call went away meanwhile."""
        offer, settings = call.offer, self.settings
        try:
            call.media = await RtpMedia.open(
                settings.host, self.ports, call.push, idle_timeout_s=settings.idle_timeout_s
            )
        except (PortsExhausted, OSError) as exc:
            log.error("sip call %s: no RTP port (%s); refusing with 503", offer.call_id, exc)
            self._apply(self.uas.reject(offer.call_id, 503, self._now(), retry_after=5))
            return False
        if call.ended is not None:
            return False  # cancelled while we were opening the port
        _configure(call.media, MediaChanged(offer.call_id, offer.agreed))
        self._apply(
            self.uas.answer(offer.call_id, self.public_host, call.media.local_port, self._now())
        )
        return True

    def _connect(self, call: _SipCall) -> CallConnection:
        """The call's `CallConnection`, with `CallStarted` (and any `CallEnded`) queued."""
        offer, settings, media = call.offer, self.settings, call.media
        assert media is not None
        call_id = offer.call_id

        async def hang_up(code: int, reason: str) -> None:
            self._apply(self.uas.hangup(call_id, self._now()))

        conn = CallConnection(
            media,
            media.send,
            hang_up,
            remote=f"{offer.remote[0]}:{offer.remote[1]}",
            capacity=settings.inbound_capacity,
            send_timeout_s=settings.send_timeout_s,
        )
        if settings.agent_uri:
            conn.transferer = lambda reason: self._transfer(call, reason)
        call.conn = conn
        dialog = self.uas.dialogs.get(call_id)
        conn.push(
            CallStarted(
                carrier="sip",
                call_id=call_id,
                stream_id=dialog.local_tag if dialog else call_id,
                media_format=MediaFormat(offer.agreed.mime_type, 8000),
                custom_parameters=MappingProxyType({"From": offer.caller, "To": offer.callee}),
            )
        )
        if call.ended is not None:
            conn.push(CallEnded(call.ended))
        return conn

    async def _serve(self, call: _SipCall, conn: CallConnection) -> None:
        """The handler within the call's limits; then BYE (if still up) and free the port.

        Runs as the call's task in `self.calls`, so a failure here is that call's only.
        """
        settings, loop = self.settings, asyncio.get_running_loop()
        limit = loop.call_later(settings.max_call_s, conn.push, CallEnded("maximum call duration"))
        deadline: asyncio.Timeout | None = None
        try:
            async with asyncio.timeout(None) as deadline:
                call.deadline = deadline  # `_ended` starts the grace period on it
                if call.ended is not None:
                    deadline.reschedule(loop.time() + settings.handler_grace_s)
                await self.handler(conn)
        except TimeoutError:
            if deadline is None or not deadline.expired():
                raise  # the handler's own timeout: a failure, not our grace running out
            log.error(
                "sip call %s: handler did not finish within %.0f s of the hang-up; cancelled",
                call.offer.call_id,
                settings.handler_grace_s,
            )
        finally:
            call.deadline = None  # exited: a late `DialogEnded` must not reschedule it
            limit.cancel()
            await conn.close()
            await self._release(call)

    async def _release(self, call: _SipCall) -> None:
        """Give the call's RTP port back and stop counting it."""
        if call.media is not None:
            await call.media.close()
        self._calls.pop(call.offer.call_id, None)

    async def _transfer(self, call: _SipCall, reason: str) -> None:
        """REFER the caller to the agent URI; raises `TransferFailed` (the call stays ours)."""
        call_id = call.offer.call_id
        if call.transfer is not None and not call.transfer.done():
            raise TransferFailed("a transfer is already in progress")
        call.transfer = asyncio.get_running_loop().create_future()
        log.info("sip call %s: transferring to %s (%s)", call_id, self.settings.agent_uri, reason)
        self._apply(self.uas.refer(call_id, self.settings.agent_uri, self._now()))
        try:
            ok, detail = await asyncio.wait_for(
                call.transfer, self.settings.transfer_timeout_s + 40.0
            )
        except TimeoutError:
            raise TransferFailed("transfer timed out") from None
        if not ok:
            raise TransferFailed(detail)
        log.info("sip call %s: transferred (%s)", call_id, detail)


def _configure(media: RtpMedia, change: MediaChanged) -> None:
    agreed = change.agreed
    media.configure(
        agreed.remote,
        agreed.encoding,
        agreed.payload_type,
        agreed.dtmf_payload_type,
        agreed.direction,
    )
