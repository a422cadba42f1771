"""Running partial transcripts: what the caller has said so far, while they still speak.

The turn-taker asks for one (`voicebot.turns.Partial`) every `[turns] partial_every_ms`
of the caller's speech while the ASR worker is idle. The transcript goes to the events
log (`partial_transcript`, redacted like every other line there) and to the metrics,
which is where QA and integrators read a call as it happens. A partial never answers
and never moves the endpoint: those are decided by the speculative and final
transcripts of the caller's pause (`voicebot.reply_pipeline`).

A partial is outdated as soon as the caller pauses (the speculation takes over), the
turn ends or a new one starts. Then the await is cancelled, so nothing of the call waits
for it; the worker thread computes on until Whisper returns, exactly like an abandoned
speculation, and `ModelWorkers.asr_busy` covers it meanwhile. `partial_dropped` with
`why` "speculate" or "turn_ended" means the turn's real transcript queued behind it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from telephony.events import BOT_SAMPLE_RATE, PCM16
from voicebot.services import CallServices

log = logging.getLogger(__name__)


class PartialOwner(Protocol):
    """What the partial transcripts need of the Call."""

    def log(self, kind: str, /, **fields: Any) -> None:
        """Write one event to the call's events log."""

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """A task owned by the call."""


class PartialTranscripts:
    """The running partial transcript of one call's current turn (at most one at a time)."""

    def __init__(self, owner: PartialOwner, services: CallServices) -> None:
        self.call = owner
        self.services = services
        self._task: asyncio.Task[None] | None = None
        self._turn = 0
        #: Partials asked for, and those whose words came back in time (for tests, bench).
        self.started = 0
        self.heard = 0

    def start(self, turn: int, audio: PCM16) -> None:
        """Transcribe `audio`, the turn so far; an older partial still waiting is dropped."""
        self.drop("newer_partial")
        self._turn = turn
        self.started += 1
        self._task = self.call.spawn(self._transcribe(turn, audio), f"partial-{turn}")

    def drop(self, why: str) -> None:
        """The running partial is outdated: stop waiting for it (its thread runs out)."""
        task, self._task = self._task, None
        if task is None or task.done():
            return
        task.cancel()
        self.call.log("partial_dropped", turn=self._turn, why=why)
        self.services.metrics.partial_transcripts.labels(outcome="dropped").inc()

    async def _transcribe(self, turn: int, audio: PCM16) -> None:
        try:
            heard = await self.services.workers.transcribe(audio)
        except Exception as exc:  # only a view of the turn failed: logged, never spoken
            log.warning("partial transcript of turn %s failed: %r", turn, exc)
            self.services.metrics.model_errors.labels(stage="asr_partial").inc()
            return
        transcript = heard.value
        self.heard += 1
        self.call.log(
            "partial_transcript",
            turn=turn,
            text=transcript.text,
            audio_s=round(audio.size / BOT_SAMPLE_RATE, 2),
            asr_ms=round(heard.ms, 1),
            no_speech_prob=round(transcript.no_speech_prob, 3),
        )
        self.services.metrics.partial_transcripts.labels(outcome="heard").inc()
