"""PII redaction: what callers say (in digits or in words), what they type, and what is logged."""

from __future__ import annotations

import io
import itertools
import logging
import random
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicebot.config import PrivacyConfig
from voicebot.privacy import PiiSpan, RedactingFilter, Redactor, luhn_valid

TODAY = date(2025, 6, 1)
CARD = "4539 1488 0343 6467"  # Luhn-valid test number


def redactor(**flags: object) -> Redactor:
    return Redactor(replace(PrivacyConfig(), **flags), today=TODAY)


R = redactor()


def luhn_complete(prefix: str) -> str:
    """``prefix`` plus the check digit that makes it Luhn-valid."""
    return next(prefix + d for d in "0123456789" if luhn_valid(prefix + d))


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        # card numbers, in digits and in words
        ("my card number is 4539 1488 0343 6467", "my card number is [card number]"),
        ("4539148803436467", "[card number]"),
        ("it's 4539-1488-0343-6467 thanks", "it's [card number] thanks"),
        (
            "four five three nine one four eight eight zero three four three six four six seven",
            "[card number]",
        ),
        (
            "four five three nine, one four double eight, oh three four three, six four six seven",
            "[card number]",
        ),
        (
            "forty five thirty nine, fourteen eighty eight, oh three forty three, 6467",
            "[card number]",
        ),
        ("the long number is 4539 1234 5678 9999.", "the long number is [card number]."),
        (
            "Um, it's, uh, four five three nine... one four eight eight... oh three four three... "
            "six four six seven.",
            "Um, it's, uh, [card number].",
        ),
        ("My card number is 4539 1488 0343 646", "My card number is [card number]"),  # misheard
        ("card number 1234 5678 9012 3", "card number [card number]"),  # not Luhn, context
        ("5 4 3 9 1 4 8 8 0 3 4 3 6 4 6 7 3 2 1", "[card number]"),  # 19 digits
        ("the card ending in 1234", "the card ending in [card number]"),
        ("my Visa ending with one two three four", "my Visa ending with [card number]"),
        ("the last four digits are 1234", "the last four digits are [card number]"),
        ("last four 9 8 7 6", "last four [card number]"),
        # account numbers
        (
            "account number one two three four five six seven eight",
            "account number [account number]",
        ),
        ("it's 12345678", "it's [account number]"),
        ("my account is oh one double two three four five six", "my account is [account number]"),
        ("account number 123456789", "account number [account number]"),
        ("savings account 1234 5678", "savings account [account number]"),
        # sort codes
        ("sort code 12-34-56", "sort code [sort code]"),
        ("the sort code is twelve thirty four fifty six", "the sort code is [sort code]"),
        ("one two, three four, five six", "[sort code]"),
        ("12 34 56", "[sort code]"),
        ("12-34-56 12345678", "[sort code] [account number]"),
        ("Sort code is 12, 34, 56.", "Sort code is [sort code]."),
        (
            "My sort code is 20-45-77 and the account is 41 23 45 67",
            "My sort code is [sort code] and the account is [account number]",
        ),
        (
            "sort code 20 00 00 and account 12345678",
            "sort code [sort code] and account [account number]",
        ),
        # dates of birth
        ("the fifth of March nineteen eighty-two", "[date of birth]"),
        ("05/03/1982", "[date of birth]"),
        ("5th March 1982", "[date of birth]"),
        ("March 5, 1982", "[date of birth]"),
        ("Yes, it's the twenty first of May, nineteen ninety nine.", "Yes, it's [date of birth]."),
        ("I was born on the 5th of March", "I was born on [date of birth]"),
        ("my date of birth is oh five oh three eighty two", "my date of birth is [date of birth]"),
        ("my birthday is March the third", "my birthday is [date of birth]"),
        ("DOB 1982-03-05", "DOB [date of birth]"),
        ("it's 3 June 2010", "it's [date of birth]"),  # alone, as an answer
        ("Date of birth: 12.03.1985", "Date of birth: [date of birth]"),
        ("DOB is 12th March 85", "DOB is [date of birth]"),
        ("My birthday's on the 3rd of June", "My birthday's on [date of birth]"),
        ("it's the twelfth of the eighth, eighty-five", "it's [date of birth]"),
        ("5/3/82 is my date of birth", "[date of birth] is my date of birth"),
        ("12/08/85", "[date of birth]"),
        ("01-02-03", "[sort code]"),  # two-digit years with dashes read as a sort code
        # PINs and card security codes
        ("my PIN is 1234", "my PIN is [PIN]"),
        ("pin number is one two three four", "pin number is [PIN]"),
        ("the passcode is 246810", "the passcode is [PIN]"),
        ("the CVV is 123", "the CVV is [PIN]"),
        ("CVC 4 5 6", "CVC [PIN]"),
        ("the CV2 is seven seven seven", "the CV2 is [PIN]"),
        ("the three digits on the back are triple seven", "the three digits on the back are [PIN]"),
        ("1234 is my PIN", "[PIN] is my PIN"),  # context after the number
        ("My pin is, um, 12 34", "My pin is, um, [PIN]"),
        ("the three digit code is 123", "the three digit code is [PIN]"),
        ("one-time passcode 482913", "one-time passcode [PIN]"),
        ("123, that's the CVV", "[PIN], that's the CVV"),
        ("my PIN is 1987", "my PIN is [PIN]"),  # a year-like PIN is still a PIN
        # partial numbers
        ("the one ending 1234", "the one ending [card number]"),
        ("account ending in 5678", "account ending in [account number]"),
        ("the account ending in 2024", "the account ending in [account number]"),
    ],
)
def test_redacts(said: str, expected: str) -> None:
    assert R.redact(said) == expected


