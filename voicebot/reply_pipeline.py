"""The reply side of one call: prompts and answers, from decision to speech.

The Call routes carrier events and turn-taking actions; this pipeline turns them into
speech. A reply starts as a prompt (greeting, key press, goodbye) or as the answer to a
caller turn (ASR -> dialogue; a speculative answer is prepared during the caller's
pause and waits to be released), and is spoken sentence by sentence (TTS -> playout, a
mark after each sentence), each unit synthesised while the one before it plays. The
`ReplyLedger` keeps the books: which reply is current, what was heard, what is
committed. An accepted handoff hands the call to a person once "I'll put you through"
has gone out. Model failures cost the caller an apology, never the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial

from telephony.connection import CallConnection, ConnectionClosed
from telephony.events import BOT_SAMPLE_RATE, PCM16
from voicebot.dialogue.core import Decision, Outcome
from voicebot.handoff import transfer
from voicebot.phrasing import SentenceSource
from voicebot.playout import Playout
from voicebot.reply import END, Reply, SpeechUnit, clause_pause, mark_name
from voicebot.reply_ledger import ReplyLedger, ReplyOwner
from voicebot.services import CallServices
from voicebot.transcript import PromptRecord, TurnRecord
from voicebot.workers import ModelTimeout

log = logging.getLogger(__name__)

#: How long after the expected end of playout we wait for the carrier's last mark.
MARK_GRACE_S = 3.0


class ReplyPipeline:
    """Starts and speaks the replies of one call; `ledger` keeps their books."""

    def __init__(
        self,
        owner: ReplyOwner,
        ledger: ReplyLedger,
        conn: CallConnection,
        services: CallServices,
        playout: Playout,
    ) -> None:
        self.call = owner
        self.ledger = ledger
        self.conn = conn
        self.services = services
        self.metrics = services.metrics
        self.playout = playout
        self._transferring = False  # a handoff to a person has been started

    # ------------------------------------------------------------- starting

    def start_prompt(self, kind: str, decision: Decision) -> None:
        """Say something that is not an answer to a caller turn (greeting, key press)."""
        record = self.call.record
        if record is None:
            return
        reply = self.ledger.new_reply(None, speculative=False)
        reply.record = PromptRecord(kind, round(self.call.now(), 3), decision.text)
        record.prompts.append(reply.record)
        reply.released.set()
        reply.task = self.call.spawn(self._speak(reply, decision, None), f"prompt-{reply.id}")

    def start_answer(
        self, turn: int, audio: PCM16, *, speculative: bool, speech_end: float | None
    ) -> None:
        """Answer a caller turn; a speculative answer waits for `release` before speaking."""
        self.ledger.drop_unheard()
        reply = self.ledger.new_reply(turn, speculative)
        reply.speech_end = speech_end
        if not speculative:
            reply.released.set()
        reply.task = self.call.spawn(self._answer(reply, audio), f"answer-{reply.id}")

    def release(self, turn: int, speech_end: float) -> bool:
        """The caller's turn ended: let its speculative answer speak. False if there is none."""
        reply = self.ledger.current
        if reply is None or not reply.speculative or reply.turn != turn:
            return False
        reply.speech_end = speech_end
        reply.released.set()
        return True

    def on_key(self, digit: str) -> None:
        """A key press interrupts the bot; the dialogue may answer it (or only note it)."""
        ledger = self.ledger
        if ledger.current is not None and ledger.current.audible:
            ledger.barge_in()
        else:
            ledger.drop_unheard()
        decision = self.services.dialogue.on_dtmf(ledger.state, digit)
        ledger.state = decision.state
        ledger.note_handoff(decision)
        ledger.note_action(decision)
        if decision.sentences:  # a digit of a number being keyed in says nothing yet
            self.start_prompt("dtmf", decision)

    # ------------------------------------------------------------ answering

    async def _answer(self, reply: Reply, audio: PCM16) -> None:
        workers, dialogue = self.services.workers, self.services.dialogue
        timings: dict[str, float] = {}
        try:
            heard = await workers.transcribe(audio)
            timings["asr_ms"] = round(heard.ms, 1)
            transcript = heard.value
            self.call.log(
                "transcript",
                turn=reply.turn,
                text=transcript.text,
                asr_ms=timings["asr_ms"],
                no_speech_prob=round(transcript.no_speech_prob, 3),
                speculative=reply.speculative,
            )
            noise = transcript.no_speech_prob > self.services.config.asr.max_no_speech_prob
            self._heard_pause(reply, "" if noise else transcript.text)
            if not transcript.text.strip() or noise:
                if not self.call.hung_up:
                    await reply.released.wait()
                log.info(
                    "call %s: turn %s had no words; not answering", self.ledger.call_id, reply.turn
                )
                self.ledger.finish(reply)
                return
            state, text = self.ledger.state, transcript.text
            decided = await workers.run_nlu(lambda: dialogue.respond(state, text, with_slots=False))
            timings["dialogue_ms"] = round(decided.ms, 1)
            decision = decided.value
        except Exception as exc:  # a timeout or a broken model: the caller hears an apology
            log.error("call %s: answering turn %s failed: %r", self.ledger.call_id, reply.turn, exc)
            self.metrics.model_errors.labels(stage="asr_or_dialogue").inc()
            if not self.call.hung_up:
                await reply.released.wait()
            decision = dialogue.apology(self.ledger.state)
            transcript = None
        caller_text = transcript.text if transcript is not None else ""
        call_record = self.call.record
        record = TurnRecord(
            index=len(call_record.turns) + 1 if call_record else 1,
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
        if transcript is not None:  # also where a task read them: these come from redacted words
            self._read_slots_later(record, transcript.text)
        if self.call.hung_up:  # nobody is left to hear it: keep the turn, say nothing
            record.outcome, record.bot_text = "hung_up", ""
            reply.record = record
            self.ledger.add_turn(record, reply)
            self.call.save()
            return
        await self._speak(reply, decision, record)

    def _read_slots_later(self, record: TurnRecord, text: str) -> None:
        """Fill the turn's slots off the answer's path (the tagger runs beside the playout).

        They only inform QA and the transcript, so a failure is logged, never spoken. They
        are read from the words as the transcript keeps them (redacted): the redactor
        knows "my card number is 4111 ..." from its context, but a slot value cut out of
        it ("4111") no longer has that context and would pass through.
        """
        services = self.services
        if services.redactor is not None:
            text = services.redactor.redact(text)

        async def read() -> None:
            try:
                found = await services.workers.run_nlu(partial(services.dialogue.read_slots, text))
            except Exception as exc:
                log.warning("call %s: reading slots failed: %r", self.ledger.call_id, exc)
                return
            if found.value:
                record.slots = dict(found.value)
                self.call.save()

        with contextlib.suppress(RuntimeError):  # the call is over: the turn keeps no slots
            self.call.spawn(read(), "slots")

    def _heard_pause(self, reply: Reply, text: str) -> None:
        """A speculative transcript sets how long the caller's pause must last."""
        if reply.speculative and reply.turn is not None and self.ledger.current is reply:
            self.call.heard_pause(reply.turn, text)

    # ------------------------------------------------------------- speaking

    async def _speak(self, reply: Reply, decision: Decision, record: TurnRecord | None) -> None:
        """Synthesise and play a decision's sentences; waits until heard or interrupted."""
        workers = self.services.workers
        source = self._sentence_source(decision)
        try:
            unit = await source.next_unit() or SpeechUnit(
                self.services.dialogue.error_sentence(self.ledger.state)
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
            backlog = max(self.playout.played_until() - self.services.clock.now(), 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reply.finished.wait(), backlog + audio_s + MARK_GRACE_S)
            if isinstance(reply.record, TurnRecord):
                reply.record.bot_ended_s = round(self.call.now(), 3)
            self.call.log("reply_done", reply=reply.id, heard_text=reply.heard_text())
            if decision.end_call:
                self._hang_up()
        except ModelTimeout as exc:
            log.error("call %s: speech synthesis failed: %r", self.ledger.call_id, exc)
            self.metrics.model_errors.labels(stage="tts").inc()
            if reply.turn is not None and not reply.audible and not reply.cleared:
                self._apologise_from_cache(reply, record)  # an answer, never a prompt: no loop
        except ConnectionClosed:
            log.info("call %s: connection closed while speaking", self.ledger.call_id)
        except Exception:
            log.exception("call %s: speaking %s failed", self.ledger.call_id, reply.id)
            self.metrics.model_errors.labels(stage="speak").inc()
        finally:
            source.close()
            if reply.pending is not None and not reply.cleared:
                self.ledger.commit(reply)  # decided but never audible: the turn still happened
            self.ledger.finish(reply)
            self._maybe_transfer(reply)  # also after a barge-in: the caller said yes
        self.call.save()

    def _hang_up(self) -> None:
        """The goodbye has been heard: we end the call, so it is not a dropped call."""
        why = self.call.closing or "caller said goodbye"
        record = self.call.record
        if record is not None:
            record.end_reason = record.end_reason or why
        self.call.spawn(self.conn.close(1000, why), "hangup")

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
        if self.ledger.current is not failed or self.call.record is None:
            return
        self.ledger.finish(failed)
        decision = self.services.dialogue.apology(self.ledger.state)
        self.ledger.state = decision.state  # the failure counts
        if record is not None:
            record.outcome = "tts_failed"
            record.timings["tts_failed"] = 1.0
            self.ledger.add_turn(record, failed)
            self.call.save()
        self.start_prompt("apology", decision)

    # ------------------------------------------------------------ transfer

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
            self.call.spawn(self._hand_over(decision.handoff.reason), "transfer")

    async def _hand_over(self, reason: str) -> None:
        """Transfer the call; if the carrier cannot, tell the caller and keep helping."""
        self.call.log("transfer", state="started", reason=reason)
        result = await transfer(self.conn, reason)
        state = "transferred" if result.ok else "transfer_failed"
        self.metrics.handoffs.labels(state=state).inc()
        record = self.call.record
        if record is not None and record.handoff is not None:
            record.handoff = {**record.handoff, "transfer": state, "error": result.error}
        self.call.log("transfer", state=state, error=result.error)
        if result.ok:
            log.info("call %s: transferred to a person (%s)", self.ledger.call_id, reason)
            if record is not None:
                record.end_reason = record.end_reason or f"transferred: {reason}"
            self.call.save()
            return
        log.warning("call %s: transfer failed: %s", self.ledger.call_id, result.error)
        ledger = self.ledger
        if ledger.current is not None and ledger.current.audible:
            ledger.silence(barge_in=False)
        else:
            ledger.drop_unheard()
        decision = self.services.dialogue.transfer_failed(ledger.state)
        ledger.state = decision.state
        self.start_prompt("transfer_failed", decision)
