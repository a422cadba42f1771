"""The kNN intent index: building from a CSV, loading, voting."""

from __future__ import annotations

import numpy as np
import pytest

from voicebot.dialogue.core import DOMAIN_ROOT
from voicebot.dialogue.intents import INDEX_FILE, IntentIndex, build_index, read_examples


def test_shipped_index_covers_what_the_classifier_knows(services):
    """The on-topic index holds the classifier's training data: same intents, same size."""
    index = IntentIndex.load(DOMAIN_ROOT / "bank" / INDEX_FILE)
    classifier = services.dialogue.nlu.classifier
    assert sorted(index.names) == sorted(classifier.labels)
    assert index.vectors.shape[1] == 384 and index.vectors.shape[0] >= 10003
    assert np.allclose(np.linalg.norm(index.vectors, axis=1), 1, atol=1e-3)


def test_build_and_classify_from_a_small_csv(tmp_path, services):
    csv = tmp_path / "mini.csv"
    csv.write_text(
        "text,category\n"
        "I lost my card,lost_card\nmy card is gone,lost_card\nsomeone stole my card,lost_card\n"
        "how much is a transfer,transfer_fee\nwhat do you charge to send money,transfer_fee\n"
        "is there a fee for payments abroad,transfer_fee\n"
    )
    texts, labels = read_examples(csv)
    path = build_index(texts, labels, services.workers.embedder.embed, tmp_path / "idx.npz")
    index = IntentIndex.load(path, neighbours=6)
    guess = index.classify(services.workers.embedder.embed(["my card was stolen yesterday"])[0])
    assert guess.intent == "lost_card"
    assert 0.5 < guess.confidence <= 1.0 and guess.similarity > 0.5
    assert guess.alternatives[0][0] == "transfer_fee"


def test_bad_csv_is_rejected(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,label\nhello,greet\n")
    with pytest.raises(ValueError, match="text,category"):
        read_examples(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("text,category\n")
    with pytest.raises(ValueError, match="no examples"):
        read_examples(empty)
