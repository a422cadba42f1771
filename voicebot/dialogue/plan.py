"""What the policy decided to say, before any engine phrases it.

The dialogue core decides *what* happens in a turn (answer from the graph, ask for
identity, confirm an action, offer a person) and hands a `ReplyPlan` to a reply engine,
which decides *how* it is said. The grounded template engine speaks
`template_sentences` as they are; an LLM engine may rephrase them, but only with the
facts listed here (or returned by its tool calls), so a fact the graph did not return
can never be spoken. The template sentences are always the fallback.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Tone:
    """Guidance from the caller's sentiment for whichever engine phrases the reply."""

    apologize: bool = False
    brief: bool = False

    def describe(self) -> str:
        """One line for a prompt ("" when the caller is calm)."""
        parts = []
        if self.apologize:
            parts.append("the caller is upset: acknowledge it and apologise once")
        if self.brief:
            parts.append("keep it brief: one or two short sentences")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class ReplyPlan:
    """One turn's reply, decided by the policy and grounded in the graph.

    ``act`` names the policy's decision (``answer``, ``ask_identity``,
    ``refuse_unverified``, ``confirm_action``, ``action_done``, ``handoff_offer``,
    ``clarify``...). ``facts`` are sentences a reply may state; ``allowed_values``
    every number, amount or date those facts contain, in the forms the guardrail
    accepts. ``history`` is the conversation so far as (role, text) pairs, role
    ``caller`` or ``bot``.
    """

    act: str
    template_sentences: tuple[str, ...]
    caller_text: str = ""
    intent: str | None = None
    facts: tuple[str, ...] = ()
    allowed_values: frozenset[str] = frozenset()
    tone: Tone = field(default_factory=Tone)
    history: tuple[tuple[str, str], ...] = ()
    verified: bool = False
    #: The reply must be exactly the template (legal wording, confirmations of actions).
    verbatim: bool = False
