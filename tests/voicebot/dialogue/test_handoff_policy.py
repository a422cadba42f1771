"""The handoff policy, both ways: a person is offered only where the call can be
transferred; elsewhere the caller is told so, and when the bank's people can be reached.

The real dialogue core (shipped intent model, the bank's graph and templates). Texts
are read from the templates and the graph, never typed here.
"""

from __future__ import annotations

import pytest

from voicebot.dialogue.core import MAX_FAILURES, DialogueCore
from voicebot.dialogue.state import Decision, DialogueState, Handoff, Outcome

ASK = "Can I speak to a real person please"
#: Prompts that offer or promise a transfer; none may be said where there is none.
PROMISES = (
    "handoff_offer",
    "handoff_offer_upset",
    "handoff_offer_failure",
    "handoff_accepted",
    "dtmf_operator",
)


@pytest.fixture(scope="module")
def core(services) -> DialogueCore:
    return services.dialogue


def promised(core: DialogueCore, decision: Decision) -> list[str]:
    """The promise prompts said in `decision`, and any 'put you through' at all."""
    said = [key for key in PROMISES if core.replies.prompt(key) in decision.sentences]
    if "put you through" in decision.text.lower() or "stay on the line" in decision.text.lower():
        said.append(decision.text)
    return said


def assert_told_unavailable(core: DialogueCore, decision: Decision, reason: str) -> None:
    assert decision.outcome == Outcome.HANDOFF_UNAVAILABLE, decision
    assert decision.handoff == Handoff(reason, available=False)
    assert decision.handoff.state == "unavailable"
    assert promised(core, decision) == []
    contacts = core.replies.contact_points()
    assert contacts, "the bank's graph names when its people can be reached"
    assert all(sentence in decision.sentences for sentence in contacts)
    assert decision.sentences[-1] == core.replies.prompt("handoff_unavailable_help")
    # Nothing is left waiting for a yes: there was no question.
    assert decision.state.pending is None and not decision.state.transferred


def test_asking_for_a_person_where_the_call_can_be_transferred_offers_one(core):
    offer = core.respond(DialogueState(can_transfer=True), ASK)
    assert offer.outcome == Outcome.HANDOFF_OFFER and offer.state.pending == "handoff"
    assert offer.handoff == Handoff("caller asked for a person") and offer.handoff.available
    assert offer.handoff.state == "offered"
    assert core.replies.prompt("handoff_offer") in offer.sentences


def test_asking_for_a_person_where_there_is_no_transfer_is_told_so(core):
    state = DialogueState(can_transfer=False)
    decision = core.respond(state, ASK)
    assert_told_unavailable(core, decision, "caller asked for a person")
    assert decision.sentences[0] == core.replies.prompt("handoff_unavailable")
    assert decision.state.can_transfer is False  # it stays known for the rest of the call


def test_pressing_zero_both_ways(core):
    through = core.on_dtmf(DialogueState(can_transfer=True), "0")
    assert through.outcome == Outcome.HANDOFF_ACCEPTED and through.state.transferred
    assert through.handoff is not None and through.handoff.state == "accepted"
    assert through.sentences == (core.replies.prompt("dtmf_operator"),)

    told = core.on_dtmf(DialogueState(can_transfer=False), "0")
    assert_told_unavailable(core, told, "caller pressed 0")
    assert told.sentences[0] == core.replies.prompt("dtmf_unavailable")


def test_repeated_failures_offer_a_person_only_where_one_can_be_reached(core):
    failing = DialogueState(failures=MAX_FAILURES - 1)
    offer = core.apology(failing)
    assert offer.outcome == Outcome.HANDOFF_OFFER
    assert core.replies.prompt("handoff_offer_failure") in offer.sentences

    told = core.apology(DialogueState(failures=MAX_FAILURES - 1, can_transfer=False))
    assert_told_unavailable(core, told, "repeated system failure")
    assert told.sentences[0] == core.replies.prompt("handoff_unavailable_failure")
    assert told.state.failures == MAX_FAILURES  # the failure still counts


def test_misunderstood_twice_without_a_transfer_is_told_who_can_help(core):
    state = DialogueState(can_transfer=False)
    state = core.respond(state, "What's the weather like tomorrow?").state
    decision = core.respond(state, "Play some music for me.")
    assert_told_unavailable(core, decision, "repeated misunderstanding")


def test_handoff_states_as_the_transcript_names_them():
    assert Handoff("x").state == "offered"
    assert Handoff("x", accepted=True).state == "accepted"
    assert Handoff("x", accepted=False).state == "declined"
    assert Handoff("x", available=False).state == "unavailable"


@pytest.mark.parametrize("can_transfer", [True, False])
def test_press_zero_is_suggested_only_where_zero_reaches_a_person(core, can_transfer):
    state = DialogueState(can_transfer=can_transfer)
    said = [
        *core.on_dtmf(state, "7").sentences,
        *core.apology(state).sentences,
        core.error_sentence(state),
    ]
    assert len(said) == 3
    assert all(("press zero" in s.lower()) is can_transfer for s in said), said
