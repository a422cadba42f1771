"""Slot filling as BIO tagging of words, with spans returned as character offsets.

A fine-tuned `BertForTokenClassification` (see `models.finetune`) labels every word of an
utterance ``O``, ``B-<slot>`` (a span starts here) or ``I-<slot>`` (a span goes on).
A "word" is what the tokenizer's pre-tokenizer makes of the text (whitespace and
punctuation split, so "£27" is two words and "2pm" one); the model's label for a word is
its first word-piece's label, which is also the only piece trained (the usual choice for
word-piece tagging: it never asks the model to agree with itself inside a word).
The tokenizer's offset mapping turns words back into character offsets of the original
text, so a caller gets ``text[start:end]`` exactly as it was said, casing included,
whatever the uncased encoder saw.

Decoding repairs what greedy per-word labels can get wrong: an ``I-x`` with no open
``x`` span (after ``O`` or after another slot) opens a new span instead of being lost.
Everything here is generic: labels come from the trained model, no dataset is known.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.finetune import FinetuneError, load_model

if TYPE_CHECKING:
    from torch import nn

OUTSIDE = "O"
#: A gold or predicted span without its text: (slot, char_start, char_end).
Span = tuple[str, int, int]


@dataclass(frozen=True, slots=True)
class SlotSpan:
    """One slot found in an utterance: ``text == utterance[start:end]``; `score` in [0, 1]."""

    slot: str
    start: int
    end: int
    text: str
    score: float


def bio_labels(slots: Iterable[str]) -> tuple[str, ...]:
    """The label set for these slots: ``O`` then ``B-``/``I-`` per slot, in sorted order."""
    labels = [OUTSIDE]
    for slot in sorted(set(slots)):
        if not slot or slot == OUTSIDE:
            raise ValueError(f"bad slot name {slot!r}")
        labels += [f"B-{slot}", f"I-{slot}"]
    return tuple(labels)


def encode_bio(words: Sequence[tuple[int, int]], spans: Iterable[Span]) -> list[str]:
    """BIO tags for words (character ranges) given gold spans.

    A word belongs to a span when their characters overlap; the first such word is
    ``B-``. Overlapping gold spans keep the first one (by start) for a shared word.
    """
    tags = [OUTSIDE] * len(words)
    for slot, start, end in sorted(spans, key=lambda s: (s[1], s[2])):
        first = True
        for i, (w_start, w_end) in enumerate(words):
            if w_start < end and start < w_end and w_end > w_start:
                if tags[i] != OUTSIDE:
                    first = False
                    continue
                tags[i] = f"{'B' if first else 'I'}-{slot}"
                first = False
    return tags


def decode_bio(
    tags: Sequence[str],
    words: Sequence[tuple[int, int]],
    text: str,
    scores: Sequence[float] | None = None,
) -> list[SlotSpan]:
    """Spans from per-word BIO tags; an ``I-x`` with no open ``x`` span starts one."""
    if len(tags) != len(words):
        raise ValueError(f"{len(tags)} tags for {len(words)} words")
    probs = list(scores) if scores is not None else [1.0] * len(tags)
    spans: list[SlotSpan] = []
    open_slot: str | None = None
    first = last = 0

    def close() -> None:
        if open_slot is not None:
            start, end = words[first][0], words[last][1]
            score = sum(probs[first : last + 1]) / (last - first + 1)
            spans.append(SlotSpan(open_slot, start, end, text[start:end], score))

    for i, tag in enumerate(tags):
        prefix, _, slot = tag.partition("-")
        if prefix == "I" and slot == open_slot:
            last = i
            continue
        close()
        open_slot = slot if prefix in ("B", "I") and slot else None
        first = last = i
    close()
    return spans


def decode_probs(
    probs: Sequence[Sequence[float]],
    labels: Sequence[str],
    words: Sequence[tuple[int, int]],
    text: str,
) -> list[SlotSpan]:
    """Spans from per-word label probabilities: boundaries first, then the slot by vote.

    Greedy per-word labels break one mention into pieces when the model hesitates
    between related slots ("next" date_from, "Tuesday" date_to). So each word is first
    outside, beginning or inside (the label probabilities summed over slots), which
    fixes the spans, and each span then takes the slot with the most probability mass
    over its words. An inside word with nothing open begins a span (the repair rule).
    `score` is the mean probability of the chosen slot over the span's words.
    """
    if len(probs) != len(words):
        raise ValueError(f"{len(probs)} rows of probabilities for {len(words)} words")
    begins = [i for i, x in enumerate(labels) if x.startswith("B-")]
    insides = [i for i, x in enumerate(labels) if x.startswith("I-")]
    slot_of = {i: labels[i][2:] for i in begins + insides}
    outside = labels.index(OUTSIDE)
    groups: list[list[int]] = []
    for w, row in enumerate(probs):
        p_begin = sum(row[i] for i in begins)
        p_inside = sum(row[i] for i in insides)
        if row[outside] >= max(p_begin, p_inside):
            continue
        if p_inside > p_begin and groups and groups[-1][-1] == w - 1:
            groups[-1].append(w)
        else:
            groups.append([w])
    spans = []
    for group in groups:
        mass: dict[str, float] = dict.fromkeys(slot_of.values(), 0.0)
        for w in group:
            for i, slot in slot_of.items():
                mass[slot] += probs[w][i]
        slot, total = max(mass.items(), key=lambda kv: (kv[1], kv[0]))
        start, end = words[group[0]][0], words[group[-1]][1]
        spans.append(SlotSpan(slot, start, end, text[start:end], min(1.0, total / len(group))))
    return spans


def span_scores(
    gold: Sequence[Iterable[Span]], predicted: Sequence[Iterable[Span]]
) -> dict[str, Any]:
    """Exact-match span precision/recall/F1, micro over all slots and per slot.

    A predicted span counts only if slot, start and end all equal a gold span's (the
    CoNLL rule); duplicates count once.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold utterances but {len(predicted)} predicted")
    tp: Counter[str] = Counter()
    n_gold: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    for g, p in zip(gold, predicted, strict=True):
        g_set, p_set = set(g), set(p)
        for slot, _, _ in g_set:
            n_gold[slot] += 1
        for slot, _, _ in p_set:
            n_pred[slot] += 1
        for slot, _, _ in g_set & p_set:
            tp[slot] += 1

    def prf(t: int, g: int, p: int) -> dict[str, float | int]:
        precision = t / p if p else 0.0
        recall = t / g if g else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1, "gold": g, "predicted": p}

    slots = sorted(set(n_gold) | set(n_pred))
    return {
        "micro": prf(sum(tp.values()), sum(n_gold.values()), sum(n_pred.values())),
        "per_slot": {s: prf(tp[s], n_gold[s], n_pred[s]) for s in slots},
    }


