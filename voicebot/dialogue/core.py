"""The dialogue core: one caller turn in, the bot's decision and reply sentences out.

Pure with respect to the call: `respond(state, text)` returns a `Decision` carrying the
next `DialogueState` (see `state.py`), adopted only when the reply is released.

Order of checks: an account task waiting for the caller (identity, a choice, a yes to
an action), a yes/no question the bot asked, a request for a person, small talk
(hello, thanks, bye, "say that again"), an escalation on a falling sentiment trend,
then the intent. Account intents start a task (verification first); intents about a
lost card or an unrecognised payment get the public answer and an offer to act;
other confident intents are answered from the knowledge graph; unsure ones get a
yes/no confirmation; unknown ones a clarifying question, and after two
misunderstandings in a row the bot offers a person. Every reply comes with a
`ReplyPlan` for whichever engine phrases it.

A person is offered only where the call can be transferred (`DialogueState.can_transfer`).
Where it cannot, every path that would offer or promise one (asked for, pressed 0, an
upset caller, repeated failures) says so instead, tells the caller when the bank's
people can be reached (the contact points in the graph) and keeps helping; the handoff
is still decided, as unavailable, so QA sees that the caller wanted a person.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from voicebot.config import DialogueConfig
from voicebot.dialogue import rules
from voicebot.dialogue.grounded import GroundedReplies
from voicebot.dialogue.knowledge import KnowledgeGraph
from voicebot.dialogue.nlu import GENERAL, IntentModel, Understanding
from voicebot.dialogue.plan import ReplyPlan
from voicebot.dialogue.sentiment import compound, tone_for, trend_falling
from voicebot.dialogue.state import (
    HISTORY_TURNS,
    Decision,
    DialogueState,
    Handoff,
    Outcome,
)
from voicebot.dialogue.tasks import AccountTasks, SlotReader, Step

__all__ = ["DOMAIN_ROOT", "MAX_FAILURES", "Decision", "DialogueCore", "DialogueState", "Outcome"]

log = logging.getLogger(__name__)

DOMAIN_ROOT = Path(__file__).parent / "domain"
MAX_MISUNDERSTANDINGS = 2
#: Failures on our side in one call before the bot offers a person.
MAX_FAILURES = 2
#: The handoff reason of a caller who pressed 0.
DTMF_OPERATOR = "caller pressed 0"
#: How the offer of a person is worded, by why it is made.
_OFFER_PROMPTS = {
    "strong negative sentiment": "handoff_offer_upset",
    "falling sentiment": "handoff_offer_upset",
    "repeated system failure": "handoff_offer_failure",
}
#: How the bot says that no person can be reached from this line, by why one was wanted.
_UNAVAILABLE_PROMPTS = {
    "strong negative sentiment": "handoff_unavailable_upset",
    "falling sentiment": "handoff_unavailable_upset",
    "repeated system failure": "handoff_unavailable_failure",
    DTMF_OPERATOR: "dtmf_unavailable",
}
#: Intents answered from the caller's own account (verification first).
ACCOUNT_INTENTS = {"check_balance": "check_balance", "recent_transactions": "recent_transactions"}
#: Intents whose public answer is followed by an offer to act on the account.
OFFER_INTENTS = {
    "lost_or_stolen_card": "freeze_card",
    "compromised_card": "freeze_card",
    "card_payment_not_recognised": "open_dispute",
    "transaction_charged_twice": "open_dispute",
    "direct_debit_payment_not_recognised": "open_dispute",
    "cash_withdrawal_not_recognised": "open_dispute",
}
_OFFER_KEYS = {"freeze_card": "confirm_freeze_offer", "open_dispute": "offer_dispute"}


class DialogueCore:
    """Sentiment, intent, knowledge-graph answers, account tasks and the escalation policy."""

    def __init__(
        self,
        replies: GroundedReplies,
        graph: KnowledgeGraph,
        nlu: IntentModel,
        config: DialogueConfig,
        tasks: AccountTasks | None = None,
        slots: SlotReader | None = None,
    ) -> None:
        self.replies = replies
        self.graph = graph
        self.nlu = nlu
        self.config = config
        self.tasks = tasks
        self.slots = slots
        self._answers: dict[str, tuple[str, ...]] = {}
        #: When the bank's people can be reached, said where no transfer is possible.
        self._contacts = tuple(replies.contact_points())
        handled = set(ACCOUNT_INTENTS) | set(GENERAL)
        unknown = set(nlu.labels) - set(graph.intents()) - handled
        if unknown:
            raise ValueError(f"intents without an answer in the graph: {sorted(unknown)}")

    # ------------------------------------------------------------- prompts

    def _prompt(self, key: str, **slots: str) -> str:
        return self.replies.prompt(key, **slots)

    def greeting(self, state: DialogueState) -> Decision:
        """What the bot says when the call connects."""
        text = (self._prompt("greeting"),)
        return Decision(text, Outcome.GREETING, self._said(state, text))

    def shutdown(self, state: DialogueState) -> Decision:
        """The service is going down mid-call: say so, and hang up once it is heard."""
        return Decision((self._prompt("shutdown"),), Outcome.CLOSING, state, end_call=True)

    def transfer_failed(self, state: DialogueState) -> Decision:
        """The carrier could not put the caller through: say so, and keep helping."""
        text = (self._prompt("transfer_failed"),)
        return Decision(text, Outcome.TRANSFER_FAILED, self._said(state, text))

    def apology(self, state: DialogueState) -> Decision:
        """Something failed on our side (a model raised or timed out): apologise, keep the
        call; the second time in a call, offer a person instead of asking to try again."""
        failed = replace(state, failures=state.failures + 1)
        if failed.failures >= MAX_FAILURES and not state.transferred:
            return self._offer_handoff(failed, "repeated system failure", 0.0, ())
        return Decision((self.error_sentence(state),), Outcome.APOLOGY, failed)

    def error_sentence(self, state: DialogueState) -> str:
        """The one-sentence apology; it invites pressing zero only where that reaches a person."""
        return self._prompt("apology_error" if state.can_transfer else "apology_error_no_transfer")

    def on_dtmf(self, state: DialogueState, digit: str) -> Decision:
        """A key press: digits of an account number or PIN while verifying; otherwise 0 is
        a request for a person. A decision with no sentences only updates the state."""
        if state.collecting_digits and self.tasks is not None:
            step = self.tasks.on_keys(state, digit)
            if step is not None:
                return self._from_step(step, 0.0, None, 0.0)
        if digit == "0":
            reason = DTMF_OPERATOR
            if not state.can_transfer:  # said as unavailable, never offered
                return self._offer_handoff(state, reason, 0.0, ())
            new = replace(state, pending=None, pending_intent=None, transferred=True)
            return Decision(
                (self._prompt("dtmf_operator"),),
                Outcome.HANDOFF_ACCEPTED,
                new,
                handoff=Handoff(reason, accepted=True),
            )
        key = "dtmf_unknown" if state.can_transfer else "dtmf_unknown_no_transfer"
        return Decision((self._prompt(key),), Outcome.DTMF, state)

    # ---------------------------------------------------------------- turns

    def classify(self, text: str) -> Understanding:
        """Intent, confidence, runners-up (and, for the kNN model, similarity)."""
        return self.nlu.understand(text)

    def answer(self, intent: str) -> tuple[str, ...]:
        """The grounded answer for an intent (SPARQL once per intent, then cached)."""
        cached = self._answers.get(intent)
        if cached is None:
            cached = self._answers[intent] = tuple(self.replies.answer(intent))
        return cached

    def respond(self, state: DialogueState, text: str, *, with_slots: bool = True) -> Decision:
        """Decide the reply to one caller turn (blocking: it runs the intent model).

        `with_slots=False` leaves `Decision.slots` empty where the reply does not depend
        on them (a plain answer): the slot tagger is a third transformer pass (~20 ms
        here), so a live call reads them with `read_slots` after the reply has started
        rather than before. Where a task needs them to choose what to say, they are
        always read.
        """
        sentiment = compound(text)
        state = replace(
            state,
            turns=state.turns + 1,
            sentiments=(*state.sentiments, sentiment),
            history=(*state.history, ("caller", text))[-HISTORY_TURNS:],
        )
        if not rules.normalise(text):
            return self._decide((self._prompt("not_heard"),), Outcome.NOT_HEARD, state, sentiment)
        guess = self.classify(text)
        decision = self._route(state, text, sentiment, guess, with_slots)
        return self._finish(decision, text)

    def _route(
        self,
        state: DialogueState,
        text: str,
        sentiment: float,
        guess: Understanding,
        with_slots: bool = True,
    ) -> Decision:
        yes = rules.is_affirmation(text) or self._general(guess, "affirm")
        no = rules.is_denial(text) or self._general(guess, "deny")
        if state.task is not None and self.tasks is not None:
            found = self.read_slots(text) if state.stage == "choose" else ()
            step = self.tasks.on_turn(state, text, yes, no, found)
            if step is not None:  # the turn answered the task: record the task, not a guess
                decision = self._from_step(step, sentiment, state.task, 1.0)
                return replace(decision, slots=found)
            state = self.tasks.clear(state)  # the caller moved on
        pending = self._answer_pending(state, text, sentiment, yes, no)
        if pending is not None:
            return pending
        state = replace(state, pending=None, pending_intent=None)
        if rules.asks_for_human(text):
            return self._offer_handoff(state, "caller asked for a person", sentiment, ())
        if self._general(guess, "handoff"):  # "this isn't working", "I don't want a robot"
            why = self._upset_reason(state, sentiment) or "caller asked for a person"
            return self._offer_handoff(state, why, sentiment, ())
        small_talk = self._small_talk(state, text, sentiment, guess)
        if small_talk is not None:
            return small_talk
        decision = self._by_intent(state, text, sentiment, guess)
        return replace(decision, slots=self.read_slots(text)) if with_slots else decision

    def read_slots(self, text: str) -> tuple[tuple[str, str], ...]:
        """Slot values in the turn, normalised ("amount_of_money", "61.30 GBP")."""
        if self.slots is None:
            return ()
        return self.slots(text)

    def _upset_reason(self, state: DialogueState, sentiment: float) -> str | None:
        """Why the caller's mood alone calls for a person, or None."""
        if sentiment <= self.config.upset_sentiment:
            return "strong negative sentiment"
        if trend_falling(state.sentiments, self.config.sentiment_drop):
            return "falling sentiment"
        return None

    def _general(self, guess: Understanding, act: str, bar: float = 0.0) -> bool:
        """The classifier heard dialogue act `act`, confidently and on-topic: a turn far
        from every training example ("play some music") is not taken as "bye"."""
        return (
            guess.intent == act
            and guess.confidence >= max(bar, self.config.min_intent_confidence)
            and guess.similarity >= self.config.min_similarity
        )

    def _small_talk(
        self, state: DialogueState, text: str, sentiment: float, guess: Understanding
    ) -> Decision | None:
        if rules.is_greeting(text) or (self._general(guess, "greet") and len(text.split()) <= 5):
            return self._decide((self._prompt("greet_reply"),), Outcome.GREETING, state, sentiment)
        if rules.asks_to_repeat(text) or self._general(guess, "repeat"):
            again = state.last_reply or (self._prompt("repeat_nothing"),)
            return self._decide(again, Outcome.REPEAT, state, sentiment)
        closing = rules.is_closing(text) or (
            (self._general(guess, "thank") or self._general(guess, "end_call"))
            and len(text.split()) <= 8
        )
        if closing:
            # Hanging up on a misheard turn loses the call: the model alone needs 0.9.
            goodbye = rules.is_goodbye(text) or self._general(guess, "end_call", 0.9)
            key = "goodbye" if goodbye else "thanks_reply"
            decision = self._decide((self._prompt(key),), Outcome.CLOSING, state, sentiment)
            return replace(decision, end_call=goodbye)
        return None

    def _by_intent(
        self, state: DialogueState, text: str, sentiment: float, guess: Understanding
    ) -> Decision:
        intent, confidence, alternatives = guess.intent, guess.confidence, guess.alternatives
        if guess.similarity < self.config.min_similarity or intent in GENERAL:
            confidence = 0.0  # not about banking at all: ask, do not guess
        upset = sentiment <= self.config.upset_sentiment
        falling = trend_falling(state.sentiments, self.config.sentiment_drop)
        if confidence >= self.config.min_intent_confidence:
            state = replace(state, misunderstandings=0)
            if intent in ACCOUNT_INTENTS and self.tasks is not None:
                step = self.tasks.start(state, ACCOUNT_INTENTS[intent], text)
                return self._from_step(step, sentiment, intent, confidence)
            answer = self.answer(intent) if intent not in ACCOUNT_INTENTS else ()
            if upset or falling:
                why = "strong negative sentiment" if upset else "falling sentiment"
                return self._offer_handoff(state, why, sentiment, answer, intent, confidence)
            task = OFFER_INTENTS.get(intent)
            if task is not None and self.tasks is not None:
                offer = self._prompt(_OFFER_KEYS[task])
                offered = replace(state, pending="offer", pending_intent=task)
                return self._decide(
                    (*answer, offer),
                    Outcome.OFFER,
                    offered,
                    sentiment,
                    intent,
                    confidence,
                    alternatives,
                    facts=answer,
                )
            return self._decide(
                answer,
                Outcome.ANSWER,
                state,
                sentiment,
                intent,
                confidence,
                alternatives,
                facts=answer,
            )
        misunderstood = replace(state, misunderstandings=state.misunderstandings + 1)
        if upset or falling or misunderstood.misunderstandings >= MAX_MISUNDERSTANDINGS:
            reason = (
                "strong negative sentiment"
                if upset
                else "falling sentiment"
                if falling
                else "repeated misunderstanding"
            )
            return self._offer_handoff(misunderstood, reason, sentiment, (), intent, confidence)
        if confidence >= self.config.min_intent_confidence / 2 and intent not in GENERAL:
            label = self._label(intent)
            asked = replace(misunderstood, pending="confirm_intent", pending_intent=intent)
            return self._decide(
                (self._prompt("clarify_intent", intent_label=label),),
                Outcome.CONFIRM_INTENT,
                asked,
                sentiment,
                intent,
                confidence,
                alternatives,
            )
        return self._decide(
            (self._prompt("clarify"),),
            Outcome.CLARIFY,
            misunderstood,
            sentiment,
            intent,
            confidence,
            alternatives,
        )

    def _label(self, intent: str) -> str:
        labels = {"check_balance": "your balance", "recent_transactions": "recent transactions"}
        return labels.get(intent) or self.graph.intent_label(intent)

    def _answer_pending(
        self, state: DialogueState, text: str, sentiment: float, yes: bool, no: bool
    ) -> Decision | None:
        """Handle a yes/no to the question the bot asked last turn, if any."""
        if state.pending is None or not (yes or no):
            return None
        cleared = replace(state, pending=None, pending_intent=None)
        if state.pending == "handoff":
            if yes:
                done = replace(cleared, transferred=True)
                decision = self._decide(
                    (self._prompt("handoff_accepted"),), Outcome.HANDOFF_ACCEPTED, done, sentiment
                )
                return replace(decision, handoff=Handoff(state.handoff_reason, accepted=True))
            decision = self._decide(
                (self._prompt("handoff_declined"),), Outcome.HANDOFF_DECLINED, cleared, sentiment
            )
            return replace(decision, handoff=Handoff(state.handoff_reason, accepted=False))
        intent = state.pending_intent
        if state.pending == "offer" and intent is not None and self.tasks is not None:
            if yes:
                step = self.tasks.start(cleared, intent, text)
                return self._from_step(step, sentiment, intent, 1.0)
            return self._decide(
                (self._prompt("action_cancelled"), self._prompt("anything_more")),
                Outcome.ACTION_CANCELLED,
                cleared,
                sentiment,
            )
        if state.pending == "confirm_intent" and intent is not None:
            if yes:
                resolved = replace(cleared, misunderstandings=0)
                if intent in ACCOUNT_INTENTS and self.tasks is not None:
                    step = self.tasks.start(resolved, ACCOUNT_INTENTS[intent], text)
                    return self._from_step(step, sentiment, intent, 1.0)
                answer = self.answer(intent)
                return self._decide(
                    answer, Outcome.ANSWER, resolved, sentiment, intent, 1.0, facts=answer
                )
            return self._decide((self._prompt("clarify"),), Outcome.CLARIFY, cleared, sentiment)
        return None

    # ------------------------------------------------------------ building

    def _from_step(
        self,
        step: Step,
        sentiment: float,
        intent: str | None,
        confidence: float,
    ) -> Decision:
        if step.escalate is not None:
            return self._offer_handoff(
                step.state, step.escalate, sentiment, step.sentences, intent, confidence
            )
        decision = self._decide(
            step.sentences,
            step.outcome,
            step.state,
            sentiment,
            intent,
            confidence,
            facts=step.facts,
        )
        return replace(decision, action=step.action)

    def _decide(
        self,
        sentences: Sequence[str],
        outcome: Outcome,
        state: DialogueState,
        sentiment: float,
        intent: str | None = None,
        confidence: float = 0.0,
        alternatives: tuple[tuple[str, float], ...] = (),
        *,
        facts: Sequence[str] = (),
    ) -> Decision:
        sentences = tuple(sentences)
        tone = tone_for(state.sentiments)
        if tone.apologize and outcome in (Outcome.ANSWER, Outcome.OFFER):
            sentences = (self._prompt("sorry"), *sentences)  # tone guidance, for templates
        plan = ReplyPlan(
            act=outcome.value,
            template_sentences=sentences,
            intent=intent,
            facts=tuple(facts),
            tone=tone,
            history=state.history,
            verified=state.verified is not None,
            verbatim=outcome not in (Outcome.ANSWER, Outcome.CLARIFY, Outcome.OFFER),
        )
        return Decision(
            sentences,
            outcome,
            self._said(state, sentences),
            intent,
            confidence,
            sentiment,
            alternatives,
            plan=plan,
        )

    def _said(self, state: DialogueState, sentences: Sequence[str]) -> DialogueState:
        if not sentences:
            return state
        text = " ".join(sentences)
        history = (*state.history, ("bot", text))[-HISTORY_TURNS:]
        return replace(state, history=history, last_reply=tuple(sentences))

    def _finish(self, decision: Decision, text: str) -> Decision:
        plan = decision.plan
        if plan is not None:
            decision = replace(decision, plan=replace(plan, caller_text=text))
        return decision

    def _offer_handoff(
        self,
        state: DialogueState,
        reason: str,
        sentiment: float,
        before: Sequence[str],
        intent: str | None = None,
        confidence: float = 0.0,
    ) -> Decision:
        """Offer a person, or, where this line cannot transfer, say so rather than promise
        one: when the bank's people can be reached, and that the bot keeps helping. Then
        no question is left pending, and the handoff is recorded as unavailable, with why
        a person was wanted."""
        if state.can_transfer:
            key = _OFFER_PROMPTS.get(reason, "handoff_offer")
            sentences: tuple[str, ...] = (*before, self._prompt(key))
            outcome, handoff = Outcome.HANDOFF_OFFER, Handoff(reason)
            state = replace(state, pending="handoff", handoff_reason=reason)
        else:
            key = _UNAVAILABLE_PROMPTS.get(reason, "handoff_unavailable")
            help_ = self._prompt("handoff_unavailable_help")
            sentences = (*before, self._prompt(key), *self._contacts, help_)
            outcome, handoff = Outcome.HANDOFF_UNAVAILABLE, Handoff(reason, available=False)
            state = replace(state, pending=None, pending_intent=None)
        decision = self._decide(sentences, outcome, state, sentiment, intent, confidence)
        return replace(decision, handoff=handoff)
