"""Replay takes the original line's ability to transfer from the recorded events.

The dialogue offers a person only where the call can be transferred, so a replay of a
call recorded on a line that could must pretend it can too, or every such call would
replay as "no person on this line" and `--compare` would flag a change that is not one.
A recorded call directory is built here: a 16 kHz stereo recording whose caller side is
flite asking for a person, plus the events log's `can_transfer` line.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from tests.helpers import flite_pcm
from voicebot.replay import runner
from voicebot.replay.sources import discover, load
from voicebot.wavio import write_wav

pytestmark = pytest.mark.slow

ASK = "Can I speak to a real person please?"


def recorded_call(folder, can_transfer: bool | None, *, said=(ASK,), transfers=()):
    """A call directory as the server leaves it (recording and events only)."""
    folder.mkdir()
    pieces = [np.zeros(8000, np.int16)]
    for text in said:
        pieces += [flite_pcm(text), np.zeros(8 * 16000, np.int16)]
    caller = np.concatenate(pieces)
    stereo = np.stack([caller, np.zeros_like(caller)], axis=1)
    write_wav(folder / "recording.wav", stereo.reshape(-1), 16000, channels=2)
    lines = [{"t": 0.0, "event": "start", "call_id": folder.name}]
    if can_transfer is not None:
        lines.append({"t": 0.0, "event": "can_transfer", "value": can_transfer})
    for ok in transfers:
        lines.append({"t": 9.0, "event": "transfer", "state": "started", "reason": "asked"})
        lines.append({"t": 9.5, "event": "transfer", "state": "transferred" if ok else "x"})
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    return folder


@pytest.mark.parametrize(
    ("can_transfer", "outcome"),
    [(True, "handoff_offer"), (False, "handoff_unavailable"), (None, "handoff_unavailable")],
)
async def test_the_replay_offers_a_person_only_where_the_original_line_could(
    services, config, tmp_path, can_transfer, outcome
):
    [source] = discover(recorded_call(tmp_path / "call", can_transfer))
    assert load(source).can_transfer is bool(can_transfer)
    runner.attach(services, config, False)
    await asyncio.to_thread(runner.replay_source, source, tmp_path / "out")
    [turn] = json.loads((tmp_path / "out" / "report.json").read_text())["turns"]
    assert turn["outcome"] == outcome, turn


@pytest.mark.parametrize(
    ("recorded", "state"), [((), "transferred"), ((False,), "transfer_failed")]
)
async def test_a_replayed_transfer_ends_as_the_original_one_did(
    services, config, tmp_path, recorded, state
):
    folder = recorded_call(tmp_path / "call", True, said=(ASK, "Yes please."), transfers=recorded)
    [source] = discover(folder)
    assert load(source).transfers == recorded
    runner.attach(services, config, False)
    await asyncio.to_thread(runner.replay_source, source, tmp_path / "out")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [t["outcome"] for t in report["turns"]] == ["handoff_offer", "handoff_accepted"]
    assert report["handoff"]["transfer"] == state, report["handoff"]
