"""RTP guards on real UDP (127.0.0.1): the inactivity timeout and the latched RTP source.

A caller that vanishes without a BYE must not hold a call (and a recording, and an
admission slot) until `max_call_s`: once no RTP has come for `idle_timeout_s` the call
ends with `CallEnded("idle timeout: no RTP")` and we send the BYE. A caller on hold
sends nothing on purpose, so hold never counts. The handler is a test double; the
caller is literal SIP and RTP from Python sockets (see test_sip_server).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable

import numpy as np
import pytest

from telephony.events import AudioIn, CallEnded, DtmfDigit, Event
from telephony.sip.dtmf import TelephoneEvent
from telephony.sip.media import IDLE_REASON, RtpMedia
from telephony.sip.message import Request
from telephony.sip.ports import PortAllocator
from telephony.sip.rtp import RtpPacket
from telephony.sip.server import SipServer
from tests.telephony.sip import test_sip_server as base
from tests.telephony.sip.test_sip_server import Caller, Handler

IDLE_S = 0.5
SILENCE = b"\xff" * 160

MakeServer = Callable[..., Awaitable[SipServer]]
make_server = base.make_server  # the front-door tests' fixture: servers on port 0, closed after


def bot_rtp_port(server: SipServer) -> int:
    [call] = server._calls.values()
    assert call.media is not None
    return call.media.local_port


async def speak(caller: Caller, port: int, seconds: float, *, ssrc: int = 7, start: int = 0) -> int:
    """Send 20 ms PCMU packets for `seconds` from the caller's RTP socket; next sequence."""
    frames = int(seconds / 0.02)
    for n in range(start, start + frames):
        packet = RtpPacket(0, n % 65536, 160 * n, ssrc, SILENCE)
        caller.rtp.sendto(packet.to_bytes(), ("127.0.0.1", port))
        await asyncio.sleep(0.02)
    return start + frames


async def next_request(caller: Caller, wait_s: float) -> Request | None:
    """The next request the server sends us within `wait_s` (responses are skipped)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait_s):
            while True:
                message = await caller.recv(wait_s)
                if isinstance(message, Request):
                    return message
    return None


async def hung_up_for_idleness(caller: Caller, server: SipServer, handler: Handler) -> None:
    """The bot's BYE arrives (we answer it) and the call ended for want of RTP."""
    bye = await next_request(caller, 5.0)
    assert bye is not None and bye.method == "BYE"
    caller.answer(bye)
    await server.drain(5)
    assert handler.events[0][-1] == CallEnded(IDLE_REASON)
    assert server.active_connections == 0


def reinvite(caller: Caller, direction: str, cseq: int) -> None:
    """A re-INVITE whose offer puts the call on hold (`sendonly`, `inactive`) or resumes it."""
    offer = caller.offer().replace("a=ptime:20\r\n", f"a=ptime:20\r\na={direction}\r\n")
    caller.send("INVITE", body=offer, cseq=cseq, to_tag=caller.tag, branch=f"z9hG4bKre{cseq}")


async def test_a_caller_that_stops_sending_rtp_is_hung_up(make_server: MakeServer) -> None:
    handler = Handler()
    server = await make_server(handler, idle_timeout_s=IDLE_S)
    caller = Caller(server)
    try:
        await caller.call()
        port = bot_rtp_port(server)
        await speak(caller, port, 3 * IDLE_S)  # RTP flowing: three timeouts' worth, no BYE
        assert server.active_connections == 1
        await hung_up_for_idleness(caller, server, handler)  # then silence: the bot hangs up
    finally:
        caller.close()


