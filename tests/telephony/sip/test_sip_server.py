"""The SIP server over real UDP on 127.0.0.1 with real RTP; the call handler is a test double.

The caller side is a few lines of Python speaking literal SIP (the sipp tests place
whole calls through the real bot); the handler records what it sees, so these tests
are about the front door: admission, BYE both ways, transfer, bad datagrams, drain.
"""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest

from telephony.connection import CallConnection, TransferFailed
from telephony.events import CallEnded, CallStarted, ShutdownRequested
from telephony.sip.fields import parse_name_addr
from telephony.sip.message import Request, Response, parse
from telephony.sip.server import SipServer, SipSettings, parse_port_range
from tests.telephony.sip.messages import OFFER, request


class Caller:
    """A SIP phone in a test: one UDP socket for signalling, one for RTP."""

    def __init__(self, server: SipServer, call_id: str = "call-1") -> None:
        self.server_addr = ("127.0.0.1", server.port)
        self.call_id = call_id
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind(("127.0.0.1", 0))
        self.sip.setblocking(False)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.rtp.setblocking(False)
        self.tag = ""
        self.cseq = 1

    def close(self) -> None:
        self.sip.close()
        self.rtp.close()

    def send(self, method: str, **kwargs) -> None:
        port = self.sip.getsockname()[1]
        kwargs.setdefault("call_id", self.call_id)
        data = request(method, **kwargs)
        data = data.replace(b"192.0.2.101:5060", f"127.0.0.1:{port}".encode())
        self.sip.sendto(data, self.server_addr)

    async def recv(self, wait_s: float = 5.0) -> Request | Response:
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sip, 65536), wait_s)
        return parse(data)

    async def until(self, status: int) -> Response:
        while True:
            message = await self.recv()
            if isinstance(message, Response) and message.status == status:
                return message

    def offer(self) -> str:
        port = self.rtp.getsockname()[1]
        return OFFER.replace("192.0.2.101", "127.0.0.1").replace("49172", str(port))

    async def call(self) -> Response:
        """INVITE and ACK; returns the 200 OK."""
        self.send("INVITE", body=self.offer())
        ok = await self.until(200)
        self.tag = parse_name_addr(ok.headers.get("To") or "").tag
        self.send("ACK", branch="z9hG4bKack", to_tag=self.tag)
        return ok

    def answer(self, message: Request, status: int = 200) -> None:
        headers = message.headers.copy()
        headers.remove("Content-Length")
        self.sip.sendto(Response(status, "OK", headers).serialize(), self.server_addr)


class Handler:
    """Records the events of every call; `behaviour` decides what the 'bot' does."""

    def __init__(self, behaviour=None) -> None:
        self.events: list[list[object]] = []
        self.behaviour = behaviour
        self.started = asyncio.Event()

    async def __call__(self, conn: CallConnection) -> None:
        seen: list[object] = []
        self.events.append(seen)
        async for event in conn.events():
            seen.append(event)
            if isinstance(event, CallStarted):
                self.started.set()
                if self.behaviour is not None:
                    await self.behaviour(conn)


@pytest.fixture
async def make_server():
    servers: list[SipServer] = []

    async def make(handler, **settings) -> SipServer:
        accept = settings.pop("accept_call", None)
        server = SipServer(
            handler,
            SipSettings(host="127.0.0.1", port=0, rtp_ports=(23000, 23199), **settings),
            accept_call=accept,
        )
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close()


async def test_call_is_answered_and_caller_bye_ends_it(make_server):
    async def speak(conn: CallConnection) -> None:
        await conn.send_audio(np.full(3200, 3000, np.int16))  # 200 ms of bot audio

    handler = Handler(speak)
    server = await make_server(handler)
    caller = Caller(server)
    caller.send("INVITE", body=caller.offer())
    assert [(await caller.recv()).status for _ in range(3)] == [100, 180, 200]
    await asyncio.wait_for(handler.started.wait(), 5)
    start = handler.events[0][0]
    assert isinstance(start, CallStarted) and start.carrier == "sip" and start.call_id == "call-1"
    assert start.media_format.encoding == "audio/PCMU" and start.media_format.sample_rate == 8000
    assert dict(start.custom_parameters) == {"From": "+15551234567", "To": "bot"}
    loop = asyncio.get_running_loop()
    packet = await asyncio.wait_for(loop.sock_recv(caller.rtp, 2048), 5)
    assert packet[1] & 0x7F == 0 and len(packet) == 12 + 160  # PCMU, 20 ms
    assert server.active_connections == 1
    tag = server.uas.dialogs["call-1"].local_tag
    caller.send("ACK", branch="z9hG4bKack", to_tag=tag)
    caller.send("BYE", branch="z9hG4bKbye", cseq=2, to_tag=tag)
    assert (await caller.until(200)).headers.get("CSeq") == "2 BYE"
    await server.drain(5)
    assert handler.events[0][-1] == CallEnded("bye")
    assert server.active_connections == 0 and server.ports.in_use == frozenset()
    caller.close()


