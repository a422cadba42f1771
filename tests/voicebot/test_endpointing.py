"""The adaptive endpoint policy: how much silence ends a turn, from the words so far.

The sentences here are made up for the rules (what English syntax says), not taken
from the benchmark calls.
"""

from __future__ import annotations

import pytest

from voicebot.config import TurnConfig
from voicebot.endpointing import Completion, EndpointPolicy, classify

CONFIG = TurnConfig(min_endpoint_ms=300, endpoint_ms=600, max_endpoint_ms=1200)


def ms(text: str | None, config: TurnConfig = CONFIG) -> int:
    return EndpointPolicy(config).for_text(text).ms


@pytest.mark.parametrize(
    "text",
    [
        "What time does the branch open?",
        "Can you tell me my balance?",
        "Who do I send the form to?",  # a stranded preposition is fine in a question
        "Why is that?",
        "Yes, I do.",  # elliptical answer: pronoun + auxiliary
        "No.",
        "No thanks.",
    ],
)
def test_complete_questions_and_short_answers_get_the_short_endpoint(text: str) -> None:
    assert classify(text) is Completion.COMPLETE
    assert ms(text) == 300


@pytest.mark.parametrize(
    "text",
    [
        "Please cancel the transfer.",
        "I never received my new card.",
        "My card was declined.",
        "It keeps getting declined!",
    ],
)
def test_complete_statements_and_requests_wait_a_little_longer(text: str) -> None:
    """Callers explain in several sentences: a full stop is a weaker cue than a question."""
    assert classify(text) is Completion.STATEMENT
    assert ms(text) == 450
    assert ms(text, TurnConfig(min_endpoint_ms=200, statement_endpoint_ms=350)) == 350


@pytest.mark.parametrize(
    "text",
    [
        "I want to move some money and",
        "I tried twice but",
        "So",
        "Um",
        "It happened because",
        "I was looking at the",
        "Could you send it to",
        "I'd like",
        "The payment that",
        "What should I",
        "The balance is",
        "I was going to, um,",
        "It says the card was...",
    ],
)
def test_trailing_conjunctions_fillers_and_fragments_wait_longest(text: str) -> None:
    assert classify(text) is Completion.INCOMPLETE
    assert ms(text) == 1200


@pytest.mark.parametrize(
    "text",
    ["My account number is 4 5 6 7", "The code is 12 34", "my pin is four", "three two one"],
)
def test_digits_being_read_out_wait_longest(text: str) -> None:
    assert classify(text) is Completion.NUMBER
    assert ms(text) == 1200


def test_a_number_in_a_question_or_a_pronoun_one_is_not_a_digit_run() -> None:
    assert classify("Can I take out 500?") is Completion.NEUTRAL
    assert classify("I need a new one.") is Completion.STATEMENT


def test_words_without_a_cue_get_the_middle_endpoint() -> None:
    assert classify("I lost my card yesterday") is Completion.NEUTRAL
    assert classify("") is Completion.NEUTRAL  # Whisper heard no words
    assert ms("I lost my card yesterday") == 600


def test_waiting_for_the_transcript_is_bounded_by_the_maximum() -> None:
    assert classify(None) is Completion.PENDING
    assert ms(None) == 1200


def test_every_endpoint_respects_the_bounds() -> None:
    config = TurnConfig(min_endpoint_ms=250, endpoint_ms=500, max_endpoint_ms=1500)
    samples = [None, "", "and", "Hello?", "Yes.", "card ending 4 4", "well", "the"]
    for text in samples:
        assert 250 <= ms(text, config) <= 1500


def test_fixed_endpointing_is_one_number() -> None:
    config = TurnConfig(endpointing="fixed", endpoint_ms=700)
    policy = EndpointPolicy(config)
    for text in (None, "and", "Where is the branch?"):
        endpoint = policy.for_text(text)
        assert endpoint.ms == 700 and endpoint.reason is Completion.FIXED


def test_bad_settings_are_errors() -> None:
    with pytest.raises(ValueError, match="endpointing"):
        EndpointPolicy(TurnConfig(endpointing="smart"))
    with pytest.raises(ValueError, match="min_endpoint_ms"):
        EndpointPolicy(TurnConfig(min_endpoint_ms=900, endpoint_ms=600))
    with pytest.raises(ValueError, match="statement_endpoint_ms"):
        EndpointPolicy(TurnConfig(statement_endpoint_ms=700, endpoint_ms=600))


def test_a_verbless_fragment_is_not_complete_whatever_whisper_punctuates() -> None:
    assert classify("And so, my dear friends.") is Completion.NEUTRAL
    assert classify("The savings one.") is Completion.NEUTRAL
    assert classify("Thanks.") is Completion.COMPLETE  # a short answer is a whole turn
    assert classify("It keeps getting declined.") is Completion.STATEMENT
