"""The RTP pacing benchmark (bench/rtp_pacing.py) counts and checks what it measures.

Its figures are only as good as its bookkeeping: a short real run over 127.0.0.1 must
count every packet the sender sent and see an unbroken stream, and the summary must
turn hand-made arrival times into the figures they stand for. No timing is asserted.
"""

from __future__ import annotations

import pytest

from bench.rtp_pacing import Arrival, first_audio_ms, gap_positions, measure, summarize
from telephony.sip.ports import PortAllocator

FRAME_NS = 20_000_000


def grid(count: int, *, step_ns: int = FRAME_NS, seq: int = 65530) -> list[Arrival]:
    """`count` packets every `step_ns` across both wraps: 5 silent, then one talk spurt."""
    return [
        Arrival(i * step_ns, (seq + i) % 2**16, (2**32 - 480 + 160 * i) % 2**32, 7, i == 0, i < 5)
        for i in range(count)
    ]


async def test_a_short_real_run_counts_every_packet_of_an_unbroken_stream() -> None:
    run = await measure(1.0, ports=PortAllocator(46100, 46119))
    assert abs(run["packets_received"] - run["packets_expected"]) <= 2
    assert run["packets_received"] == run["packets_sent"]
    assert run["seq_gaps"] == 0 and run["ssrc_changes"] == 0
    assert run["ts_steps_not_one_frame"] <= run["ticks_skipped"]  # a skip jumps the clock
    assert run["replies"] == 1 and run["talk_spurts"] >= 1  # the bot's reply went out
    assert run["foreign_datagrams"] == 0 and run["kernel_timestamps"]
    gaps = run["interval_ms"]
    assert 0 <= gaps["min"] <= gaps["median"] <= gaps["p95"] <= gaps["p99"] <= gaps["max"]
    assert run["late_ms"]["median"] <= run["late_ms"]["max"]
    first = run["first_audio_ms"]  # the one reply's audio arrived, after it was queued
    assert first["median"] is not None and 0 < first["median"] == first["max"]


def test_a_perfect_grid_has_no_lateness_drift_or_gaps() -> None:
    summary = summarize(grid(100), expected=100)
    assert summary["interval_ms"]["median"] == summary["interval_ms"]["max"] == 20.0
    assert summary["late_ms"]["max"] == 0 and summary["drift_last_ms"] == 0
    assert summary["drift_trend_ms"] == pytest.approx(0)
    assert (summary["seq_gaps"], summary["ts_steps_not_one_frame"]) == (0, 0)
    assert summary["markers"] == 1 and summary["talk_spurts"] == 1


def test_a_slipping_clock_a_lost_packet_and_a_late_one_are_all_seen() -> None:
    slipping = summarize(grid(101, step_ns=FRAME_NS + 10_000), expected=101)
    assert slipping["drift_last_ms"] == pytest.approx(1.0)  # 100 steps, 10 us each
    assert slipping["drift_trend_ms"] == pytest.approx(1.0)
    lossy = grid(50)
    del lossy[10]
    assert summarize(lossy, expected=50)["seq_gaps"] == 1
    late = grid(50)
    late[20] = Arrival(late[20].at_ns + 7_000_000, late[20].seq, late[20].timestamp, 7, False, True)
    summary = summarize(late, expected=50)
    assert summary["talk_spurts"] == 2  # a silent packet inside the speech: the queue ran dry
    assert gap_positions(late, [0]) == [15]  # after the reply's 15 speech packets 5..19
    assert summary["late_ms"]["max"] == pytest.approx(7.0)
    assert summary["interval_ms"]["max"] == pytest.approx(27.0)
    assert summary["drift_last_ms"] == 0


def test_first_audio_is_timed_from_queueing_to_the_first_speech_packet_after_it() -> None:
    arrivals = grid(20)  # speech from packet 5 (100 ms) on
    assert first_audio_ms(arrivals, [30_000_000, 260_000_000]) == [70.0, 0.0]
    assert first_audio_ms(arrivals, [500_000_000]) == []  # cut off by the end of the run
