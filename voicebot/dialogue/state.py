"""What the dialogue remembers between turns, and what one turn decides.

Both are frozen: `DialogueCore.respond` returns a `Decision` carrying the next
`DialogueState` instead of mutating anything, and the Call adopts that state only when
the reply is actually released. A reply computed during the caller's pause and then
thrown away (because the caller went on) leaves no trace, not even a half-done
verification.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from voicebot.dialogue.accounts import ActionResult, Verified
from voicebot.dialogue.plan import ReplyPlan

#: Turns of conversation kept for an LLM's context (caller and bot lines together).
HISTORY_TURNS = 12


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
    #: The caller wanted (or needed) a person, but none can be reached from this line.
    HANDOFF_UNAVAILABLE = "handoff_unavailable"
    TRANSFER_FAILED = "transfer_failed"
    CLOSING = "closing"
    DTMF = "dtmf"
    APOLOGY = "apology"
    REPEAT = "repeat"
    VERIFY = "verify"
    VERIFIED = "verified"
    ACCOUNT = "account"
    CONFIRM_ACTION = "confirm_action"
    ACTION_DONE = "action_done"
    ACTION_CANCELLED = "action_cancelled"
    OFFER = "offer"
    FILL_SLOT = "fill_slot"


@dataclass(frozen=True, slots=True)
class Handoff:
    """A decision about handing the caller to a person (the transfer itself is telephony's)."""

    reason: str
    accepted: bool | None = None  # None: offered, waiting for the caller's answer
    #: False: this line cannot transfer, so nothing was offered; the caller was told so.
    available: bool = True

    @property
    def state(self) -> str:
        """As the transcript and metrics name it: offered, accepted, declined or unavailable."""
        if not self.available:
            return "unavailable"
        return {None: "offered", True: "accepted", False: "declined"}[self.accepted]


@dataclass(frozen=True, slots=True)
class DialogueState:
    """Everything the dialogue remembers between turns of one call."""

    turns: int = 0
    sentiments: tuple[float, ...] = ()
    #: A yes/no question the bot asked: "handoff", "confirm_intent" or "offer" (a task).
    pending: str | None = None
    pending_intent: str | None = None
    handoff_reason: str = ""
    misunderstandings: int = 0
    transferred: bool = False
    #: Whether this call can be handed to a person at all (the carrier connection has a
    #: transfer target); the Call sets it when the call starts. Without one the bot
    #: never offers or promises a transfer it cannot make.
    can_transfer: bool = True
    #: Turns our side failed (a model raised or timed out); two make the bot offer a person.
    failures: int = 0
    #: The credential from identity verification in this call (None: not verified).
    verified: Verified | None = None
    #: An account task in progress: "check_balance", "freeze_card", "open_dispute"...
    task: str | None = None
    #: Where the task stands: "account", "secret", "choose", "confirm".
    stage: str | None = None
    account_number: str | None = None
    verify_failures: int = 0
    #: The task's object: a card ending or a transaction node.
    target: str | None = None
    #: Key presses collected while the caller keys in a number or PIN.
    digits: str = ""
    history: tuple[tuple[str, str], ...] = ()
    last_reply: tuple[str, ...] = ()

    @property
    def collecting_digits(self) -> bool:
        """The caller may be keying in an account number or PIN: keys are data, not menu."""
        return self.stage in ("account", "secret")


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
    #: What an engine needs to phrase this reply (None: speak `sentences` as they are).
    plan: ReplyPlan | None = None
    action: ActionResult | None = None
    #: Slots found in the turn, (name, value) as normalised text.
    slots: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> str:
        """The whole reply as one string."""
        return " ".join(self.sentences)
