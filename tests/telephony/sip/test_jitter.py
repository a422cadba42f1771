"""The jitter buffer on scripted arrivals with a fake time (no sleeps)."""

from __future__ import annotations

import numpy as np

from telephony.sip.jitter import JitterBuffer, PushResult, conceal
from telephony.sip.rtp import RtpPacket

FRAME = 160  # 20 ms at 8 kHz


def packet(n: int, *, seq0: int = 100, ts0: int = 5000, ssrc: int = 1) -> RtpPacket:
    """Packet n of a stream: 20 ms of payload whose bytes all equal n % 256."""
    return RtpPacket(
        0, (seq0 + n) % 65536, (ts0 + n * FRAME) % 2**32, ssrc, bytes([n % 256]) * FRAME
    )


def drain(buffer: JitterBuffer, until: float, step: float = 0.02, start: float = 0.0):
    """Pull on a 20 ms tick from `start` to `until`; returns every frame in order."""
    frames = []
    t = start
    while t <= until + 1e-9:
        frames.extend(buffer.pop(t))
        t += step
    return frames


def test_in_order_stream_plays_after_the_target_delay() -> None:
    buffer = JitterBuffer()
    assert buffer.push(packet(0), 0.0) is PushResult.ACCEPTED
    assert buffer.pop(0.02) == []  # held for the 40 ms start depth
    frames = buffer.pop(0.04)
    assert [(f.sequence, f.timestamp, f.payload) for f in frames] == [(100, 0, bytes(FRAME))]


def test_reorders_and_drops_duplicates() -> None:
    buffer = JitterBuffer()
    order = [0, 2, 1, 3, 3, 5, 4, 6, 7]
    for i, n in enumerate(order):
        result = buffer.push(packet(n), i * 0.02)
        assert result is (PushResult.DUPLICATE if i == 4 else PushResult.ACCEPTED)
    frames = drain(buffer, 1.0)
    assert [f.sequence - 100 for f in frames] == list(range(8))
    assert all(f.payload == bytes([f.sequence - 100]) * FRAME for f in frames)
    assert buffer.stats.duplicates == 1 and buffer.stats.lost == 0
    # A duplicate of something already played is still a duplicate, not "late".
    assert buffer.push(packet(3), 1.1) is PushResult.DUPLICATE


def test_lost_packet_is_concealed_once_a_later_one_is_due() -> None:
    buffer = JitterBuffer()
    for n in (0, 1, 3, 4):
        buffer.push(packet(n), n * 0.02)
    frames = drain(buffer, 0.5)
    assert [f.sequence - 100 for f in frames] == [0, 1, 2, 3, 4]
    hole = frames[2]
    assert hole.payload is None and hole.samples == FRAME and hole.timestamp == 2 * FRAME
    assert buffer.stats.lost == 1
    # The missing packet finally turns up: too late, counted, not played.
    assert buffer.push(packet(2), 0.5) is PushResult.LATE
    assert buffer.stats.late == 1 and buffer.pop(0.6) == []


def test_waits_rather_than_concealing_when_the_far_end_stops_sending() -> None:
    buffer = JitterBuffer()
    buffer.push(packet(0), 0.0)
    assert len(drain(buffer, 2.0)) == 1  # hold / DTX: no invented audio
    buffer.push(packet(1), 2.0)  # resumes; nothing was lost
    frames = drain(buffer, 3.0, start=2.0)
    assert [f.payload is not None for f in frames] == [True]
    assert buffer.stats.lost == 0


def test_long_hole_is_skipped_not_filled() -> None:
    buffer = JitterBuffer(max_conceal=5)
    buffer.push(packet(0), 0.0)
    buffer.push(packet(40), 0.8)
    frames = drain(buffer, 1.5)
    assert [f.sequence - 100 for f in frames] == [0, 40]
    assert frames[1].timestamp == 40 * FRAME  # the timestamp says how much time passed
    assert buffer.stats.lost == 39


def test_sequence_and_timestamp_wrap() -> None:
    buffer = JitterBuffer()
    for n in range(6):
        buffer.push(packet(n, seq0=65533, ts0=2**32 - 320), n * 0.02)
    frames = drain(buffer, 0.5)
    assert [f.sequence for f in frames] == list(range(65533, 65539))
    assert [f.timestamp for f in frames] == [n * FRAME for n in range(6)]


def test_depth_adapts_to_measured_jitter_within_bounds() -> None:
    calm = JitterBuffer()
    for n in range(200):
        calm.push(packet(n), n * 0.02)
    assert calm.jitter_s < 0.001
    assert calm.target_delay_s == calm.min_delay_s == 0.02

    rough = JitterBuffer()
    for n in range(200):  # every other packet 40 ms late
        rough.push(packet(n), n * 0.02 + (0.04 if n % 2 else 0.0))
    assert 0.03 < rough.jitter_s < 0.05
    assert rough.target_delay_s == rough.max_delay_s == 0.12


def test_jittery_stream_plays_complete_and_in_order() -> None:
    buffer = JitterBuffer()
    frames = []
    late_by = [0.0, 0.035, 0.01, 0.0, 0.045, 0.02, 0.0, 0.03]
    arrivals = sorted((n * 0.02 + late_by[n % 8], n) for n in range(100))
    t = 0.0
    for arrival, n in arrivals:
        while t < arrival:
            frames.extend(buffer.pop(t))
            t += 0.02
        buffer.push(packet(n), arrival)
    frames.extend(drain(buffer, t + 1.0, start=t))
    assert [f.sequence - 100 for f in frames] == list(range(100))
    assert buffer.stats.lost == 0 and buffer.stats.late == 0


def test_new_ssrc_restarts_and_keeps_counting() -> None:
    buffer = JitterBuffer()
    for n in range(3):
        buffer.push(packet(n), n * 0.02)
    first = drain(buffer, 0.2)
    for n in range(3):  # a re-INVITE moved the call to another media server
        buffer.push(packet(n, seq0=9, ts0=77, ssrc=2), 0.3 + n * 0.02)
    second = drain(buffer, 0.6, start=0.3)
    assert [f.sequence for f in first + second] == list(range(100, 106))
    assert [f.timestamp for f in first + second] == [n * FRAME for n in range(6)]
    assert buffer.stats.restarts == 1


def test_capacity_bounds_the_buffer() -> None:
    buffer = JitterBuffer(capacity=8)
    for n in range(19):  # a burst far faster than real time, never pulled
        buffer.push(packet(n), 0.0)
    assert len(buffer) == 8
    assert buffer.stats.overflow == 11


def test_packet_overtaken_before_playout_starts_is_still_played() -> None:
    buffer = JitterBuffer()
    buffer.push(packet(1), 0.0)
    assert buffer.pop(0.0) == []  # pulled at once, as the media layer does on receive
    assert buffer.push(packet(0), 0.001) is PushResult.ACCEPTED
    frames = drain(buffer, 0.3)
    assert [(f.sequence - 100, f.timestamp) for f in frames] == [(0, 0), (1, FRAME)]


def test_concealment_repeats_once_at_half_level_then_goes_silent() -> None:
    last = np.full(FRAME, 1000, dtype=np.int16)
    assert (conceal(last, 1, FRAME) == 500).all()
    assert not conceal(last, 2, FRAME).any()
    assert conceal(last, 1, 80).size == 80 and not conceal(last, 1, 80).any()
