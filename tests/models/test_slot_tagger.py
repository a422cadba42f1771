"""The slot tagger: BIO encoding and decoding, span scoring, training, loading errors."""

from __future__ import annotations

import json

import pytest

from models.finetune import ADAPTER_FILE, META_FILE, FinetuneError
from models.slot_tagger import (
    SlotSpan,
    SlotTagger,
    bio_labels,
    decode_bio,
    decode_probs,
    encode_bio,
    span_scores,
)
from models.slot_training import train_slot_tagger


def whitespace_words(text: str) -> list[tuple[int, int]]:
    """Character ranges of space-separated words (the tokenizer's job, done by hand)."""
    ranges, start = [], 0
    for word in text.split(" "):
        ranges.append((start, start + len(word)))
        start += len(word) + 1
    return ranges


def test_bio_labels_are_sorted_and_checked():
    assert bio_labels(["time", "date", "time"]) == ("O", "B-date", "I-date", "B-time", "I-time")
    with pytest.raises(ValueError):
        bio_labels(["O"])


def test_encode_then_decode_gives_the_spans_back():
    text = "send 20 pounds to Marks and Spencer on Friday"
    words = whitespace_words(text)
    spans = [("amount", 5, 14), ("company", 18, 35), ("date", 39, 45)]
    tags = encode_bio(words, spans)
    assert tags == ["O", "B-amount", "I-amount", "O", "B-company", "I-company", "I-company",
                    "O", "B-date"]  # fmt: skip
    decoded = decode_bio(tags, words, text)
    assert [(s.slot, s.start, s.end) for s in decoded] == spans
    assert [s.text for s in decoded] == ["20 pounds", "Marks and Spencer", "Friday"]


def test_decoding_repairs_inside_tags_without_a_begin():
    text = "on next Friday pay 20 pounds at 3"
    words = whitespace_words(text)
    tags = ["O", "I-date", "I-date", "O", "B-amount", "I-amount", "O", "I-time"]
    scores = [1, 0.5, 0.7, 1, 0.9, 0.8, 1, 0.6]
    spans = decode_bio(tags, words, text, scores)
    assert [(s.slot, s.text) for s in spans] == [
        ("date", "next Friday"), ("amount", "20 pounds"), ("time", "3"),
    ]  # fmt: skip
    assert spans[0].score == pytest.approx(0.6)


def test_decoding_splits_on_a_new_begin_or_another_slot():
    text = "a b c d"
    words = whitespace_words(text)
    spans = decode_bio(["B-x", "B-x", "I-y", "I-x"], words, text)
    assert [(s.slot, s.start, s.end) for s in spans] == [("x", 0, 1), ("x", 2, 3), ("y", 4, 5),
                                                         ("x", 6, 7)]  # fmt: skip
    with pytest.raises(ValueError):
        decode_bio(["O"], words, text)


def test_probability_decoding_keeps_a_hesitant_mention_whole():
    labels = bio_labels(["date_from", "date_to"])  # O B-from I-from B-to I-to
    text = "until next Tuesday ok then"
    words = whitespace_words(text)
    probs = [
        [0.9, 0.05, 0.0, 0.05, 0.0],  # until: outside
        [0.1, 0.3, 0.0, 0.5, 0.1],  # next: begins a span, date_to leads
        [0.1, 0.0, 0.5, 0.0, 0.4],  # Tuesday: inside; alone it would say date_from
        [0.9, 0.0, 0.0, 0.0, 0.1],  # ok: outside
        [0.2, 0.0, 0.0, 0.0, 0.8],  # then: inside with nothing open, so it begins one
    ]
    spans = decode_probs(probs, labels, words, text)
    assert [(s.slot, s.text) for s in spans] == [("date_to", "next Tuesday"), ("date_to", "then")]
    assert spans[0].score == pytest.approx((0.6 + 0.4) / 2)
    greedy = decode_bio([labels[max(range(5), key=row.__getitem__)] for row in probs], words, text)
    assert [(s.slot, s.text) for s in greedy][:2] == [("date_to", "next"), ("date_from", "Tuesday")]
    with pytest.raises(ValueError):
        decode_probs(probs[:2], labels, words, text)


