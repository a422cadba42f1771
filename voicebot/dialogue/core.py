"""The dialogue core: one caller turn in, the bot's decision and reply sentences out.

Pure with respect to the call: `respond(state, text)` returns a `Decision` that carries
the next `DialogueState` instead of mutating anything. The Call adopts that state only
when the reply is actually released, which is what makes speculative answering safe:
a reply computed during the caller's pause and then thrown away (because the caller
went on) leaves no trace in the conversation.

Order of checks: a pending question the bot asked (transfer offer, "is it about X?"),
a request for a person, closing remarks, then the intent classifier. Confident intents
are answered from the knowledge graph; unsure ones get a yes/no confirmation; unknown
ones a clarifying question, and after two misunderstandings in a row, or when the
caller is upset, the bot offers a human.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

import numpy as np
import numpy.typing as npt

from voicebot.config import DialogueConfig
from voicebot.dialogue import rules
from voicebot.dialogue.grounded import GroundedReplies
from voicebot.dialogue.intents import INDEX_FILE, Embed, IntentGuess, IntentIndex
from voicebot.dialogue.knowledge import KnowledgeGraph
from voicebot.dialogue.sentiment import compound

log = logging.getLogger(__name__)

DOMAIN_ROOT = Path(__file__).parent / "domain"
MAX_MISUNDERSTANDINGS = 2
#: Failures on our side in one call before the bot offers a person.
MAX_FAILURES = 2
#: How the offer of a person is worded, by why it is made.
_OFFER_PROMPTS = {
    "strong negative sentiment": "handoff_offer_upset",
    "repeated system failure": "handoff_offer_failure",
}


class Outcome(StrEnum):
    """What kind of reply the bot chose."""

    GREETING = "greeting"
    ANSWER = "answer"
    CONFIRM_INTENT = "confirm_intent"
    CLARIFY = "clarify"
    NOT_HEARD = "not_heard"
    HANDOFF_OFFER = "handoff_offer"
    HANDOFF_ACCEPTED = "handoff_accepted"
    HANDOFF_DECLINED = "handoff_declined"
    CLOSING = "closing"
    DTMF = "dtmf"
    APOLOGY = "apology"


@dataclass(frozen=True, slots=True)
class Handoff:
    """A decision about handing the caller to a person (the transfer itself is telephony's)."""

    reason: str
    accepted: bool | None = None  # None: offered, waiting for the caller's answer


@dataclass(frozen=True, slots=True)
class DialogueState:
    """Everything the dialogue remembers between turns of one call."""

    turns: int = 0
    sentiments: tuple[float, ...] = ()
    pending: str | None = None  # "handoff" | "confirm_intent"
    pending_intent: str | None = None
    handoff_reason: str = ""
    misunderstandings: int = 0
    transferred: bool = False
    #: Turns our side failed (a model raised or timed out); two make the bot offer a person.
    failures: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """The bot's reply to one turn, and the state to adopt if the reply is used."""

    sentences: tuple[str, ...]
    outcome: Outcome
    state: DialogueState
    intent: str | None = None
    confidence: float = 0.0
    sentiment: float = 0.0
    alternatives: tuple[tuple[str, float], ...] = field(default=())
    handoff: Handoff | None = None
    end_call: bool = False

    @property
    def text(self) -> str:
        """The whole reply as one string."""
        return " ".join(self.sentences)


class DialogueCore:
    """Sentiment, intent, knowledge-graph answers and the escalation policy."""

    def __init__(
        self,
        replies: GroundedReplies,
        graph: KnowledgeGraph,
        index: IntentIndex,
        embed: Embed,
        config: DialogueConfig,
    ) -> None:
        self.replies = replies
        self.graph = graph
        self.index = index
        self.embed = embed
        self.config = config
        self._answers: dict[str, tuple[str, ...]] = {}
        unknown = set(index.names) - set(graph.intents())
        if unknown:
            raise ValueError(f"intents without an answer in the graph: {sorted(unknown)}")

    @classmethod
    def load(cls, config: DialogueConfig, embed: Embed) -> DialogueCore:
        """Load the domain pack named in the config (a name under domain/ or a path)."""
        pack = Path(config.domain)
        if not pack.is_dir():
            pack = DOMAIN_ROOT / config.domain
        if not pack.is_dir():
            raise FileNotFoundError(f"domain pack {config.domain!r} not found")
        replies = GroundedReplies.from_pack(pack)
        graph = replies.graph
        index = IntentIndex.load(pack / INDEX_FILE, neighbours=config.neighbours)
        return cls(replies, graph, index, embed, config)

    # ------------------------------------------------------------- prompts

    def _prompt(self, key: str, **slots: str) -> str:
        return self.replies.prompt(key, **slots)

    def greeting(self, state: DialogueState) -> Decision:
        """What the bot says when the call connects."""
        return Decision((self._prompt("greeting"),), Outcome.GREETING, state)

    def shutdown(self, state: DialogueState) -> Decision:
        """The service is going down mid-call: say so, and hang up once it is heard."""
        return Decision((self._prompt("shutdown"),), Outcome.CLOSING, state, end_call=True)

    def apology(self, state: DialogueState) -> Decision:
        """Something failed on our side (a model raised or timed out): apologise, keep the
        call; the second time in a call, offer a person instead of asking to try again."""
        failed = replace(state, failures=state.failures + 1)
        if failed.failures >= MAX_FAILURES and not state.transferred:
            return self._offer_handoff(failed, "repeated system failure", 0.0, ())
        return Decision((self._prompt("apology_error"),), Outcome.APOLOGY, failed)

    def on_dtmf(self, state: DialogueState, digit: str) -> Decision:
        """A key press: 0 is an explicit request for a person; other keys are not used yet."""
        if digit == "0":
            reason = "caller pressed 0"
            new = replace(state, pending=None, pending_intent=None, transferred=True)
            return Decision(
                (self._prompt("dtmf_operator"),),
                Outcome.HANDOFF_ACCEPTED,
                new,
                handoff=Handoff(reason, accepted=True),
            )
        return Decision((self._prompt("dtmf_unknown"),), Outcome.DTMF, state)

    # ---------------------------------------------------------------- turns

    def classify(self, text: str) -> IntentGuess:
        """Intent, confidence, similarity and runners-up for one utterance."""
        vector: npt.NDArray[np.float32] = self.embed([text])[0]
        return self.index.classify(vector)

    def answer(self, intent: str) -> tuple[str, ...]:
        """The grounded answer for an intent (SPARQL once per intent, then cached)."""
        cached = self._answers.get(intent)
        if cached is None:
            cached = self._answers[intent] = tuple(self.replies.answer(intent))
        return cached

    def respond(self, state: DialogueState, text: str) -> Decision:
        """Decide the reply to one caller turn (blocking: it embeds the text)."""
        sentiment = compound(text)
        state = replace(state, turns=state.turns + 1, sentiments=(*state.sentiments, sentiment))
        if not rules.normalise(text):
            return Decision(
                (self._prompt("not_heard"),), Outcome.NOT_HEARD, state, sentiment=sentiment
            )
        pending = self._answer_pending(state, text, sentiment)
        if pending is not None:
            return pending
        state = replace(state, pending=None, pending_intent=None)
        if rules.asks_for_human(text):
            return self._offer_handoff(state, "caller asked for a person", sentiment, ())
        if rules.is_greeting(text):
            return Decision(
                (self._prompt("greet_reply"),), Outcome.GREETING, state, sentiment=sentiment
            )
        if rules.is_closing(text):
            goodbye = rules.is_goodbye(text)
            key = "goodbye" if goodbye else "thanks_reply"
            return Decision(
                (self._prompt(key),), Outcome.CLOSING, state, sentiment=sentiment, end_call=goodbye
            )
        guess = self.classify(text)
        intent, confidence, alternatives = guess.intent, guess.confidence, guess.alternatives
        if guess.similarity < self.config.min_similarity:
            confidence = 0.0  # not about banking at all: ask, do not guess
        upset = sentiment <= self.config.upset_sentiment
        if confidence >= self.config.min_intent_confidence:
            answer = self.answer(intent)
            state = replace(state, misunderstandings=0)
            if upset:
                return self._offer_handoff(
                    state, "strong negative sentiment", sentiment, answer, intent, confidence
                )
            return Decision(
                answer, Outcome.ANSWER, state, intent, confidence, sentiment, alternatives
            )
        misunderstood = replace(state, misunderstandings=state.misunderstandings + 1)
        if upset or misunderstood.misunderstandings >= MAX_MISUNDERSTANDINGS:
            reason = "strong negative sentiment" if upset else "repeated misunderstanding"
            return self._offer_handoff(misunderstood, reason, sentiment, (), intent, confidence)
        if confidence >= self.config.min_intent_confidence / 2:
            label = self.graph.intent_label(intent)
            asked = replace(misunderstood, pending="confirm_intent", pending_intent=intent)
            return Decision(
                (self._prompt("clarify_intent", intent_label=label),),
                Outcome.CONFIRM_INTENT,
                asked,
                intent,
                confidence,
                sentiment,
                alternatives,
            )
        return Decision(
            (self._prompt("clarify"),),
            Outcome.CLARIFY,
            misunderstood,
            intent,
            confidence,
            sentiment,
            alternatives,
        )

    def _answer_pending(self, state: DialogueState, text: str, sentiment: float) -> Decision | None:
        """Handle a yes/no to the question the bot asked last turn, if any."""
        if state.pending is None:
            return None
        yes, no = rules.is_affirmation(text), rules.is_denial(text)
        if not (yes or no):
            return None
        cleared = replace(state, pending=None, pending_intent=None)
        if state.pending == "handoff":
            if yes:
                handoff = Handoff(state.handoff_reason, accepted=True)
                done = replace(cleared, transferred=True)
                return Decision(
                    (self._prompt("handoff_accepted"),),
                    Outcome.HANDOFF_ACCEPTED,
                    done,
                    sentiment=sentiment,
                    handoff=handoff,
                )
            return Decision(
                (self._prompt("handoff_declined"),),
                Outcome.HANDOFF_DECLINED,
                cleared,
                sentiment=sentiment,
                handoff=Handoff(state.handoff_reason, accepted=False),
            )
        if state.pending == "confirm_intent" and state.pending_intent is not None:
            if yes:
                intent = state.pending_intent
                answer = self.answer(intent)
                resolved = replace(cleared, misunderstandings=0)
                return Decision(answer, Outcome.ANSWER, resolved, intent, 1.0, sentiment)
            return Decision(
                (self._prompt("clarify"),), Outcome.CLARIFY, cleared, sentiment=sentiment
            )
        return None

    def _offer_handoff(
        self,
        state: DialogueState,
        reason: str,
        sentiment: float,
        before: Sequence[str],
        intent: str | None = None,
        confidence: float = 0.0,
    ) -> Decision:
        key = _OFFER_PROMPTS.get(reason, "handoff_offer")
        offered = replace(state, pending="handoff", handoff_reason=reason)
        return Decision(
            (*before, self._prompt(key)),
            Outcome.HANDOFF_OFFER,
            offered,
            intent,
            confidence,
            sentiment,
            handoff=Handoff(reason),
        )