async def test_bot_hangs_up_with_bye(make_server):
    async def hang_up(conn: CallConnection) -> None:
        await conn.close(1000, "goodbye")

    server = await make_server(Handler(hang_up))
    caller = Caller(server)
    await caller.call()
    bye = await caller.recv()
    assert isinstance(bye, Request) and bye.method == "BYE"
    assert bye.uri.startswith("sip:alice@127.0.0.1:")
    caller.answer(bye)
    await server.drain(5)
    assert server.active_connections == 0
    caller.close()


@pytest.mark.parametrize(("draining", "busy_code"), [(False, 486), (False, 503), (True, 486)])
async def test_refused_calls_get_486_or_503(make_server, draining, busy_code):
    server = await make_server(Handler(), accept_call=lambda: False, busy_code=busy_code)
    server.draining = draining
    caller = Caller(server)
    caller.send("INVITE", body=caller.offer())
    expected = 503 if draining else busy_code
    refused = await caller.until(expected)
    assert (refused.headers.get("Retry-After") is not None) == (expected == 503)
    assert server.active_connections == 0
    caller.close()


async def test_bad_datagrams_are_answered_or_dropped_and_the_server_goes_on(make_server, caplog):
    server = await make_server(Handler())
    caller = Caller(server)
    for junk in (b"\x00" * 50, b"INVITE sip:x SIP/2.0\r\nVia: x", b"A" * 60_000):
        caller.sip.sendto(junk, caller.server_addr)
    caller.send("OPTIONS", call_id="huge", extra="X-Pad: " + "a" * 30_000 + "\r\n")  # dropped
    caller.send("INVITE", body="v=0", extra="", cseq=1)  # SDP without m= line
    assert (await caller.until(400)).status == 400
    caller.send("OPTIONS", call_id="ka")
    assert (await caller.until(200)).headers.get("Allow")
    assert "sip: bad message" in caplog.text
    caller.close()


@pytest.mark.parametrize("outcome", ["transferred", "target-busy"])
async def test_transfer_by_refer(make_server, outcome):
    results: list[str] = []

    async def transfer(conn: CallConnection) -> None:
        assert conn.can_transfer
        await asyncio.sleep(0.2)  # a REFER needs the confirmed dialog (after our 200's ACK)
        try:
            await conn.transfer("caller asked for a person")
            results.append("ok")
        except TransferFailed as exc:
            results.append(f"failed: {exc}")

    server = await make_server(Handler(transfer), agent_uri="sip:agent@127.0.0.1:5099")
    caller = Caller(server)
    await caller.call()
    refer = await caller.recv()
    assert isinstance(refer, Request) and refer.method == "REFER"
    assert refer.headers.get("Refer-To") == "<sip:agent@127.0.0.1:5099>"
    caller.answer(refer, 202)
    frag = "SIP/2.0 200 OK" if outcome == "transferred" else "SIP/2.0 486 Busy Here"
    extra = "Event: refer\r\nSubscription-State: terminated\r\nContent-Type: message/sipfrag\r\n"
    notify = request("NOTIFY", call_id="call-1", cseq=2, to_tag=caller.tag, extra=extra)
    body = f"Content-Length: {len(frag)}\r\n\r\n{frag}".encode()
    notify = notify.replace(b"Content-Length: 0\r\n\r\n", body)
    caller.sip.sendto(notify, caller.server_addr)
    assert (await caller.until(200)).headers.get("CSeq") == "2 NOTIFY"
    if outcome == "transferred":
        bye = await caller.recv()
        assert isinstance(bye, Request) and bye.method == "BYE"
        caller.answer(bye)
        await server.drain(5)
        assert results == ["ok"]
    else:
        for _ in range(100):
            if results:
                break
            await asyncio.sleep(0.02)
        assert results == ["failed: SIP/2.0 486 Busy Here"]
    caller.close()


