"""Adaptive endpointing: how much silence ends a caller's turn, judged from their words.

A fixed silence threshold is a bad compromise: short enough to answer a finished
question briskly, it cuts off the caller who pauses after "and" or between the digit
groups of an account number; long enough for them, it makes every answer sluggish.
People use syntax to project the end of a turn (Sacks, Schegloff and Jefferson 1974;
de Ruiter et al. 2006): a turn that ends in a conjunction, a preposition, an article,
an auxiliary or a filler is not finished; one that is a complete clause or question
may be. So the silence we wait for depends on the words heard so far.

The words come from the speculative transcript Whisper makes during the pause (see
`voicebot.turns.Speculate`). The rules look at the end of that text only: a small
closed-class word list plus Whisper's own punctuation ("?" after a question, "..." or
"," after a trailing-off fragment). No learned model, so the behaviour is predictable
and the same on any data. Until the transcript is there we wait at most the longest
endpoint: the answer needs that transcript anyway, so waiting for it costs no latency.

Every endpoint lies between `min_endpoint_ms` and `max_endpoint_ms`: never a
multi-second wait, never an answer after a breath.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from voicebot.config import TurnConfig


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


class Completion(StrEnum):
    """How finished the caller's words sound."""

    #: No transcript of the pause yet.
    PENDING = "pending"
    #: A question, or a short answer ("yes", "no thanks", "yes I do"): it asks for a
    #: reply, so the caller is done.
    COMPLETE = "complete"
    #: A statement or request that is a whole clause (it has a verb and ends in a content
    #: word). Often the end, but callers explain in several sentences ("My card was
    #: declined. I have money in the account."), so it waits a little longer.
    STATEMENT = "statement"
    #: Nothing either way (no final punctuation, an ambiguous ending).
    NEUTRAL = "neutral"
    #: Ends in a word that projects more: conjunction, preposition, article, filler...
    INCOMPLETE = "incomplete"
    #: Ends in a number: digits are read out in groups, with pauses between them.
    NUMBER = "number"
    #: Endpointing is off: the fixed silence threshold applies.
    FIXED = "fixed"


#: Conjunctions and subordinators: a clause must follow.
CONJUNCTIONS = _words(
    "and but or nor so because cause cos if when whenever while whilst although though "
    "unless since until till whereas whether plus"
)
#: Relative and complementiser words: more must follow in a statement, but they end
#: questions ("why is that?", "who?").
RELATIVES = _words("that which who whom whose")
#: Prepositions that are seldom stranded at the end of a statement. Particles that end
#: phrasal verbs ("log in", "top up", "cut off") are left out on purpose.
PREPOSITIONS = _words(
    "to of for from with about at by into onto between without during than via per "
    "towards toward across against among upon within like as"
)
#: Articles, possessives and quantifiers: a noun must follow.
DETERMINERS = _words("the a an my your our their its his every each another")
#: Hesitation and discourse fillers: the speaker is holding the floor.
FILLERS = _words("um umm uh uhh uhm er erm ah eh hmm mm mhm")
#: Subject pronouns: a verb must follow ("what should I ...").
SUBJECTS = _words("i we they he she")
#: Degree words that modify what comes next ("it is very ...").
MODIFIERS = _words("very quite rather")
#: Auxiliaries, modals and copulas. At the end they close an elliptical answer after a
#: pronoun ("yes I do", "it is"), but otherwise a complement is missing ("my account
#: number is ...").
AUXILIARIES = _words(
    "is are was were am be been being do does did have has had can could will would "
    "shall should may might must"
)
PRONOUNS = _words("i you we they he she it that this there")
NUMBER_WORDS = _words(
    "zero oh one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty "
    "sixty seventy eighty ninety hundred thousand million double triple"
)
#: Frequent English lexical verbs (base and irregular forms; regular "-s", "-ed" and
#: "-ing" forms of these are recognised too). A statement with no verb at all is a
#: fragment ("and so, my fellow Americans"), however Whisper punctuates it.
VERBS = _words(
    "want need like lose lost have get got gotten make made take took taken see saw seen "
    "go went gone come came give gave given send sent pay paid tell told help know knew "
    "known think thought say said find found use try call move order change check open "
    "close cancel stop start keep kept let put buy bought sell sold leave left work "
    "show mean meant ask look feel felt become became bring brought hold held write "
    "wrote written read hear heard understand understood receive charge happen steal "
    "stole stolen forget forgot remember wonder apply add update set report transfer "
    "freeze block withdraw withdrew deposit spend spent owe arrive explain please thank "
    "thanks"
)
#: Short answers and formulae that are whole turns on their own.
SHORT_ANSWERS = _words("yes yeah yep no nope okay ok sure right fine thanks bye hello hi")
_CONTRACTIONS = ("'m", "'re", "'s", "'ve", "'d", "'ll", "n't")

