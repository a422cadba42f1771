"""Redaction of callers' personal data before anything is stored or logged.

Transcripts, event logs, QA reports and server logs outlive the call and are read by people
who must never see a card number, PIN or date of birth (PCI DSS, GDPR). Whisper writes a
spoken number as digits or as words ("four five three nine", "double two", "nineteen
eighty-two"), so the text is first normalised into digits with a map back to the original
characters; digit runs and dates are then classified by length, shape, Luhn checksum and
nearby context words, and the original characters are replaced by a tag ("[card number]").

Two properties shape the rules. Redaction fails closed: on an internal error every digit and
number word is masked rather than the text kept. And it is idempotent: context only ever adds
redaction, context windows stop at an earlier tag, a tag normalises to a word character (as
the span edges it replaced were), and the words a tag may replace never count as content, so
redacting a redacted string changes nothing (a property test checks this on fuzzed text).
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

from voicebot.config import PrivacyConfig

PiiKind = Literal["card_number", "account_number", "sort_code", "date_of_birth", "pin"]

TAGS: Final[dict[PiiKind, str]] = {  # in order of precedence when two overlap
    "card_number": "[card number]",
    "account_number": "[account number]",
    "sort_code": "[sort code]",
    "date_of_birth": "[date of birth]",
    "pin": "[PIN]",
}


@dataclass(frozen=True, slots=True)
class PiiSpan:
    """One piece of personal data: ``text[start:end]`` of the ORIGINAL text is a ``kind``."""

    kind: PiiKind
    start: int
    end: int

    @property
    def tag(self) -> str:
        return TAGS[self.kind]


def _words(names: str, first: int, step: int = 1) -> dict[str, int]:
    return {w: first + step * i for i, w in enumerate(names.split())}


_UNITS: Final = _words("zero one two three four five six seven eight nine", 0) | {"nought": 0}
_TEENS: Final = _words(
    "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen", 10
)
_TENS: Final = _words("twenty thirty forty fifty sixty seventy eighty ninety", 20, 10)
_ORDINALS: Final = (
    _words("first second third fourth fifth sixth seventh eighth ninth tenth", 1)
    | _words("eleventh twelfth thirteenth fourteenth fifteenth sixteenth seventeenth", 11)
    | {"eighteenth": 18, "nineteenth": 19, "twentieth": 20, "thirtieth": 30}
)
_REPEAT: Final = {"double": 2, "triple": 3}
_ZERO_LETTERS: Final = frozenset({"oh", "o"})
_NUMBER_START: Final = frozenset(_UNITS) | set(_TEENS) | set(_TENS) | set(_ORDINALS) | set(_REPEAT)
_MONTHS: Final = (
    _words("january february march april may june july august september october november", 1)
    | _words("jan feb mar apr", 1)
    | _words("jun jul aug sep oct nov dec", 6)
    | {"december": 12, "sept": 9}
)
#: Words that may surround a date given alone as an answer ("Yes, it's the 5th of March 1982").
_FILLERS: Final = _words(
    "yes yeah yep yup ok okay sure so well right um umm uh er erm err ah hmm mm oh it its it's "
    "is was that that's thats my the of on in and i i'm think believe sorry please thanks thank "
    "you a lastfour firstfour cvv",
    0,
).keys() | set(_MONTHS)


def _alternation(words: Any) -> str:
    """A regex for any of ``words``; the first-letter lookahead makes it three times faster."""
    firsts = "".join(sorted({w[0] for w in words}))
    return f"(?=[{firsts}])(?:{'|'.join(sorted(words, key=len, reverse=True))})"


_I: Final = re.IGNORECASE | re.ASCII
# A whole word as Whisper spells it. A tag's brackets count as letters, as the letter or digit
# the tag replaced did: a word glued to a tag must read the same on a second pass.
_W = r"(?<![A-Za-z\]])(?:{})(?![A-Za-z\[]|['’][A-Za-z])"
_SPECIAL_WORDS: Final = _NUMBER_START | _ZERO_LETTERS | {"last"}
_SPECIAL_RE: Final = re.compile(
    rf"(?=[\[c{''.join({w[0] for w in _SPECIAL_WORDS})}])"
    r"(?:(?P<tag>\[(?:card number|account number|sort code|date of birth|PIN)\])"
    rf"|(?P<cvv>(?<![\w\]])cv[vc]?2(?![\w\[]))|(?P<word>{_W.format(_alternation(_SPECIAL_WORDS))}))",
    _I,
)
_NEXT_RE: Final = re.compile(r"[ \t-]{0,3}([A-Za-z]+(?:['’][A-Za-z]+)*|[0-9]+)")
_SEP: Final = r"(?:\s*+(?:[,\-–—]|\.\.\.|…)\s*+|\s++|\.(?=[0-9]))"
_RUN_RE: Final = re.compile(rf"[0-9]++(?:{_SEP}[0-9]++)*+")
_PREV_NUM_RE: Final = re.compile(rf"[0-9](?:{_SEP})?\Z")
_NEXT_NUM_RE: Final = re.compile(
    rf"(?:{_SEP})?(?:[0-9]|{_W.format(_alternation(_NUMBER_START | _ZERO_LETTERS))})", _I
)
_DIGITS_RE: Final = re.compile(r"[0-9]+")
# Machine identifiers ("CA3f9e41139148243", uuids) mix letters and digits in one token; a
# spoken or typed number never does (ordinals aside), so their digits are not personal data.
_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*")
_GLUED_RE: Final = re.compile(r"[A-Za-z][0-9]|[0-9][A-Za-z]")
# Carrier ids (a Twilio SID: two capitals and 32 hex digits) are random hex, so about one
# in 150 holds a 15-digit run: never a card, even though glued digit runs otherwise are.
_SID_RE: Final = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9a-f]{32}(?![A-Za-z0-9])")
_ORDINAL_RE: Final = re.compile(r"[0-9]+(?:st|nd|rd|th)", re.I)
# IPv4 addresses in logs ("127.0.0.1") are not sort codes.
_IPV4_RE: Final = re.compile(r"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9]|\.[0-9])")
_HINT_RE: Final = re.compile(rf"[0-9]|{_W.format(_alternation(_NUMBER_START))}", _I)
_FALLBACK_RE: Final = re.compile(rf"[0-9]|{_W.format(_alternation(_NUMBER_START | {'oh'}))}", _I)
_TAG = "_"  # a tag normalises to a word character: the span edges it replaced were ones
_BIRTH = r"born\b|birth(?:day|date)?\b|d\.?\s?o\.?\s?b\b"
_CTX_RE: Final = re.compile(  # one leading \b: positions inside words are rejected at once
    r"\b(?=[abcdefilmnopsv13])(?:(?P<card>card\s*(?:numbers?|no|num)\b|long\s+number|pan\b"
    r"|card\s+details|numbers?\s+on\s+(?:the\s+)?(?:front\s+of\s+)?(?:(?:my|the|your)\s+)?card\b"
    r"|(?:debit|credit)\s+card\b)|(?P<four>(?:lastfour|firstfour)\b)"
    r"|(?P<ending>(?:ending|ends|finishing|finishes|starting|starts|beginning|begins)"
    r"(?:\s+(?:in|with|on))?\b)"
    r"|(?P<cvv>(?:cvv|cvc|csc)\b|security\s+code|3\s+digits?\s+(?:code|on\s+the\s+back))"
    r"|(?P<pin>pin\b|pass\s*(?:code|number)|security\s+number|1[- ]time\s+(?:pass\s*)?code"
    r"|otp\b|verification\s+code|memorable\s+number)|(?P<sort>sort(?:ing)?\s*-?\s*codes?\b)"
    rf"|(?P<account>account\b|acc(?:t|ount)?\s*(?:no|number)\b|a/c\b)|(?P<birth>{_BIRTH}))",
    _I,
)
_BIRTH_RE: Final = re.compile(rf"\b(?:{_BIRTH})", _I)
_CARDISH_RE: Final = re.compile(
    r"\b(?:card|account|number|digits|visa|mastercard|debit|credit)\b", _I
)
_AFTER_CTX_RE: Final = re.compile(
    r"[\s,]*+(?:(?:that's|that\s+is|which\s+is|is|was|it's|being)\s+)?(?:my|the|your)\s+", _I
)
_YEAR_BEFORE_RE: Final = re.compile(
    r"(?<!ending )(?<!ends )\b(?:in|since|from|until|till|by|year)\s+\Z", _I
)
_EXPIRY_BEFORE_RE: Final = re.compile(
    r"\b(?:expir\w*|exp|valid\s+(?:until|thru|through|to))\s+(?:date\s+)?(?:is\s+)?\Z", _I
)
_UNIT_AFTER_RE: Final = re.compile(
    r"(?:st|nd|rd|th)\b|\s*+(?:pounds?|quid|pence|p|k|grand|percent|per\s*cent|%|euros?|dollars?"
    r"|gbp|hundred|thousand|million|billion|days?|weeks?|months?|years?|hours?|hrs|minutes?|mins?"
    r"|seconds?|am|pm|a\.m|p\.m|o'clock|times|working|business)\b",
    _I,
)
_AMOUNT_RE: Final = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]{1,2})?|[0-9]+\.[0-9]{1,2}")
_MON = rf"(?P<mon>{_alternation(_MONTHS)})\b"
_THE_DAY = r"(?=[t0-9])(?:\bthe\s+)?(?<![0-9A-Za-z_])(?P<day>[0-3]?[0-9])(?:st|nd|rd|th)?\b"
_YEAR = r"(?:,?\s+(?:of\s+|in\s+)?(?P<year>[12][0-9]{3}|'?[0-9]{2})\b)?"
_EDGE = r"(?<![A-Za-z0-9_])"
_NUMERIC = r"(?P<s>[/.-])(?P<mon>\d\d?)(?P=s)"
_MONTH_RE: Final = re.compile(rf"\b{_MON}", _I)
_WORD_DATE_RES: Final = (  # the 5th of March 1982, March the 5th, 1982
    re.compile(rf"{_THE_DAY}(?:\s+of)?[\s,]+(?:of\s+)?{_MON}{_YEAR}", _I),
    re.compile(rf"{_EDGE}{_MON},?\s+{_THE_DAY}{_YEAR}", _I),
)
_NUMERIC_DATE_RES: Final = (  # 05/03/1982, 5.3.82, 1982-03-05, the 5th of the 3rd 82
    re.compile(rf"{_EDGE}(?P<day>\d\d?){_NUMERIC}(?P<year>[12]\d{{3}}|\d\d)\b", re.ASCII),
    re.compile(rf"{_EDGE}(?P<year>[12]\d{{3}}){_NUMERIC}(?P<day>\d\d?)\b", re.ASCII),
    re.compile(rf"{_THE_DAY}\s+of\s+the\s+(?P<mon>[01]?[0-9])(?:st|nd|rd|th)\b{_YEAR}", _I),
)
_WORD_RE: Final = re.compile(r"(?<![A-Za-z0-9_])[A-Za-z]+(?:['’][A-Za-z]+)*")

Found = list[tuple[PiiKind, int, int]]  # spans over the normalised text


def luhn_valid(digits: str) -> bool:
    """The card-number checksum: a random 16-digit string passes one time in ten."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = (ord(ch) - 48) * (1 + i % 2)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


