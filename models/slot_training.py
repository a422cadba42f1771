"""Train a slot tagger (LoRA on the packaged MiniLM encoder) from character-span examples.

Input is generic: ``(text, [(slot, char_start, char_end), ...])``; the dataset reader
lives with the domain (`voicebot.dialogue.slots`). Training is seeded and runs on the
CPU in minutes: the encoder stays frozen apart from rank-r updates, the layer norms and
the new tagging head, so the shipped result is an adapter of a megabyte or two.

A fraction of the examples is held out before training (seeded, never trained on); the
epoch with the best exact-span F1 on it is the one saved, which is both early stopping
and an honest figure to report. With ``valid_fraction=0`` the last epoch is saved.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.finetune import AdapterMeta, add_lora, base_model, save_adapter
from models.slot_tagger import (
    Span,
    bio_labels,
    encode_bio,
    predict_spans,
    span_scores,
    word_ranges,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

#: The tagging head starts from random and is tiny: it learns this many times faster
#: than the low-rank updates (which diverge, all "O", at 3x the default rate).
HEAD_LR_FACTOR = 5.0
IGNORE = -100  # label of word-pieces after a word's first, and of special tokens
Example = tuple[str, Sequence[tuple[str, int, int]]]


def _check(examples: Sequence[Example]) -> None:
    if not examples:
        raise ValueError("no training examples")
    for text, spans in examples:
        for slot, start, end in spans:
            if not (0 <= start < end <= len(text)):
                raise ValueError(f"span {slot} [{start}, {end}) is outside {text!r}")


def _split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded (train, valid) index split; valid is empty for fraction 0."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), not {fraction}")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_valid = min(n - 1, max(1, round(n * fraction))) if fraction > 0 and n > 1 else 0
    return sorted(order[n_valid:]), sorted(order[:n_valid])


def _encode(
    tokenizer: Any, examples: Sequence[Example], label_ids: dict[str, int], max_length: int
) -> list[tuple[list[int], list[int]]]:
    """(input ids, label per token) per example; only each word's first piece is labelled."""
    texts = [text for text, _ in examples]
    encoding = tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=True)
    rows = []
    for i, (_, spans) in enumerate(examples):
        words, firsts = word_ranges(encoding, i)
        tags = encode_bio(words, spans)
        token_labels = [IGNORE] * len(encoding["input_ids"][i])
        for position, tag in zip(firsts, tags, strict=True):
            token_labels[position] = label_ids[tag]
        rows.append((list(encoding["input_ids"][i]), token_labels))
    return rows


