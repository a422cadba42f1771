"""Running partial transcripts in replay: deterministic, and they decide nothing.

Replay never reports the ASR worker busy (`ModelWorkers.asr_busy`), so the turn-taker
asks for partials at the same virtual moments on every run, each "takes" the configured
virtual ASR time, and whether it is heard or dropped follows from those times alone.
The recorded call here is flite reading a long request (about 4 s of speech) with an
account number in it: the partials carry words, and the events log keeps them redacted.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import flite_pcm
from voicebot.config import Config
from voicebot.replay import runner
from voicebot.replay.sources import discover
from voicebot.services import CallServices
from voicebot.wavio import write_wav

pytestmark = pytest.mark.slow

SAID = "Hello, my account number is 12345678, and I would like to close my account please."
#: Turn-taking decisions: what must not change when partials are switched on.
DECISIONS = ("caller_started", "speculate", "caller_resumed", "turn_ended", "turn_discarded")


def recorded_call(folder: Path) -> Path:
    """A call directory as the server leaves it: one long request, then silence."""
    folder.mkdir()
    caller = np.concatenate(
        [np.zeros(8000, np.int16), flite_pcm(SAID), np.zeros(10 * 16000, np.int16)]
    )
    stereo = np.stack([caller, np.zeros_like(caller)], axis=1)
    write_wav(folder / "recording.wav", stereo.reshape(-1), 16000, channels=2)
    (folder / "events.jsonl").write_text(json.dumps({"t": 0.0, "event": "start"}) + "\n")
    return folder


async def replay_events(services: CallServices, config: Config, source: Path, out: Path) -> list:
    runner.attach(services, config, False)
    [found] = discover(source)
    await asyncio.to_thread(runner.replay_source, found, out)
    [events] = (out / "calls").glob("*/events.jsonl")
    return [json.loads(line) for line in events.read_text().splitlines()]


async def test_partials_replay_the_same_every_time_and_change_no_decision(
    services, config, tmp_path
):
    source = recorded_call(tmp_path / "call")
    on = replace(config, turns=replace(config.turns, partial_every_ms=1000))
    off = replace(config, turns=replace(config.turns, partial_every_ms=0))
    first = await replay_events(services, on, source, tmp_path / "a")
    second = await replay_events(services, on, source, tmp_path / "b")
    without = await replay_events(services, off, source, tmp_path / "c")

    def partials(events: list) -> list:
        return [
            (e["t"], e["event"], e.get("turn"), e.get("text"), e.get("audio_s"), e.get("why"))
            for e in events
            if e["event"].startswith("partial")
        ]

    def decisions(events: list) -> list:
        return [(e["t"], e["event"], e.get("turn")) for e in events if e["event"] in DECISIONS]

    assert partials(first) == partials(second)
    heard = [p for p in partials(first) if p[1] == "partial_transcript"]
    assert len(heard) >= 2, partials(first)
    assert all(p[3] for p in heard)  # words, not silence
    assert [p[4] for p in heard] == sorted(p[4] for p in heard)  # the turn so far, growing
    assert partials(without) == []
    assert decisions(first) == decisions(without)
    assert "12345678" not in json.dumps(first)  # redacted like every transcript line
