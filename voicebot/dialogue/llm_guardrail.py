"""What an LLM sentence must pass before a caller hears it, and how the stream is cut.

The reply engine streams a model's text, cuts it into sentences (`SentenceSplitter`),
and hands each to these checks before it is spoken:

- `clean_for_voice`: the text is read by a TTS voice, so "£2.50" becomes "2 pounds 50",
  "%" becomes "percent", markdown and emoji go; a URL or an e-mail address cannot be
  said well at all and fails the sentence.
- `looks_like_account_fact`: while the caller is not verified no sentence may state a
  balance, a transaction, a card or account number, even one whose numbers happen to
  appear in the public facts ("Your balance is 5 pounds" when a fee is 5 pounds).
- `claims_verification`: nor may a model, talked round by a caller, tell an unverified
  caller that they are verified.
- `names_a_secret`: a PIN, password or security code is never said, verified or not.

When a sentence fails, what the model said so far stays said; `uncovered` picks the
template sentences whose content the caller has not heard yet, so the fallback does
not repeat what was already spoken (and repeats rather than drops when unsure).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from decimal import Decimal

from voicebot.dialogue.grounded import UNSPEAKABLE, say_money
from voicebot.dialogue.llm_values import Grounding, tokens, values_in

_URL = re.compile(r"https?://|www\.|\b[\w.+-]+@[\w-]+\.[\w.]+|\]\(", re.I)
_POUNDS = re.compile(r"£\s?(\d{1,3}(?:,\d{3})+|\d+)(\.\d{1,2})?(?!\d)")
_PERCENT = re.compile(r"(\d)\s?%")
_LIST_MARK = re.compile(r"^\s*(?:[-*•>#]+|\d+[.)])\s+")
_DROP = str.maketrans({c: " " for c in "*_#`~|^\\<>{}[]=/"})

_ACCOUNT_WORDS = re.compile(
    r"\b(?:balance(?!s? transfers?)|balances|available (?:balance|funds|credit)|overdrawn"
    r"|transactions?|spent|spending|ending (?:in|with)|ends (?:in|with)"
    r"|last (?:4|few) (?:digits|numbers)|account number|card number|sort code"
    r"|credit limit|outstanding|owe|owed|owes|salary|deposited|withdrew|withdrawn"
    r"|(?:last|latest|recent|most recent) (?:payment|transaction|deposit|withdrawal)s?)\b"
)
_STATEMENT = re.compile(
    r"\byour (?:current |savings |joint |available |account |card |credit card )*"
    r"(?:balance|transactions?|statement|spending|account number|card number|sort code"
    r"|credit limit|overdraft)\b (?:is|was|are|were|stands|shows|reads|comes|of|at|has)\b"
)
_HOLDING = re.compile(
    r"\byou(?:'ve| have)(?: got)?\b|\byou (?:owe|spent|paid|received)\b|\bavailable\b"
)
_IN_ACCOUNT = re.compile(r"\b(?:in|on|into|from) (?:your|the|this|that) (?:\w+ )?account\b")
_DIGITS_NEAR = re.compile(r"\b(?:account|card|digits|ending|ends|iban)\b(?: \S+){0,3}? \d{4,}\b")
#: Eight digits or more: an account number (8), a card number (16), an IBAN's digits.
_LONG_NUMBER = re.compile(r"(?<![\d.])\d{8,}(?![\d.])")
_SECRET = re.compile(
    r"\b(?:pin|password|passcode|passcodes|security code|cvv|cvc)\b(?: \S+){0,4}? \d{3,}\b"
)
_CLAIMS_VERIFIED = re.compile(
    r"^(?:ok(?:ay)?,? |great,? |thanks?,? )?verified\b"
    r"|\byou(?:'re| are|'ve been| have been) (?:now |successfully |fully )?(?:verified|confirmed)\b"
    r"|\byour identity (?:has been|is now|is) (?:confirmed|verified)\b"
)
_CONDITIONAL = re.compile(r"\b(?:once|when|after|until|if|before|unless)\b")


def _numeric_text(text: str) -> str:
    """Lower-case words with number words as digits: "ending in four three two one" ->
    "ending in 4321", so the patterns below need to know only one way of writing."""
    return " ".join(tok.text if tok.number is None else str(tok.number) for tok in tokens(text))


def clean_for_voice(sentence: str) -> str | None:
    """The sentence as the voice should read it; None when it cannot be said (a URL)."""
    if _URL.search(sentence):
        return None
    text = _LIST_MARK.sub("", sentence)
    text = _POUNDS.sub(_say_pounds, text)
    text = _PERCENT.sub(r"\1 percent", text).replace("&", " and ").translate(_DROP)
    text = "".join(
        c for c in text if c.isspace() or c in "£$€" or unicodedata.category(c)[0] not in "SC"
    )
    text = re.sub(r"\s+([,.;:?!])", r"\1", " ".join(text.split())).strip(" -:;,")
    if any(mark in text.lower() for mark in UNSPEAKABLE):
        return None
    return text if any(c.isalnum() for c in text) else ""


def _say_pounds(match: re.Match[str]) -> str:
    amount = Decimal(match.group(1).replace(",", "") + (match.group(2) or ""))
    try:
        return say_money(amount.quantize(Decimal("0.01")))
    except ValueError:
        return f"{amount} pounds"


def looks_like_account_fact(sentence: str) -> bool:
    """True when the sentence states something only a verified caller may hear."""
    text = _numeric_text(sentence)
    values = values_in(sentence)
    money = any(v.kind == "money" for v in values)
    dated = any(v.kind == "date" for v in values)
    return bool(
        (values and _ACCOUNT_WORDS.search(text))
        or (money and dated)  # "On the 26th of November, 42 pounds 10 to Tesco."
        or _STATEMENT.search(text)
        or (money and (_HOLDING.search(text) or _IN_ACCOUNT.search(text)))
        or _DIGITS_NEAR.search(text)
        or _LONG_NUMBER.search(text)
    )


def claims_verification(sentence: str) -> bool:
    """True when the sentence tells the caller they are verified ("You're verified now")."""
    text = " ".join(sentence.lower().replace("\u2019", "'").split())
    return bool(_CLAIMS_VERIFIED.search(text)) and not _CONDITIONAL.search(text)


def names_a_secret(sentence: str) -> bool:
    """True when the sentence says a PIN, password or security code."""
    return bool(_SECRET.search(_numeric_text(sentence)))


# ---------------------------------------------------------------------- sentences

_BOUNDARY = re.compile(r"[.?!]+[\"')\]]*\s+|\n+")
_THINK = re.compile(r"<think>.*?</think>", re.S)
_ABBREVIATIONS = frozenset({"mr.", "mrs.", "ms.", "dr.", "e.g.", "i.e.", "vs."})


class SentenceSplitter:
    """Cuts streamed text into sentences, each released only once it is complete.

    A sentence ends at ., ? or ! followed by white space (so "2.50" is not cut), or at
    a line break. Reasoning a model writes between ``<think>`` tags is never released.
    """

    def __init__(self) -> None:
        self._buffer = ""

    def feed(self, text: str) -> list[str]:
        """Sentences completed by `text`."""
        self._buffer += text
        return self._take(final=False)

    def flush(self) -> list[str]:
        """What is left at the end of the stream, as a last sentence."""
        return self._take(final=True)

    def _take(self, *, final: bool) -> list[str]:
        buffer = _THINK.sub(" ", self._buffer)
        thinking = buffer.find("<think>")
        searchable = buffer if thinking < 0 else buffer[:thinking]
        out: list[str] = []
        start = 0
        for match in _BOUNDARY.finditer(searchable):
            head = searchable[start : match.end()].strip()
            words = head.lower().split()
            if words and words[-1] in _ABBREVIATIONS:
                continue
            if head:
                out.append(head)
            start = match.end()
        self._buffer = buffer[start:]
        if final:
            rest = searchable[start:].strip()
            if rest:
                out.append(rest)
            self._buffer = ""
        return out


_STOP_WORDS = (
    "that", "this", "with", "your", "have", "will", "from", "they", "them", "then",
    "than", "there", "their", "what", "when", "which", "would", "could", "should",
    "about", "into", "been", "being", "were", "also", "just", "only", "very", "more",
    "some", "such", "each", "other",
)  # fmt: skip
_STOP = frozenset(_STOP_WORDS)


def _content_words(text: str) -> set[str]:
    words = re.findall(r"[a-z]+", text.lower())
    return {w.rstrip("s") for w in words if len(w) > 3 and w not in _STOP}


def uncovered(template: Sequence[str], spoken: Sequence[str]) -> list[str]:
    """Template sentences whose content the spoken sentences have not conveyed.

    A template sentence counts as said when every number in it was spoken and enough
    of its content words were; the bar is low for a sentence with numbers (they are
    the point of it) and higher for one without.
    """
    if not spoken:
        return list(template)
    said = " ".join(spoken)
    said_values, said_words = Grounding([said]), _content_words(said)
    out = []
    for sentence in template:
        words = _content_words(sentence)
        recall = len(words & said_words) / len(words) if words else 1.0
        has_values = bool(values_in(sentence))
        grounded = not said_values.ungrounded(sentence)
        if not (grounded and recall >= (0.3 if has_values else 0.6)):
            out.append(sentence)
    return out
