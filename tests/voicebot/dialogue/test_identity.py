"""Reading account numbers, dates of birth and PINs out of transcripts."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicebot.dialogue.identity import account_number, birth_date, pin_digits, spoken_digits

_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@pytest.mark.parametrize(
    "text",
    [
        "My account number is 1234 5678",
        "one two three four five six seven eight",
        "twelve thirty four fifty six seventy eight",
        "It's 12345678.",
        "1 2 3 4, 5 6 7 8",
    ],
)
def test_account_numbers_read_in_many_ways(text):
    assert account_number(text) == "12345678"


def test_double_and_oh_are_digits():
    assert spoken_digits("double four oh one triple seven") == "4401777"


@pytest.mark.parametrize(
    "text",
    ["my account is 1234 567", "I don't know my number", "123456789", "call me on Friday"],
)
def test_anything_but_eight_digits_is_not_an_account_number(text):
    assert account_number(text) is None


@given(st.lists(st.integers(0, 9), min_size=8, max_size=8))
def test_any_eight_spoken_digits_round_trip(digits):
    text = " ".join(_WORDS[d] for d in digits)
    assert account_number(text) == "".join(map(str, digits))


@pytest.mark.parametrize(
    "text",
    [
        "the 14th of March 1985",
        "the fourteenth of March nineteen eighty five",
        "March 14, 1985",
        "14/03/1985",
        "1985-03-14",
        "I was born on 14 March 1985",
    ],
)
def test_dates_of_birth(text):
    assert birth_date(text) == date(1985, 3, 14)


@pytest.mark.parametrize("text", ["March 1985", "the 31st of February 1990", "last Tuesday"])
def test_incomplete_or_impossible_dates_are_not_accepted(text):
    assert birth_date(text) is None


def test_a_pin_said_aloud():
    assert pin_digits("four three two one") == "4321"
    assert pin_digits("four three two") is None
