"""A replay's `report.json`, read leniently into typed, frozen records.

The renderer must draw *any* report QA hands it: files written by older versions, a
call that dropped before its first turn, a turn whose timings were never measured. So
every field is coerced here, once, with a safe default (a wrong type counts as absent),
and the HTML and SVG code downstream works on plain typed values without re-checking.
Nothing here raises on bad data; the page shows a gap instead.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The fields a comparison difference can name that belong to the caller's bubble; every
# other field (bot_text, heard_text, barge_in, handoff, timings...) belongs to the bot's.
# "turns" is the comparison's word for a whole turn being present in one call only.
CALLER_FIELDS = frozenset(
    {
        "turns",
        "caller_text",
        "intent",
        "intent_confidence",
        "sentiment",
        "outcome",
        "started_s",
        "ended_s",
    }
)


@dataclass(frozen=True, slots=True)
class Timings:
    """Per-stage latency of one answer, in milliseconds (None: not measured)."""

    asr_ms: float | None = None
    dialogue_ms: float | None = None
    tts_first_audio_ms: float | None = None
    voice_to_voice_ms: float | None = None

    @property
    def other_ms(self) -> float | None:
        """Voice-to-voice time not explained by the named stages (endpointing, queues).

        Clamped at zero: stages can overlap the caller's speech (speculative ASR), so
        their sum may exceed voice-to-voice.
        """
        if self.voice_to_voice_ms is None:
            return None
        known = sum(v for v in (self.asr_ms, self.dialogue_ms, self.tts_first_audio_ms) if v)
        return max(0.0, self.voice_to_voice_ms - known)

    @property
    def empty(self) -> bool:
        """True when no stage was measured at all."""
        return all(
            v is None
            for v in (
                self.asr_ms,
                self.dialogue_ms,
                self.tts_first_audio_ms,
                self.voice_to_voice_ms,
            )
        )


@dataclass(frozen=True, slots=True)
class Handoff:
    """The bot offered a human agent, or the caller accepted/declined one."""

    state: str
    reason: str
    at_s: float | None


@dataclass(frozen=True, slots=True)
class Turn:
    """One caller turn and the bot's answer to it."""

    index: int
    started_s: float | None
    ended_s: float | None
    caller_text: str
    intent: str | None
    intent_confidence: float | None
    sentiment: float | None
    outcome: str | None
    bot_text: str
    heard_text: str | None
    barge_in: bool
    handoff: Handoff | None
    bot_started_s: float | None
    bot_ended_s: float | None
    timings: Timings

    @property
    def sentiment_at_s(self) -> float | None:
        """Where the turn's sentiment sits on the call's time axis: when the caller stopped."""
        return self.ended_s if self.ended_s is not None else self.started_s

    @property
    def barge_in_at_s(self) -> float | None:
        """When the caller cut the answer off: the bot's audio ended there."""
        for t in (self.bot_ended_s, self.bot_started_s, self.ended_s):
            if t is not None:
                return t
        return None


@dataclass(frozen=True, slots=True)
class Prompt:
    """Something the bot said that answers no turn (greeting, key-press prompt, goodbye)."""

    kind: str
    at_s: float | None
    bot_text: str
    heard_text: str | None
    barge_in: bool


@dataclass(frozen=True, slots=True)
class Difference:
    """One field that differs between the original call and its replay."""

    turn: int | None
    field: str
    original: str
    replayed: str


@dataclass(frozen=True, slots=True)
class Comparison:
    """The replay judged against the original recording's transcript."""

    original: str
    passed: bool | None
    rules_broken: tuple[str, ...]
    differences: tuple[Difference, ...]


@dataclass(frozen=True, slots=True)
class Summary:
    """The call's headline numbers."""

    turns: int
    barge_ins: int
    handoffs: int
    voice_to_voice_ms_median: float | None
    mean_sentiment: float | None
    intents: tuple[str, ...]
    outcomes: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class CallReport:
    """Everything the page draws."""

    input: str
    call_id: str
    duration_s: float | None
    turns: tuple[Turn, ...]
    prompts: tuple[Prompt, ...]
    summary: Summary
    comparison: Comparison | None
    modelled_latency_ms: tuple[tuple[str, float], ...] = ()


