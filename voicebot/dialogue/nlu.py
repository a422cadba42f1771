"""Intent recognition behind one small interface: the fine-tuned classifier or the kNN index.

The dialogue core asks one question of a turn: which intent, how sure, and which
runners-up. Two models answer it. The default is the fine-tuned MiniLM classifier the
domain pack ships (`voicebot train-intents`), which also knows the general dialogue acts
(yes, no, a person please, repeat, bye...). The embedding kNN index from the first
version stays selectable (`[dialogue] intent_model = "knn"`): it needs no training and
its nearest-example similarity is a direct off-topic signal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from models.intent_classifier import IntentClassifier
from voicebot.dialogue.intents import Embed, IntentGuess, IntentIndex

#: Dialogue acts the classifier knows besides the banking intents (from NLU++).
GENERAL = frozenset(
    {"affirm", "deny", "dont_know", "handoff", "thank", "greet", "end_call", "repeat"}
)


#: The best intent, its calibrated confidence, how on-topic the turn is, runners-up.
Understanding = IntentGuess


class IntentModel(Protocol):
    """Anything that names the intent of one caller turn."""

    @property
    def labels(self) -> Sequence[str]: ...

    def understand(self, text: str) -> Understanding: ...


class KnnIntents:
    """The embedding index: k nearest labelled examples vote."""

    def __init__(self, index: IntentIndex, embed: Embed) -> None:
        self.index = index
        self.embed = embed

    @property
    def labels(self) -> Sequence[str]:
        """Intent names the index holds."""
        return self.index.names

    def understand(self, text: str) -> Understanding:
        """Embed the turn and vote."""
        guess = self.index.classify(self.embed([text])[0])
        return Understanding(guess.intent, guess.confidence, guess.similarity, guess.alternatives)


class ClassifierIntents:
    """The fine-tuned sequence classifier (calibrated softmax averaged with its own kNN).

    Fine-tuning pulls every sentence towards some intent, so the fine-tuned space is a
    poor judge of "not about banking at all" ("what's the weather like?" sits at 0.67
    from a card-delivery example there). When an `on_topic` kNN index over the frozen
    encoder is given, its nearest-example similarity is reported instead: there,
    off-topic talk stays below about 0.45 while 99.9% of banking turns reach 0.5.
    """

    def __init__(self, classifier: IntentClassifier, on_topic: KnnIntents | None = None) -> None:
        self.classifier = classifier
        self.on_topic = on_topic

    @property
    def labels(self) -> Sequence[str]:
        """Intent names the classifier was trained on."""
        return self.classifier.labels

    def understand(self, text: str) -> Understanding:
        """One forward pass: head and nearest training examples, and the nearest cosine."""
        best = self.classifier.predict([text])[0]
        similarity = best.similarity
        if self.on_topic is not None:
            similarity = self.on_topic.understand(text).similarity
        return Understanding(best.label, best.confidence, similarity, best.alternatives)
