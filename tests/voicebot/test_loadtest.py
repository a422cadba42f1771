"""Load tests against the live server, and the arithmetic that turns levels into capacity."""

from __future__ import annotations

import json

import pytest

from tests.helpers import build_call
from voicebot import reply
from voicebot.cli import main
from voicebot.dial import END_MARK, FRAME_BYTES, PhonePlayer
from voicebot.loadtest import (
    Bounds,
    LoadReport,
    capacity_summary,
    metrics_url,
    parse_metrics,
    percentile,
    run_level,
)

AUDIO = b"\x00" * FRAME_BYTES


def test_the_phone_counts_a_gap_inside_a_reply_but_not_between_replies():
    assert END_MARK == reply.END  # the dial client reads the bot's own end mark
    phone = PhonePlayer()
    phone.add_audio(AUDIO * 2, 0.0)
    phone.add_mark("r1.0")
    for _ in range(2):
        phone.due_marks()
        assert phone.play_frame() is not None
    phone.due_marks()
    assert phone.play_frame() is None  # the second sentence is late: a gap the caller hears
    phone.add_audio(AUDIO, 0.1)
    phone.add_mark("r1.end")
    phone.due_marks()
    assert phone.play_frame() is not None
    phone.due_marks()
    assert phone.play_frame() is None  # the reply is over: silence, not a gap
    assert (phone.played_ticks, phone.starved_ticks) == (3, 1)


def test_a_cleared_reply_is_not_a_gap():
    phone = PhonePlayer()
    phone.add_audio(AUDIO, 0.0)
    phone.play_frame()
    phone.clear()
    assert phone.play_frame() is None and phone.starved_ticks == 0


def test_percentiles_and_metrics_parsing():
    assert percentile([], 50) is None
    assert percentile([100.0, 200.0, 300.0, 400.0], 50) == 250.0
    assert percentile([5.0] * 3 + [1000.0], 99) == pytest.approx(970.15, abs=0.06)
    text = (
        "# HELP process_cpu_seconds_total x\nprocess_cpu_seconds_total 12.5\n"
        'voicebot_calls_total{end="caller"} 3.0\nprocess_resident_memory_bytes 1.5e+08\n'
        "process_open_fds nonsense\n"
    )
    assert parse_metrics(text, ["process_cpu_seconds_total", "process_resident_memory_bytes"]) == {
        "process_cpu_seconds_total": 12.5,
        "process_resident_memory_bytes": 1.5e8,
    }
    assert metrics_url("wss://bot.example.com/twilio/media") == "https://bot.example.com/metrics"


def level(n: int, p95: float | None, late: float = 0.0, failed: int = 0) -> LoadReport:
    report = LoadReport(n, calls=n, late_fraction=late, failed=["x"] * failed)
    report.voice_to_voice_ms = {"p50": p95, "p95": p95, "p99": p95}
    return report


def test_capacity_is_the_last_level_before_the_first_that_broke():
    bounds = Bounds(p95_ms=1500, late_fraction=0.01)
    levels = [level(1, 700), level(2, 900), level(3, 1400), level(4, 1600), level(5, 1000)]
    assert capacity_summary(levels, bounds)["capacity"] == 3
    assert capacity_summary([level(1, 700, late=0.02)], bounds)["capacity"] == 0
    assert capacity_summary([level(1, 700), level(2, 800, failed=1)], bounds)["capacity"] == 1
    assert capacity_summary([level(1, None)], bounds)["capacity"] == 0  # nothing answered


@pytest.mark.slow
async def test_two_concurrent_callers_are_answered_and_the_server_is_sampled(live_server, tmp_path):
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    for name, question in [("a", "How do I close my account?"), ("b", "I lost my card.")]:
        build_call(wavs / f"{name}.wav", [question], voice="rms", tail_s=1.0)
    report = await run_level(live_server.ws, sorted(wavs.glob("*.wav")), 2, tmp_path / "out")
    assert report.calls == 2 and report.failed == [] and report.turns == 2
    assert report.unanswered_turns == 0
    assert 0 < report.voice_to_voice_ms["p50"] < 10_000
    assert 0.0 <= report.late_fraction <= 1.0
    assert report.server["samples"] >= 2 and report.server["rss_mib"]["peak"] > 50


@pytest.mark.slow
def test_a_refused_connection_is_a_failed_call_not_a_crash(tmp_path, capsys):
    build_call(tmp_path / "a.wav", ["Hello."], voice="rms")
    out = tmp_path / "load.json"
    # Nothing listens on port 9 (discard) on 127.0.0.1: every call fails to connect.
    code = main(
        ["loadtest", "ws://127.0.0.1:9/twilio/media", "--calls", "1", "--wav-dir",
         str(tmp_path), "--json", str(out)]
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert code == 0 and result["capacity"] == 0
    assert len(result["levels"][0]["failed"]) == 1 and "NO" in capsys.readouterr().out