def _collate(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, (row_ids, row_labels) in enumerate(rows):
        ids[i, : len(row_ids)] = torch.tensor(row_ids)
        mask[i, : len(row_ids)] = 1
        labels[i, : len(row_labels)] = torch.tensor(row_labels)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _evaluate(
    model: nn.Module, tokenizer: Any, labels: Sequence[str], examples: Sequence[Example], n: int
) -> dict[str, Any]:
    texts = [text for text, _ in examples]
    found = predict_spans(model, tokenizer, labels, texts, max_length=n)
    predicted = [[(s.slot, s.start, s.end) for s in spans] for spans in found]
    gold: list[list[Span]] = [list(spans) for _, spans in examples]
    return span_scores(gold, predicted)


def train_slot_tagger(
    examples: Sequence[Example],
    out_dir: Path | str,
    *,
    epochs: int = 12,
    seed: int = 0,
    rank: int = 8,
    batch_size: int = 16,
    lr: float = 1e-3,
    valid_fraction: float = 0.1,
    progress: bool = True,
    alpha: float | None = None,
    max_length: int = 128,
    base: str = "all-MiniLM-L6-v2",
    threads: int | None = None,
) -> dict[str, Any]:
    """Fine-tune and save a slot tagger to `out_dir`; returns the training metrics.

    Same examples, seed and thread count give the same weights. `threads` sets torch's
    intra-op threads for the run (restored after): on a machine whose cores are busy,
    1 thread is several times faster than 2 that wait on each other. Metrics: the split
    sizes, the per-epoch loss and validation span F1, the epoch kept, its validation
    scores (micro and per slot), and the wall time.
    """
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _train(examples, Path(out_dir), epochs, seed, rank, batch_size, lr,
                      valid_fraction, progress, alpha, max_length, base)  # fmt: skip
    finally:
        torch.set_num_threads(previous)


def _train(
    examples: Sequence[Example],
    out_dir: Path,
    epochs: int,
    seed: int,
    rank: int,
    batch_size: int,
    lr: float,
    valid_fraction: float,
    progress: bool,
    alpha: float | None,
    max_length: int,
    base: str,
) -> dict[str, Any]:
    import torch
    from tqdm import tqdm

    _check(examples)
    if epochs < 1 or rank < 1 or batch_size < 1:
        raise ValueError("epochs, rank and batch_size must be at least 1")
    started = time.perf_counter()
    labels = bio_labels(slot for _, spans in examples for slot, _, _ in spans)
    label_ids = {label: i for i, label in enumerate(labels)}
    train_idx, valid_idx = _split(len(examples), valid_fraction, seed)
    train = [examples[i] for i in train_idx]
    valid = [examples[i] for i in valid_idx]
    meta = AdapterMeta(
        base=base,
        task="token",
        labels=labels,
        rank=rank,
        alpha=float(alpha if alpha is not None else 2 * rank),
        max_length=max_length,
        extra={"scheme": "BIO", "unit": "word", "seed": seed, "epochs": epochs},
    )
    torch.manual_seed(seed)  # the head and the LoRA matrices start from this seed
    model, tokenizer = base_model(meta)
    trainable = add_lora(model, meta.rank, meta.alpha)
    rows = _encode(tokenizer, train, label_ids, max_length)
    params = [p for p in model.parameters() if p.requires_grad]
    head = [p for n, p in model.named_parameters() if p.requires_grad and "classifier" in n]
    rest = [p for n, p in model.named_parameters() if p.requires_grad and "classifier" not in n]
    groups = [{"params": rest, "lr": lr}, {"params": head, "lr": lr * HEAD_LR_FACTOR}]
    optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
    steps = epochs * ((len(rows) + batch_size - 1) // batch_size)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / (steps - warmup + 1)))
    )
    shuffler = torch.Generator().manual_seed(seed)
    history: list[dict[str, Any]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    bar = tqdm(total=steps, desc="slots", unit="step", disable=not progress)
    model.train()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(rows), generator=shuffler).tolist()
        total = 0.0
        for begin in range(0, len(order), batch_size):
            batch = _collate(
                [rows[i] for i in order[begin : begin + batch_size]], tokenizer.pad_token_id
            )
            loss = model(**batch).loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch["input_ids"])
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{loss.item():.3f}")
        record: dict[str, Any] = {"epoch": epoch, "loss": total / len(rows)}
        if valid:
            scores = _evaluate(model, tokenizer, labels, valid, max_length)
            record["valid_f1"] = scores["micro"]["f1"]
            if best is None or record["valid_f1"] > best[0]:
                state = {
                    n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
                }
                best = (record["valid_f1"], epoch, state)
        history.append(record)
        log.info("slot tagger epoch %s: %s", epoch, record)
    bar.close()
    kept = epochs
    if best is not None:
        kept = best[1]
        named = dict(model.named_parameters())
        with torch.no_grad():
            for name, tensor in best[2].items():
                named[name].copy_(tensor)
    save_adapter(model, out_dir, meta)
    result: dict[str, Any] = {
        "labels": list(labels),
        "train_examples": len(train),
        "valid_examples": len(valid),
        "trainable_parameters": trainable,
        "epochs": epochs,
        "kept_epoch": kept,
        "history": history,
        "seconds": time.perf_counter() - started,
    }
    if valid:
        result["valid"] = _evaluate(model, tokenizer, labels, valid, max_length)
    return result
