"""Record a live call, replay it offline, compare, and read the reports (real models)."""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import replace

import pytest

from tests.helpers import AGE_QUESTION, CLOSE_QUESTION, build_call
from voicebot.dial import dial
from voicebot.dialogue.core import DialogueCore
from voicebot.replay import runner
from voicebot.replay.sources import discover
from voicebot.transcript import safe_call_dir_name
from voicebot.wavio import read_pcm16_channels

pytestmark = pytest.mark.slow

QUESTIONS = [AGE_QUESTION, CLOSE_QUESTION]


@pytest.fixture(scope="module")
async def recorded_call(live_server, tmp_path_factory):
    """A live call over the websocket, recorded and captured by the server."""
    tmp = tmp_path_factory.mktemp("recorded")
    call = build_call(tmp / "caller.wav", QUESTIONS, voice="rms", gap_s=12.0)
    result = await dial(live_server.ws, call.path, tmp / "dial", turns=call.turns)
    directory = live_server.data_dir / "calls" / safe_call_dir_name(result.call_sid)
    for _ in range(50):  # the call's last writes land just after the socket closes
        if (directory / "transcript.json").is_file() and json.loads(
            (directory / "transcript.json").read_text()
        ).get("ended_s"):
            break
        await asyncio.sleep(0.1)
    return directory, call


async def replay(services, config, source_dir, out, *, with_compare=False):
    runner.attach(services, config, with_compare)
    [source] = discover(source_dir)
    return source, await asyncio.to_thread(runner.replay_source, source, out)


def turns_of(path):
    return json.loads(path.read_text())["turns"]


async def test_the_live_call_left_recording_events_capture_and_store_entry(recorded_call, services):
    directory, call = recorded_call
    samples, rate = read_pcm16_channels((directory / "recording.wav").read_bytes())
    assert rate == 16000 and samples.shape[1] == 2
    assert samples.shape[0] / rate >= call.turns[-1][1]
    assert samples[:, 0].any() and samples[:, 1].any()  # both legs have audio
    events = [json.loads(line) for line in (directory / "events.jsonl").read_text().splitlines()]
    kinds = {e["event"] for e in events}
    assert {
        "start",
        "vad",
        "caller_started",
        "turn_ended",
        "transcript",
        "decision",
        "mark",
    } <= kinds
    assert all(isinstance(e["t"], float | int) for e in events)
    capture = (directory / "capture.jsonl").read_text().splitlines()
    assert json.loads(capture[0])["text"].startswith('{"event": "connected"')
    assert any(json.loads(line)["dir"] == "out" for line in capture)
    stored = services.store.get_call(
        json.loads((directory / "transcript.json").read_text())["call_id"]
    )
    assert stored is not None and [t["intent"] for t in stored["turns"]] == [
        "age_limit",
        "terminate_account",
    ]


@pytest.mark.parametrize("keep", ["capture.jsonl", "recording.wav"])
async def test_replay_reproduces_the_live_transcripts_and_intents(
    recorded_call, services, config, tmp_path, keep
):
    directory, _ = recorded_call
    source_dir = tmp_path / "call"
    source_dir.mkdir()
    for name in (keep, "transcript.json"):
        shutil.copy(directory / name, source_dir / name)
    source, row = await replay(services, config, source_dir, tmp_path / "out")
    assert source.kind == keep.split(".")[0]
    live = turns_of(directory / "transcript.json")
    replayed = turns_of(tmp_path / "out" / "report.json")
    assert [t["caller_text"] for t in replayed] == [t["caller_text"] for t in live]
    assert [t["intent"] for t in replayed] == [t["intent"] for t in live]
    assert [t["outcome"] for t in replayed] == [t["outcome"] for t in live]
    assert row["turns"] == 2 and (tmp_path / "out" / "report.html").is_file()


