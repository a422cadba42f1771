"""Entity linking against the shipped bank pack, with and without the real MiniLM encoder."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rdflib import URIRef

from voicebot.dialogue.grounded import GroundedReplies, say_money
from voicebot.dialogue.knowledge import BK, DEFAULT_PACK
from voicebot.dialogue.linking import EMBED_THRESHOLD, EntityLinker, normalise, word_similarity

INJECTIONS = [
    "} DROP GRAPH <urn:x> ; SELECT * WHERE { ?s ?p ?o }",
    '" } ; DELETE WHERE { ?s ?p ?o } #',
    "') ; INSERT DATA { bk:x bk:amount 0 } #",
]
ODD = ["", "   ", "'", '"', "\\", "\x00", "{}", "?fact", "a" * 100_000, "card " * 20_000, "ß" * 5]
OFF_TOPIC = ["what's the weather in Paris", "tell me a joke", "I'd like to order a pizza"]
# Bank words, misspellings and query syntax, so generated text hits the matchers' edges.
PIECES = ["card", "virtual", "contactles", "top", "up", "topup", "cash", "point", "fee", "spare"]
PIECES += ["PIN", "I'd", "{", "}", "SELECT", "WHERE", "?s", "'", '"', "\\", "#", "<", ">", "."]
CALLER_TEXT = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(PIECES) | st.text(max_size=8), max_size=40).map(" ".join),
)


@pytest.fixture(scope="module")
def replies() -> GroundedReplies:
    return GroundedReplies.from_pack(DEFAULT_PACK)


@pytest.fixture(scope="module")
def lexical(replies) -> EntityLinker:
    """Exact and fuzzy matching only: the linker a bot without an encoder gets."""
    return EntityLinker.build(replies.graph, replies)


@pytest.fixture(scope="module")
def encoder(services):
    """The packaged MiniLM encoder the session's services already loaded."""
    return services.workers.embedder


@pytest.fixture(scope="module")
def embedded(replies, encoder) -> EntityLinker:
    """The full linker: exact, fuzzy and embedding links."""
    return EntityLinker.build(replies.graph, replies, encoder.embed)


@pytest.fixture(params=["lexical", "embedded"])
def linker(request) -> EntityLinker:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def spoken(replies) -> set[str]:
    """Every sentence the pack can say about a fact: all that search may ever return."""
    return {replies.render(fact) for fact in replies.graph.facts()}


def test_normalise_splits_marks_and_contractions():
    assert normalise("Top-up my VIRTUAL card, I'd say!") == [
        "top", "up", "my", "virtual", "card", "i", "d", "say"
    ]  # fmt: skip


def test_word_similarity_forgives_slips_not_other_words():
    assert word_similarity("contactles", "contactless") > 0.9
    assert word_similarity("paymnt", "payment") > 0.9
    assert word_similarity("change", "charge") == 0  # one letter, another meaning
    assert word_similarity("change", "exchange") == 0  # a word inside another word
    assert word_similarity("pen", "pin") == 0  # too short to guess


def test_every_fact_links_exactly_by_its_own_label(lexical, replies):
    for fact in replies.graph.facts():
        links = lexical.link(fact.values["label"][0], k=len(lexical))
        assert (fact.node, "exact") in {(link.node, link.how) for link in links}, fact.name


def test_longest_match_wins(linker):
    links = linker.link("I'd like a virtual card please", k=len(linker))
    assert links[0].node == str(BK.product_virtual_card)
    assert (links[0].how, links[0].score, links[0].kind) == ("exact", 1.0, "Product")
    exact = {link.node for link in links if link.how == "exact"}
    assert str(BK.product_debit_card) not in exact  # the "card" inside "virtual card"
    alone = linker.link("I lost my card", k=len(linker))
    assert (str(BK.product_debit_card), "exact") in {(link.node, link.how) for link in alone}


@pytest.mark.parametrize(
    ("text", "product"),
    [
        ("my contactles payments don't work", BK.product_contactless),
        ("can I take money out at a cash point", BK.product_atm),  # split: "cashpoint"
        ("how do I topup", BK.product_topup),  # run together: "top up"
        ("I want to ad monney to my acount", BK.product_current_account),
    ],
)
def test_misspelled_or_split_product_still_links(linker, text, product):
    found = {link.node: link for link in linker.link(text, k=len(linker))}
    assert str(product) in found
    assert found[str(product)].how == "fuzzy"
    assert 0.6 < found[str(product)].score < 1.0


