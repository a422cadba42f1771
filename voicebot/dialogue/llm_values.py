"""The numbers a sentence states, in one canonical form, whatever way they were written.

The LLM guardrail compares every number a generated sentence says with the numbers
the facts of the turn say. A model may write the fact "2 pounds 50" as "£2.50",
"2.50", "two pounds fifty" or "250 pence", and "5 working days" as "five working
days", so both sides go through the same reading: number words become digits, and a
number is classified by the word next to it as an amount of money, a percentage, a
quantity of time, a day of a month, or a plain number.

A plain number on one side matches any kind with the same value on the other (the
fact "2 pounds 50" grounds a bare "2.50", and a bare "30" grounds "30 days"), but two
different units never match each other: "£30" is not grounded by "30 days".

"one" alone is not read as a number ("one of our advisers") unless a unit follows
("one pound", "one working day"): that is the only word that is ignored, and what it
lets through is always a single 1 of something that has no unit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

_NUMBER_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen",
)  # fmt: skip
_TENS_WORDS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_MONTH_WORDS = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
)  # fmt: skip
_UNITS = {word: i for i, word in enumerate(_NUMBER_WORDS)}
_TENS = {word: 10 * (i + 2) for i, word in enumerate(_TENS_WORDS)}
_SCALES = {"thousand": 1000, "million": 10**6, "billion": 10**9}
MONTHS = {word: i + 1 for i, word in enumerate(_MONTH_WORDS)}
MONEY_MAJOR = {"pound", "pounds", "quid", "gbp", "£"}
MONEY_MINOR = {"pence", "penny", "p"}
PERCENT = {"percent", "%"}
TIME_UNITS = {
    "second", "seconds", "minute", "minutes", "hour", "hours", "day", "days", "week",
    "weeks", "month", "months", "year", "years", "time", "times",
}  # fmt: skip
_QUALIFIERS = {"working", "business", "calendar", "banking", "full"}
#: Words after which "one" is a number: units of money, percent and time.
_UNIT_WORDS = MONEY_MAJOR | MONEY_MINOR | PERCENT | TIME_UNITS | _QUALIFIERS | {"per"}

_TOKEN = re.compile(
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?:(?P<ord>st|nd|rd|th)(?![a-z]))?"
    r"|(?P<word>[a-z]+(?:'[a-z]+)?)|(?P<sym>[^\sa-z0-9])",
)


@dataclass(frozen=True, slots=True)
class Value:
    """A number as said: ``kind`` is money, percent, quantity, date or number.

    ``key`` is the canonical text: a normalised decimal ("2.5", "1000") or, for a
    date, "day-month" ("12-3").
    """

    kind: str
    key: str


@dataclass(slots=True)
class _Tok:
    text: str
    number: Decimal | None = None
    single_digit: bool = False


def _key(number: Decimal) -> str:
    return format(number.normalize(), "f")


def tokens(text: str) -> list[_Tok]:
    """Words, symbols and numbers of `text`, with number words already read as numbers."""
    raw: list[_Tok] = []
    text = text.lower().replace("\u2019", "'").replace("per cent", "percent")
    for match in _TOKEN.finditer(text):
        if match.group("num"):
            digits = match.group("num").replace(",", "")
            single = len(digits) == 1 and not match.group("ord")
            raw.append(_Tok(digits, Decimal(digits), single))
        else:
            raw.append(_Tok(match.group(0)))
    return _join_digit_runs(_read_words(raw))


def _is_unit_word(tok: _Tok | None) -> bool:
    return tok is not None and tok.number is None and tok.text in _UNITS and _UNITS[tok.text] < 10


def _read_words(raw: list[_Tok]) -> list[_Tok]:
    """Number words ("twenty-four", "a hundred and five", "four three two one") -> numbers."""
    out: list[_Tok] = []
    i = 0
    while i < len(raw):
        tok = raw[i]
        nxt = raw[i + 1] if i + 1 < len(raw) else None
        if tok.number is not None and nxt is not None and nxt.text in _SCALES:
            out.append(_Tok(nxt.text, tok.number * _SCALES[nxt.text]))
            i += 2
            continue
        if _is_unit_word(tok) and _is_unit_word(nxt):  # digits read one by one
            j = i
            while j < len(raw) and _is_unit_word(raw[j]):
                j += 1
            digits = "".join(str(_UNITS[t.text]) for t in raw[i:j])
            out.append(_Tok(digits, Decimal(digits)))
            i = j
            continue
        value, end = _read_number(raw, i)
        if value is None:
            out.append(tok)
            i += 1
            continue
        following = raw[end] if end < len(raw) else None
        alone = end == i + 1 and (following is None or following.text not in _UNIT_WORDS)
        if tok.text == "one" and alone:
            out.append(tok)  # "one of our advisers", "that one"
            i += 1
            continue
        out.append(_Tok(str(value), value))
        i = end
    return out


def _read_number(raw: list[_Tok], i: int) -> tuple[Decimal | None, int]:
    """Read number words from position i; (None, i) when there are none."""
    total, current, last, j = 0, 0, "", i
    while j < len(raw):
        word = raw[j].text if raw[j].number is None else ""
        nxt = raw[j + 1].text if j + 1 < len(raw) else ""
        if word in _UNITS and _UNITS[word] < 10 and last not in ("unit", "teen"):
            current, last = current + _UNITS[word], "unit"
        elif word in _UNITS and last in ("", "hundred", "scale"):
            current, last = current + _UNITS[word], "teen"
        elif word in _TENS and last in ("", "hundred", "scale"):
            current, last = current + _TENS[word], "tens"
        elif word == "hundred" and last in ("unit", "teen", "a"):
            current, last = max(current, 1) * 100, "hundred"
        elif word in _SCALES and last in ("unit", "teen", "tens", "hundred", "a"):
            total, current, last = total + max(current, 1) * _SCALES[word], 0, "scale"
        elif word == "a" and last == "" and nxt in ({"hundred"} | set(_SCALES)):
            last = "a"
        elif (word == "and" and last in ("hundred", "scale") and _starts_number(nxt)) or (
            word == "-" and last == "tens" and nxt in _UNITS and _UNITS[nxt] < 10
        ):
            pass  # "a hundred and five", "twenty-four"
        else:
            break
        j += 1
    if last in ("", "a"):
        return None, i
    value = Decimal(total + current)
    if j + 1 < len(raw) and raw[j].text == "point" and _is_unit_word(raw[j + 1]):
        k = j + 1
        while k < len(raw) and _is_unit_word(raw[k]):
            k += 1
        value += Decimal("0." + "".join(str(_UNITS[t.text]) for t in raw[j + 1 : k]))
        j = k
    return value, j


def _starts_number(word: str) -> bool:
    return word in _UNITS or word in _TENS


def _join_digit_runs(toks: list[_Tok]) -> list[_Tok]:
    """ "4 3 2 1" (card digits read one by one) -> one number 4321."""
    out: list[_Tok] = []
    for tok in toks:
        if tok.single_digit and out and out[-1].single_digit and out[-1].number is not None:
            digits = out[-1].text + tok.text
            out[-1] = _Tok(digits, Decimal(digits), True)
        else:
            out.append(tok)
    return out


def values_in(text: str) -> frozenset[Value]:
    """Every number `text` states, classified by the words around it."""
    toks = tokens(text)
    found: set[Value] = set()
    skip: set[int] = set()
    for i, tok in enumerate(toks):
        if tok.number is None or i in skip:
            continue
        prev = toks[i - 1].text if i > 0 else ""
        before = toks[i - 2].text if i > 1 else ""
        after = [t.text for t in toks[i + 1 : i + 4]] + ["", "", ""]
        number = tok.number
        if prev == "£" or after[0] in MONEY_MAJOR:
            pence = _pence_after(toks, i + (0 if prev == "£" else 1))
            if pence is not None:
                number, index = number + pence[0] / 100, pence[1]
                skip.add(index)
            found.add(Value("money", _key(number)))
        elif after[0] in MONEY_MINOR:
            found.add(Value("money", _key(number / 100)))
        elif after[0] in PERCENT:
            found.add(Value("percent", _key(number)))
        elif _day(number) and (after[0] in MONTHS or (after[0] == "of" and after[1] in MONTHS)):
            month = after[0] if after[0] in MONTHS else after[1]
            found.add(Value("date", f"{int(number)}-{MONTHS[month]}"))
        elif _day(number) and (prev in MONTHS or (prev == "the" and before in MONTHS)):
            month = prev if prev in MONTHS else before
            found.add(Value("date", f"{int(number)}-{MONTHS[month]}"))
        elif after[0] in TIME_UNITS or (after[0] in _QUALIFIERS and after[1] in TIME_UNITS):
            found.add(Value("quantity", _key(number)))
        else:
            found.add(Value("number", _key(number)))
    return frozenset(found)


def _pence_after(toks: list[_Tok], unit_index: int) -> tuple[Decimal, int] | None:
    """The pence of "2 pounds 50", "2 pounds and 50 pence", "£2 50p" (not "£2 for 5 days")."""
    j = unit_index + 1
    if j < len(toks) and toks[j].text == "and":
        j += 1
    if j >= len(toks) or toks[j].number is None:
        return None
    pence = toks[j].number
    nxt = toks[j + 1].text if j + 1 < len(toks) else ""
    if pence is None or pence != pence.to_integral_value() or not 0 < pence < 100:
        return None
    if nxt in MONEY_MINOR or (nxt not in TIME_UNITS | _QUALIFIERS | PERCENT | MONEY_MAJOR):
        return pence, j
    return None


def _day(number: Decimal) -> bool:
    return number == number.to_integral_value() and 1 <= number <= 31


class Grounding:
    """The values a turn may state: from the plan's facts, templates and tool results."""

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self._exact: set[Value] = set()
        self._keys: set[str] = set()
        self.add(texts)

    def add(self, texts: Iterable[str]) -> None:
        """Ground everything these texts state (facts, allowed values, tool answers)."""
        for text in texts:
            for value in values_in(text):
                self._exact.add(value)
                if value.kind == "date":
                    self._keys.add(value.key.split("-")[0])
                else:
                    self._keys.add(value.key)

    def ungrounded(self, text: str) -> list[Value]:
        """The values `text` states that nothing of this turn grounds."""
        return sorted(
            (v for v in values_in(text) if not self._allows(v)), key=lambda v: (v.kind, v.key)
        )

    def _allows(self, value: Value) -> bool:
        if value in self._exact:
            return True
        if value.kind == "number":
            return value.key in self._keys
        if value.kind == "date":
            return False
        return Value("number", value.key) in self._exact
