"""Slot values as the bank's systems want them: amounts, clock times, numbers.

A tagged span is what the caller said ("twenty five quid", "25 to 7 p.m."); a payment
or a dispute form needs ``Decimal('25') GBP`` and ``18:35``. Transcripts of speech mix
digits and words freely ("2 grand", "£1,200.50", "fifty pounds twenty"), so the parser
works on a token list where digits and spelled numbers are both numbers. It is small and
hand-written: a dependency for spelled numbers or dates would bring its own idea of
"next Friday" and of which currency is the default, and both are policy decisions here
(dates: `voicebot.dialogue.slot_dates`). Unparseable text is reported as such
(kind ``unparsed``), never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

UNITS = {
    "zero": 0, "oh": 0, "nought": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19,
}  # fmt: skip
TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
SCALES = {
    "thousand": 1000, "grand": 1000, "k": 1000, "million": 10**6, "m": 10**6,
    "billion": 10**9, "bn": 10**9,
}  # fmt: skip
ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17,
    "eighteenth": 18, "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
#: Words and symbols that name a currency (ISO 4217 code).
CURRENCIES = {
    "£": "GBP", "pound": "GBP", "pounds": "GBP", "quid": "GBP", "sterling": "GBP", "gbp": "GBP",
    "€": "EUR", "euro": "EUR", "euros": "EUR", "eur": "EUR",
    "$": "USD", "dollar": "USD", "dollars": "USD", "bucks": "USD", "usd": "USD",
}  # fmt: skip
#: Hundredths of the major unit; "p" is what "50p" becomes.
MINOR = {"pence": "GBP", "penny": "GBP", "p": "GBP", "cent": None, "cents": None}
DEFAULT_CURRENCY = "GBP"
_DIGITS = re.compile(r"^\d+(\.\d+)?$")
_ORDINAL = re.compile(r"^(\d{1,2})(st|nd|rd|th)$")


@dataclass(frozen=True, slots=True)
class SlotValue:
    """A normalized slot value; which fields are set depends on `kind`.

    kinds: ``amount`` (amount, currency, currency_stated), ``number`` (amount),
    ``date`` (start == end), ``period`` (start, end: inclusive dates), ``time`` (clock),
    ``time_range`` (clock, clock_end), ``duration`` (duration), ``recurring`` (duration:
    the interval), ``text`` (a name: the text itself), ``vague`` ("lately") and
    ``unparsed`` (nothing could be read; the caller should be asked).
    """

    slot: str
    text: str
    kind: str
    amount: Decimal | None = None
    currency: str | None = None
    currency_stated: bool = False
    start: date | None = None
    end: date | None = None
    clock: time | None = None
    clock_end: time | None = None
    duration: timedelta | None = None

    @property
    def canonical(self) -> str:
        """One ISO-style string for logs and JSON: '25.00 GBP', '2022-03-14', '18:35'."""
        if self.kind == "amount" and self.amount is not None:
            return f"{self.amount:.2f} {self.currency}"
        if self.kind == "number" and self.amount is not None:
            return str(self.amount)
        if self.kind == "date" and self.start is not None:
            return self.start.isoformat()
        if self.kind == "period" and self.start is not None and self.end is not None:
            return f"{self.start.isoformat()}/{self.end.isoformat()}"
        if self.kind == "time" and self.clock is not None:
            return self.clock.strftime("%H:%M")
        if self.kind == "time_range" and self.clock is not None and self.clock_end is not None:
            return f"{self.clock.strftime('%H:%M')}/{self.clock_end.strftime('%H:%M')}"
        if self.kind in ("duration", "recurring") and self.duration is not None:
            return iso_duration(self.duration, every=self.kind == "recurring")
        return self.text.strip() if self.kind == "text" else self.kind


def iso_duration(span: timedelta, *, every: bool = False) -> str:
    """ISO 8601 duration ('P30D', 'PT1H30M'); 'R/' before it for a repeating interval."""
    minutes = int(span.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    text = "P" + (f"{days}D" if days else "")
    if hours or minutes or not days:
        text += (
            "T" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes or not hours else "")
        )
    return ("R/" if every else "") + text


def tokens(text: str) -> list[str]:
    """Lowercase words with numbers, symbols and suffixes split off: '£1,200.50' -> £ 1200.50."""
    s = text.lower().replace("’", "'")
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)
    s = re.sub(r"\b([ap])\.\s?m\b\.?", r" \1m ", s)
    s = s.replace("o'clock", " oclock ").replace("o clock", " oclock ")
    s = re.sub(r"[£$€]", lambda m: f" {m.group()} ", s)
    s = re.sub(r"(?<=\d)(am|pm|k|p|ish|m|bn)\b", r" \1", s)
    s = re.sub(r"\b(\w+)ish\b", r"\1", s)
    s = re.sub(r"[^\w£$€.:/\s]", " ", s)
    out = []
    for word in s.split():
        word = word.strip(".") if not _DIGITS.match(word) else word
        if word:
            out.append(word)
    return out


def digits(word: str) -> Decimal | None:
    """A number written in digits ('1200', '56.79'), else None."""
    if not _DIGITS.match(word):
        return None
    try:
        return Decimal(word)
    except InvalidOperation:  # pragma: no cover - the pattern already rules this out
        return None


def words_to_number(words: list[str]) -> Decimal | None:
    """Digits and spelled numbers together: 'twenty five', '2 grand', 'a thousand and five'."""
    total = Decimal(0)
    current: Decimal | None = None
    seen = False
    for i, word in enumerate(words):
        value = digits(word)
        if value is not None:
            current = (current or Decimal(0)) + value
        elif word in UNITS:
            current = (current or Decimal(0)) + UNITS[word]
        elif word in TENS:
            current = (current or Decimal(0)) + TENS[word]
        elif word == "hundred":
            current = (current or Decimal(1)) * 100
        elif word in SCALES:
            total += (current if current is not None else 1) * SCALES[word]
            current = None
        elif word in ("a", "an") and i + 1 < len(words) and words[i + 1] in (*SCALES, "hundred"):
            current = Decimal(1) if current is None else current
            continue
        elif word == "and" and seen:
            continue
        else:
            return None
        seen = True
    if not seen:
        return None
    return total + (current or 0)


def ordinal(word: str) -> int | None:
    """A day-of-month ordinal: '3rd', 'third', '21st' (two words are joined by the caller)."""
    match = _ORDINAL.match(word)
    if match:
        return int(match.group(1))
    return ORDINALS.get(word)


def parse_amount(text: str) -> tuple[Decimal, str, bool] | None:
    """(amount, ISO currency, stated?) from '£1,200.50', 'fifty quid', '25 pounds 50'.

    With no currency word the bank's own (GBP) is assumed and `stated` is False.
    """
    words = [w for w in tokens(text) if w not in ("about", "around", "roughly", "of", "just")]
    major = next((i for i, w in enumerate(words) if w in CURRENCIES), None)
    currency = CURRENCIES[words[major]] if major is not None else None
    if major is None:
        minor = next((i for i, w in enumerate(words) if w in MINOR), None)
        if minor is not None:  # "50p", "ninety nine cents"
            value = words_to_number(words[:minor])
            code = MINOR[words[minor]] or DEFAULT_CURRENCY
            return (
                (value / 100, code, MINOR[words[minor]] is not None) if value is not None else None
            )
        value = words_to_number(words)
        return (value, DEFAULT_CURRENCY, False) if value is not None else None
    assert currency is not None
    before, after = words[:major], [w for w in words[major + 1 :] if w not in CURRENCIES]
    if not before:  # "£ 27", "$ 52.36", "£5 and 50p"
        joins = [j for j, w in enumerate(after) if w == "and"]
        cut = joins[-1] if joins and after[-1] in MINOR else len(after)
        before, after = after[:cut], after[cut + 1 :]
    value = words_to_number(before)
    if value is None:
        return None
    cents_words = [w for w in after if w not in MINOR and w != "and"]
    if cents_words:
        cents = words_to_number(cents_words)
        if cents is None or cents >= 100:
            return None
        value += cents / 100
    return value, currency, True


def _merge_numbers(words: list[str]) -> list[str | int]:
    """Spelled numbers to ints, digits to ints; 'twenty five' joins, 'nine fifteen' does not."""
    out: list[str | int] = []
    for word in words:
        if word.isdigit():
            out.append(int(word))
        elif word in UNITS:
            if out and isinstance(out[-1], int) and out[-1] in TENS.values() and UNITS[word] < 10:
                out[-1] += UNITS[word]
            else:
                out.append(UNITS[word])
        elif word in TENS:
            out.append(TENS[word])
        else:
            out.append(word)
    return out


_MERIDIEM = {"am": "am", "morning": "am", "pm": "pm", "afternoon": "pm", "evening": "pm",
             "night": "night", "tonight": "night"}  # fmt: skip
_FILLER = {"in", "the", "at", "around", "about", "oclock", "sharp", "exactly", "approximately",
           "on", "roughly", "like", "minutes", "minute", "mins", "a", "of", "this",
           "ish"}  # fmt: skip


def _hour24(hour: int, meridiem: str | None) -> int | None:
    if not 0 <= hour <= 24:
        return None
    if meridiem == "am":
        return 0 if hour == 12 else hour
    if meridiem == "pm":
        return hour + 12 if hour < 12 else hour
    if meridiem == "night":  # "10 at night" is 22:00, "3 at night" 03:00
        return hour + 12 if 6 <= hour < 12 else (0 if hour == 12 else hour)
    return hour % 24


def parse_time(text: str, now: datetime | None = None) -> time | None:
    """A clock time: '9:05', '9 05 in the morning', 'half past 3 pm', '25 to 7 p.m.', '2pm'.

    Relative times ('15 minutes ago', 'in 8 hours') need `now`; without it they are None.
    """
    words = tokens(text)
    relative = any(w in ("ago", "later") for w in words) or words[:1] == ["in"]
    if relative and any(unit(w) in ("minute", "hour") for w in words):
        return _relative_time(words, now)
    meridiem = next((_MERIDIEM[w] for w in words if w in _MERIDIEM), None)
    rest = _merge_numbers([w for w in words if w not in _MERIDIEM and w not in _FILLER])
    if rest in (["midday"], ["noon"]):
        return time(12, 0)
    if rest == ["midnight"]:
        return time(0, 0)
    if len(rest) == 1 and isinstance(rest[0], str):  # "9:45", "9.45"
        clock = re.fullmatch(r"(\d{1,2})[:.](\d\d)", rest[0])
        rest = [int(clock[1]), int(clock[2])] if clock else rest
    minute, hour, back = 0, None, False
    match rest:
        case [int(h)]:
            hour = h
        case [int(h), int(m)] if m < 60:
            hour, minute = h, m
        case [int(h), 0, int(m)] if m < 10:  # "nine oh five"
            hour, minute = h, m
        case ["half", "past", int(h)]:
            hour, minute = h, 30
        case ["quarter", "past" | "after", int(h)]:
            hour, minute = h, 15
        case ["quarter", "to" | "before", int(h)]:
            hour, minute, back = h, 15, True
        case [int(m), "past" | "after", int(h)] if m < 60:
            hour, minute = h, m
        case [int(m), "to" | "before", int(h)] if 0 < m < 60:
            hour, minute, back = h, m, True
    if hour is None:
        return None
    hour24 = _hour24(hour, meridiem)
    if hour24 is None:
        return None
    moment = datetime(2000, 1, 1) + timedelta(hours=hour24, minutes=minute)
    if back:
        moment -= timedelta(minutes=2 * minute)
    return moment.time()


def _relative_time(words: list[str], now: datetime | None) -> time | None:
    span = parse_duration(" ".join(w for w in words if w not in ("ago", "later", "in")))
    if span is None or now is None:
        return None
    return (now - span if "ago" in words else now + span).time()


_DURATION_UNITS = {
    "minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1),
    "week": timedelta(days=7), "fortnight": timedelta(days=14), "month": timedelta(days=30),
    "year": timedelta(days=365),
}  # fmt: skip


def unit(word: str) -> str | None:
    """'minutes' -> 'minute', 'hrs' -> 'hour': the calendar unit a word names, if any."""
    word = {"mins": "minute", "min": "minute", "hrs": "hour", "hr": "hour", "yrs": "year"}.get(
        word, word
    )
    base = word[:-1] if word.endswith("s") and word[:-1] in _DURATION_UNITS else word
    return base if base in _DURATION_UNITS else None


def parse_duration(text: str) -> timedelta | None:
    """'8 hours', 'half an hour', 'two weeks', 'an hour and a half', 'a year' (365 days)."""
    words = [w for w in tokens(text) if w not in ("for", "about", "around", "the", "over", "of")]
    total = timedelta()
    found = False
    count: list[str] = []
    for i, word in enumerate(words):
        name = unit(word)
        if name is None:
            count.append(word)
            continue
        spoken = [w for w in count if w != "and"]
        if spoken in (["half", "an"], ["half", "a"]):
            amount: Decimal | None = Decimal("0.5")
        elif spoken in ([], ["a"], ["an"], ["one"]):
            amount = Decimal(1)
        else:
            amount = words_to_number(spoken)
        if amount is None:
            return None
        total += _DURATION_UNITS[name] * float(amount)
        found = True
        count = []
        if words[i + 1 : i + 4] == ["and", "a", "half"]:
            total += _DURATION_UNITS[name] / 2
            break
    return total if found and not [w for w in count if w not in ("and", "a", "half")] else None