async def test_no_agent_uri_means_no_transferer(make_server):
    seen: list[bool] = []

    async def check(conn: CallConnection) -> None:
        seen.append(conn.can_transfer)
        await conn.close()

    server = await make_server(Handler(check))
    caller = Caller(server)
    await caller.call()
    caller.answer(await caller.recv())
    await server.drain(5)
    assert seen == [False]
    caller.close()


async def test_a_failing_handler_hangs_up_its_own_call_only(make_server):
    async def explode(conn: CallConnection) -> None:
        if conn.remote.endswith(str(first.sip.getsockname()[1])):
            raise RuntimeError("boom")

    handler = Handler(explode)
    server = await make_server(handler)
    first, second = Caller(server, "call-a"), Caller(server, "call-b")
    await first.call()
    await second.call()
    bye = await first.recv()
    assert isinstance(bye, Request) and bye.method == "BYE"
    await asyncio.sleep(0.3)
    assert server.active_connections == 1 and "call-b" in server._calls
    first.close()
    second.close()


async def test_shutdown_refuses_new_calls_and_asks_the_rest_to_say_goodbye(make_server):
    handler = Handler()
    server = await make_server(handler)
    caller = Caller(server)
    await caller.call()
    shutdown = asyncio.create_task(server.shutdown(grace_s=0.2, goodbye_s=0.5))
    await asyncio.sleep(0.05)
    late = Caller(server, "late")
    late.send("INVITE", body=late.offer())
    assert (await late.until(503)).headers.get("Retry-After")
    await shutdown
    assert ShutdownRequested("server shutdown") in handler.events[0]
    caller.close()
    late.close()


class Stall:
    """A handler behaviour that hears nothing more (a stuck bot) and notes its cancellation."""

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()

    async def __call__(self, conn: CallConnection) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


async def test_a_handler_stuck_after_the_bye_is_cancelled_after_its_grace(make_server):
    stall = Stall()
    server = await make_server(Handler(stall), handler_grace_s=0.2)
    caller = Caller(server)
    await caller.call()
    caller.send("BYE", branch="z9hG4bKbye", cseq=2, to_tag=caller.tag)
    assert (await caller.until(200)).headers.get("CSeq") == "2 BYE"
    assert server.active_connections == 1  # the grace period has only begun
    await asyncio.wait_for(stall.cancelled.wait(), 5)
    await server.drain(5)
    assert server.active_connections == 0 and server.ports.in_use == frozenset()
    caller.close()


async def test_a_call_that_ignores_the_goodbye_is_hung_up_on_close(make_server):
    stall = Stall()
    server = await make_server(Handler(stall))
    caller = Caller(server)
    await caller.call()
    await server.shutdown(grace_s=0.1, goodbye_s=0.1)
    assert server.active_connections == 1  # still talking: close() is what ends it
    await server.close()
    bye = await caller.recv()
    assert isinstance(bye, Request) and bye.method == "BYE"
    assert stall.cancelled.is_set()
    assert server.active_connections == 0 and server.ports.in_use == frozenset()
    caller.close()


def test_port_range_parsing():
    assert parse_port_range("10000-10999") == (10000, 10999)
    for bad in ("10000", "a-b", "20-10", "0-5"):
        with pytest.raises(ValueError):
            parse_port_range(bad)


async def test_the_app_wires_the_bridge_with_one_admission_count():
    from telephony.server import MediaServer
    from voicebot.app import build_sip
    from voicebot.cli import build_parser
    from voicebot.config import load_config

    args = build_parser().parse_args(["serve", "--sip-port", "5070", "--rtp-ports", "20000-20099"])
    assert (args.sip_port, args.rtp_ports, args.sip_host) == (5070, "20000-20099", None)
    media = MediaServer(Handler(), accept_call=lambda: media.active_calls < 1)
    assert build_sip(media, load_config(env={})) is None  # [sip] port 0: off
    config = load_config(env={"VOICEBOT_SIP__PORT": "5070", "VOICEBOT_SIP__BUSY_CODE": "503"})
    bridge = build_sip(media, config)
    assert bridge is not None and bridge.settings.rtp_ports == (10000, 10999)
    assert bridge.settings.busy_code == 503 and media.accept_call()
    bridge._calls["x"] = object()  # an admitted SIP call counts against the shared limit
    assert media.active_calls == 1 and not media.accept_call()
