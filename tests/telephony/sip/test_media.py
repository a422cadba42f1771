"""RtpMedia end to end over real UDP sockets on 127.0.0.1 (no mocks).

Timing is asserted only loosely (tests must not flake on a loaded box); pacing
precision is measured in bench/, not here.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
import pytest

from telephony.clock import ManualClock
from telephony.connection import CallConnection
from telephony.events import AudioIn, DtmfDigit, Event, MarkPlayed
from telephony.g711 import ulaw_decode, ulaw_encode
from telephony.sip.dtmf import DtmfReceiver, TelephoneEvent
from telephony.sip.media import FRAME_S, RtpMedia
from telephony.sip.ports import PortAllocator
from telephony.sip.rtp import RtpPacket, parse_rtp

PORTS = PortAllocator(47000, 47199)
SILENCE = b"\xff" * 160
#: Runs the sender's next N ticks (see the `manual` fixture).
Ticker = Callable[..., Awaitable[None]]


class Peer(asyncio.DatagramProtocol):
    """The far end: a plain UDP socket that records what arrives and when."""

    def __init__(self) -> None:
        self.received: list[tuple[float, RtpPacket]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.received.append((time.monotonic(), parse_rtp(data)))

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def send(self, packet: RtpPacket | bytes, port: int) -> None:
        assert self.transport is not None
        data = packet if isinstance(packet, bytes) else packet.to_bytes()
        self.transport.sendto(data, ("127.0.0.1", port))


async def wait_until(predicate: Callable[[], bool], within_s: float = 5.0) -> None:
    async with asyncio.timeout(within_s):
        while not predicate():  # noqa: ASYNC110 - the state changes in socket callbacks
            await asyncio.sleep(0.01)


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
    yield protocol
    transport.close()


@pytest.fixture
async def call(peer: Peer) -> AsyncIterator[tuple[RtpMedia, list[Event]]]:
    events: list[Event] = []
    media = await RtpMedia.open("127.0.0.1", PORTS, events.append)
    media.configure(peer.address, "PCMU", 0, 101, "sendrecv")
    yield media, events
    await media.close()


def sine(rate: int, seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def dominant_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.argmax(spectrum) * rate / pcm.size)


async def test_inbound_reordered_stream_becomes_in_order_16k_audio(call, peer) -> None:
    media, events = call
    ulaw = ulaw_encode(sine(8000, 1.0))
    packets = [
        RtpPacket(0, 65530 + n, 1000 + 160 * n, 42, ulaw[160 * n : 160 * (n + 1)])
        for n in range(50)
    ]
    order = list(range(50))
    for i in range(0, 50, 5):
        order[i], order[i + 1] = order[i + 1], order[i]  # a swapped pair every 100 ms
    order.insert(20, order[20])  # and a duplicate
    for n in order:
        peer.send(packets[n], media.local_port)

    # Frames of the stream (not the silence given to the call once the stream stops).
    audio = lambda: [e for e in events if isinstance(e, AudioIn) and e.sequence is not None]  # noqa: E731
    await wait_until(lambda: sum(e.pcm.size for e in audio()) >= 16000)
    frames = audio()
    assert [e.sequence for e in frames] == [65530 + n for n in range(50)]  # extended: no wrap
    assert [e.timestamp_ms for e in frames] == [20 * n for n in range(50)]
    pcm = np.concatenate([e.pcm for e in frames])
    assert pcm.size == 16000 and pcm.dtype == np.int16
    assert abs(dominant_hz(pcm, 16000) - 440) < 5
    stats = media.stats
    assert stats.duplicates == 1 and stats.lost == 0 and stats.concealed == 0
    assert stats.packets_in == 51


async def test_outbound_audio_is_paced_with_continuous_numbering(call, peer) -> None:
    media, events = call
    connection = CallConnection(media, media.send, lambda code, reason: media.close())
    await asyncio.sleep(0.1)  # comfort silence flows before the bot speaks
    await connection.send_audio(sine(16000, 1.0))
    await connection.mark("end")
    await wait_until(lambda: MarkPlayed("end") in events)
    await asyncio.sleep(0.1)

    packets = [p for _, p in peer.received]
    assert all(p.payload_type == 0 and len(p.payload) == 160 for p in packets)
    for a, b in itertools.pairwise(packets):
        assert (b.sequence - a.sequence) % 65536 == 1
        assert (b.timestamp - a.timestamp) % 2**32 == 160
    audio_at = [i for i, p in enumerate(packets) if p.payload != SILENCE]
    assert 49 <= len(audio_at) <= 52
    assert audio_at == list(range(audio_at[0], audio_at[-1] + 1))  # one talk spurt
    # The marker flags the stream's first packet and the talk spurt's first.
    assert [i for i, p in enumerate(packets) if p.marker] == [0, audio_at[0]]
    arrivals = [peer.received[i][0] for i in audio_at]
    assert 0.5 < arrivals[-1] - arrivals[0] < 5.0  # paced, not dumped (loose on purpose)
    heard = ulaw_decode(b"".join(packets[i].payload for i in audio_at))
    assert abs(dominant_hz(heard, 8000) - 440) < 5


async def test_mark_is_played_after_its_audio_and_send_waits_when_full(peer) -> None:
    events: list[Event] = []
    out_at_mark: list[int] = []
    media = await RtpMedia.open("127.0.0.1", PORTS, events.append, queue_frames=5)

    def sink(event: Event) -> None:
        events.append(event)
        if isinstance(event, MarkPlayed):
            out_at_mark.append(media.stats.packets_out)

    media._sink = sink  # same object, now also noting the moment the mark is echoed
    media.configure(peer.address, "PCMU", 0, None, "sendrecv")
    try:
        for message in media.send_audio(sine(16000, 0.4)):
            await media.send(message)  # 20 frames into a 5-frame queue: must wait
        assert media.stats.packets_out >= 14
        for message in media.mark("m1"):
            await media.send(message)
        await wait_until(lambda: MarkPlayed("m1") in events)
        audio = [i for i, (_, p) in enumerate(peer.received) if p.payload != SILENCE]
        assert out_at_mark[0] >= audio[-1] + 1
    finally:
        await media.close()


@pytest.fixture
async def manual(peer: Peer) -> AsyncIterator[tuple[RtpMedia, list[Event], Ticker]]:
    """A call whose sender ticks only when the test says so (no wall-clock pacing)."""
    events: list[Event] = []
    clock = ManualClock()
    media = await RtpMedia.open("127.0.0.1", PORTS, events.append, clock=clock)
    media.configure(peer.address, "PCMU", 0, None, "sendrecv")

    async def ticks(count: int = 1) -> None:
        # Moving the clock by several ticks at once is a sender that woke late and
        # catches up: those ticks run back to back, with no loop turn in between.
        sent = media.stats.packets_out
        clock.advance(count * FRAME_S + 1e-6)  # a hair past the due time: no float misses
        await wait_until(lambda: media.stats.packets_out >= sent + count)
        await wait_until(lambda: len(peer.received) >= media.stats.packets_out)

    yield media, events, ticks
    await media.close()


def speech_frames(count: int) -> list[bytes]:
    """`count` 20 ms PCMU frames of a tone (never equal to comfort silence)."""
    ulaw = ulaw_encode(sine(8000, count * FRAME_S))
    return [ulaw[160 * n : 160 * (n + 1)] for n in range(count)]


async def test_a_reply_whose_second_frame_comes_after_a_tick_has_no_silence_inside(
    manual, peer
) -> None:
    # Under a busy thread the sender can run two ticks (late, then catching up) between
    # a reply's first and second frame; sending the first at once left a frame of comfort
    # silence inside the word. The spurt must start at most one tick later instead.
    media, events, ticks = manual
    await ticks(2)  # comfort silence before the bot speaks
    reply = speech_frames(4)
    await media.send(reply[0])
    await ticks(2)
    for frame in reply[1:]:
        await media.send(frame)
    await media.send("mark:end")
    await ticks(6)

    packets = [p for _, p in peer.received]
    audio_at = [i for i, p in enumerate(packets) if p.payload != SILENCE]
    assert [packets[i].payload for i in audio_at] == reply
    assert audio_at == list(range(audio_at[0], audio_at[0] + 4))  # no silence inside
    assert audio_at[0] in (2, 3)  # the first frame waited at most one tick
    assert [i for i, p in enumerate(packets) if p.marker] == [0, audio_at[0]]
    assert MarkPlayed("end") in events


async def test_a_one_frame_reply_goes_out_at_once_and_a_lone_frame_a_tick_later(
    manual, peer
) -> None:
    media, events, ticks = manual
    await ticks()
    short, lone = speech_frames(2)
    await media.send(short)
    await media.send("mark:short")  # the reply is complete: nothing to wait for
    await ticks()
    assert peer.received[-1][1].payload == short and peer.received[-1][1].marker
    await ticks()
    assert MarkPlayed("short") in events  # echoed on the tick after its audio
    await media.send(lone)  # more may follow; the sender waits one tick, never more
    await ticks()
    assert peer.received[-1][1].payload == SILENCE
    await ticks()
    assert peer.received[-1][1].payload == lone and peer.received[-1][1].marker


async def test_clear_drops_a_frame_held_for_its_talk_spurt(manual, peer) -> None:
    media, _, ticks = manual
    await ticks()
    await media.send(speech_frames(1)[0])
    await ticks()  # held: alone, and no mark says the reply is complete
    for message in media.clear():
        await media.send(message)
    await ticks(3)
    assert all(p.payload == SILENCE for _, p in peer.received)


async def test_clear_echoes_pending_marks_at_once(call, peer) -> None:
    media, events = call
    for message in media.send_audio(sine(16000, 0.5)) + media.mark("a") + media.mark("b"):
        await media.send(message)
    for message in media.clear():
        await media.send(message)  # no await on the clock in between: echo is immediate
        assert [e for e in events if isinstance(e, MarkPlayed)] == [
            MarkPlayed("a"),
            MarkPlayed("b"),
        ]
    sent = len(peer.received)
    await asyncio.sleep(0.15)
    assert all(p.payload == SILENCE for _, p in peer.received[sent + 2 :])


async def test_dtmf_out_parses_back_to_one_digit(call, peer) -> None:
    media, _ = call
    await asyncio.wait_for(media.send_dtmf("7"), 5)
    await asyncio.sleep(0.05)
    events = [p for _, p in peer.received if p.payload_type == 101]
    assert len(events) == 8 and events[0].marker
    assert len({p.timestamp for p in events}) == 1
    receiver = DtmfReceiver()
    assert [d for p in events if (d := receiver.receive(p.timestamp, p.payload))] == ["7"]
    assert media.stats.dtmf_out == 1


async def test_dtmf_in_three_starts_three_ends_is_one_digit(call, peer) -> None:
    media, events = call
    start = [TelephoneEvent(5, False, 10, d).to_bytes() for d in (160, 320, 480)]
    end = [TelephoneEvent(5, True, 10, 800).to_bytes()] * 3
    for n, payload in enumerate(start + end):
        peer.send(RtpPacket(101, 300 + n, 9600, 42, payload, marker=n == 0), media.local_port)
    await wait_until(lambda: media.stats.packets_in >= 6)
    assert [e for e in events if isinstance(e, DtmfDigit)] == [DtmfDigit("5")]


async def test_junk_is_counted_never_raised(call, peer) -> None:
    media, events = call
    peer.send(b"\x00garbage", media.local_port)
    peer.send(b"\x80" * 11, media.local_port)
    peer.send(RtpPacket(13, 1, 1, 42, b"\x40"), media.local_port)  # comfort noise: not ours
    peer.send(RtpPacket(0, 2, 2, 42, b""), media.local_port)  # audio without payload
    peer.send(RtpPacket(101, 3, 3, 42, b"\x01"), media.local_port)  # short DTMF payload
    peer.send(RtpPacket(0, 4, 4, 42, b"\xff" * 9000), media.local_port)  # > 1 s in a packet
    await wait_until(lambda: media.stats.packets_in >= 6)
    stats = media.stats
    assert (stats.malformed, stats.ignored) == (5, 1)
    assert not [e for e in events if not isinstance(e, MarkPlayed)]


async def test_hold_stops_sending_and_resume_keeps_the_clock(call, peer) -> None:
    media, _ = call
    await wait_until(lambda: len(peer.received) >= 3)
    media.configure(peer.address, "PCMU", 0, 101, "recvonly")
    await asyncio.sleep(0.05)
    before = len(peer.received)
    held_at = time.monotonic()
    await asyncio.sleep(0.2)
    assert len(peer.received) == before
    media.configure(peer.address, "PCMU", 0, 101, "sendrecv")
    await wait_until(lambda: len(peer.received) > before)
    last, first = peer.received[before - 1][1], peer.received[before][1]
    assert (first.sequence - last.sequence) % 65536 == 1
    gap_ms = ((first.timestamp - last.timestamp) % 2**32) / 8
    assert gap_ms >= 200 and gap_ms < (time.monotonic() - held_at) * 1000 + 200
    assert first.marker


async def test_close_is_idempotent_and_releases_the_port(peer) -> None:
    ports = PortAllocator(47400, 47403)
    media = await RtpMedia.open("127.0.0.1", ports, lambda event: None)
    assert media.local_port in ports.in_use
    await media.close()
    await media.close()
    assert ports.in_use == frozenset()
    with pytest.raises(ConnectionError):
        await media.send(b"\xff" * 160)


async def test_a_stream_that_stops_is_continued_with_silence(call, peer) -> None:
    # A phone with silence suppression sends nothing while the caller is quiet; the
    # call's voice detection must still hear time pass, or a turn never ends.
    media, events = call
    ulaw = ulaw_encode(sine(8000, 0.2))
    for n in range(10):
        peer.send(RtpPacket(0, n, 160 * n, 7, ulaw[160 * n : 160 * (n + 1)]), media.local_port)
    await wait_until(lambda: media.stats.filled >= 10)
    frames = [e for e in events if isinstance(e, AudioIn)]
    real = [e for e in frames if e.sequence is not None]
    filled = frames[len(real) :]
    assert len(real) == 10 and all(e.sequence is None for e in filled)  # real audio first
    assert all(e.pcm.size == 320 for e in filled)
    assert not any(e.pcm.any() for e in filled[1:])  # the first holds the resampler's tail
    assert media.stats.packets_in == 10  # nothing was counted as received
