"""Reading identity details out of what a caller says: account numbers and birth dates.

Callers read numbers in many ways ("1234 5678", "one two three four...", "double
four", "oh" for zero, "twelve thirty four") and Whisper writes them back in as many.
These parsers turn a transcript into the canonical form the account store checks,
or None, so the policy can ask again instead of guessing.
"""

from __future__ import annotations

import re
from datetime import date

_UNITS = {
    "zero": 0,
    "oh": 0,
    "o": 0,
    "nought": 0,
    "nil": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "for": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "ate": 8,
    "nine": 9,
}
_TEENS = {
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_ORDINALS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "eleventh": 11,
    "twelfth": 12,
    "thirteenth": 13,
    "fourteenth": 14,
    "fifteenth": 15,
    "sixteenth": 16,
    "seventeenth": 17,
    "eighteenth": 18,
    "nineteenth": 19,
    "twentieth": 20,
    "thirtieth": 30,
}
_MONTHS = {
    name: i + 1
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ]
    )
    for name in names
}
_REPEAT = {"double": 2, "triple": 3}
_FILLER = {"and", "my", "is", "it's", "its", "the", "number", "account", "uh", "um", "er"}


def _tokens(text: str) -> list[str]:
    text = text.lower().replace("-", " ").replace(",", " ")
    return re.findall(r"\d+(?:st|nd|rd|th)?|[a-z']+", text)


def spoken_digits(text: str) -> str:
    """Every digit the caller said, in order: "double four 1 two" -> "4412".

    Number words count by their digits ("twelve thirty four" -> "1234"), so a caller who
    reads an account number in pairs is understood. Other words are skipped."""
    out: list[str] = []
    repeat = 1
    tokens = _tokens(text)
    i = 0
    while i < len(tokens):
        word = tokens[i]
        if word.isdigit():
            out.append(word * repeat if len(word) == 1 else word)
            repeat = 1
        elif word in _REPEAT:
            repeat = _REPEAT[word]
        elif word in _UNITS and not (
            word in ("o", "for", "ate")
            and not out
            and repeat == 1
            and i + 1 < len(tokens)
            and tokens[i + 1] not in _UNITS
        ):
            out.append(str(_UNITS[word]) * repeat)
            repeat = 1
        elif word in _TEENS:
            out.append(str(_TEENS[word]))
        elif word in _TENS:
            value = _TENS[word]
            if i + 1 < len(tokens) and tokens[i + 1] in _UNITS and _UNITS[tokens[i + 1]]:
                value += _UNITS[tokens[i + 1]]
                i += 1
            out.append(str(value))
        i += 1
    return "".join(out)


def account_number(text: str, length: int = 8) -> str | None:
    """An account number of exactly `length` digits in the turn, or None."""
    digits = spoken_digits(text)
    return digits if len(digits) == length else None


def _number(tokens: list[str], i: int) -> tuple[int, int] | None:
    """A day number at tokens[i] ("14", "14th", "fourteenth", "twenty first") -> (n, used)."""
    word = tokens[i]
    match = re.fullmatch(r"(\d{1,2})(st|nd|rd|th)?", word)
    if match:
        return int(match.group(1)), 1
    if word in _ORDINALS:
        return _ORDINALS[word], 1
    if word in _TEENS:
        return _TEENS[word], 1
    if word in _TENS:
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if nxt in _ORDINALS and _ORDINALS[nxt] < 10:
            return _TENS[word] + _ORDINALS[nxt], 2
        if _UNITS.get(nxt):
            return _TENS[word] + _UNITS[nxt], 2
        return _TENS[word], 1
    if _UNITS.get(word):
        return _UNITS[word], 1
    return None


def _year(tokens: list[str], i: int) -> int | None:
    """A year from tokens[i:] ("1985", "nineteen eighty five", "two thousand and one")."""
    rest = tokens[i : i + 5]
    if not rest:
        return None
    if re.fullmatch(r"(19|20)\d\d", rest[0]):
        return int(rest[0])
    if rest[0] in ("nineteen", "twenty") and len(rest) > 1:
        century = 1900 if rest[0] == "nineteen" else 2000
        low = _number(rest, 1)
        if low is not None and low[0] < 100:
            return century + low[0]
    if rest[:2] == ["two", "thousand"]:
        tail = [w for w in rest[2:] if w != "and"]
        low = _number(tail, 0) if tail else None
        return 2000 + (low[0] if low else 0)
    return None


def birth_date(text: str) -> date | None:
    """A full date of birth (day, month and year) in the turn, or None."""
    numeric = re.search(r"\b(\d{1,2})[/.\- ](\d{1,2})[/.\- ]((?:19|20)\d\d)\b", text)
    if numeric:
        day, month, year = (int(g) for g in numeric.groups())
        return _valid(year, month, day)
    iso = re.search(r"\b((?:19|20)\d\d)-(\d\d)-(\d\d)\b", text)
    if iso:
        year, month, day = (int(g) for g in iso.groups())
        return _valid(year, month, day)
    tokens = [t for t in _tokens(text) if t not in ("of", "the")]
    for m, word in enumerate(tokens):
        if word not in _MONTHS:
            continue
        month = _MONTHS[word]
        before = _day_before(tokens, m)
        after = _number(tokens, m + 1) if m + 1 < len(tokens) else None
        if before is not None:
            spoken_year = _year(tokens, m + 1)
            if spoken_year is not None:
                return _valid(spoken_year, month, before)
        if after is not None and after[0] <= 31:
            spoken_year = _year(tokens, m + 1 + after[1])
            if spoken_year is not None:
                return _valid(spoken_year, month, after[0])
    return None


def _day_before(tokens: list[str], m: int) -> int | None:
    for back in (2, 1):
        if m - back >= 0:
            found = _number(tokens, m - back)
            if found is not None and found[1] == back and found[0] <= 31:
                return found[0]
    return None


def _valid(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def pin_digits(text: str, length: int = 4) -> str | None:
    """A PIN of `length` digits said aloud (the policy prefers the keypad for PINs)."""
    digits = spoken_digits(text)
    return digits if len(digits) == length else None
