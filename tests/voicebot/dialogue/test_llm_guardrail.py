"""The guardrail's parts: reading numbers, grounding, voice cleaning, account facts, splitting."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicebot.dialogue.grounded import UNSPEAKABLE, say_money
from voicebot.dialogue.llm_guardrail import (
    SentenceSplitter,
    claims_verification,
    clean_for_voice,
    looks_like_account_fact,
    names_a_secret,
    uncovered,
)
from voicebot.dialogue.llm_values import Grounding, Value, values_in

TWO_FIFTY = {Value("money", "2.5")}


@pytest.mark.parametrize(
    "text",
    ["£2.50", "2 pounds 50", "two pounds fifty", "250 pence", "2 pounds and 50 pence", "£2 50p"],
)
def test_every_way_of_saying_two_pounds_fifty_is_one_value(text):
    assert values_in(f"It costs {text} a month.") == TWO_FIFTY


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("five working days", {Value("quantity", "5")}),
        ("twenty-four hours a day", {Value("quantity", "24")}),
        ("a hundred and five pounds", {Value("money", "105")}),
        ("£1,000", {Value("money", "1000")}),
        ("0.5 percent", {Value("percent", "0.5")}),
        ("two point five per cent", {Value("percent", "2.5")}),
        ("30 pence", {Value("money", "0.3")}),
        ("the 12th of March", {Value("date", "12-3")}),
        ("March 3rd", {Value("date", "3-3")}),
        ("ending in 4 3 2 1", {Value("number", "4321")}),
        ("ending in four three two one", {Value("number", "4321")}),
        ("open at 9am", {Value("number", "9")}),
        ("one of our advisers can help with that one", set()),
        ("one pound", {Value("money", "1")}),
        ("£1.5 million", {Value("money", "1500000")}),
    ],
)
def test_numbers_are_read_with_their_units(text, values):
    assert values_in(text) == values


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999"), places=2))
def test_say_money_and_the_pound_sign_are_the_same_amount(amount):
    assert values_in(say_money(amount)) == values_in(f"£{amount}")


FACTS = Grounding(
    ["A replacement card costs 5 pounds.", "It arrives in 30 days.", "2 pounds 50", "12 March"]
)


@pytest.mark.parametrize(
    "said", ["five pounds", "£5", "30 days", "thirty days", "2.50", "£2.50", "the 12th of March"]
)
def test_grounded_values_pass(said):
    assert FACTS.ungrounded(f"That is {said}.") == []


@pytest.mark.parametrize(
    "said", ["6 pounds", "£30", "30 percent", "31 days", "the 12th of April", "£2.51", "2024"]
)
def test_values_not_in_the_facts_or_in_another_unit_do_not(said):
    assert FACTS.ungrounded(f"That is {said}.") != []


@pytest.mark.parametrize(
    ("raw", "spoken"),
    [
        ("It costs £2.50.", "It costs 2 pounds 50."),
        ("**Note:** rates are 3% & fixed.", "Note: rates are 3 percent and fixed."),
        ("- Freeze your card in the app 🔒", "Freeze your card in the app"),
        ("1. Open the app", "Open the app"),
        ("Call us 24/7.", "Call us 24 7."),
        ("***", ""),
    ],
)
def test_text_is_cleaned_for_the_voice(raw, spoken):
    assert clean_for_voice(raw) == spoken


@pytest.mark.parametrize(
    "raw",
    [
        "See https://bank.example/fees.",
        "Go to www.bank.example now.",
        "Email help@bank.example.",
        "$5",
    ],
)
def test_what_the_voice_cannot_say_fails(raw):
    assert clean_for_voice(raw) is None


def test_cleaned_text_never_holds_an_unspeakable_mark():
    for raw in ["a {b} c", "<b>bold</b>", "x_y", "#1 choice", "cost: £3", "50%"]:
        cleaned = clean_for_voice(raw)
        assert cleaned is None or not any(m in cleaned.lower() for m in UNSPEAKABLE), cleaned


ACCOUNT_FACTS = [
    "Your balance is 5 pounds.",
    "Your balance is healthy.",
    "The balance of account 12345678 is 2,450 pounds.",
    "You have two hundred pounds available.",
    "There are 200 pounds in your account.",
    "Your card ending in four three two one is active.",
    "Your last payment was 40 pounds to Tesco.",
    "You spent 12 pounds yesterday.",
    "Your available balance stands at 310 pounds.",
    "Your account 87654321 is open.",
    "You have 3 transactions this week.",
    "There's 200 pounds available.",
    "On the 26th of November, 42 pounds 10 to Tesco.",
    "The number you need is 1 2 3 4 5 6 7 8.",
]
PUBLIC_FACTS = [
    "A replacement card costs 5 pounds.",
    "Your new card will arrive in 5 working days.",
    "Balance transfers cost 3 percent.",
    "You have 14 days to cancel.",
    "International payments cost 15 pounds.",
    "I can tell you your balance once I have confirmed who you are.",
    "Call us on 0800 123 4567.",
    "Our phone line is available 24 hours a day.",
]


@pytest.mark.parametrize("sentence", ACCOUNT_FACTS)
def test_account_facts_are_recognised(sentence):
    assert looks_like_account_fact(sentence)


@pytest.mark.parametrize("sentence", PUBLIC_FACTS)
def test_public_facts_are_not_account_facts(sentence):
    assert not looks_like_account_fact(sentence)


@pytest.mark.parametrize(
    ("sentence", "claims"),
    [
        ("Verified. Go ahead.", True),
        ("You’re now verified.", True),
        ("Your identity has been confirmed.", True),
        ("Once your identity is confirmed I can help.", False),
        ("I can do that when you are verified.", False),
        ("We verified the fee.", False),
    ],
)
def test_claims_of_verification_are_recognised(sentence, claims):
    assert claims_verification(sentence) is claims


def test_secrets_are_recognised_but_talk_about_them_is_not():
    assert names_a_secret("Your PIN is 4 7 1 9.")
    assert names_a_secret("The security code is nine one two.")
    assert not names_a_secret("Your PIN has 4 digits and we never ask for it.")


def test_sentences_are_released_only_once_complete():
    splitter = SentenceSplitter()
    text = "It costs 2.50 pounds. Is that all? Yes! Mr. Smith said hi"
    out = [s for ch in text for s in splitter.feed(ch)]
    assert out == ["It costs 2.50 pounds.", "Is that all?", "Yes!"]
    assert splitter.flush() == ["Mr. Smith said hi"]


def test_a_full_stop_waits_for_what_follows_it():
    splitter = SentenceSplitter()
    assert splitter.feed("The fee is 2.") == []
    assert splitter.feed("50 pounds. ") == ["The fee is 2.50 pounds."]


def test_reasoning_in_think_tags_is_never_released():
    splitter = SentenceSplitter()
    out = splitter.feed("<think>The balance is 900. I should not say it.</think>Hello. ")
    assert out == ["Hello."]
    assert splitter.feed("<think>Secret 1. Secret 2. ") == []
    assert splitter.flush() == []


def test_template_sentences_already_conveyed_are_not_repeated():
    template = ["A replacement card costs 5 pounds.", "Is there anything else I can help with?"]
    spoken = ["A new replacement card is five pounds."]
    assert uncovered(template, spoken) == ["Is there anything else I can help with?"]
    assert uncovered(template, []) == template
    assert uncovered(template, ["The replacement card costs 6 pounds."]) == template
