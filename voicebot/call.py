"""One live call: `async with Call(conn, services) as call: await call.run()`.

The Call reads carrier events, runs VAD on every 20 ms frame and feeds the turn-taker;
it carries out the turn-taker's actions: speculative transcription during the caller's
pause, the reply pipeline (ASR -> dialogue -> TTS, sentence by sentence), barge-in
(cancel, clear, remember what was heard). It owns its tasks (one TaskGroup) and writes
the call's transcript as it goes. Model calls run in shared worker threads with
timeouts; a failing model costs this caller an apology, never the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Coroutine
from dataclasses import asdict
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import numpy as np

from telephony.connection import CallConnection, ConnectionClosed
from telephony.events import (
    BOT_FRAME_SAMPLES,
    BOT_SAMPLE_RATE,
    PCM16,
    AudioIn,
    CallEnded,
    CallStarted,
    DtmfDigit,
    MarkPlayed,
    ProtocolError,
    ShutdownRequested,
)
from voicebot.dialogue.core import Decision, DialogueState, Outcome
from voicebot.handoff import transfer
from voicebot.journal import CallJournal
from voicebot.phrasing import SentenceSource
from voicebot.playout import Playout, stop_task
from voicebot.reply import END, Reply, SpeechUnit, clause_pause, mark_name, parse_mark
from voicebot.services import CallServices
from voicebot.transcript import CallRecord, PromptRecord, TurnRecord
from voicebot.turns import (
    Action,
    BargeIn,
    CallerResumed,
    CallerStarted,
    Speculate,
    TurnDiscarded,
    TurnEnded,
    TurnTaker,
)
from voicebot.workers import ModelTimeout

log = logging.getLogger(__name__)

#: After a hang-up, how long a caller turn still being transcribed may take to be recorded.
HANGUP_GRACE_S = 5.0

_ACTION_EVENTS: dict[type, str] = {
    CallerStarted: "caller_started",
    Speculate: "speculate",
    CallerResumed: "caller_resumed",
    TurnEnded: "turn_ended",
    TurnDiscarded: "turn_discarded",
    BargeIn: "barge_in",
}

FRAME_S = 0.02
#: How long after the expected end of playout we wait for the carrier's last mark.
MARK_GRACE_S = 3.0


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
        self.state = DialogueState()
        self.record: CallRecord | None = None
        self.reply: Reply | None = None
        self._replies: dict[str, Reply] = {}
        self._reply_count = 0
        self._speaking = False
        preroll = max(1, self.config.turns.preroll_ms // 20)
        barge = max(1, self.config.turns.barge_in_ms // 20)
        self._ring: deque[PCM16] = deque(maxlen=preroll + barge)
        self._utterance: list[PCM16] | None = None
        self._closing: str | None = None  # why the bot is hanging up (server shutdown)
        self._transferring = False  # a handoff to a person has been started
        self._hung_up = False  # the carrier ended the call (answers in flight are not spoken)
        self._pending = np.zeros(0, dtype=np.int16)
        self._tasks: asyncio.TaskGroup | None = None
        self._turn_start = 0.0

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

    def _log(self, kind: str, /, **fields: Any) -> None:
        self.journal.log(kind, **fields)

    def _on_bot_frame(self, frame: PCM16, play_at: float) -> None:
        self.journal.bot_audio(frame, play_at - self._t0)

    def now(self) -> float:
        """Seconds since the call object was created (the call clock)."""
        return self.clock.now() - self._t0

    # ------------------------------------------------------------------ run

    async def run(self) -> None:
        """Serve the call until the carrier ends it."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            playout = tasks.create_task(self.playout.run(), name="playout")
            try:
                await self._inbound()
            finally:
                self._hung_up = True
                await self._finish_last_turn()
                for reply in list(self._replies.values()):
                    await stop_task(reply.task)
                await stop_task(playout)

    async def _finish_last_turn(self) -> None:
        """The caller hung up while their last turn was being understood: let it finish
        (bounded), so the transcript keeps what they said even though nobody answers."""
        pending = [
            reply.task
            for reply in self._replies.values()
            if reply.turn is not None
            and reply.record is None
            and reply.task is not None
            and not reply.task.done()
        ]
        if pending:
            await asyncio.wait(pending, timeout=HANGUP_GRACE_S)

    async def _inbound(self) -> None:
        async for event in self.conn.events():
            if isinstance(event, AudioIn):
                self._on_audio(event.pcm)
            elif isinstance(event, CallStarted):
                await self._on_start(event)
            elif isinstance(event, MarkPlayed):
                self._log("mark", name=event.name)
                self._on_mark(event.name)
            elif isinstance(event, DtmfDigit):
                await self._on_dtmf(event.digit)
            elif isinstance(event, CallEnded):
                self._log("stop", reason=event.reason)
                if self.record is not None:
                    self.record.end_reason = self.record.end_reason or event.reason
                return
            elif isinstance(event, ShutdownRequested):
                self._on_shutdown(event.reason)
            elif isinstance(event, ProtocolError):
                self._log("protocol_error", message=event.message)
                log.warning("call %s: %s", self._call_id, event.message)

    @property
    def _call_id(self) -> str:
        return self.record.call_id if self.record else "?"

    async def _on_start(self, event: CallStarted) -> None:
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
        self._save()
        self._start_prompt("greeting", self.services.dialogue.greeting(self.state))

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
        if self._closing is not None:
            return  # saying goodbye: recorded, but no new turns
        was_active = self._utterance is not None
        speech = self.vad.is_speech(frame)
        if speech != self._speaking:
            self._speaking = speech
            self._log("vad", speech=speech)
        actions = self.turns.on_frame(self.now(), speech)
        if (
            was_active
            and self._utterance is not None
            and not any(isinstance(a, CallerStarted) for a in actions)
        ):
            self._utterance.append(frame)
        for action in actions:
            self._act(action)

    def _act(self, action: Action) -> None:
        fields = {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(action).items()}
        fields.pop("at", None)
        self._log(_ACTION_EVENTS[type(action)], **fields)
        if isinstance(action, CallerStarted):
            self._utterance = list(self._ring)
            self._turn_start = max(action.at - len(self._utterance) * FRAME_S, 0.0)
        elif isinstance(action, Speculate):
            self._start_answer(action.turn, speculative=True, speech_end=None)
        elif isinstance(action, CallerResumed):
            self._drop_unheard_reply()
        elif isinstance(action, TurnEnded):
            self._on_turn_end(action)
        elif isinstance(action, TurnDiscarded):
            self._utterance = None
            self._drop_unheard_reply()
        elif isinstance(action, BargeIn):
            self._barge_in()

    def _utterance_audio(self) -> PCM16:
        return np.concatenate(self._utterance) if self._utterance else np.zeros(0, np.int16)

    def _on_turn_end(self, action: TurnEnded) -> None:
        reply = self.reply
        if reply is not None and reply.speculative and reply.turn == action.turn:
            reply.speech_end = action.speech_end
            reply.released.set()
            return
        self._start_answer(action.turn, speculative=False, speech_end=action.speech_end)

    def _heard_pause(self, reply: Reply, text: str) -> None:
        """A speculative transcript sets how long the caller's pause must last."""
        if reply.speculative and reply.turn is not None and self.reply is reply:
            for action in self.turns.on_transcript(reply.turn, self.now(), text):
                self._act(action)

    def _drop_unheard_reply(self) -> None:
        """The caller went on: a reply nobody has heard yet is void."""
        reply = self.reply
        if reply is not None and not reply.audible and reply.turn is not None:
            self.reply = None
            reply.cleared = True
            if reply.task is not None:
                reply.task.cancel()

    def _barge_in(self) -> None:
        self.metrics.barge_ins.inc()
        reply = self._silence_bot(barge_in=True)
        if reply is not None:
            log.info("call %s: barge-in during %s", self._call_id, reply.id)

    def _silence_bot(self, *, barge_in: bool) -> Reply | None:
        """Stop what the bot is saying now (flush, clear at the carrier); the reply stopped."""
        reply = self.reply
        self.reply = None
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
                reply.record.bot_ended_s = round(self.now(), 3)
        self._log("clear", reply=reply.id, heard_text=reply.heard_text())
        self._spawn(self._send_clear(), "clear")
        return reply

    def _on_shutdown(self, reason: str) -> None:
        """The server is going down: stop, say goodbye, hang up (recording is flushed)."""
        if self.record is None or self._closing is not None:
            return
        self._closing = reason
        self.record.end_reason = reason
        self._log("shutdown", reason=reason)
        self._silence_bot(barge_in=False)
        self._start_prompt("shutdown", self.services.dialogue.shutdown(self.state))

    async def _send_clear(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.conn.clear()
        self._save()

    # ---------------------------------------------------------------- marks

    def _on_mark(self, name: str) -> None:
        reply_id, part = parse_mark(name)
        reply = self._replies.get(reply_id)
        if reply is not None and not reply.cleared:
            reply.on_mark(part)
            if reply.record is not None:
                reply.record.heard_text = reply.heard_text()

    def _on_audible(self, owner: str, at: float) -> None:
        reply = self._replies.get(owner)
        if reply is None or reply.cleared:
            return
        reply.audible_at = at - self._t0
        self._commit(reply)
        self._log("bot_audio", reply=reply.id)
        self.turns.on_bot_audio(reply.audible_at)
        if reply.turn is not None:
            self._utterance = None
        record = reply.record
        if isinstance(record, TurnRecord) and reply.speech_end is not None:
            v2v = (reply.audible_at - reply.speech_end) * 1000
            record.timings["voice_to_voice_ms"] = round(v2v, 1)
            self.metrics.observe_ms("voice_to_voice", v2v)

    # ----------------------------------------------------------------- DTMF

    async def _on_dtmf(self, digit: str) -> None:
        if self.record is None:
            return
        shown = self.journal.dtmf(digit, secret=self.state.collecting_digits)
        self.record.dtmf.append({"digit": shown, "at_s": round(self.now(), 3)})
        if self.reply is not None and self.reply.audible:
            self._barge_in()
        else:
            self._drop_unheard_reply()
        decision = self.services.dialogue.on_dtmf(self.state, digit)
        self.state = decision.state
        self._note_handoff(decision)
        self._note_action(decision)
        if decision.sentences:  # a digit of a number being keyed in says nothing yet
            self._start_prompt("dtmf", decision)

    # -------------------------------------------------------------- replies

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        if self._tasks is None:
            raise RuntimeError("Call.run() has not started")
        return self._tasks.create_task(coro, name=name)

    def _new_reply(self, turn: int | None, speculative: bool) -> Reply:
        self._reply_count += 1
        reply = Reply(f"r{self._reply_count}", turn, speculative=speculative)
        self._replies[reply.id] = reply
        while len(self._replies) > 16:
            del self._replies[next(iter(self._replies))]
        self.reply = reply
        return reply

    def _start_prompt(self, kind: str, decision: Decision) -> None:
        """Say something that is not an answer to a caller turn (greeting, key press)."""
        if self.record is None:
            return
        reply = self._new_reply(None, speculative=False)
        reply.record = PromptRecord(kind, round(self.now(), 3), decision.text)
        self.record.prompts.append(reply.record)
        reply.released.set()
        reply.task = self._spawn(self._speak(reply, decision, None), f"prompt-{reply.id}")

    def _start_answer(self, turn: int, *, speculative: bool, speech_end: float | None) -> None:
        self._drop_unheard_reply()
        reply = self._new_reply(turn, speculative)
        reply.speech_end = speech_end
        if not speculative:
            reply.released.set()
        audio = self._utterance_audio()
        reply.task = self._spawn(self._answer(reply, audio), f"answer-{reply.id}")

    async def _answer(self, reply: Reply, audio: PCM16) -> None:
        workers, dialogue = self.services.workers, self.services.dialogue
        timings: dict[str, float] = {}
        try:
            heard = await workers.transcribe(audio)
            timings["asr_ms"] = round(heard.ms, 1)
            transcript = heard.value
            self._log(
                "transcript",
                turn=reply.turn,
                text=transcript.text,
                asr_ms=timings["asr_ms"],
                no_speech_prob=round(transcript.no_speech_prob, 3),
                speculative=reply.speculative,
            )
            noise = transcript.no_speech_prob > self.config.asr.max_no_speech_prob
            self._heard_pause(reply, "" if noise else transcript.text)
            if not transcript.text.strip() or noise:
                if not self._hung_up:
                    await reply.released.wait()
                log.info("call %s: turn %s had no words; not answering", self._call_id, reply.turn)
                self._finish(reply)
                return
            state = self.state
            decided = await workers.run_nlu(lambda: dialogue.respond(state, transcript.text))
            timings["dialogue_ms"] = round(decided.ms, 1)
            decision = decided.value
        except Exception as exc:  # a timeout or a broken model: the caller hears an apology
            log.error("call %s: answering turn %s failed: %r", self._call_id, reply.turn, exc)
            self.metrics.model_errors.labels(stage="asr_or_dialogue").inc()
            if not self._hung_up:
                await reply.released.wait()
            decision = dialogue.apology(self.state)
            transcript = None
        caller_text = transcript.text if transcript is not None else ""
        record = TurnRecord(
            index=len(self.record.turns) + 1 if self.record else 1,
            started_s=0.0,
            ended_s=0.0,
            caller_text=caller_text,
            intent=decision.intent,
            intent_confidence=round(decision.confidence, 3),
            sentiment=round(decision.sentiment, 3),
            outcome=decision.outcome.value,
            bot_text=decision.text,
            timings=timings,
        )
        if self._hung_up:  # nobody is left to hear it: keep the turn, say nothing
            record.outcome, record.bot_text = "hung_up", ""
            reply.record = record
            self._add_turn(record, reply)
            self._save()
            return
        await self._speak(reply, decision, record)

    async def _speak(self, reply: Reply, decision: Decision, record: TurnRecord | None) -> None:
        """Synthesise and play a decision's sentences; waits until heard or interrupted."""
        workers = self.services.workers
        source = self._sentence_source(decision)
        try:
            unit = await source.next_unit() or SpeechUnit(
                self.services.dialogue.replies.prompt("apology_error")
            )
            mark = reply.add_unit(unit)
            audio = await workers.synthesize(unit.text)
            await reply.released.wait()
            reply.decision = decision
            if record is not None:
                reply.pending = (record, audio.ms)
            audio_s = 0.0
            while True:  # each unit is synthesised while the one before it plays
                pcm = (
                    audio.value if mark is not None else clause_pause(audio.value, BOT_SAMPLE_RATE)
                )
                audio_s += pcm.size / BOT_SAMPLE_RATE
                await self.playout.play(pcm, reply.id)
                if mark is not None:  # marks per sentence: a first clause has none
                    await self.playout.mark(mark_name(reply.id, mark), reply.id)
                following = await source.next_unit()
                if following is None:
                    break
                unit = following
                mark = reply.add_unit(unit)
                audio = await workers.synthesize(unit.text)
            if source.streamed and isinstance(record, TurnRecord):
                record.bot_text = " ".join(reply.sentences)  # what the engine said
            await self.playout.mark(mark_name(reply.id, END), reply.id)
            # At most the whole reply is still unplayed; then the carrier's last mark is due.
            backlog = max(self.playout.played_until() - self.clock.now(), 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reply.finished.wait(), backlog + audio_s + MARK_GRACE_S)
            if isinstance(reply.record, TurnRecord):
                reply.record.bot_ended_s = round(self.now(), 3)
            self._log("reply_done", reply=reply.id, heard_text=reply.heard_text())
            if decision.end_call:
                why = self._closing or "caller said goodbye"
                if self.record is not None:  # we hang up: not a dropped call
                    self.record.end_reason = self.record.end_reason or why
                self._spawn(self.conn.close(1000, why), "hangup")
        except ModelTimeout as exc:
            log.error("call %s: speech synthesis failed: %r", self._call_id, exc)
            self.metrics.model_errors.labels(stage="tts").inc()
            if reply.turn is not None and not reply.audible and not reply.cleared:
                self._apologise_from_cache(reply, record)  # an answer, never a prompt: no loop
        except ConnectionClosed:
            log.info("call %s: connection closed while speaking", self._call_id)
        except Exception:
            log.exception("call %s: speaking %s failed", self._call_id, reply.id)
            self.metrics.model_errors.labels(stage="speak").inc()
        finally:
            source.close()
            if reply.pending is not None and not reply.cleared:
                self._commit(reply)  # decided but never audible: the turn still happened
            self._finish(reply)
            self._maybe_transfer(reply)  # also after a barge-in: the caller said yes
        self._save()

    def _maybe_transfer(self, reply: Reply) -> None:
        """Once "I'll put you through" has gone out, hand the call to a person."""
        decision = reply.decision
        if (
            decision is None
            or decision.outcome is not Outcome.HANDOFF_ACCEPTED
            or decision.handoff is None
            or not reply.audible
            or self._transferring
            or self.conn.closed
        ):
            return
        self._transferring = True
        with contextlib.suppress(RuntimeError):  # the call is already winding down
            self._spawn(self._hand_over(decision.handoff.reason), "transfer")

    async def _hand_over(self, reason: str) -> None:
        """Transfer the call; if the carrier cannot, tell the caller and keep helping."""
        self._log("transfer", state="started", reason=reason)
        result = await transfer(self.conn, reason)
        state = "transferred" if result.ok else "transfer_failed"
        self.metrics.handoffs.labels(state=state).inc()
        if self.record is not None and self.record.handoff is not None:
            self.record.handoff = {**self.record.handoff, "transfer": state, "error": result.error}
        self._log("transfer", state=state, error=result.error)
        if result.ok:
            log.info("call %s: transferred to a person (%s)", self._call_id, reason)
            if self.record is not None:
                self.record.end_reason = self.record.end_reason or f"transferred: {reason}"
            self._save()
            return
        log.warning("call %s: transfer failed: %s", self._call_id, result.error)
        if self.reply is not None and self.reply.audible:
            self._silence_bot(barge_in=False)
        else:
            self._drop_unheard_reply()
        decision = self.services.dialogue.transfer_failed(self.state)
        self.state = decision.state
        self._start_prompt("transfer_failed", decision)

    def _sentence_source(self, decision: Decision) -> SentenceSource:
        """Templates as decided, or the configured LLM engine's wording of the plan."""
        engines, plan = self.services.reply_engines, decision.plan
        stream = None
        if engines is not None and plan is not None and not plan.verbatim:
            stream = engines.phrase(plan, decision.state.verified)
        return SentenceSource(decision.sentences, self.services.workers, stream)

    def _apologise_from_cache(self, failed: Reply, record: TurnRecord | None = None) -> None:
        """TTS failed before the caller heard anything: say the apology, which is cached
        (pinned at start-up), so it plays without the voice that just failed.

        The caller's turn is still recorded (what they said, what the bot decided, and
        that the voice failed), so QA sees it; the undelivered decision's state is not
        adopted, since the caller never heard it."""
        if self.reply is not failed or self.record is None:
            return
        self._finish(failed)
        decision = self.services.dialogue.apology(self.state)
        self.state = decision.state  # the failure counts
        if record is not None:
            record.outcome = "tts_failed"
            record.timings["tts_failed"] = 1.0
            self._add_turn(record, failed)
            self._save()
        self._start_prompt("apology", decision)

    def _commit(self, reply: Reply) -> None:
        """The reply is going out: adopt its dialogue state and record the turn.

        Called when the first frame is sent, not when the reply is decided: a reply
        dropped before anyone heard it (the caller went on) leaves no trace.
        """
        if reply.pending is None or reply.decision is None:
            return
        (record, tts_ms), decision = reply.pending, reply.decision
        reply.pending = None
        self._log(
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
        record.bot_started_s = round(self.now(), 3)
        record.timings["tts_first_audio_ms"] = round(tts_ms, 1)
        self._add_turn(record, reply)
        for stage in ("asr_ms", "dialogue_ms", "tts_first_audio_ms"):
            if stage in record.timings:
                self.metrics.observe_ms(stage[:-3], record.timings[stage])
        self.metrics.turns.labels(outcome=decision.outcome.value).inc()
        self._note_handoff(decision, record)
        self._note_action(decision)
        self._save()  # on disk now, not only once the answer is over

    def _add_turn(self, record: TurnRecord, reply: Reply) -> None:
        """Place a caller turn on the call clock and append it to the call's record."""
        speech_end = reply.speech_end if reply.speech_end is not None else self.now()
        record.ended_s = round(speech_end, 3)
        record.started_s = round(self._turn_start, 3)
        if self.record is not None:
            record.index = len(self.record.turns) + 1
            self.record.turns.append(record)

    def _note_action(self, decision: Decision) -> None:
        """An account action the caller confirmed (freeze, replacement, dispute)."""
        if decision.action is not None:
            action = decision.action
            self._log(
                "account_action",
                action=action.action,
                target=action.target,
                reference=action.reference,
            )

    def _note_handoff(self, decision: Decision, record: TurnRecord | None = None) -> None:
        if decision.handoff is None or self.record is None:
            return
        state = {None: "offered", True: "accepted", False: "declined"}[decision.handoff.accepted]
        entry = {"state": state, "reason": decision.handoff.reason, "at_s": round(self.now(), 3)}
        self.metrics.handoffs.labels(state=state).inc()
        log.info("call %s: handoff %s (%s)", self.record.call_id, state, decision.handoff.reason)
        if record is not None:
            record.handoff = entry
        if decision.outcome in (Outcome.HANDOFF_ACCEPTED, Outcome.HANDOFF_OFFER):
            self.record.handoff = entry

    def _finish(self, reply: Reply) -> None:
        if self.reply is reply:
            self.reply = None
            self.turns.on_bot_done(self.now())
            if reply.turn is not None:
                self._utterance = None

    def _save(self) -> None:
        """Queue a transcript write (the call never waits for the disk)."""
        if self.record is not None:
            self.journal.save(self.record)
