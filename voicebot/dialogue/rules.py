"""Conversational cues that no banking intent covers: asking for a person, yes/no, thanks, bye.

Banking77 has no "let me talk to a human" or "yes" class, and these cues must work on
the first turn with no training data, so they are explicit patterns over the
normalised transcript. They are checked before intent classification.
"""

from __future__ import annotations

import re

_HUMAN = re.compile(
    r"\b(speak|talk|chat|put me through|transfer me|connect me|get me)\b.{0,30}"
    r"\b(human|person|someone|somebody|agent|advisor|adviser|operator|representative|"
    r"manager|supervisor|real|staff|team member|customer service)\b"
    r"|\b(human|real person|live agent|operator|representative)\b(,? please)?$"
    r"|^(agent|operator|representative|human)\b",
)
_AFFIRM = re.compile(
    r"^(yes|yeah|yep|yup|sure|ok|okay|please|please do|go ahead|certainly|absolutely|"
    r"correct|that's right|that is right|right|definitely|of course)\b"
)
_DENY = re.compile(r"^(no|nope|nah|not really|no thanks|no thank you|don't|do not)\b")
_GREETING = re.compile(r"^(hello|hi|hey|hiya|good (morning|afternoon|evening)|morning)\b")
_THANKS = re.compile(r"\b(thank you|thanks|cheers|much appreciated)\b")
_REPEAT = re.compile(
    r"\b(say that again|repeat (that|it|yourself|please)|come again|pardon|"
    r"what did you (just )?say|(can|could) you repeat)\b|^(sorry|what)\??$"
)
_GOODBYE = re.compile(r"\b(bye|goodbye|good bye|that's all|that is all|nothing else)\b")


def normalise(text: str) -> str:
    """Lower case, straight apostrophes, punctuation to spaces, single spaces."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def asks_for_human(text: str) -> bool:
    """The caller wants to speak to a person."""
    return bool(_HUMAN.search(normalise(text)))


def is_affirmation(text: str) -> bool:
    """A yes (for answering a question the bot asked)."""
    return bool(_AFFIRM.search(normalise(text)))


def is_denial(text: str) -> bool:
    """A no (for answering a question the bot asked)."""
    return bool(_DENY.search(normalise(text)))


def is_closing(text: str) -> bool:
    """Thanks or goodbye with nothing else of substance (at most a few words more)."""
    words = normalise(text)
    if not (_THANKS.search(words) or _GOODBYE.search(words)):
        return False
    return len(words.split()) <= 6


def is_greeting(text: str) -> bool:
    """Just a hello (a few words at most), nothing to classify yet."""
    words = normalise(text)
    return bool(_GREETING.search(words)) and len(words.split()) <= 4


def is_goodbye(text: str) -> bool:
    """The caller is ending the conversation."""
    return bool(_GOODBYE.search(normalise(text)))


def asks_to_repeat(text: str) -> bool:
    """The caller did not catch the bot's last reply."""
    return bool(_REPEAT.search(normalise(text)))