@pytest.mark.parametrize("hold", ["sendonly", "inactive"])
async def test_a_caller_on_hold_is_not_idle_and_resuming_restarts_the_wait(
    make_server: MakeServer, hold: str
) -> None:
    handler = Handler()
    server = await make_server(handler, idle_timeout_s=IDLE_S)
    caller = Caller(server)
    try:
        await caller.call()
        port = bot_rtp_port(server)
        sequence = await speak(caller, port, 0.2)
        reinvite(caller, hold, cseq=2)
        ok = await caller.until(200)
        assert f"a={'recvonly' if hold == 'sendonly' else 'inactive'}" in ok.body.decode()
        caller.send("ACK", branch="z9hG4bKack2", to_tag=caller.tag, cseq=2)
        assert await next_request(caller, 4 * IDLE_S) is None  # held, silent: no BYE
        assert server.active_connections == 1

        reinvite(caller, "sendrecv", cseq=3)
        await caller.until(200)
        caller.send("ACK", branch="z9hG4bKack3", to_tag=caller.tag, cseq=3)
        await speak(caller, port, 2 * IDLE_S, start=sequence)  # resumed and talking
        assert server.active_connections == 1
        await hung_up_for_idleness(caller, server, handler)  # resumed, then silent: idle
    finally:
        caller.close()


async def test_no_timeout_when_idle_timeout_is_off(make_server: MakeServer) -> None:
    server = await make_server(Handler(), idle_timeout_s=0)
    caller = Caller(server)
    try:
        await caller.call()
        assert await next_request(caller, 1.0) is None
        assert server.active_connections == 1
    finally:
        caller.close()


async def test_rtp_is_latched_to_the_first_source_port() -> None:
    """A second audio sender on the caller's host (another SSRC) must not reach the call."""
    events: list[Event] = []
    media = await RtpMedia.open("127.0.0.1", PortAllocator(42600, 42619), events.append)
    good = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stray = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        good.bind(("127.0.0.1", 0))
        stray.bind(("127.0.0.1", 0))
        media.configure(good.getsockname(), "PCMU", 0, 101, "sendrecv")
        tone = b"\x10" * 160  # loud, unlike the stray's silence
        target = ("127.0.0.1", media.local_port)
        for n in range(25):
            good.sendto(RtpPacket(0, n, 160 * n, 1, tone).to_bytes(), target)
            stray.sendto(RtpPacket(0, 9000 + n, 5000 + 160 * n, 2, SILENCE).to_bytes(), target)
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        # The stream's frames (once it stops, the call is given silence with no sequence).
        audio = [e for e in events if isinstance(e, AudioIn) and e.sequence is not None]
        assert [e.sequence for e in audio] == list(range(25))  # one stream, never restarted
        assert np.abs(np.concatenate([e.pcm for e in audio])[400:]).min() > 1000
        assert media.stats.ignored == 25 and media.stats.concealed == 0
        # Key presses are not latched (sipp sends them from another socket).
        end = TelephoneEvent(5, True, 10, 800).to_bytes()
        for n in range(3):
            stray.sendto(RtpPacket(101, 500 + n, 9600, 3, end).to_bytes(), target)
        await asyncio.sleep(0.1)
        assert DtmfDigit("5") in events

        media.configure(stray.getsockname(), "PCMU", 0, 101, "sendrecv")  # a re-INVITE moves it
        stray.sendto(RtpPacket(0, 9100, 99_000, 2, tone).to_bytes(), target)
        await asyncio.sleep(0.2)
        assert media.stats.ignored == 25
    finally:
        good.close()
        stray.close()
        await media.close()


async def test_idle_timeout_fires_once_and_only_while_sendrecv() -> None:
    events: list[Event] = []
    media = await RtpMedia.open(
        "127.0.0.1", PortAllocator(42620, 42639), events.append, idle_timeout_s=0.2
    )
    try:
        media.configure(("127.0.0.1", 9), "PCMU", 0, None, "inactive")
        await asyncio.sleep(0.5)
        assert CallEnded(IDLE_REASON) not in events
        media.configure(("127.0.0.1", 9), "PCMU", 0, None, "sendrecv")
        await asyncio.sleep(0.6)
        assert events.count(CallEnded(IDLE_REASON)) == 1
    finally:
        await media.close()