async def test_replaying_twice_gives_the_same_report_apart_from_timings(
    recorded_call, services, config, tmp_path
):
    _, call = recorded_call
    reports = []
    for run in ("a", "b"):
        await replay(services, config, call.path, tmp_path / run)
        report = json.loads((tmp_path / run / "report.json").read_text())
        for turn in report["turns"]:
            turn.pop("timings")
        reports.append(report)
    assert reports[0] == reports[1]
    assert len(reports[0]["turns"]) == 2


async def test_compare_catches_a_changed_intent_and_fails_the_gate(
    recorded_call, services, config, tmp_path
):
    directory, _ = recorded_call
    source_dir = tmp_path / "call"
    source_dir.mkdir()
    shutil.copy(directory / "recording.wav", source_dir / "recording.wav")
    original = json.loads((directory / "transcript.json").read_text())
    original["turns"][1]["intent"] = "card_arrival"  # what the bot "used to" understand
    (source_dir / "transcript.json").write_text(json.dumps(original))
    _, row = await replay(services, config, source_dir, tmp_path / "out", with_compare=True)
    comparison = row["comparison"]
    assert comparison["passed"] is False and comparison["rules_broken"] == ["intent"]
    [difference] = [d for d in comparison["differences"] if d["field"] == "intent"]
    assert difference == {
        "turn": 2,
        "field": "intent",
        "original": "card_arrival",
        "replayed": "terminate_account",
    }
    # The same call compared with its true original passes.
    shutil.copy(directory / "transcript.json", source_dir / "transcript.json")
    _, row = await replay(services, config, source_dir, tmp_path / "again", with_compare=True)
    assert row["comparison"]["passed"] is True


async def test_a_replay_with_a_changed_config_reports_what_changed(
    recorded_call, services, config, tmp_path
):
    directory, _ = recorded_call
    strict = replace(config, dialogue=replace(config.dialogue, min_intent_confidence=1.01))
    core = services.dialogue
    changed = replace(
        services,
        config=strict,
        dialogue=DialogueCore(core.replies, core.graph, core.nlu, strict.dialogue, core.tasks),
    )
    _, row = await replay(changed, strict, directory, tmp_path / "out", with_compare=True)
    # Nothing clears an impossible confidence bar: every answer became a question.
    assert row["comparison"]["passed"] is False
    assert "outcome" in row["comparison"]["rules_broken"]


async def test_the_replayed_report_opens_in_chromium_and_shows_every_turn(
    recorded_call, services, config, tmp_path
):
    from tests.voicebot.report.test_html import load_in_chromium

    _, call = recorded_call
    await replay(services, config, call.path, tmp_path / "out")
    dom, console = await asyncio.to_thread(
        load_in_chromium, tmp_path / "out" / "report.html", tmp_path
    )
    assert console == []
    html_tag = dom[dom.index("<html") : dom.index(">", dom.index("<html"))]
    assert 'data-js="ready"' in html_tag and "data-js-errors" not in html_tag
    assert 'data-turns-rendered="2"' in html_tag
    assert [f'data-turn="{i}"' in dom for i in (1, 2)] == [True, True]
    assert dom.count("<audio") >= 2  # every turn has its clip


async def test_a_folder_is_replayed_on_all_cores_with_an_index(config, tmp_path):
    folder = tmp_path / "calls"
    folder.mkdir()
    build_call(folder / "one.wav", [AGE_QUESTION], voice="slt")
    build_call(folder / "two.wav", [CLOSE_QUESTION], voice="rms")
    status = await asyncio.to_thread(
        runner.run_replay, folder, tmp_path / "out", config, with_compare=False, jobs=2
    )
    assert status == 0
    summary = json.loads((tmp_path / "out" / "report.json").read_text())
    assert summary["summary"]["calls"] == 2 and summary["summary"]["jobs"] == 2
    assert sorted(row["name"] for row in summary["calls"]) == ["one", "two"]
    assert [row["intents"] for row in sorted(summary["calls"], key=lambda r: r["name"])] == [
        ["age_limit"],
        ["terminate_account"],
    ]
    index = (tmp_path / "out" / "index.html").read_text()
    assert "one/report.html" in index and "two/report.html" in index
    assert (tmp_path / "out" / "one" / "report.html").is_file()