_NUMBER_CUES = _words("is was are number code pin digits ending ends")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_TRAILING_OFF = ("...", "…", ",", "-", "—", ";", ":")


def _is_number(words: list[str]) -> bool:
    """The text ends in a number: digits, or a number word that reads as one.

    "one" is also a pronoun ("a new one"), so a number word counts only after another
    number or a word that introduces one ("my pin is four", "code seven").
    """
    last = words[-1]
    if last[0].isdigit():
        return True
    if last not in NUMBER_WORDS or len(words) < 2:
        return False
    before = words[-2]
    return before[0].isdigit() or before in NUMBER_WORDS or before in _NUMBER_CUES


def classify(text: str | None) -> Completion:
    """How finished `text` (the caller's words so far) sounds, from its last words."""
    if text is None:
        return Completion.PENDING
    stripped = text.strip().lower()
    words = _WORD.findall(stripped)
    if not words:
        return Completion.NEUTRAL
    last = words[-1]
    question = stripped.endswith("?")
    if stripped.endswith(_TRAILING_OFF):
        return Completion.INCOMPLETE
    if _is_number(words):
        # "Can I take out 500?" is a question; "my number is 4 5 6" may go on.
        return Completion.NEUTRAL if question else Completion.NUMBER
    if last in CONJUNCTIONS or last in FILLERS or last in DETERMINERS or last in SUBJECTS:
        return Completion.INCOMPLETE
    if question:
        # A stranded preposition or a final auxiliary is normal in a question:
        # "what is this fee for?", "why is that?", "can you?".
        return Completion.COMPLETE
    if last in RELATIVES or last in MODIFIERS or last in PREPOSITIONS:
        return Completion.INCOMPLETE
    if last in AUXILIARIES:
        elliptical = len(words) >= 2 and words[-2] in PRONOUNS
        return Completion.COMPLETE if elliptical else Completion.INCOMPLETE
    if stripped.endswith((".", "!")):
        if _is_short_answer(words):
            return Completion.COMPLETE
        if any(_is_verb(w) for w in words):
            return Completion.STATEMENT
    return Completion.NEUTRAL


def _is_verb(word: str) -> bool:
    if word in VERBS or word in AUXILIARIES or word.endswith(_CONTRACTIONS):
        return True
    for suffix in ("s", "es", "ed", "d", "ing"):
        if word.endswith(suffix) and word[: -len(suffix)] in VERBS:
            return True
    return word.endswith("ing") and word[:-3] + "e" in VERBS  # "closing", "charging"


def _is_short_answer(words: list[str]) -> bool:
    """A whole turn of one or two words: "yes", "no thanks", "okay"."""
    return len(words) <= 2 and any(w in SHORT_ANSWERS for w in words)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """The silence that ends the turn now, and why."""

    ms: int
    reason: Completion


class EndpointPolicy:
    """Maps the caller's words to the silence that ends their turn (TurnConfig knobs)."""

    def __init__(self, config: TurnConfig) -> None:
        if config.endpointing not in ("adaptive", "fixed"):
            raise ValueError(
                f"[turns] endpointing must be 'adaptive' or 'fixed', got {config.endpointing!r}"
            )
        self.adaptive = config.endpointing == "adaptive"
        if self.adaptive and not (
            0
            < config.min_endpoint_ms
            <= config.statement_endpoint_ms
            <= config.endpoint_ms
            <= config.max_endpoint_ms
        ):
            raise ValueError(
                "[turns] needs 0 < min_endpoint_ms <= statement_endpoint_ms <= endpoint_ms "
                f"<= max_endpoint_ms, got {config.min_endpoint_ms}, "
                f"{config.statement_endpoint_ms}, {config.endpoint_ms}, {config.max_endpoint_ms}"
            )
        self._ms = {
            Completion.PENDING: config.max_endpoint_ms,
            Completion.COMPLETE: config.min_endpoint_ms,
            Completion.STATEMENT: config.statement_endpoint_ms,
            Completion.NEUTRAL: config.endpoint_ms,
            Completion.INCOMPLETE: config.max_endpoint_ms,
            Completion.NUMBER: config.max_endpoint_ms,
        }
        self._fixed = Endpoint(config.endpoint_ms, Completion.FIXED)

    def for_text(self, text: str | None) -> Endpoint:
        """The endpoint after `text` (None: its transcript is still being computed)."""
        if not self.adaptive:
            return self._fixed
        reason = classify(text)
        return Endpoint(self._ms[reason], reason)

    def without_transcript(self) -> Endpoint:
        """The endpoint for a pause that is not being transcribed (too little speech)."""
        if not self.adaptive:
            return self._fixed
        return Endpoint(self._ms[Completion.NEUTRAL], Completion.NEUTRAL)
