"""The dialogue core with the real encoder, index and knowledge graph."""

from __future__ import annotations

import pytest

from voicebot.dialogue.core import DialogueState, Outcome


@pytest.fixture(scope="module")
def core(services):
    return services.dialogue


def test_a_clear_banking_question_gets_a_grounded_answer(core):
    decision = core.respond(
        DialogueState(), "I've been waiting two weeks and my new card hasn't come"
    )
    assert decision.outcome == Outcome.ANSWER
    assert decision.intent == "card_arrival"
    assert decision.sentences == core.answer("card_arrival")
    assert decision.state.turns == 1 and decision.state.misunderstandings == 0


def test_respond_is_pure(core):
    state = DialogueState()
    first = core.respond(state, "Can I get a refund for something I bought?")
    second = core.respond(state, "Can I get a refund for something I bought?")
    assert first == second
    assert state == DialogueState()


def test_an_answer_without_slots_is_the_same_answer_and_slots_can_follow(core):
    text = "I was charged 45 pounds twice at Tesco yesterday"
    full = core.respond(DialogueState(), text)
    quick = core.respond(DialogueState(), text, with_slots=False)
    assert full.slots and dict(full.slots).get("amount_of_money") == "45.00 GBP", full.slots
    assert quick.slots == ()
    assert (quick.intent, quick.sentences, quick.state) == (full.intent, full.sentences, full.state)
    assert core.read_slots(text) == full.slots


@pytest.mark.parametrize(
    "text", ["What's the weather like tomorrow?", "Tell me a joke about penguins."]
)
def test_off_topic_turns_get_a_clarifying_question_not_a_guess(core, text):
    decision = core.respond(DialogueState(), text)
    assert decision.outcome == Outcome.CLARIFY
    assert decision.state.misunderstandings == 1


def test_two_misunderstandings_in_a_row_offer_a_person(core):
    state = core.respond(DialogueState(), "What's the weather like tomorrow?").state
    decision = core.respond(state, "Play some music for me.")
    assert decision.outcome == Outcome.HANDOFF_OFFER
    assert decision.handoff is not None and decision.handoff.reason == "repeated misunderstanding"


def test_asking_for_a_person_then_yes_is_a_handoff(core):
    offer = core.respond(DialogueState(), "Can I speak to a real person please")
    assert offer.outcome == Outcome.HANDOFF_OFFER and offer.state.pending == "handoff"
    accepted = core.respond(offer.state, "Yes please.")
    assert accepted.outcome == Outcome.HANDOFF_ACCEPTED
    assert accepted.handoff is not None and accepted.handoff.accepted is True
    assert accepted.state.transferred


def test_declining_the_offer_keeps_the_bot(core):
    offer = core.respond(DialogueState(), "Put me through to an agent")
    declined = core.respond(offer.state, "No, that's fine.")
    assert declined.outcome == Outcome.HANDOFF_DECLINED
    assert declined.state.pending is None and not declined.state.transferred


def test_an_upset_caller_gets_the_answer_and_an_apology_with_an_offer(core):
    decision = core.respond(
        DialogueState(), "I lost my card and this awful service makes me furious"
    )
    assert decision.sentiment <= -0.6
    assert decision.intent in ("lost_or_stolen_card", "compromised_card")
    assert decision.outcome == Outcome.HANDOFF_OFFER
    answer = core.answer(decision.intent)
    assert decision.sentences[: len(answer)] == answer
    assert decision.handoff is not None and "sentiment" in decision.handoff.reason


def test_an_unsure_intent_is_confirmed_and_yes_answers_it(core):
    state = DialogueState(pending="confirm_intent", pending_intent="exchange_rate")
    decision = core.respond(state, "yes")
    assert decision.outcome == Outcome.ANSWER and decision.intent == "exchange_rate"
    no = core.respond(state, "no")
    assert no.outcome == Outcome.CLARIFY


def test_greetings_thanks_and_goodbye(core):
    assert core.respond(DialogueState(), "Hi there").outcome == Outcome.GREETING
    thanks = core.respond(DialogueState(), "Thanks a lot")
    assert thanks.outcome == Outcome.CLOSING and not thanks.end_call
    bye = core.respond(DialogueState(), "That's all, goodbye")
    assert bye.outcome == Outcome.CLOSING and bye.end_call


def test_empty_transcript_is_not_heard(core):
    assert core.respond(DialogueState(), " ... ").outcome == Outcome.NOT_HEARD


def test_dtmf_zero_is_a_handoff_and_other_keys_are_explained(core):
    zero = core.on_dtmf(DialogueState(), "0")
    assert zero.outcome == Outcome.HANDOFF_ACCEPTED and zero.state.transferred
    other = core.on_dtmf(DialogueState(), "5")
    assert other.outcome == Outcome.DTMF and other.handoff is None


def test_every_banking_intent_the_model_knows_has_an_answer(core):
    from voicebot.dialogue.core import ACCOUNT_INTENTS
    from voicebot.dialogue.nlu import GENERAL

    banking = set(core.nlu.labels) - GENERAL - set(ACCOUNT_INTENTS)
    assert len(banking) >= 77 and banking <= set(core.graph.intents())
    for intent in banking:
        assert core.answer(intent), intent