def num(value: Any) -> float | None:
    """A finite number, or None (bools, NaN, infinities and junk count as absent)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value)
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def text(value: Any) -> str:
    """Display text for any value: None is empty, strings as they are, the rest as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return str(value)


def opt_text(value: Any) -> str | None:
    """Like `text`, but keeps "absent" apart from "empty" (heard_text: unknown vs nothing)."""
    return None if value is None else text(value)


def _int(value: Any) -> int | None:
    n = num(value)
    return int(n) if n is not None and n == int(n) else None


def _maps(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _timings(raw: Any) -> Timings:
    if not isinstance(raw, Mapping):
        return Timings()
    return Timings(
        asr_ms=num(raw.get("asr_ms")),
        dialogue_ms=num(raw.get("dialogue_ms")),
        tts_first_audio_ms=num(raw.get("tts_first_audio_ms")),
        voice_to_voice_ms=num(raw.get("voice_to_voice_ms")),
    )


def _handoff(raw: Any) -> Handoff | None:
    if not isinstance(raw, Mapping):
        return None
    return Handoff(
        state=text(raw.get("state")) or "offered",
        reason=text(raw.get("reason")),
        at_s=num(raw.get("at_s")),
    )


def _turn(raw: Mapping[str, Any], position: int) -> Turn:
    index = _int(raw.get("index"))
    return Turn(
        index=index if index is not None else position,
        started_s=num(raw.get("started_s")),
        ended_s=num(raw.get("ended_s")),
        caller_text=text(raw.get("caller_text")),
        intent=opt_text(raw.get("intent")) or None,
        intent_confidence=num(raw.get("intent_confidence")),
        sentiment=num(raw.get("sentiment")),
        outcome=opt_text(raw.get("outcome")) or None,
        bot_text=text(raw.get("bot_text")),
        heard_text=opt_text(raw.get("heard_text")),
        barge_in=raw.get("barge_in") is True,
        handoff=_handoff(raw.get("handoff")),
        bot_started_s=num(raw.get("bot_started_s")),
        bot_ended_s=num(raw.get("bot_ended_s")),
        timings=_timings(raw.get("timings")),
    )


def _prompt(raw: Mapping[str, Any]) -> Prompt:
    return Prompt(
        kind=text(raw.get("kind")) or "prompt",
        at_s=num(raw.get("at_s")),
        bot_text=text(raw.get("bot_text")),
        heard_text=opt_text(raw.get("heard_text")),
        barge_in=raw.get("barge_in") is True,
    )


def _comparison(raw: Any) -> Comparison | None:
    if not isinstance(raw, Mapping):
        return None
    passed = raw.get("passed")
    rules = raw.get("rules_broken")
    differences = tuple(
        Difference(
            turn=_int(d.get("turn")),
            field=text(d.get("field")) or "?",
            original=text(d.get("original")),
            replayed=text(d.get("replayed")),
        )
        for d in _maps(raw.get("differences"))
    )
    return Comparison(
        original=text(raw.get("original")),
        passed=passed if isinstance(passed, bool) else None,
        rules_broken=tuple(text(r) for r in rules) if isinstance(rules, list) else (),
        differences=differences,
    )


def _summary(raw: Any, turns: Sequence[Turn], prompts: Sequence[Prompt]) -> Summary:
    """The report's own summary, with any missing number computed from the turns."""
    given = raw if isinstance(raw, Mapping) else {}
    v2v = [t.timings.voice_to_voice_ms for t in turns if t.timings.voice_to_voice_ms is not None]
    moods = [t.sentiment for t in turns if t.sentiment is not None]
    # The replay lists one intent per turn (None included); the header wants each once.
    given_intents = given.get("intents")
    listed = given_intents if isinstance(given_intents, list) else [t.intent for t in turns]
    intents = tuple(dict.fromkeys(text(i) for i in listed if i))
    given_outcomes = given.get("outcomes")
    if isinstance(given_outcomes, Mapping):
        outcomes = tuple((text(k), int(num(v) or 0)) for k, v in given_outcomes.items())
    else:
        outcomes = tuple(Counter(t.outcome for t in turns if t.outcome).items())
    barge_ins = sum(t.barge_in for t in turns) + sum(p.barge_in for p in prompts)

    def pick(key: str, fallback: float | None) -> float | None:
        value = num(given.get(key))
        return value if value is not None else fallback

    return Summary(
        turns=int(pick("turns", len(turns)) or 0),
        barge_ins=int(pick("barge_ins", barge_ins) or 0),
        handoffs=int(pick("handoffs", sum(t.handoff is not None for t in turns)) or 0),
        voice_to_voice_ms_median=pick(
            "voice_to_voice_ms_median", statistics.median(v2v) if v2v else None
        ),
        mean_sentiment=pick("mean_sentiment", statistics.fmean(moods) if moods else None),
        intents=intents,
        outcomes=outcomes,
    )


def _modelled(raw: Any) -> tuple[tuple[str, float], ...]:
    """Replays model stage latencies instead of measuring them; the page must say so."""
    if not isinstance(raw, Mapping):
        return ()
    return tuple((text(k), v) for k, v in ((k, num(v)) for k, v in raw.items()) if v is not None)


def parse_report(raw: Mapping[str, Any]) -> CallReport:
    """Read a report dict; never raises on missing or mistyped fields."""
    if not isinstance(raw, Mapping):
        raw = {}
    turns = tuple(_turn(t, i) for i, t in enumerate(_maps(raw.get("turns")), start=1))
    prompts = tuple(_prompt(p) for p in _maps(raw.get("prompts")))
    duration = num(raw.get("duration_s"))
    if duration is None:
        times = [
            t
            for turn in turns
            for t in (turn.ended_s, turn.bot_ended_s, turn.started_s, turn.bot_started_s)
            if t is not None
        ] + [p.at_s for p in prompts if p.at_s is not None]
        duration = max(times) if times else None
    return CallReport(
        input=text(raw.get("input")),
        call_id=text(raw.get("call_id")),
        duration_s=duration,
        turns=turns,
        prompts=prompts,
        summary=_summary(raw.get("summary"), turns, prompts),
        comparison=_comparison(raw.get("comparison")),
        modelled_latency_ms=_modelled(raw.get("modelled_latency_ms")),
    )


_WORD = re.compile(r"\S+")
_PUNCT = re.compile(r"[^\w']+")


def _norm(word: str) -> str:
    return _PUNCT.sub("", word).casefold()


def split_heard(bot_text: str, heard_text: str | None) -> tuple[str, str, bool]:
    """Split what the bot meant to say into (heard, never heard, matched).

    `heard_text` is normally a prefix of `bot_text` (the sentences whose marks came back
    before a barge-in). The split keeps exact substrings of `bot_text`, so the page shows
    the whole answer with the unheard tail struck through. When the heard text is not a
    prefix even word by word, `matched` is False and the caller shows it separately.
    """
    if heard_text is None or heard_text == bot_text:
        return bot_text, "", True
    if bot_text.startswith(heard_text):
        return heard_text, bot_text[len(heard_text) :], True
    heard_words = [w for w in (_norm(m) for m in heard_text.split()) if w]
    if not heard_words:
        return "", bot_text, True
    matches = [m for m in _WORD.finditer(bot_text) if _norm(m.group())]
    if len(matches) >= len(heard_words) and all(
        _norm(m.group()) == w for m, w in zip(matches, heard_words, strict=False)
    ):
        end = matches[len(heard_words) - 1].end()
        return bot_text[:end], bot_text[end:], True
    return bot_text, "", False


def clock(seconds: float | None) -> str:
    """Call time as mm:ss.s (what QA reads off an audio editor's ruler)."""
    if seconds is None:
        return "--:--.-"
    tenths = round(abs(seconds) * 10)
    minutes, rest = divmod(tenths, 600)
    sign = "-" if seconds < 0 and tenths else ""
    return f"{sign}{minutes:02d}:{rest // 10:02d}.{rest % 10}"


def ms(value: float | None) -> str:
    """Milliseconds for people: whole numbers, a dash when unmeasured."""
    return "—" if value is None else f"{value:,.0f} ms"


def signed(value: float | None) -> str:
    """Sentiment with its sign, so +0.10 and -0.10 read differently at a glance."""
    return "—" if value is None else f"{value:+.2f}"
