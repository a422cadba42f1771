"""The inbound buffer's overflow policy and the outbound send path of a connection."""

import asyncio

import numpy as np
import pytest

from telephony.connection import CallConnection, ConnectionClosed
from telephony.events import AudioIn, CallEnded, DtmfDigit, MarkPlayed
from telephony.twilio.codec import TwilioCodec


class Wire:
    """Collects what a connection sends (stands in for the socket)."""

    def __init__(self, fail=False, hang=False):
        self.sent, self.closed, self.fail, self.hang = [], [], fail, hang

    async def send(self, message):
        if self.hang:
            await asyncio.sleep(3600)
        if self.fail:
            raise ConnectionResetError("peer gone")
        self.sent.append(message)

    async def close(self, code, reason):
        self.closed.append((code, reason))


def make(capacity=4, **wire_kwargs):
    wire = Wire(**wire_kwargs)
    codec = TwilioCodec()
    codec.stream_sid = "MZ1"
    return CallConnection(
        codec, wire.send, wire.close, capacity=capacity, send_timeout_s=0.05
    ), wire


def audio(n):
    return AudioIn(np.full(320, n, dtype=np.int16))


async def drain(conn):
    return [e async for e in conn.events()]


async def test_full_buffer_drops_oldest_audio_but_keeps_control_events():
    conn, _ = make(capacity=4)
    conn.push(audio(1))
    conn.push(DtmfDigit("5"))
    conn.push(audio(2))
    conn.push(audio(3))
    conn.push(audio(4))  # full: audio 1 goes
    conn.push(MarkPlayed("m"))  # full: audio 2 goes
    conn.push(CallEnded("stop"))
    events = await drain(conn)
    assert conn.audio_dropped == 2
    assert events[0] == DtmfDigit("5")
    assert [int(e.pcm[0]) for e in events if isinstance(e, AudioIn)] == [3, 4]
    assert events[-2:] == [MarkPlayed("m"), CallEnded("stop")]


async def test_flood_of_control_events_ends_the_call_cleanly():
    conn, _ = make(capacity=3)
    for digit in "12345":
        conn.push(DtmfDigit(digit))
    events = await drain(conn)
    assert conn.overflowed
    assert events[-1] == CallEnded("inbound overflow")
    assert len(events) == 4


async def test_events_after_end_are_ignored():
    conn, _ = make()
    conn.push(CallEnded("stop"))
    conn.push(DtmfDigit("1"))
    assert await drain(conn) == [CallEnded("stop")]


async def test_send_goes_through_the_codec():
    conn, wire = make()
    await conn.send_audio(np.zeros(320, np.int16))
    await conn.mark("r1.0")
    await conn.clear()
    assert [m.split('"event": "')[1].split('"')[0] for m in wire.sent] == ["media", "mark", "clear"]


@pytest.mark.parametrize("kind", ["fail", "hang"])
async def test_broken_or_stuck_peer_raises_connection_closed(kind):
    conn, _ = make(**{kind: True})
    with pytest.raises(ConnectionClosed):
        await conn.mark("x")
    assert conn.closed
    with pytest.raises(ConnectionClosed):
        await conn.mark("y")


async def test_a_cancel_that_arrives_as_a_send_finishes_is_not_swallowed():
    """On Python 3.11 `asyncio.wait_for` returns the result instead (CPython gh-86296)."""
    codec = TwilioCodec()
    codec.stream_sid = "MZ1"
    sent = []
    sender: asyncio.Task[None] | None = None

    async def send(message):
        assert sender is not None
        sender.cancel()  # the call hangs up just as this frame goes out
        sent.append(message)

    conn = CallConnection(codec, send, Wire().close, send_timeout_s=1.0)
    sender = asyncio.create_task(conn.send_audio(np.zeros(320, np.int16)))
    with pytest.raises(asyncio.CancelledError):
        await sender
    assert len(sent) == 1 and sender.cancelled()