def test_span_scores_need_exact_matches():
    gold = [[("date", 0, 5), ("amount", 8, 11)], [("date", 2, 4)]]
    predicted = [[("date", 0, 5), ("amount", 8, 10)], [("date", 2, 4), ("time", 6, 7)]]
    scores = span_scores(gold, predicted)
    assert scores["micro"]["precision"] == pytest.approx(2 / 4)
    assert scores["micro"]["recall"] == pytest.approx(2 / 3)
    assert scores["per_slot"]["date"]["f1"] == 1.0
    assert scores["per_slot"]["amount"]["f1"] == 0.0 and scores["per_slot"]["time"]["gold"] == 0
    with pytest.raises(ValueError):
        span_scores(gold, predicted[:1])


EXAMPLES = [
    ("send 20 pounds to my mum tomorrow", [("amount", 5, 14), ("date", 25, 33)]),
    ("I paid £45 yesterday", [("amount", 7, 10), ("date", 11, 20)]),
    ("transfer fifty quid on Friday", [("amount", 9, 19), ("date", 23, 29)]),
    ("what is my balance", []),
    ("move 300 euros next week please", [("amount", 5, 14), ("date", 15, 24)]),
    ("I was charged $12 today", [("amount", 14, 17), ("date", 18, 23)]),
]


def test_examples_are_well_formed():
    for text, spans in EXAMPLES:
        assert all(text[s:e].strip() == text[s:e] and e > s for _, s, e in spans), text


def test_tiny_training_writes_a_tagger_that_loads_and_tags(tmp_path):
    out = tmp_path / "tagger"
    metrics = train_slot_tagger(EXAMPLES, out, epochs=1, seed=3, rank=2, batch_size=4, lr=1e-3,
                                valid_fraction=0.0, progress=False, threads=1)  # fmt: skip
    assert metrics["train_examples"] == 6 and metrics["valid_examples"] == 0
    assert metrics["labels"] == ["O", "B-amount", "I-amount", "B-date", "I-date"]
    assert (out / ADAPTER_FILE).stat().st_size < 1_000_000
    assert json.loads((out / META_FILE).read_text())["rank"] == 2
    tagger = SlotTagger.load(out)
    assert tagger.slots == ("amount", "date")
    text = "please send 20 pounds to my mum tomorrow"
    for span in tagger.tag(text):  # one epoch learns little; the shape must still be right
        assert isinstance(span, SlotSpan) and span.slot in tagger.slots
        assert text[span.start : span.end] == span.text and 0 < span.score <= 1
    assert len(tagger.tag_batch([text, "", "hello"])) == 3
    # Same examples and seed: the same weights, byte for byte.
    again = tmp_path / "again"
    train_slot_tagger(EXAMPLES, again, epochs=1, seed=3, rank=2, batch_size=4, lr=1e-3,
                      valid_fraction=0.0, progress=False, threads=1)  # fmt: skip
    assert (again / ADAPTER_FILE).read_bytes() == (out / ADAPTER_FILE).read_bytes()


def test_validation_is_held_out_and_scored(tmp_path):
    metrics = train_slot_tagger(EXAMPLES, tmp_path / "t", epochs=1, seed=0, rank=2, batch_size=4,
                                valid_fraction=0.34, progress=False, threads=1)  # fmt: skip
    assert (metrics["train_examples"], metrics["valid_examples"]) == (4, 2)
    assert set(metrics["valid"]) == {"micro", "per_slot"} and "valid_f1" in metrics["history"][0]


def test_bad_training_input_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no training examples"):
        train_slot_tagger([], tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="outside"):
        train_slot_tagger([("short", [("date", 2, 40)])], tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="valid_fraction"):
        train_slot_tagger(EXAMPLES, tmp_path / "x", valid_fraction=1.0, progress=False)


def test_bad_model_directories_give_clear_errors(tmp_path):
    with pytest.raises(FinetuneError, match="does not exist"):
        SlotTagger.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FinetuneError, match="neither"):
        SlotTagger.load(tmp_path / "empty")
    wrong = tmp_path / "intent"
    wrong.mkdir()
    meta = {"base": "all-MiniLM-L6-v2", "task": "sequence", "labels": ["a"], "rank": 2, "alpha": 4}
    (wrong / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(FinetuneError, match="not a token model"):
        SlotTagger.load(wrong)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / META_FILE).write_text(json.dumps({"task": "token"}))
    with pytest.raises(FinetuneError, match="incomplete"):
        SlotTagger.load(broken)
    with pytest.raises(FinetuneError, match="BIO"):
        SlotTagger(model=None, tokenizer=None, labels=["B-x", "O"])  # type: ignore[arg-type]
