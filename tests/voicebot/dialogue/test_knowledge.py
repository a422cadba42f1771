"""The bank knowledge graph: coverage of Banking77, consistency, validation, injection."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

from voicebot.dialogue.knowledge import (
    DEFAULT_PACK,
    Fact,
    KnowledgeGraph,
    PackError,
    UnknownIntent,
)

CATEGORIES = Path(__file__).parents[3].parent / "shared/data/banking77/categories.json"
#: Public-knowledge intents the pack adds to Banking77 (account intents need no graph answer).
PACK_INTENTS = {"transfer_limits"}
TOPICS = {
    "cards",
    "payments",
    "transfers",
    "top-ups",
    "exchange",
    "cash",
    "security",
    "identity",
    "account",
}
# The property that names what each fact class is about.
SUBJECT = {
    "Fee": "feeFor",
    "Limit": "limitOf",
    "Duration": "durationOf",
    "Procedure": "goal",
    "Policy": "statement",
    "Causes": "causesOf",
    "ItemList": "listOf",
    "Hours": "hoursOf",
}


@pytest.fixture(scope="module")
def kg() -> KnowledgeGraph:
    return KnowledgeGraph.load(DEFAULT_PACK)


def banking77_categories() -> list[str]:
    if not CATEGORIES.exists():
        pytest.skip(f"Banking77 categories not found at {CATEGORIES}")
    return list(json.loads(CATEGORIES.read_text()))


def test_every_banking77_category_has_an_intent_with_facts(kg):
    categories = banking77_categories()
    assert len(categories) == 77
    # Banking77's intents, plus the pack's own (written in extra_intents.csv).
    assert set(kg.intents()) == set(categories) | PACK_INTENTS
    for name in categories:
        facts = kg.facts_for_intent(name)
        assert 1 <= len(facts) <= 3, name
        assert kg.intent_label(name).strip(), name
        assert kg.intent_topic(name) in TOPICS, name


def test_odd_dataset_spellings_are_kept(kg):
    assert "reverted_card_payment?" in kg.intents()
    assert "Refund_not_showing_up" in kg.intents()
    assert kg.facts_for_intent("reverted_card_payment?")


def test_intents_are_sorted_and_bank_is_named(kg):
    assert kg.intents() == sorted(kg.intents())
    assert kg.bank_name() == "Northbridge Bank"


def test_facts_come_in_answer_order(kg):
    names = [fact.name for fact in kg.facts_for_intent("card_delivery_estimate")]
    assert names == ["dur_card_delivery", "dur_express_delivery", "fee_express_delivery"]
    names = [fact.name for fact in kg.facts_for_intent("lost_or_stolen_card")]
    assert names == ["proc_report_lost_card", "fee_replacement_card", "policy_security_handoff"]


def test_procedure_steps_keep_their_order(kg):
    (freeze,) = [f for f in kg.facts_for_intent("compromised_card") if f.name == "proc_freeze_card"]
    assert freeze.kind == "Procedure"
    assert freeze.steps == ("open the app", "tap your card", "tap Freeze")


def test_fact_values_are_plain_sorted_strings(kg):
    for fact in kg.facts():
        assert fact.kind in kg.fact_kinds()
        assert fact.first("label"), fact.name
        for prop, values in fact.values.items():
            assert all(isinstance(v, str) for v in values), (fact.name, prop)
            assert list(values) == sorted(values, key=lambda v: (v.casefold(), v))


def test_every_fact_has_its_subject_and_one_value_per_number(kg):
    for fact in kg.facts():
        assert fact.first(SUBJECT[fact.kind]), fact.name
        for prop in ("amount", "percent", "count", "minValue", "maxValue", "minimumAmount"):
            assert len(fact.values.get(prop, ())) <= 1, (fact.name, prop)


def test_shared_facts_are_one_node_with_one_value(kg):
    used_by: dict[str, list[Fact]] = defaultdict(list)
    for intent in kg.intents():
        for fact in kg.facts_for_intent(intent):
            used_by[fact.node].append(fact)
    shared = {node: facts for node, facts in used_by.items() if len(facts) > 1}
    assert len(shared) >= 10  # limits, durations and procedures are reused across intents
    for facts in shared.values():
        assert all(fact == facts[0] for fact in facts)
    # The same fee, limit or duration is never described by two nodes (two values).
    subjects: dict[tuple[str, str], str] = {}
    for fact in kg.facts():
        key = (fact.kind, fact.first(SUBJECT[fact.kind]) or "")
        assert key not in subjects, f"{fact.name} repeats {subjects.get(key)}"
        subjects[key] = fact.name


def test_key_numbers(kg):
    facts = {fact.name: fact for fact in kg.facts()}
    assert facts["fee_intl_transfer"].values["percent"] == ("0.5",)
    assert facts["fee_intl_transfer"].values["minimumAmount"] == ("3.00",)
    assert facts["limit_free_atm"].values["amount"] == ("200.00",)
    assert facts["fee_replacement_card"].values["free"] == ("true",)
    assert facts["hours_phone_team"].values["opens"] == ("8 am",)


HOSTILE = [
    "",
    "card_arrival ",
    "CARD_ARRIVAL",
    'card_arrival" } ; ?i ?p ?o . { "x',
    "card_arrival' } UNION { ?s ?p ?o }",
    '" . } DELETE WHERE { ?s ?p ?o } #',
    "{}",
    "\\",
    "reverted_card_payment",
]


@pytest.mark.parametrize("intent", HOSTILE)
def test_unknown_or_hostile_intent_raises_and_changes_nothing(kg, intent):
    before = len(kg._graph)
    with pytest.raises(UnknownIntent) as caught:
        kg.facts_for_intent(intent)
    assert isinstance(caught.value, KeyError)
    assert repr(intent) in str(caught.value)
    with pytest.raises(UnknownIntent):
        kg.intent_label(intent)
    with pytest.raises(UnknownIntent):
        kg.intent_topic(intent)
    assert len(kg._graph) == before
    assert len(kg.intents()) == 77 + len(PACK_INTENTS)


# ---------------------------------------------------------------------- broken packs


def copy_pack(tmp_path: Path) -> Path:
    pack = tmp_path / "bank"
    pack.mkdir()
    for path in DEFAULT_PACK.glob("*.ttl"):
        shutil.copy(path, pack / path.name)
    return pack


def edit(pack: Path, name: str, old: str, new: str) -> None:
    path = pack / name
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def test_copied_pack_loads(tmp_path):
    assert len(KnowledgeGraph.load(copy_pack(tmp_path)).intents()) == 77 + len(PACK_INTENTS)


BROKEN = [
    pytest.param(
        "cards.ttl",
        'bk:feeFor "express card delivery" ; bk:amount 5.00 ;',
        "bk:amount 5.00 ;",
        ["bk:fee_express_delivery (Fee) needs bk:feeFor"],
        id="missing-required-property",
    ),
    pytest.param(
        "cards.ttl",
        'bk:feeFor "express card delivery" ; bk:amount 5.00 ;',
        'bk:feeFor "express card delivery" ;',
        ["bk:fee_express_delivery (Fee) needs bk:amount or bk:free or bk:percent"],
        id="missing-one-of",
    ),
    pytest.param(
        "cards.ttl",
        "bk:amount 5.00 ;\n    bk:appliesTo bk:product_spare_card",
        "bk:amount 5.00, 6.00 ;\n    bk:appliesTo bk:product_spare_card",
        ["bk:fee_spare_card has more than one bk:amount"],
        id="two-values-for-one-fee",
    ),
    pytest.param(
        "cards.ttl",
        'bk:feeFor "a replacement card" ; bk:free true ;',
        'bk:feeFor "a replacement card" ; bk:free true ; bk:amount 5.00 ;',
        ["bk:fee_replacement_card (Fee) may have only 1 of bk:amount or bk:free or bk:percent"],
        id="free-and-priced",
    ),
    pytest.param(
        "cash.ttl",
        "bk:amount 500.00 ;",
        'bk:amount "five hundred" ;',
        ["bk:limit_atm_daily bk:amount must be xsd:decimal"],
        id="wrong-datatype",
    ),
    pytest.param(
        "cash.ttl",
        "bk:policy_visa_atm a bk:Policy ;",
        "bk:policy_visa_atm a bk:Polcy ;",
        ["bk:Polcy is used as a class but never declared"],
        id="class-typo",
    ),
    pytest.param(
        "cash.ttl",
        'bk:limitOf "cash withdrawals" ;',
        'bk:limitof "cash withdrawals" ;',
        ["bk:limitof is used but never declared", "bk:limit_atm_daily (Limit) needs bk:limitOf"],
        id="property-typo",
    ),
    pytest.param(
        "intents_cards.ttl",
        'bk:answerOrder "dur_card_delivery proc_card_not_arrived" .',
        'bk:answerOrder "dur_card_delivery" .',
        ["bk:intent_card_arrival bk:answerOrder does not list exactly its bk:answer facts"],
        id="answer-order-mismatch",
    ),
    pytest.param(
        "intents_cards.ttl",
        "bk:answer bk:dur_card_delivery, bk:proc_card_not_arrived ;",
        "bk:answer bk:dur_card_delivery, bk:proc_card_arrived ;",
        ["bk:proc_card_arrived is linked from bk:intent_card_arrival but not defined"],
        id="dangling-answer",
    ),
    pytest.param(
        "cards.ttl",
        "bk:minValue 3 ; bk:maxValue 5 ;",
        "bk:minValue 6 ; bk:maxValue 5 ;",
        ["bk:dur_card_delivery has bk:minValue above bk:maxValue"],
        id="inverted-duration",
    ),
    pytest.param(
        "account.ttl",
        'bk:fee_close_account a bk:Fee ; rdfs:label "account closure fee" ;',
        "bk:fee_close_account a bk:Fee ;",
        ["bk:fee_close_account has no rdfs:label"],
        id="missing-label",
    ),
    pytest.param(
        "account.ttl",
        "bk:free true ;",
        "bk:free false ;",
        ["bk:fee_close_account bk:free has a bad value false"],
        id="free-false",
    ),
    pytest.param(
        "cards.ttl",
        'bk:step [ bk:order 1 ; bk:text "open the app" ] ,\n'
        '            [ bk:order 2 ; bk:text "tap Cards and choose Activate" ]',
        'bk:step [ bk:order 1 ; bk:text "open the app" ] ,\n'
        '            [ bk:order 1 ; bk:text "tap Cards and choose Activate" ]',
        ["bk:proc_activate_card has two steps with the same bk:order"],
        id="duplicate-step-order",
    ),
    pytest.param(
        "intents_money.ttl",
        'bk:topic "transfers" ;\n    bk:answer bk:dur_uk_transfer, bk:dur_intl_transfer ;\n',
        'bk:topic "money" ;\n    bk:answer bk:dur_uk_transfer, bk:dur_intl_transfer ;\n',
        ["bk:intent_transfer_timing has topic 'money', which no bk:Topic names"],
        id="unknown-topic",
    ),
]


@pytest.mark.parametrize(("file", "old", "new", "messages"), BROKEN)
def test_broken_pack_fails_at_load_with_a_clear_message(tmp_path, file, old, new, messages):
    pack = copy_pack(tmp_path)
    edit(pack, file, old, new)
    with pytest.raises(PackError) as caught:
        KnowledgeGraph.load(pack)
    text = str(caught.value)
    assert str(pack) in text
    for message in messages:
        assert message in text


def test_invalid_turtle_names_the_file(tmp_path):
    pack = copy_pack(tmp_path)
    (pack / "zz_broken.ttl").write_text('bk:x a bk:Fee ; bk:feeFor "unterminated .\n')
    with pytest.raises(PackError, match=r"zz_broken\.ttl"):
        KnowledgeGraph.load(pack)


def test_empty_pack_is_refused(tmp_path):
    with pytest.raises(PackError, match=r"no \.ttl files"):
        KnowledgeGraph.load(tmp_path)
