"""Which reply is current, what the caller heard of it, and what goes in the transcript.

The reply pipeline (`voicebot.reply_pipeline`) makes and speaks replies; this ledger
keeps the books. It knows the reply in progress and, by id, the recent ones (late marks
still find theirs); it silences the current one on barge-in, keeping what was heard;
and it commits a reply when its first frame goes out: the dialogue state it carries is
adopted and the caller's turn recorded then, not when the reply was decided, so a
reply dropped before anyone heard it (the caller went on) leaves no trace.

Both ask the `Call` for what only it knows (the call clock, its record, turn-taking)
through `ReplyOwner`, so the dependency runs one way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from telephony.connection import CallConnection, ConnectionClosed
from voicebot.dialogue.core import Decision, DialogueState, Outcome
from voicebot.metrics import Metrics
from voicebot.playout import Playout, stop_task
from voicebot.reply import Reply, parse_mark
from voicebot.transcript import CallRecord, TurnRecord

log = logging.getLogger(__name__)

#: After a hang-up, how long a caller turn still being transcribed may take to be recorded.
HANGUP_GRACE_S = 5.0
#: Replies remembered by id, so late marks still find theirs.
KEPT_REPLIES = 16
#: Outcomes that set the call's own handoff entry (a declined offer only marks its turn).
_CALL_HANDOFFS = (Outcome.HANDOFF_ACCEPTED, Outcome.HANDOFF_OFFER, Outcome.HANDOFF_UNAVAILABLE)


class ReplyOwner(Protocol):
    """What the reply ledger and pipeline need from the call that owns them (the `Call`)."""

    @property
    def record(self) -> CallRecord | None:
        """The call's transcript record (None until the carrier says the call started)."""

    @property
    def closing(self) -> str | None:
        """Why the bot is hanging up (server shutdown), or None."""

    @property
    def hung_up(self) -> bool:
        """The carrier ended the call: answers in flight are recorded, not spoken."""

    @property
    def turn_start(self) -> float:
        """Call-clock start of the caller turn being answered."""

    def now(self) -> float:
        """Seconds on the call clock."""

    def log(self, kind: str, /, **fields: Any) -> None:
        """Write one event to the call's events log."""

    def save(self) -> None:
        """Queue a transcript write."""

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run a task owned by the call (raises RuntimeError once the call is over)."""

    def heard_pause(self, turn: int, text: str) -> None:
        """A speculative transcript of `turn`: turn-taking may lengthen the pause."""

    def reply_done(self, reply: Reply) -> None:
        """The current reply is over (spoken, dropped or failed): the bot is listening."""


class ReplyLedger:
    """The current reply, the recent ones, and the transcript entries they leave."""

    def __init__(
        self, owner: ReplyOwner, conn: CallConnection, playout: Playout, metrics: Metrics
    ) -> None:
        self.call = owner
        self.conn = conn
        self.playout = playout
        self.metrics = metrics
        #: What the dialogue remembers, as the caller has heard it.
        self.state = DialogueState()
        #: The reply the bot is saying or preparing now (None: nothing).
        self.current: Reply | None = None
        self._by_id: dict[str, Reply] = {}
        self._count = 0

    @property
    def call_id(self) -> str:
        """The call's id for log lines ("?" before the call started)."""
        record = self.call.record
        return record.call_id if record else "?"

    def new_reply(self, turn: int | None, speculative: bool) -> Reply:
        """A reply that becomes the current one (to a caller turn, or a prompt if None)."""
        self._count += 1
        reply = Reply(f"r{self._count}", turn, speculative=speculative)
        self._by_id[reply.id] = reply
        while len(self._by_id) > KEPT_REPLIES:
            del self._by_id[next(iter(self._by_id))]
        self.current = reply
        return reply

    def finish(self, reply: Reply) -> None:
        """`reply` is over; if it was the current one, the bot is listening again."""
        if self.current is reply:
            self.current = None
            self.call.reply_done(reply)

    # ------------------------------------------------- marks and silencing

    def on_mark(self, name: str) -> None:
        """The carrier played up to a mark: that sentence was heard."""
        reply_id, part = parse_mark(name)
        reply = self._by_id.get(reply_id)
        if reply is not None and not reply.cleared:
            reply.on_mark(part)
            if reply.record is not None:
                reply.record.heard_text = reply.heard_text()

    def on_audible(self, owner: str, at: float) -> Reply | None:
        """The first frame of reply `owner` went out at call-clock `at`: commit it.

        Returns the reply, or None when it is unknown or was already cleared."""
        reply = self._by_id.get(owner)
        if reply is None or reply.cleared:
            return None
        reply.audible_at = at
        self.commit(reply)
        self.call.log("bot_audio", reply=reply.id)
        record = reply.record
        if isinstance(record, TurnRecord) and reply.speech_end is not None:
            v2v = (at - reply.speech_end) * 1000
            record.timings["voice_to_voice_ms"] = round(v2v, 1)
            self.metrics.observe_ms("voice_to_voice", v2v)
        return reply

    def drop_unheard(self) -> None:
        """The caller went on: a reply nobody has heard yet is void."""
        reply = self.current
        if reply is not None and not reply.audible and reply.turn is not None:
            self.current = None
            reply.cleared = True
            if reply.task is not None:
                reply.task.cancel()

    def barge_in(self) -> None:
        """The caller cut in: stop talking, and remember what they heard."""
        self.metrics.barge_ins.inc()
        reply = self.silence(barge_in=True)
        if reply is not None:
            log.info("call %s: barge-in during %s", self.call_id, reply.id)

    def silence(self, *, barge_in: bool) -> Reply | None:
        """Stop what the bot is saying now (flush, clear at the carrier); the reply stopped."""
        reply = self.current
        self.current = None
        self.playout.flush()
        if reply is None:
            return None
        reply.cleared = True
        if reply.task is not None:
            reply.task.cancel()
        if reply.record is not None:
            reply.record.barge_in = barge_in
            reply.record.heard_text = reply.heard_text()
            if isinstance(reply.record, TurnRecord):
                reply.record.bot_ended_s = round(self.call.now(), 3)
        self.call.log("clear", reply=reply.id, heard_text=reply.heard_text())
        self.call.spawn(self._send_clear(), "clear")
        return reply

    async def _send_clear(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.conn.clear()
        self.call.save()

    # ------------------------------------------------------------ hang-up

    async def finish_last_turn(self) -> None:
        """The caller hung up while their last turn was being understood: let it finish
        (bounded), so the transcript keeps what they said even though nobody answers."""
        pending = [
            reply.task
            for reply in self._by_id.values()
            if reply.turn is not None
            and reply.record is None
            and reply.task is not None
            and not reply.task.done()
        ]
        if pending:
            await asyncio.wait(pending, timeout=HANGUP_GRACE_S)

    async def stop(self) -> None:
        """Cancel every reply still in flight (the call is over)."""
        for reply in list(self._by_id.values()):
            await stop_task(reply.task)

    # ----------------------------------------------------------- committing

    def commit(self, reply: Reply) -> None:
        """The reply is going out: adopt its dialogue state and record the turn.

        Called when the first frame is sent, not when the reply is decided: a reply
        dropped before anyone heard it (the caller went on) leaves no trace.
        """
        if reply.pending is None or reply.decision is None:
            return
        (record, tts_ms), decision = reply.pending, reply.decision
        reply.pending = None
        self.call.log(
            "decision",
            turn=reply.turn,
            reply=reply.id,
            intent=decision.intent,
            confidence=round(decision.confidence, 3),
            sentiment=round(decision.sentiment, 3),
            outcome=decision.outcome.value,
            text=decision.text,
        )
        self.state = decision.state
        reply.record = record
        record.bot_started_s = round(self.call.now(), 3)
        record.timings["tts_first_audio_ms"] = round(tts_ms, 1)
        self.add_turn(record, reply)
        for stage in ("asr_ms", "dialogue_ms", "tts_first_audio_ms"):
            if stage in record.timings:
                self.metrics.observe_ms(stage[:-3], record.timings[stage])
        self.metrics.turns.labels(outcome=decision.outcome.value).inc()
        self.note_handoff(decision, record)
        self.note_action(decision)
        self.call.save()  # on disk now, not only once the answer is over

    def add_turn(self, record: TurnRecord, reply: Reply) -> None:
        """Place a caller turn on the call clock and append it to the call's record."""
        speech_end = reply.speech_end if reply.speech_end is not None else self.call.now()
        record.ended_s = round(speech_end, 3)
        record.started_s = round(self.call.turn_start, 3)
        call_record = self.call.record
        if call_record is not None:
            record.index = len(call_record.turns) + 1
            call_record.turns.append(record)

    def note_action(self, decision: Decision) -> None:
        """An account action the caller confirmed (freeze, replacement, dispute)."""
        if decision.action is not None:
            action = decision.action
            self.call.log(
                "account_action",
                action=action.action,
                target=action.target,
                reference=action.reference,
            )

    def note_handoff(self, decision: Decision, record: TurnRecord | None = None) -> None:
        """A decision about a person: on the turn, on the call, and in the metrics."""
        call_record = self.call.record
        if decision.handoff is None or call_record is None:
            return
        state = decision.handoff.state
        entry = {
            "state": state,
            "reason": decision.handoff.reason,
            "at_s": round(self.call.now(), 3),
        }
        self.metrics.handoffs.labels(state=state).inc()
        log.info("call %s: handoff %s (%s)", call_record.call_id, state, decision.handoff.reason)
        if record is not None:
            record.handoff = entry
        if decision.outcome in _CALL_HANDOFFS:
            call_record.handoff = entry