def test_similar_but_different_words_do_not_link(lexical):
    nodes = {link.node for link in lexical.link("I want to change my address", k=50)}
    assert str(BK.product_exchange) not in nodes
    assert lexical.link("I'd like to order a pizza", k=50) == []  # "I'd" is not "ID"


@pytest.mark.parametrize("text", OFF_TOPIC)
def test_off_topic_links_nothing(linker, text):
    assert linker.link(text, k=len(linker)) == []
    assert linker.facts_about(text) == []
    assert linker.search(text) == []


def test_links_are_sorted_unique_and_on_one_scale(embedded):
    text = "I topped up with my virtual card and Apple Pay but hit the contactles limit"
    links = embedded.link(text, k=len(embedded))
    scores = [link.score for link in links]
    assert scores == sorted(scores, reverse=True)
    assert len({link.node for link in links}) == len(links)
    assert {link.how for link in links} == {"exact", "fuzzy", "embedding"}
    assert all(EMBED_THRESHOLD <= link.score <= 1.0 for link in links)
    assert all(link.score == 1.0 for link in links if link.how == "exact")
    assert all(link.score < 1.0 for link in links if link.how != "exact")


def test_embedding_links_a_paraphrase_no_name_contains(embedded, lexical):
    text = "how much is express delivery"
    assert lexical.link(text) == []  # "express card delivery" is not said as such
    best = embedded.link(text)[0]
    assert (best.node, best.how) == (str(BK.fee_express_delivery), "embedding")
    assert EMBED_THRESHOLD <= best.score < 1.0


@pytest.mark.parametrize(
    ("which", "question"),
    [
        ("embedded", "How much does it cost to get a spare card?"),
        ("lexical", "What's the fee for a spare card?"),
        ("embedded", "What's the fee for a spare card?"),
    ],
)
def test_a_fee_question_gets_the_fee_sentence(request, replies, spoken, which, question):
    linker = request.getfixturevalue(which)
    fees = [f for f in replies.graph.facts() if f.kind == "Fee" and f.first("amount")]
    fee = next(f for f in fees if "spare" in (f.first("feeFor") or ""))
    answer = linker.search(question)
    assert linker.facts_about(question)[0] == fee
    assert answer[0] == replies.render(fee)
    assert say_money(fee.first("amount") or "") in answer[0]  # the graph's own amount
    assert 1 < len(answer) <= 3 and set(answer) <= spoken


def test_a_product_brings_its_facts_best_fitting_first(embedded, replies):
    facts = embedded.facts_about("my PIN is blocked, how do I unblock it", limit=5)
    assert facts[0].node == str(BK.proc_unblock_pin)
    assert all(str(BK.product_pin) in _applies_to(replies, f.node) for f in facts[:3])


def test_a_product_s_own_facts_come_before_shared_ones(linker):
    """Spare cards bring the spare-card facts first, the delivery time they share last."""
    facts = linker.facts_about("tell me about spare cards", limit=4)
    assert [fact.name for fact in facts][-1] == "dur_card_delivery"
    assert all("spare" in fact.values["label"][0] for fact in facts[:3])


@pytest.mark.parametrize("text", INJECTIONS)
def test_query_syntax_in_caller_text_is_only_words(linker, replies, text):
    rdf = replies.graph._graph
    before = len(rdf)
    assert linker.search(text) == []
    facts = linker.facts_about(text + " spare card")
    assert facts and all(str(BK.product_spare_card) in _applies_to(replies, f.node) for f in facts)
    assert len(rdf) == before
    assert (BK.x, None, None) not in rdf


@pytest.mark.parametrize("text", ODD, ids=lambda t: repr(t[:12]))
def test_odd_input_never_raises(linker, spoken, text):
    assert set(linker.search(text)) <= spoken
    assert len(linker.link(text, k=0)) == 0


def test_long_text_is_read_up_to_a_limit(lexical):
    assert lexical.search("card " * 20_000) == lexical.search("card")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=CALLER_TEXT)
def test_lexical_linker_never_raises(lexical, replies, text):
    links = lexical.link(text, k=5)
    assert len(links) <= 5 and all(0 < link.score <= 1 for link in links)
    facts = lexical.facts_about(text)
    assert lexical.search(text) == [replies.render(fact) for fact in facts]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=CALLER_TEXT)
def test_embedded_search_never_raises(embedded, spoken, text):
    links = embedded.link(text, k=5)
    assert all(0 < link.score <= 1 for link in links)
    assert set(embedded.search(text)) <= spoken


def _applies_to(replies: GroundedReplies, node: str) -> set[str]:
    """Read straight from the parsed Turtle, not through the code under test."""
    return {str(product) for product in replies.graph._graph.objects(URIRef(node), BK.appliesTo)}
