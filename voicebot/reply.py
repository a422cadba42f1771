"""One thing the bot says, tracked from decision to what the caller actually heard.

A reply is spoken sentence by sentence with a mark after each; the carrier echoes a
mark once the audio before it has been played. On barge-in we send `clear`, after which
carriers echo the remaining marks too, so only marks that arrived before the clear
count as heard. What was heard is therefore always a prefix of what was meant.

The caller waits for the first spoken unit to be synthesised, and synthesis time grows
with length, so a long first sentence is spoken as two units: its first clause (audio
goes out as soon as that is ready) and the rest (synthesised while the clause plays).
Marks stay per sentence: a sentence cut off after its first clause was not heard.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from models.protocols import PCM16
from voicebot.dialogue.core import Decision
from voicebot.transcript import PromptRecord, TurnRecord

END = "end"
#: A first sentence longer than this many words is split at a clause boundary.
SPLIT_WORDS = 8
#: The first clause has at least this many words (a one- or two-word clause sounds
#: clipped on its own and saves little), the rest at least `REST_MIN_WORDS`.
CLAUSE_MIN_WORDS = 3
REST_MIN_WORDS = 2
#: Silence between a first clause and the rest of its sentence. Piper ends a clause
#: said on its own with about 150 ms of quiet, where inside a sentence it pauses about
#: 350 ms at a comma; this tops the join up to a natural comma pause.
CLAUSE_PAUSE_S = 0.25
_QUIET = 200
#: After ",", ";" or ":" and whitespace (so never inside "1,000", "9:30" or "£2.50"),
#: or after a spaced dash ("card - it", "card — it"; a hyphen in a word is no boundary).
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+|(?<=\s[-–—])\s+")
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")


@dataclass(frozen=True, slots=True)
class SpeechUnit:
    """Text synthesised on its own: a sentence, or a first clause (`ends_sentence` False)."""

    text: str
    ends_sentence: bool = True


def split_first_clause(sentence: str) -> tuple[str, str] | None:
    """(clause, rest) at the earliest clause boundary that leaves both parts long enough.

    None when no boundary qualifies. A comma between two digits ("1, 2 or 3", an
    account number read in groups) is not a boundary: the digits belong together.
    """
    for match in _CLAUSE_END.finditer(sentence):
        clause, rest = sentence[: match.start()], sentence[match.end() :]
        if clause[-1:] == "," and clause[-2:-1].isdigit() and rest[:1].isdigit():
            continue
        if len(rest.split()) < REST_MIN_WORDS:
            return None
        if len(clause.split()) >= CLAUSE_MIN_WORDS:
            return clause, rest
    return None


def speech_units(sentences: Sequence[str]) -> tuple[SpeechUnit, ...]:
    """Text as spoken units: one per sentence, a long first sentence split after a clause.

    Each unit is synthesised on its own (and cached by its text); a mark follows each
    unit that ends a sentence. Joining the units with spaces gives back the original
    text, so what was heard stays a prefix of what was meant.
    """
    texts = [unit for text in sentences for unit in _SENTENCE_END.split(text.strip()) if unit]
    if not texts:
        return ()
    first, rest = texts[0], [SpeechUnit(text) for text in texts[1:]]
    split = split_first_clause(first) if len(first.split()) > SPLIT_WORDS else None
    if split is None:
        return (SpeechUnit(first), *rest)
    return (SpeechUnit(split[0], ends_sentence=False), SpeechUnit(split[1]), *rest)


def speech_parts(sentences: Sequence[str]) -> tuple[str, ...]:
    """The texts of `speech_units`: what the speech cache keeps audio for."""
    return tuple(unit.text for unit in speech_units(sentences))


def clause_pause(pcm: PCM16, sample_rate: int) -> PCM16:
    """A first clause's audio with silence appended up to a comma pause (`CLAUSE_PAUSE_S`).

    Only silence is added (never audio cut), so there is no click at the join; the
    next unit starts with the synthesiser's own short lead-in.
    """
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > _QUIET)
    quiet_s = (pcm.size - 1 - int(loud[-1])) / sample_rate if loud.size else 0.0
    missing = int((CLAUSE_PAUSE_S - quiet_s) * sample_rate)
    if missing <= 0:
        return pcm
    return np.concatenate([pcm, np.zeros(missing, dtype=np.int16)])


def mark_name(reply_id: str, part: str | int) -> str:
    """The carrier mark for sentence `part` of a reply (or its end)."""
    return f"{reply_id}.{part}"


def parse_mark(name: str) -> tuple[str, str]:
    """Split a mark name into (reply id, part)."""
    reply_id, _, part = name.rpartition(".")
    return reply_id, part


@dataclass(eq=False)
class Reply:
    """A reply in flight: its task, its sentences and the marks heard so far."""

    id: str
    turn: int | None
    speech_end: float | None = None
    speculative: bool = False
    released: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    decision: Decision | None = None
    sentences: tuple[str, ...] = ()
    heard: set[int] = field(default_factory=set)
    audible_at: float | None = None
    cleared: bool = False
    record: TurnRecord | PromptRecord | None = None
    #: A turn's record and first-sentence synthesis time, committed when audio goes out.
    pending: tuple[TurnRecord, float] | None = None
    #: The last of `sentences` is still being spoken (only its first clause so far).
    _open: bool = field(default=False, repr=False)

    @property
    def audible(self) -> bool:
        """True once the first frame of this reply has gone to the carrier."""
        return self.audible_at is not None

    def on_mark(self, part: str) -> None:
        """A mark of this reply came back from the carrier."""
        if self.cleared:
            return
        if part == END:
            self.finished.set()
        elif part.isdigit():
            self.heard.add(int(part))

    def add_unit(self, unit: SpeechUnit) -> int | None:
        """Record a unit about to be spoken; the index of the mark that follows it.

        None when the unit is a first clause: its sentence is marked after the rest,
        so a barge-in between the two leaves that sentence unheard, as it was.
        """
        if self._open:
            self.sentences = (*self.sentences[:-1], f"{self.sentences[-1]} {unit.text}")
        else:
            self.sentences = (*self.sentences, unit.text)
        self._open = not unit.ends_sentence
        return None if self._open else len(self.sentences) - 1

    def heard_text(self) -> str:
        """The sentences played in full before any barge-in, in order."""
        count = 0
        while count in self.heard:
            count += 1
        return " ".join(self.sentences[:count])