@pytest.mark.parametrize(
    "said",
    [
        "The limit for card top-ups is 3000 pounds per day.",
        "An international transfer usually takes 1 to 5 working days.",
        "The fee is 2 pounds 50.",
        "We're open Monday to Saturday, 8 am to 8 pm.",
        "call us on the 3rd",
        "I moved here in 2024.",
        "It costs £20.50 a month.",
        "I sent 1,500 to my sister.",
        "Your balance is £1,234.56.",
        "You can transfer up to 25,000 pounds a day.",
        "I'll call back tomorrow.",
        "on Monday",
        "within 5 days",
        "the 3rd",
        "Call us on 0800 123 4567, 24/7.",
        "Oh, I see. One moment please.",
        "Your new card will arrive by 12 March 2025.",
        "I paid it on 5 March 2025 at the shop.",
        "Press 1 for payments, 2 for cards.",
        "The interest rate is 4.5 percent.",
        "My card was declined twice today.",
        "It happened at 10 30 this morning.",
        "the offer ending in 2026",
        "I changed my PIN in 2024.",
        "I want to withdraw 5000 but my PIN doesn't work.",
        "I want to borrow two hundred and fifty thousand.",
        "The card expires 05 2027.",
        "Your statement runs from 1 March to 31 March.",
        "Since 1 March 2010 you've paid every month.",
        "My phone number is 07700 900123.",
        "Let me double check that.",
        "On 12/08/2023 I paid the gas bill.",
        "Press 1, then 2, then 3.",
        # machine identifiers mix letters and digits: a call sid, a uuid, a stream sid
        "call CAdff6ea39148243a1b2c3d4e5f60718 ended",
        "9f1c2e7a-4b3d-4e8f-a1c2-d3e4f5a6b7c8",  # (15+ digits in a row would read as a card)
        "stream MZ18ad3ab5a668481ce02b83e7395059f0",
        # a real call sid from a CI run: 16 digits in a row, still not a card
        "CA5d070e5b6291123910774897f09e6073",
        '127.0.0.1 [28/Nov/2026:21:17:01 +0000] "GET /metrics HTTP/1.1" 200 8901',
        "connection from 192.168.10.200 closed",
    ],
)
def test_leaves_ordinary_banking_talk_alone(said: str) -> None:
    assert R.redact(said) == said
    assert R.find(said) == []


def test_find_reports_spans_over_the_original_text() -> None:
    text = (
        "card four five three nine one four eight eight oh three four three six four six seven ok"
    )
    (span,) = R.find(text)
    assert span == PiiSpan("card_number", 5, text.index(" ok"))
    assert span.tag == "[card number]"
    spans = R.find("PIN 1234, born 5 March 1982")
    assert [s.kind for s in spans] == ["pin", "date_of_birth"]


@pytest.mark.parametrize(
    ("flag", "said"),
    [
        ("card_numbers", f"card number {CARD}"),
        ("account_numbers", "account number 12345678"),
        ("sort_codes", "sort code 12-34-56"),
        ("dates_of_birth", "born 5 March 1982"),
        ("pins", "my PIN is 1234"),
    ],
)
def test_each_flag_switches_its_kind_off(flag: str, said: str) -> None:
    assert R.redact(said) != said
    assert redactor(**{flag: False}).redact(said) == said
    assert redactor(enabled=False).redact(said) == said


def test_a_switched_off_kind_falls_back_to_the_plain_length_rules() -> None:
    # Falling through (rather than letting "PIN" shield the digits) keeps redaction idempotent
    # and errs on the side of privacy: six bare digits are a sort code.
    assert redactor(pins=False).redact("my PIN is 123456") == "my PIN is [sort code]"
    assert redactor(dates_of_birth=False).redact("05-03-1982") == "05-03-1982"


def test_dtmf() -> None:
    assert [R.redact_dtmf(d) for d in "0123456789*#"] == list("0*********" + "*#")
    assert redactor(dtmf="none").redact_dtmf("7") == "7"
    assert redactor(enabled=False).redact_dtmf("7") == "7"
    assert R.redact_dtmf("12#") == "**#"


