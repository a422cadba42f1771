"""One live call: `async with Call(conn, services) as call: await call.run()`.

The Call reads carrier events, runs VAD on every 20 ms frame and feeds the turn-taker;
it routes the turn-taker's actions (running partial transcripts while the caller
speaks, `voicebot.partials`; speculative transcription during the caller's pause,
answer the turn, barge-in) and the carrier's marks and key presses to the reply side:
`voicebot.reply_pipeline` makes and speaks replies, `voicebot.reply_ledger` keeps their
books (the current reply, what was heard, what the transcript records). It owns its
tasks (one TaskGroup) and writes the call's transcript as it goes. Model calls run in
shared worker threads with timeouts; a failing model costs this caller an apology,
never the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine
from dataclasses import asdict, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import numpy as np

from telephony.connection import CallConnection
from telephony.events import (
    BOT_FRAME_SAMPLES,
    PCM16,
    AudioIn,
    CallEnded,
    CallStarted,
    DtmfDigit,
    MarkPlayed,
    ProtocolError,
    ShutdownRequested,
)
from voicebot.dialogue.core import DialogueState
from voicebot.journal import CallJournal
from voicebot.partials import PartialTranscripts
from voicebot.playout import Playout, stop_task
from voicebot.reply import Reply
from voicebot.reply_ledger import HANGUP_GRACE_S, ReplyLedger
from voicebot.reply_pipeline import MARK_GRACE_S, ReplyPipeline
from voicebot.services import CallServices
from voicebot.transcript import CallRecord
from voicebot.turns import (
    Action,
    BargeIn,
    CallerResumed,
    CallerStarted,
    Partial,
    Speculate,
    TurnDiscarded,
    TurnEnded,
    TurnTaker,
)

__all__ = ["FRAME_S", "HANGUP_GRACE_S", "MARK_GRACE_S", "Call"]

log = logging.getLogger(__name__)

_ACTION_EVENTS: dict[type, str] = {
    CallerStarted: "caller_started",
    Partial: "partial",
    Speculate: "speculate",
    CallerResumed: "caller_resumed",
    TurnEnded: "turn_ended",
    TurnDiscarded: "turn_discarded",
    BargeIn: "barge_in",
}

FRAME_S = 0.02


class Call:
    """A live call, from the carrier's start message to its end."""

    def __init__(self, conn: CallConnection, services: CallServices) -> None:
        self.conn = conn
        self.services = services
        self.config = services.config
        self.clock = services.clock
        self.metrics = services.metrics
        self.turns = TurnTaker(self.config.turns)
        self.vad = services.make_vad()
        self._t0 = self.clock.now()
        self.journal = CallJournal(services, conn, self.now)
        self.playout = Playout(
            conn,
            self.clock,
            lead_ms=self.config.playout.lead_ms,
            on_first_frame=self._on_audible,
            on_frame=self._on_bot_frame,
        )
        #: The books on replies (current, heard, committed), and the pipeline that speaks.
        self.heard = ReplyLedger(self, conn, self.playout, self.metrics)
        self.replies = ReplyPipeline(self, self.heard, conn, services, self.playout)
        #: Running transcripts of the caller's turn while they speak (never answered).
        self.partials = PartialTranscripts(self, services)
        self.record: CallRecord | None = None
        #: Why the bot is hanging up (server shutdown); no new turns are taken then.
        self.closing: str | None = None
        #: The carrier ended the call: answers in flight are recorded, not spoken.
        self.hung_up = False
        #: Call-clock start of the caller's current turn (its pre-roll included).
        self.turn_start = 0.0
        self._speaking = False
        preroll = max(1, self.config.turns.preroll_ms // 20)
        barge = max(1, self.config.turns.barge_in_ms // 20)
        self._ring: deque[PCM16] = deque(maxlen=preroll + barge)
        self._utterance: list[PCM16] | None = None
        self._pending = np.zeros(0, dtype=np.int16)
        self._tasks: asyncio.TaskGroup | None = None

    @property
    def reply(self) -> Reply | None:
        """The reply the bot is saying or preparing now (None: it is listening)."""
        return self.heard.current

    @property
    def state(self) -> DialogueState:
        """What the dialogue remembers so far (as the caller has heard it)."""
        return self.heard.state

    async def __aenter__(self) -> Call:
        self.metrics.active_calls.inc()
        self.services.activity.call_started()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.metrics.active_calls.dec()
        self.services.activity.call_ended()
        end = (
            "error" if exc is not None else (self.record.end_reason if self.record else "no start")
        )
        self.metrics.calls.labels(end=end or "unknown").inc()
        if self.record is not None:
            if exc is not None and not self.record.end_reason:
                self.record.end_reason = f"error: {exc!r}"[:200]
            self.record.ended_s = round(self.now(), 3)
        # The recording closes first, then the final transcript is written (see close).
        await self.journal.close(self.record.end_reason if self.record else end, self.record)

    def log(self, kind: str, /, **fields: Any) -> None:
        """Write one event to the call's events log."""
        self.journal.log(kind, **fields)

    def _on_bot_frame(self, frame: PCM16, play_at: float) -> None:
        self.journal.bot_audio(frame, play_at - self._t0)

    def now(self) -> float:
        """Seconds since the call object was created (the call clock)."""
        return self.clock.now() - self._t0

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """A task owned by this call's TaskGroup (RuntimeError before `run`)."""
        if self._tasks is None:
            raise RuntimeError("Call.run() has not started")
        return self._tasks.create_task(coro, name=name)

    def save(self) -> None:
        """Queue a transcript write (the call never waits for the disk)."""
        if self.record is not None:
            self.journal.save(self.record)

    # ------------------------------------------------------------------ run

    async def run(self) -> None:
        """Serve the call until the carrier ends it."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            playout = tasks.create_task(self.playout.run(), name="playout")
            try:
                await self._inbound()
            finally:
                self.hung_up = True
                self.partials.drop("call_ended")
                await self.heard.finish_last_turn()
                await self.heard.stop()
                await stop_task(playout)

    async def _inbound(self) -> None:
        async for event in self.conn.events():
            if isinstance(event, AudioIn):
                self._on_audio(event.pcm)
            elif isinstance(event, CallStarted):
                self._on_start(event)
            elif isinstance(event, MarkPlayed):
                self.log("mark", name=event.name)
                self.heard.on_mark(event.name)
            elif isinstance(event, DtmfDigit):
                self._on_dtmf(event.digit)
            elif isinstance(event, CallEnded):
                self.log("stop", reason=event.reason)
                if self.record is not None:
                    self.record.end_reason = self.record.end_reason or event.reason
                return
            elif isinstance(event, ShutdownRequested):
                self._on_shutdown(event.reason)
            elif isinstance(event, ProtocolError):
                self.log("protocol_error", message=event.message)
                log.warning("call %s: %s", self._call_id, event.message)

    @property
    def _call_id(self) -> str:
        return self.record.call_id if self.record else "?"

    def _on_start(self, event: CallStarted) -> None:
        if self.record is not None:
            return
        self.record = CallRecord(
            call_id=event.call_id,
            stream_id=event.stream_id,
            carrier=event.carrier,
            account_id=event.account_id,
            custom_parameters=dict(event.custom_parameters),
            started_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        )
        self.journal.start(event)
        log.info("call %s started (%s)", event.call_id, event.carrier)
        # The front door arms a transfer before the start reaches us; without one the
        # dialogue never offers a person (it says who can be reached, and when).
        can_transfer = self.conn.can_transfer
        self.heard.state = replace(self.heard.state, can_transfer=can_transfer)
        self.log("can_transfer", value=can_transfer)
        self.save()
        self.replies.start_prompt("greeting", self.services.dialogue.greeting(self.state))

    def _on_shutdown(self, reason: str) -> None:
        """The server is going down: stop, say goodbye, hang up (recording is flushed)."""
        if self.record is None or self.closing is not None:
            return
        self.closing = reason
        self.record.end_reason = reason
        self.log("shutdown", reason=reason)
        self.heard.silence(barge_in=False)
        self.replies.start_prompt("shutdown", self.services.dialogue.shutdown(self.state))

    def _on_dtmf(self, digit: str) -> None:
        if self.record is None:
            return
        shown = self.journal.dtmf(digit, secret=self.state.collecting_digits)
        self.record.dtmf.append({"digit": shown, "at_s": round(self.now(), 3)})
        self.replies.on_key(digit)

    # ---------------------------------------------------------------- audio

    def _on_audio(self, pcm: PCM16) -> None:
        if self.record is None:
            return
        self._pending = np.concatenate([self._pending, pcm]) if self._pending.size else pcm
        while self._pending.size >= BOT_FRAME_SAMPLES:
            frame = self._pending[:BOT_FRAME_SAMPLES]
            self._pending = self._pending[BOT_FRAME_SAMPLES:]
            self._on_frame(frame)

    def _on_frame(self, frame: PCM16) -> None:
        self._ring.append(frame)
        self.journal.caller_audio(frame)
        if self.closing is not None:
            return  # saying goodbye: recorded, but no new turns
        was_active = self._utterance is not None
        speech = self.vad.is_speech(frame)
        if speech != self._speaking:
            self._speaking = speech
            self.log("vad", speech=speech)
        self.turns.asr_busy = self.services.workers.asr_busy  # how early to speculate
        actions = self.turns.on_frame(self.now(), speech)
        if (
            was_active
            and self._utterance is not None
            and not any(isinstance(a, CallerStarted) for a in actions)
        ):
            self._utterance.append(frame)
        for action in actions:
            self._act(action)

    # ---------------------------------------------------------- turn-taking

    def _act(self, action: Action) -> None:
        fields = {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(action).items()}
        fields.pop("at", None)
        self.log(_ACTION_EVENTS[type(action)], **fields)
        if isinstance(action, CallerStarted):
            self.partials.drop("new_turn")
            self._utterance = list(self._ring)
            self.turn_start = max(action.at - len(self._utterance) * FRAME_S, 0.0)
        elif isinstance(action, Partial):
            self.partials.start(action.turn, self._utterance_audio())
        elif isinstance(action, Speculate):
            self.partials.drop("speculate")
            self.replies.start_answer(
                action.turn, self._utterance_audio(), speculative=True, speech_end=None
            )
        elif isinstance(action, CallerResumed):
            self.heard.drop_unheard()
        elif isinstance(action, TurnEnded):
            self.partials.drop("turn_ended")
            if not self.replies.release(action.turn, action.speech_end):
                self.replies.start_answer(
                    action.turn,
                    self._utterance_audio(),
                    speculative=False,
                    speech_end=action.speech_end,
                )
        elif isinstance(action, TurnDiscarded):
            self.partials.drop("turn_discarded")
            self._utterance = None
            self.heard.drop_unheard()
        elif isinstance(action, BargeIn):
            self.heard.barge_in()

    def _utterance_audio(self) -> PCM16:
        return np.concatenate(self._utterance) if self._utterance else np.zeros(0, np.int16)

    def heard_pause(self, turn: int, text: str) -> None:
        """A speculative transcript came in: turn-taking may ask for a longer pause."""
        for action in self.turns.on_transcript(turn, self.now(), text):
            self._act(action)

    def _on_audible(self, owner: str, at: float) -> None:
        """The first frame of a reply went out: the bot is speaking from now."""
        reply = self.heard.on_audible(owner, at - self._t0)
        if reply is None or reply.audible_at is None:
            return
        self.turns.on_bot_audio(reply.audible_at)
        if reply.turn is not None:
            self._utterance = None

    def reply_done(self, reply: Reply) -> None:
        """The current reply is over: turn-taking goes back to listening."""
        self.turns.on_bot_done(self.now())
        if reply.turn is not None:
            self._utterance = None