class _Normalised:
    """The text with spoken numbers as digits, and each character's original offsets.

    Only the words that can start a number are looked at; everything else is copied as is,
    which keeps a 40-word turn well under a millisecond.
    """

    def __init__(self, text: str) -> None:
        self.src, self.size = text, 0
        self.parts: list[str] = []
        self.at_norm: list[int] = []  # where each part starts in the normalised text
        self.at_src: list[tuple[int, int, bool]] = []  # its original start, end, copied as is
        pos = 0
        while m := _SPECIAL_RE.search(text, pos):
            self._copy(pos, m.start())
            pos, word = m.end(), m[0].lower()
            if m["tag"] or m["cvv"]:
                self._emit(_TAG if m["tag"] else "cvv", m.start(), m.end())
            elif word in ("last", "first") and self._at(pos)[0] in ("four", "4"):
                pos = self._at(pos)[2]  # "last four 1234" must not read as the digits 41234
                self._emit(word + "four", m.start(), pos)
            elif word in _NUMBER_START and (parsed := self._parse(word, pos)):
                self._emit(parsed[0], m.start(), parsed[1])
                pos = parsed[1]
            elif word in _ZERO_LETTERS and self._among_digits(pos):
                self._emit("0", m.start(), pos)
            else:
                self._copy(m.start(), pos)
        self._copy(pos, len(text))
        self.text = "".join(self.parts)

    def _among_digits(self, end: int) -> bool:
        """Whether the "oh" ending at ``end`` is a zero: it sits next to another digit."""
        before = "".join(self.parts[-2:])[-12:]
        return bool(_PREV_NUM_RE.search(before) or _NEXT_NUM_RE.match(self.src, end))

    def _copy(self, start: int, end: int) -> None:
        self._emit(self.src[start:end], start, end, True)

    def _emit(self, piece: str, start: int, end: int, copied: bool = False) -> None:
        if piece:
            self.parts.append(piece)
            self.at_norm.append(self.size)
            self.at_src.append((start, end, copied))
            self.size += len(piece)

    def original(self, start: int, end: int) -> tuple[int, int]:
        """The original characters behind ``text[start:end]`` (whole number phrases)."""
        i, j = bisect_right(self.at_norm, start) - 1, bisect_right(self.at_norm, end - 1) - 1
        (a, _, copied_a), (b0, b, copied_b) = self.at_src[i], self.at_src[j]
        return (
            a + start - self.at_norm[i] if copied_a else a,
            b0 + end - self.at_norm[j] if copied_b else b,
        )

    def _at(self, pos: int) -> tuple[str, int, int]:
        """The word (lower case) or digits after ``pos``, across a space or hyphen, and its end."""
        m = _NEXT_RE.match(self.src, pos)
        return (m[1].lower(), m.start(1), m.end()) if m else ("", pos, pos)

    def _below100(self, w: str, end: int) -> tuple[int, int] | None:
        if w in _UNITS or w in _TEENS:
            return _UNITS.get(w, _TEENS.get(w, 0)), end
        if w not in _TENS:
            return None
        unit, _, after = self._at(end)
        return (_TENS[w] + _UNITS[unit], after) if _UNITS.get(unit) else (_TENS[w], end)

    def _below1000(self, w: str, end: int) -> tuple[int, int, bool] | None:
        if (first := self._below100(w, end)) is None:
            return None
        word, _, after = self._at(first[1])
        if word != "hundred":
            return first[0], first[1], False
        rest = self._after_and(after)
        return first[0] * 100 + (rest[0] if rest else 0), rest[1] if rest else after, True

    def _after_and(self, end: int) -> tuple[int, int] | None:
        word, _, after = self._at(end)
        if word == "and":
            word, _, after = self._at(after)
        parsed = self._below1000(word, after)
        return (parsed[0], parsed[1]) if parsed else None

    def _parse(self, w: str, end: int) -> tuple[str, int] | None:
        """The digits of a number phrase whose first word ``w`` ends at ``end``, and its end."""
        nxt, _, after = self._at(end)
        if w in _UNITS and nxt not in ("hundred", "thousand"):  # the common case: a digit
            return str(_UNITS[w]), end
        if w in _REPEAT:  # "double four", "triple oh", "double 4"
            if nxt in _UNITS or nxt in _ZERO_LETTERS or (nxt.isdigit() and len(nxt) == 1):
                return str(_UNITS.get(nxt, 0) if not nxt.isdigit() else nxt) * _REPEAT[w], after
            return None
        if w in _ORDINALS:
            return _ordinal(_ORDINALS[w]), end
        if w in _TENS and _ORDINALS.get(nxt, 10) < 10:  # "twenty-first"
            return _ordinal(_TENS[w] + _ORDINALS[nxt]), after
        if (parsed := self._below1000(w, end)) is None:
            return None
        value, end, big = parsed
        nxt, _, after = self._at(end)
        if nxt == "thousand":  # "two thousand and five", "three thousand"
            rest = self._after_and(after)
            value = value * 1000 + (rest[0] if rest else 0)
            # "250,000": an amount (never how an account or sort code is read out), not a year
            return f"{value:,}" if value >= 10_000 else str(value), rest[1] if rest else after
        if not big and 10 <= value <= 99:  # "nineteen eighty-two", "twenty oh five"
            if (nxt in _TEENS or nxt in _TENS) and (pair := self._below100(nxt, after)):
                return f"{value}{pair[0]:02d}", pair[1]
            unit, _, last = self._at(after)
            if nxt in _ZERO_LETTERS and unit in _UNITS:
                return f"{value}0{_UNITS[unit]}", last
        return str(value), end