def test_redact_json_is_a_deep_copy() -> None:
    event = {
        "type": "turn",
        "text": "my PIN is 1234",
        "4539148803436467": [{"said": f"card {CARD}"}, 42, None, True, 1.5],
        "nested": {"dob": "born 05/03/1982", "ok": ("sort code 12 34 56",)},
    }
    before = repr(event)
    out = R.redact_json(event)
    assert repr(event) == before
    assert out == {
        "type": "turn",
        "text": "my PIN is [PIN]",
        "4539148803436467": [{"said": "card [card number]"}, 42, None, True, 1.5],
        "nested": {"dob": "born [date of birth]", "ok": ("sort code [sort code]",)},
    }
    assert out["nested"] is not event["nested"]
    assert R.redact_json("12345678") == "[account number]"


def logger_writing_to(buffer: io.StringIO, name: str) -> logging.Logger:
    handler = logging.StreamHandler(buffer)
    handler.addFilter(RedactingFilter(R))
    log = logging.getLogger(name)
    log.handlers, log.propagate = [handler], False
    log.setLevel(logging.INFO)
    return log


def test_logging_filter_redacts_message_and_args() -> None:
    buffer = io.StringIO()
    log = logger_writing_to(buffer, "test_privacy.args")
    log.info("caller said %r, pin %s", f"card {CARD}", "1234")
    log.info("sort code %(sc)s", {"sc": "12-34-56"})
    log.info("bad format %d", "x")  # never raises, still logs
    try:
        raise ValueError("account number 12345678")
    except ValueError:
        log.exception("failed for %s", "born 5 March 1982")
    lines = buffer.getvalue()
    assert "caller said 'card [card number]', pin [PIN]" in lines
    assert "sort code [sort code]" in lines
    assert "bad format" in lines
    assert "failed for born [date of birth]" in lines
    assert "ValueError: account number [account number]" in lines
    for secret in ("4539", "1234", "12-34-56", "12345678", "1982"):
        assert secret not in lines


def test_idempotent_on_examples() -> None:
    for text in ("my card number is 4539 1488 0343 6467 and my PIN is 1234", "[PIN] 1234"):
        once = R.redact(text)
        assert R.redact(once) == once


def test_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: object, text: str) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr("voicebot.privacy._Normalised.__init__", broken)
    assert R.redact("card four five 4539 1488") == "card * * **** ****"
    assert R.find("card 4539 1488 0343 6467") == []


def test_never_raises_on_odd_input() -> None:
    for text in ("", "[", "]" * 5, "\x00", "double", "oh oh", "twenty", "1" * 10_000, "İ" * 3):
        assert isinstance(R.redact(text), str)
    assert R.redact("x" + "1 " * 5_000) != ""


VOCAB_TEXT = (
    "one two three four five six seven eight nine zero oh o double triple twenty thirty "
    "nineteen eighty-two hundred thousand and first fifth twenty-first of the March May card "
    "number account sort code pin CVV born birth date ending in last four pounds days expiry "
    "since is my 4539 1234 12 34 56 05 1982 2024 12345678 1,500 5th £ [PIN] [card number]"
)
VOCAB = VOCAB_TEXT.split()
SEPS = (" ", " ", " ", ", ", "-", ".", "/", ". ", "", "...", "\n")


@st.composite
def banking_text(draw: st.DrawFn) -> str:
    words = draw(st.lists(st.sampled_from(VOCAB), max_size=25))
    seps = draw(st.lists(st.sampled_from(SEPS), min_size=len(words), max_size=len(words)))
    return "".join(w + s for w, s in zip(words, seps, strict=True))


FLAGS = ("card_numbers", "account_numbers", "sort_codes", "dates_of_birth", "pins")


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), banking_text()), st.sets(st.sampled_from(FLAGS)))
def test_redact_never_raises_and_is_idempotent(text: str, off: set[str]) -> None:
    r = redactor(**dict.fromkeys(off, False))
    once = r.redact(text)
    assert isinstance(once, str)
    assert r.redact(once) == once
    spans = r.find(text)
    assert all(0 <= s.start < s.end <= len(text) for s in spans)
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))


@settings(max_examples=300)
@given(
    st.one_of(st.text(max_size=80), banking_text()),
    st.one_of(st.text(max_size=80), banking_text()),
    st.sampled_from(["", " ", "-", " - "]),
    st.randoms(use_true_random=False),
)
def test_a_card_number_never_survives(before: str, after: str, sep: str, rnd: random.Random):
    card = luhn_complete("".join(str(rnd.randrange(10)) for _ in range(15)))
    said = sep.join(card[i : i + 4] for i in range(0, 16, 4))
    out = R.redact(before + said + after)
    assert said not in out
    assert card not in out.replace(sep, "") if sep else card not in out
    assert "[card number]" in out
