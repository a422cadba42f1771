"""The media server ends calls that go silent or run too long (real websockets, 127.0.0.1)."""

from __future__ import annotations

import asyncio
import time

import pytest
import websockets

from telephony.events import CallEnded
from telephony.server import CLOSE_NORMAL, CLOSE_POLICY, MediaServer, ServerSettings
from telephony.twilio.peer import TwilioPeer
from tests.telephony.serving import start_on_free_port


class Recorder:
    """A call handler that keeps every event until the call ends."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self.done = asyncio.Event()

    async def __call__(self, conn) -> None:
        async for event in conn.events():
            self.events.append(event)
            if isinstance(event, CallEnded):
                break
        self.done.set()


async def start(settings: ServerSettings, handler: Recorder):
    server = MediaServer(handler, settings)
    runner, host = await start_on_free_port(server)
    return runner, f"ws://{host}/twilio/media"


def peer() -> TwilioPeer:
    return TwilioPeer("CA" + "1" * 32, "MZ" + "2" * 32, "AC" + "3" * 32, {})


async def wait_until_closed(ws, handler: Recorder) -> tuple[int, float, str]:
    """The close code, seconds waited for it, and the reason the call was given."""
    started = time.monotonic()
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    waited = time.monotonic() - started
    await asyncio.wait_for(handler.done.wait(), 5)
    ended = [e for e in handler.events if isinstance(e, CallEnded)]
    assert closed.value.rcvd is not None and ended
    return closed.value.rcvd.code, waited, ended[0].reason


async def test_a_peer_that_goes_silent_is_closed_and_the_call_told_why():
    handler = Recorder()
    runner, url = await start(ServerSettings(idle_timeout_s=0.5), handler)
    try:
        caller = peer()
        async with websockets.connect(url) as ws:
            await ws.send(caller.connected())
            await ws.send(caller.start())
            code, waited, reason = await wait_until_closed(ws, handler)  # we send nothing more
        assert code == CLOSE_POLICY and 0.4 <= waited < 3
        assert reason.startswith("idle timeout")
    finally:
        await runner.cleanup()


async def test_a_peer_that_only_answers_pings_is_still_idle():
    # The server pings every 0.1 s and the client library answers each one: that is
    # not a carrier streaming audio, and must not keep the call open past its idle limit.
    handler = Recorder()
    runner, url = await start(ServerSettings(idle_timeout_s=0.6, heartbeat_s=0.1), handler)
    try:
        caller = peer()
        async with websockets.connect(url, ping_interval=0.1) as ws:  # it pings us, too
            await ws.send(caller.connected())
            await ws.send(caller.start())
            code, waited, reason = await wait_until_closed(ws, handler)
        assert code == CLOSE_POLICY and 0.4 <= waited < 3
        assert reason.startswith("idle timeout")
    finally:
        await runner.cleanup()


async def test_a_call_that_runs_too_long_is_ended_even_while_audio_flows():
    handler = Recorder()
    runner, url = await start(ServerSettings(idle_timeout_s=5, max_call_s=1.0), handler)
    try:
        caller = peer()
        async with websockets.connect(url) as ws:
            await ws.send(caller.connected())
            await ws.send(caller.start())

            async def stream() -> None:
                for tick in range(500):
                    await ws.send(caller.media(b"\xff" * 160, tick * 20))
                    await asyncio.sleep(0.02)

            sender = asyncio.create_task(stream())
            code, waited, reason = await wait_until_closed(ws, handler)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        assert code == CLOSE_NORMAL and 0.8 <= waited < 3
        assert reason == "maximum call duration"
    finally:
        await runner.cleanup()
