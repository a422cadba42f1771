"""One thing the bot says, tracked from decision to what the caller actually heard.

A reply is spoken sentence by sentence with a mark after each; the carrier echoes a
mark once the audio before it has been played. On barge-in we send `clear`, after which
carriers echo the remaining marks too, so only marks that arrived before the clear
count as heard. What was heard is therefore always a prefix of what was meant.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from voicebot.dialogue.core import Decision
from voicebot.transcript import PromptRecord, TurnRecord

END = "end"
#: A first sentence longer than this many words is split at its first clause boundary.
SPLIT_WORDS = 8
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")


def speech_parts(sentences: Sequence[str]) -> tuple[str, ...]:
    """Text as spoken units: one per sentence, a long first sentence split after a clause.

    Each unit is synthesised on its own and followed by a mark, so what the caller
    heard is known sentence by sentence. The caller waits for the first unit, and
    synthesis time grows with length; a short first clause gets audio on the line
    sooner while the rest is synthesised during its playback. Joining the parts with
    spaces gives back the original text, so what was heard stays a prefix of what was meant.
    """
    units = [unit for text in sentences for unit in _SENTENCE_END.split(text.strip()) if unit]
    if not units:
        return ()
    first, rest = units[0], tuple(units[1:])
    if len(first.split()) <= SPLIT_WORDS:
        return (first, *rest)
    pieces = _CLAUSE_END.split(first, maxsplit=1)
    if len(pieces) == 2 and len(pieces[0].split()) >= 3 and len(pieces[1].split()) >= 2:
        return (pieces[0], pieces[1], *rest)
    return (first, *rest)


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

    def heard_text(self) -> str:
        """The sentences played in full before any barge-in, in order."""
        count = 0
        while count in self.heard:
            count += 1
        return " ".join(self.sentences[:count])