def _ordinal(n: int) -> str:
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10 if n not in (11, 12, 13) else 0, 'th') }"


class Redactor:
    """Finds and replaces card numbers, account numbers, sort codes, dates of birth and PINs.

    ``today`` fixes the current year (for "a year up to now") in tests.
    """

    def __init__(self, config: PrivacyConfig, *, today: date | None = None) -> None:
        self._config = config
        self._year = (today or date.today()).year
        c = config
        flags = (c.card_numbers, c.account_numbers, c.sort_codes, c.dates_of_birth, c.pins)
        self._on: dict[PiiKind, bool] = dict(zip(TAGS, flags, strict=True))

    def redact(self, text: str) -> str:
        """``text`` with each piece of personal data replaced by its tag; never raises."""
        try:
            spans = self._spans(text)
        except Exception:  # fail closed: a bug here must not leak a card number into a log
            return _FALLBACK_RE.sub("*", text) if isinstance(text, str) else text
        out, at = [], 0
        for span in spans:
            out += [text[at : span.start], span.tag]
            at = span.end
        return "".join(out) + text[at:] if spans else text

    def find(self, text: str) -> list[PiiSpan]:
        """The personal data in ``text``: ordered, non-overlapping spans of the original text.

        For tests and debugging; [] on an internal error (``redact`` fails closed instead).
        """
        try:
            return self._spans(text)
        except Exception:
            return []

    def redact_dtmf(self, digit: str) -> str:
        """A key press as it may be stored: masked with "*" unless it is 0, * or # (menus)."""
        if not self._config.enabled or self._config.dtmf == "none" or not isinstance(digit, str):
            return digit
        return "".join(c if c in "0*#" else "*" for c in digit)

    def redact_json(self, value: Any, _depth: int = 0) -> Any:
        """A deep copy of a JSON-like value with every string redacted (dict keys untouched)."""
        if isinstance(value, str):
            return self.redact(value)
        if _depth > 100:  # deeper than any event we write: drop it rather than recurse
            return "[redacted]"
        if isinstance(value, dict):
            return {k: self.redact_json(v, _depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            items = [self.redact_json(v, _depth + 1) for v in value]
            return tuple(items) if isinstance(value, tuple) else items
        return value  # numbers, booleans, None: immutable

    # -- detection -----------------------------------------------------------------------

    def _spans(self, text: str) -> list[PiiSpan]:
        if not self._config.enabled or not isinstance(text, str) or not _HINT_RE.search(text):
            return []
        norm = _Normalised(text)
        t, found = norm.text, Found()
        date_res = _NUMERIC_DATE_RES + (_WORD_DATE_RES if _MONTH_RE.search(t) else ())
        matches = [m for rx in date_res for m in rx.finditer(t)]
        # A date is "alone" when every other word is a filler; dates only add fillers.
        alone = bool(matches) and all(
            w[0].lower().replace("’", "'") in _FILLERS for w in _WORD_RE.finditer(t)
        )
        masked = bytearray(len(t))  # 1: inside a date, 2: inside an identifier
        for tok in _TOKEN_RE.finditer(t):
            if _GLUED_RE.search(tok[0]) and not _ORDINAL_RE.fullmatch(tok[0]):
                masked[tok.start() : tok.end()] = b"\x02" * (tok.end() - tok.start())
        sids = [(sid.start(), sid.end()) for sid in _SID_RE.finditer(t)]
        for ip in _IPV4_RE.finditer(t):
            masked[ip.start() : ip.end()] = b"\x02" * (ip.end() - ip.start())
        for m in matches:
            if (dob := self._date(t, m, alone)) is not None:
                masked[m.start() : m.end()] = b"\x01" * (m.end() - m.start())
                if dob and self._on["date_of_birth"]:
                    found.append(("date_of_birth", m.start(), m.end()))
        for run in _RUN_RE.finditer(t):
            digits = "".join(_DIGITS_RE.findall(run[0]))  # cards fail closed, even in ids
            if any(a <= run.start() and run.end() <= b for a, b in sids):
                continue  # inside a carrier id
            if self._on["card_number"] and (
                len(digits) >= 15 or (len(digits) >= 13 and luhn_valid(digits))
            ):
                found.append(("card_number", run.start(), run.end()))  # beats a date inside it
                continue
            groups: list[tuple[int, int]] = []
            for g in (*_DIGITS_RE.finditer(t, run.start(), run.end()), None):
                if g is not None and not any(masked[g.start() : g.end()]):
                    groups.append(g.span())
                elif groups:  # a date splits a run: "12345678 5 March" is two things
                    found += self._classify(t, groups)
                    groups = []
        spans: list[PiiSpan] = []
        for kind, a, b in sorted(found, key=lambda f: (f[1], -f[2])):
            start, end = norm.original(a, b)
            if spans and start < spans[-1].end:  # overlaps: one tag, the kind listed first
                last = spans[-1]
                keep = min(last.kind, kind, key=list(TAGS).index)
                spans[-1] = PiiSpan(keep, last.start, max(end, last.end))
            else:
                spans.append(PiiSpan(kind, start, end))
        return spans

    @staticmethod
    def _window(t: str, start: int, size: int) -> int:
        """Where context before ``start`` begins: ``size`` characters back, or an earlier tag."""
        return max(start - size, t.rfind(_TAG, max(0, start - size), start) + 1, 0)

    def _date(self, t: str, m: re.Match[str], alone: bool) -> bool | None:
        """None: not a valid date; True: a date of birth; False: some other date."""
        day, mon, year_s = int(m["day"]), m["mon"], (m["year"] or "").lstrip("'")
        month = int(mon) if mon.isdigit() else _MONTHS[mon.lower()]
        if not (1 <= month <= 12 and 1 <= day <= 31) and not (1 <= day <= 12 and 1 <= month <= 31):
            return None  # a numeric date may be in US order; either way it must be real
        tag = t.find(_TAG, m.end(), m.end() + 40)
        after = _BIRTH_RE.search(t, m.end(), tag if tag >= 0 else m.end() + 40)
        birth = bool(after or _BIRTH_RE.search(t, self._window(t, m.start(), 60), m.start()))
        if not year_s or birth:
            return birth
        year = int(year_s)
        if len(year_s) == 2:
            if "s" in m.re.groupindex and m["s"] != "/":
                return None  # "01-02-03" is a sort code unless someone was born then
            year += 2000 if 2000 + year <= self._year else 1900
        if not 1900 <= year <= self._year:
            return False
        return year <= self._year - 16 or alone

    def _classify(self, t: str, groups: list[tuple[int, int]]) -> Found:
        """What one run of digits is, from its length, shape, checksum and context."""
        start, end = groups[0][0], groups[-1][1]
        digits = "".join(t[a:b] for a, b in groups)
        n, lo = len(digits), self._window(t, start, 60)
        if n < 3 or n >= 15 or (n >= 13 and luhn_valid(digits)):
            return self._only("card_number", start, end) if n >= 13 else []
        before = t[max(0, start - 4) : start].rstrip()[-1:]
        year_like = n == 4 and 1900 <= int(digits) < 2100
        if n < 13 and (
            (before and before in "£$€")
            or _UNIT_AFTER_RE.match(t, end)
            or _AMOUNT_RE.fullmatch(t, start, end)  # "1,500", "20.50"
            or (n == 4 and year_like and _YEAR_BEFORE_RE.search(t, lo, start))
            or (n in (4, 6) and _EXPIRY_BEFORE_RE.search(t, lo, start))
        ):
            return []  # an amount, a time, a year, an expiry: "3000 pounds", "in 2024"
        contexts = [(c.lastgroup, c.start()) for c in _CTX_RE.finditer(t, lo, start)][::-1]
        if (after := _AFTER_CTX_RE.match(t, end)) and (fwd := _CTX_RE.match(t, after.end())):
            contexts.insert(0, (fwd.lastgroup, fwd.start()))  # "1234 is my PIN"
        if n >= 13:  # not Luhn-valid: a card number misheard, or two numbers in one breath
            card = self._on["card_number"] and any(c == "card" for c, _ in contexts)
            return self._only("card_number", start, end) if card else self._split(groups)
        cardish = [m[0].lower() for m in _CARDISH_RE.finditer(t, lo, start)]
        ending: PiiKind = "account_number" if cardish[-1:] == ["account"] else "card_number"
        sort_shape = len(groups) == 3 and all(b - a == 2 for a, b in groups)
        rules: dict[str | None, tuple[PiiKind, bool]] = {
            "card": ("card_number", n >= 8),
            "four": ("card_number", n == 4),  # "last four 1234": a partial card number
            "ending": (ending, n == 4 and (bool(cardish) or not year_like)),  # "ending in 5678"
            "pin": ("pin", 4 <= n <= 6),
            "cvv": ("pin", 3 <= n <= 4),
            "sort": ("sort_code", n == 6),
            "account": ("account_number", 6 <= n <= 12 and not sort_shape),
            "birth": ("date_of_birth", n in (6, 8) and _compact_date(digits)),
        }
        for ctx, _ in contexts:  # the nearest context that fits (and is switched on) decides
            kind, applies = rules[ctx]
            if applies and self._on[kind]:
                return [(kind, start, end)]
        if sort_shape or n == 6:
            return self._only("sort_code", start, end)
        return self._only("account_number", start, end) if n == 8 else []

    def _only(self, kind: PiiKind, start: int, end: int) -> Found:
        return [(kind, start, end)] if self._on[kind] else []

    def _split(self, groups: list[tuple[int, int]]) -> Found:
        """14 digits said in one breath: a sort code and an account number, in either order."""
        count = 0
        for i, (a, b) in enumerate(groups[:-1]):
            count += b - a
            if count in (6, 8) and sum(y - x for x, y in groups) == 14:
                head: PiiKind = "sort_code" if count == 6 else "account_number"
                tail: PiiKind = "account_number" if count == 6 else "sort_code"
                tail_span = (groups[i + 1][0], groups[-1][1])
                return self._only(head, groups[0][0], b) + self._only(tail, *tail_span)
        return []


def _compact_date(digits: str) -> bool:
    """Whether "05031982" or "050382" reads as a day and a month (then a year)."""
    return 1 <= int(digits[:2]) <= 31 and 1 <= int(digits[2:4]) <= 12


class RedactingFilter(logging.Filter):
    """A handler filter that redacts each record's final message (format args included).

    It rewrites the record in place (``msg`` becomes the redacted message, ``args`` None) and
    pre-renders a redacted traceback, because exception messages often quote the caller. It
    never raises and never drops a record: a lost log line hides more than it protects.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            try:
                message = record.getMessage()
            except Exception:  # bad format args: keep what there is, redacted
                message = f"{record.msg} {record.args!r}"
            record.msg, record.args = self._redactor.redact(message), None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self._redactor.redact(record.exc_text)
            if record.stack_info:
                record.stack_info = self._redactor.redact(record.stack_info)
        except Exception:
            pass
        return True
