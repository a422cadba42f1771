"""`PartialTranscripts`: what is logged, what is dropped, and that nothing waits for it.

A fake ASR worker that answers only when told, so the test decides whether the caller
paused (or the turn ended) before a partial's words came back.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import numpy as np

from models.protocols import Transcript
from voicebot.metrics import Metrics
from voicebot.partials import PartialTranscripts
from voicebot.workers import Timed


class SlowAsr:
    """Transcribes when `finish` is set; counts how many requests ran to the end."""

    def __init__(self) -> None:
        self.finish = asyncio.Event()
        self.finished = 0

    async def transcribe(self, audio: np.ndarray) -> Timed[Transcript]:
        await self.finish.wait()
        self.finished += 1
        return Timed(Transcript(text=f"{audio.size} samples", no_speech_prob=0.01), 120.0)


class Owner:
    """The Call's side: an events log and a TaskGroup."""

    def __init__(self, tasks: asyncio.TaskGroup) -> None:
        self.tasks = tasks
        self.events: list[tuple[str, dict[str, Any]]] = []

    def log(self, kind: str, /, **fields: Any) -> None:
        self.events.append((kind, fields))

    def spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        return self.tasks.create_task(coro, name=name)


def counted(metrics: Metrics, outcome: str) -> float:
    return metrics.partial_transcripts.labels(outcome=outcome)._value.get()


async def test_a_partial_is_logged_and_an_outdated_one_dropped_without_waiting():
    asr, metrics = SlowAsr(), Metrics()
    services: Any = SimpleNamespace(workers=asr, metrics=metrics)
    async with asyncio.TaskGroup() as tasks:
        owner = Owner(tasks)
        partials = PartialTranscripts(owner, services)
        partials.start(1, np.zeros(16000, np.int16))
        await asyncio.sleep(0)
        partials.drop("speculate")  # the caller paused first: the speculation takes over
        await asyncio.sleep(0)
        assert owner.events == [("partial_dropped", {"turn": 1, "why": "speculate"})]
        asr.finish.set()
        partials.start(2, np.zeros(24000, np.int16))
        await asyncio.sleep(0.01)
        partials.drop("turn_ended")  # done already: nothing to drop
    assert owner.events[1:] == [
        (
            "partial_transcript",
            {
                "turn": 2,
                "text": "24000 samples",
                "audio_s": 1.5,
                "asr_ms": 120.0,
                "no_speech_prob": 0.01,
            },
        )
    ]
    assert (partials.started, partials.heard) == (2, 1)
    assert (counted(metrics, "heard"), counted(metrics, "dropped")) == (1, 1)


async def test_a_failing_partial_is_only_logged():
    class Broken:
        async def transcribe(self, audio: np.ndarray) -> Timed[Transcript]:
            raise RuntimeError("whisper fell over")

    metrics = Metrics()
    services: Any = SimpleNamespace(workers=Broken(), metrics=metrics)
    async with asyncio.TaskGroup() as tasks:  # the failure does not end the call's tasks
        owner = Owner(tasks)
        PartialTranscripts(owner, services).start(1, np.zeros(160, np.int16))
    assert owner.events == []
    assert metrics.model_errors.labels(stage="asr_partial")._value.get() == 1