def word_ranges(encoding: Any, index: int) -> tuple[list[tuple[int, int]], list[int]]:
    """(character range, first token position) of each word of one encoded text."""
    offsets = encoding["offset_mapping"][index]
    words: list[tuple[int, int]] = []
    firsts: list[int] = []
    previous: int | None = None
    for position, word in enumerate(encoding.word_ids(index)):
        if word is None:
            continue
        start, end = (int(x) for x in offsets[position])
        if word != previous:
            words.append((start, end))
            firsts.append(position)
            previous = word
        else:
            words[-1] = (words[-1][0], end)
    return words, firsts


def predict_spans(
    model: nn.Module,
    tokenizer: Any,
    labels: Sequence[str],
    texts: Sequence[str],
    *,
    max_length: int,
    batch_size: int = 32,
) -> list[list[SlotSpan]]:
    """Run a token-classification model over texts; shared by the tagger and training.

    Words past `max_length` word-pieces are not tagged (utterances are far shorter).
    """
    import torch

    results: list[list[SlotSpan]] = []
    was_training = model.training
    model.eval()
    try:
        for begin in range(0, len(texts), batch_size):
            batch = list(texts[begin : begin + batch_size])
            encoding = tokenizer(
                batch,
                truncation=True,
                max_length=max_length,
                padding=True,
                return_offsets_mapping=True,
                return_tensors="pt",
            )
            inputs = {k: v for k, v in encoding.items() if k != "offset_mapping"}
            with torch.inference_mode():
                probs = torch.softmax(model(**inputs).logits.float(), dim=-1)
            for i, text in enumerate(batch):
                words, firsts = word_ranges(encoding, i)
                rows = probs[i, firsts].tolist() if firsts else []
                results.append(decode_probs(rows, labels, words, text))
    finally:
        model.train(was_training)
    return results


class SlotTagger:
    """A trained slot tagger: `tag` one utterance, `tag_batch` many (faster per text)."""

    def __init__(
        self, model: nn.Module, tokenizer: Any, labels: Sequence[str], *, max_length: int = 128
    ) -> None:
        bad = [x for x in labels if x != OUTSIDE and x[:2] not in ("B-", "I-")]
        if not labels or labels[0] != OUTSIDE or bad:
            raise FinetuneError(f"labels are not a BIO scheme starting with 'O': {bad or labels}")
        self.model = model
        self.tokenizer = tokenizer
        self.labels = tuple(labels)
        self.max_length = max_length

    @classmethod
    def load(cls, directory: Path | str) -> SlotTagger:
        """Load an adapter directory written by `train_slot_tagger` (or a full model).

        Raises `FinetuneError` (a ValueError) naming what is wrong with the directory.
        """
        model, tokenizer, meta = load_model(Path(directory), task="token")
        return cls(model, tokenizer, meta.labels, max_length=meta.max_length)

    @property
    def slots(self) -> tuple[str, ...]:
        """The slot names this tagger can find."""
        return tuple(x[2:] for x in self.labels if x.startswith("B-"))

    def tag(self, text: str) -> list[SlotSpan]:
        """Slots in one utterance, in order of position."""
        return self.tag_batch([text])[0]

    def tag_batch(self, texts: Sequence[str], batch_size: int = 32) -> list[list[SlotSpan]]:
        """Slots in each of several utterances (one padded forward pass per batch)."""
        return predict_spans(
            self.model,
            self.tokenizer,
            self.labels,
            texts,
            max_length=self.max_length,
            batch_size=batch_size,
        )
