"""Grounded template replies: every answer is short, speakable and built from graph facts."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

from voicebot.dialogue.grounded import (
    REQUIRED_PROMPTS,
    GroundedReplies,
    TemplateError,
    UnknownPrompt,
    say_count,
    say_list,
    say_money,
    say_percent,
    say_steps,
)
from voicebot.dialogue.knowledge import DEFAULT_PACK, Fact, KnowledgeGraph, UnknownIntent

CATEGORIES = Path(__file__).parents[3].parent / "shared/data/banking77/categories.json"
NEVER_SPOKEN = ("{", "}", "£", "$", "€", "%", "http", "www", "_")
MAX_WORDS = 50  # the pack aims at about 45 words per answer
# Properties whose values are metadata or numbers, not wording that should be heard.
NOT_WORDING = {"label", "synonym", "free", "allDay", "unit"}
NUMBERS = {"amount", "minimumAmount", "percent", "count", "minValue", "maxValue"}


@pytest.fixture(scope="module")
def kg() -> KnowledgeGraph:
    return KnowledgeGraph.load(DEFAULT_PACK)


@pytest.fixture(scope="module")
def templates() -> dict:
    return tomllib.loads((DEFAULT_PACK / "templates.toml").read_text())


@pytest.fixture(scope="module")
def replies(kg, templates) -> GroundedReplies:
    return GroundedReplies(kg, templates)


def all_intents(kg: KnowledgeGraph) -> list[str]:
    if CATEGORIES.exists():
        return list(json.loads(CATEGORIES.read_text()))
    return kg.intents()


def spoken_numbers(fact: Fact) -> list[str]:
    """How each number of the fact must sound in its sentence."""
    said = []
    for prop, values in fact.values.items():
        for value in values:
            if prop in ("amount", "minimumAmount"):
                said.append(say_money(value))
            elif prop == "percent":
                said.append(say_percent(value))
            elif prop in NUMBERS and not (prop == "minValue" and value == "0"):
                said.append(value)
    unit = fact.first("unit")
    number = fact.first("count") or fact.first("maxValue")
    if unit and number:
        said.append(say_count(int(number), unit))  # "1 working day", "5 cards"
    return said


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.?!])\s+", text.strip()) if s]


# ---------------------------------------------------------------------- answers


def test_every_category_gets_a_short_speakable_answer(kg, replies):
    for intent in all_intents(kg):
        answer = replies.answer(intent)
        assert answer, intent
        text = " ".join(answer)
        assert len(sentences(text)) <= 3, (intent, text)
        assert len(text.split()) <= MAX_WORDS, (intent, len(text.split()), text)
        for bad in NEVER_SPOKEN:
            assert bad not in text, (intent, bad, text)
        for sentence in answer:
            assert sentence[0].isupper(), sentence
            assert sentence.endswith("."), sentence
            assert "  " not in sentence and " ," not in sentence, sentence


def test_every_sentence_is_grounded_in_its_fact(kg, replies):
    for intent in kg.intents():
        facts = kg.facts_for_intent(intent)
        answer = replies.answer(intent)
        assert len(answer) == len(facts)
        for sentence, fact in zip(answer, facts, strict=True):
            said = sentence.casefold()
            wording = [
                value
                for prop, values in fact.values.items()
                if prop not in NOT_WORDING | NUMBERS
                for value in values
            ]
            assert wording, fact.name
            # Every phrase of the fact is spoken, so nothing in the sentence is made up
            # by a template except connecting words.
            for value in wording:
                assert value.casefold() in said, (fact.name, value, sentence)
            for number in spoken_numbers(fact):
                assert number in sentence, (fact.name, number, sentence)
            for step in fact.steps:
                assert step.casefold() in said, (fact.name, step, sentence)


def test_answers_are_deterministic_and_variants_differ(replies):
    assert replies.answer("card_arrival") == replies.answer("card_arrival")
    first = replies.answer("terminate_account", variant=0)
    second = replies.answer("terminate_account", variant=1)
    assert first[1] == "There is no fee for closing your account."
    assert second[1] == "You won't pay a fee for closing your account."
    assert first[0] == second[0]  # procedures have one phrasing: variants wrap around
    assert replies.answer("terminate_account", variant=2) == first


def test_sample_answers(replies):
    assert replies.answer("card_delivery_estimate") == [
        "Standard card delivery usually takes 3 to 5 working days.",
        "Express card delivery usually takes 1 working day.",
        "The fee for express card delivery is 5 pounds.",
    ]
    assert replies.answer("transfer_fee_charged")[1] == (
        "The fee for an international transfer is 0.5 percent, with a minimum of 3 pounds."
    )
    assert replies.answer("transfer_timing")[0] == (
        "A transfer between UK bank accounts usually takes up to 2 hours."
    )
    assert (
        replies.answer("pin_blocked")[0] == "The limit for PIN attempts is 3 wrong tries in a row."
    )
    assert replies.answer("lost_or_stolen_phone")[2] == (
        "Our security team is available every day, 24 hours a day."
    )


def test_hostile_intent_is_unknown(replies):
    for intent in ['x" } ; ?s ?p ?o . { "', "{}", "", "card_arrival\n"]:
        with pytest.raises(UnknownIntent):
            replies.answer(intent)


def test_from_pack_shares_one_graph():
    replies = GroundedReplies.from_pack()
    assert replies.graph.bank_name() == "Northbridge Bank"
    assert len(replies.graph.intents()) == 78  # Banking77's and the pack's transfer_limits


# ---------------------------------------------------------------------- prompts


def test_prompts(replies, kg):
    greeting = replies.prompt("greeting")
    assert "Northbridge Bank" in greeting
    label = kg.intent_label("lost_or_stolen_card")
    assert label in replies.prompt("clarify_intent", intent_label=label)
    for key, slots in REQUIRED_PROMPTS.items():
        text = replies.prompt(key, **{slot: "a lost card" for slot in slots - {"bank_name"}})
        assert text and text[0].isupper(), key
        for bad in NEVER_SPOKEN:
            assert bad not in text, (key, text)


def test_prompt_errors(replies):
    with pytest.raises(UnknownPrompt, match="no_such_prompt"):
        replies.prompt("no_such_prompt")
    with pytest.raises(TemplateError, match="intent_label"):
        replies.prompt("clarify_intent")


# ---------------------------------------------------------------------- broken templates


def broken(templates: dict, change) -> dict:
    changed = copy.deepcopy(templates)
    change(changed)
    return changed


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t["facts"].pop("Fee"), "no [facts.Fee] template"),
        (lambda t: t["facts"].__setitem__("Fees", t["facts"]["Fee"]), "[facts.Fees] is not"),
        (
            lambda t: t["facts"]["Limit"]["forms"][0].__setitem__("text", ["{limitOf} {ceiling}"]),
            "has no value for {ceiling}",
        ),
        (
            lambda t: t["facts"]["Fee"]["forms"][2].__setitem__("text", ["It costs £{amount}."]),
            "would say '£'",
        ),
        (lambda t: t["facts"]["Policy"].__setitem__("forms", []), "needs a non-empty forms list"),
        (lambda t: t["facts"]["Hours"]["forms"].pop(1), "no [facts.Hours] form fits"),
        (lambda t: t["prompts"].pop("goodbye"), "missing prompt 'goodbye'"),
        (
            lambda t: t["prompts"].__setitem__("greeting", "Hello {caller_name}."),
            "uses slots the core never passes",
        ),
        (
            lambda t: t["prompts"].__setitem__("greeting", "Hello {bank_name.upper}."),
            "must be a plain name",
        ),
    ],
)
def test_broken_templates_fail_at_construction(kg, templates, change, message):
    with pytest.raises(TemplateError) as caught:
        GroundedReplies(kg, broken(templates, change))
    assert message in str(caught.value)


def test_unreadable_template_file(tmp_path):
    with pytest.raises(TemplateError, match="cannot read templates"):
        GroundedReplies.from_pack(tmp_path)


# ---------------------------------------------------------------------- verbalization


@pytest.mark.parametrize(
    ("value", "spoken"),
    [
        ("2.50", "2 pounds 50"),
        (Decimal("2.5"), "2 pounds 50"),
        (1, "1 pound"),
        ("1.00", "1 pound"),
        ("10", "10 pounds"),
        ("25000.00", "25000 pounds"),
        ("0.50", "50 pence"),
        ("0.01", "1 penny"),
        ("0", "0 pounds"),
        ("1.99", "1 pound 99"),
        ("2.05", "2 pounds 5 pence"),
    ],
)
def test_say_money(value, spoken):
    assert say_money(value) == spoken


@pytest.mark.parametrize("value", ["-1", "1.234", "abc", "NaN", "Infinity"])
def test_say_money_rejects_non_money(value):
    with pytest.raises(ValueError):
        say_money(value)


@pytest.mark.parametrize(
    ("value", "spoken"),
    [
        ("0.5", "0.5 percent"),
        ("0.50", "0.5 percent"),
        ("2.0", "2 percent"),
        (Decimal("1"), "1 percent"),
        ("100", "100 percent"),
        ("0.25", "0.25 percent"),
    ],
)
def test_say_percent(value, spoken):
    assert say_percent(value) == spoken


def test_say_percent_rejects_nonsense():
    with pytest.raises(ValueError):
        say_percent("-1")
    with pytest.raises(ValueError):
        say_percent("half")


def test_lists_steps_and_counts():
    assert say_list(["a"]) == "a"
    assert say_list(["a", "b"], "or") == "a or b"
    assert say_list(["a", "b", "c"]) == "a, b and c"
    assert say_steps(["open the app"]) == "open the app"
    assert say_steps(["open the app", "tap Freeze"]) == "open the app, then tap Freeze"
    assert say_steps(["a", "b", "c"]) == "a, b, then c"
    assert say_count(1, "working days") == "1 working day"
    assert say_count(3, "working days") == "3 working days"
    assert say_count(24, "hours") == "24 hours"
