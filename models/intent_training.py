"""Fine-tune the packaged encoder into an intent classifier, reproducibly on a CPU.

LoRA (see `models.finetune`) on every encoder linear layer, with the pooler, layer
norms and classification head trained in full; AdamW, linear warm-up and decay, label
smoothing. Batches group utterances of similar length (shuffled within and between
groups), which cuts padding and so about a third of the CPU time. A stratified
validation split is held out of the training data: it picks nothing during training
(the epoch count is fixed), it measures the result and fits the softmax temperature
that makes the reported confidence calibrated.

Everything random is seeded and torch runs deterministic kernels, so the same data,
seed and thread count give the same weights.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.finetune import META_FILE, AdapterMeta, add_lora, base_model, save_adapter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrainSettings:
    """Hyper-parameters (the defaults are what the shipped model was trained with)."""

    epochs: int = 6
    batch_size: int = 32
    lr: float = 1e-3
    rank: int = 16
    alpha: float = 32.0
    warmup: float = 0.06
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    valid_fraction: float = 0.1
    max_length: int = 64
    seed: int = 13
    base: str = "all-MiniLM-L6-v2"


def stratified_split(
    labels: Sequence[str], fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Indices (train, valid): `fraction` of every label held out (at least one when it
    has two or more examples), chosen by a seeded shuffle."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_label[label].append(index)
    rng = random.Random(seed)
    train: list[int] = []
    valid: list[int] = []
    for label in sorted(by_label):
        indices = by_label[label]
        rng.shuffle(indices)
        held = 0 if fraction <= 0 or len(indices) < 2 else max(1, round(len(indices) * fraction))
        valid.extend(indices[:held])
        train.extend(indices[held:])
    return sorted(train), sorted(valid)


def length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Batches of similar-length items: shuffle, sort within chunks of 50 batches, shuffle."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def fit_temperature(logits: np.ndarray[Any, Any], targets: np.ndarray[Any, Any]) -> float:
    """The softmax temperature with the lowest negative log-likelihood on held-out data."""
    best_t, best_nll = 1.0, math.inf
    for t in np.arange(0.5, 3.01, 0.05):
        scaled = logits / t
        scaled = scaled - scaled.max(axis=1, keepdims=True)
        log_probs = scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))
        nll = float(-log_probs[np.arange(len(targets)), targets].mean())
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return round(best_t, 2)


def train_intent_classifier(
    texts: Sequence[str],
    labels: Sequence[str],
    out_dir: Path,
    settings: TrainSettings = TrainSettings(),
    *,
    progress: bool = True,
    threads: int = 0,
    on_epoch: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train, validate, calibrate and save; returns the metrics (also in adapter.json)."""
    import torch
    from tqdm import tqdm

    if len(texts) != len(labels) or not texts:
        raise ValueError("texts and labels must be non-empty and of equal length")
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads:
        torch.set_num_threads(threads)
    names = tuple(sorted(set(labels)))
    ids = {name: i for i, name in enumerate(names)}
    train_idx, valid_idx = stratified_split(labels, settings.valid_fraction, settings.seed)
    meta = AdapterMeta(
        settings.base, "sequence", names, settings.rank, settings.alpha, settings.max_length, {}
    )
    model, tokenizer = base_model(meta)
    trainable = add_lora(model, settings.rank, settings.alpha)
    encoded = tokenizer(list(texts), truncation=True, max_length=settings.max_length)
    input_ids: list[list[int]] = encoded["input_ids"]
    targets = torch.tensor([ids[label] for label in labels])
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": settings.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=settings.lr,
    )
    rng = random.Random(settings.seed)
    lengths = [len(input_ids[i]) for i in train_idx]
    steps_per_epoch = math.ceil(len(train_idx) / settings.batch_size)
    total = steps_per_epoch * settings.epochs
    warm = max(1, int(total * settings.warmup))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    log.info(
        "training %d labels on %d examples (%d held out), %d trainable parameters",
        len(names),
        len(train_idx),
        len(valid_idx),
        trainable,
    )
    bar = tqdm(total=total, disable=not progress, desc="train-intents", unit="step")
    for epoch in range(settings.epochs):
        model.train()
        running = 0.0
        for batch in length_batches(lengths, settings.batch_size, rng):
            rows = [train_idx[i] for i in batch]
            inputs = tokenizer.pad({"input_ids": [input_ids[i] for i in rows]}, return_tensors="pt")
            logits = model(**inputs).logits
            loss = loss_fn(logits, targets[rows])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            value = loss.item()
            running = 0.9 * running + 0.1 * value if running else value
            bar.set_postfix(epoch=epoch + 1, loss=f"{running:.3f}")
            bar.update(1)
        if on_epoch is not None:
            on_epoch(epoch + 1, running)
    bar.close()
    metrics: dict[str, Any] = {
        "train_examples": len(train_idx),
        "valid_examples": len(valid_idx),
        "labels": len(names),
        "trainable_parameters": trainable,
        "settings": {k: getattr(settings, k) for k in settings.__dataclass_fields__},
    }
    save_adapter(model, Path(out_dir), meta)
    metrics.update(
        calibrate_and_index(
            Path(out_dir),
            [texts[i] for i in train_idx],
            [ids[labels[i]] for i in train_idx],
            [texts[i] for i in valid_idx],
            [ids[labels[i]] for i in valid_idx],
        )
    )
    metrics["train_seconds"] = round(time.perf_counter() - started, 1)
    _write_meta(Path(out_dir), metrics)
    return metrics


def calibrate_and_index(
    out_dir: Path,
    train_texts: Sequence[str],
    train_ids: Sequence[int],
    valid_texts: Sequence[str],
    valid_ids: Sequence[int],
) -> dict[str, Any]:
    """Index the training examples in the fine-tuned embedding space, fit the softmax
    temperature on the held-out texts and measure head, kNN and their average there."""
    from models.intent_classifier import EXAMPLES_FILE, ExampleIndex, IntentClassifier

    classifier = IntentClassifier(out_dir)
    _, train_vectors = classifier.encode(train_texts)
    index = ExampleIndex(train_vectors, np.asarray(train_ids, dtype=np.int16))
    index.save(out_dir / EXAMPLES_FILE)
    result: dict[str, Any] = {"temperature": 1.0, "indexed_examples": len(train_texts)}
    if valid_texts:
        logits, vectors = classifier.encode(valid_texts)
        gold = np.asarray(valid_ids)
        temperature = fit_temperature(logits, gold)
        scaled = logits / temperature
        probs = np.exp(scaled - scaled.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        votes, _ = ExampleIndex.load(out_dir / EXAMPLES_FILE).votes(vectors, logits.shape[1])
        mixed = 0.5 * probs + 0.5 * votes
        result.update(
            temperature=temperature,
            valid_accuracy_head=round(float((probs.argmax(1) == gold).mean()), 4),
            valid_accuracy_knn=round(float((votes.argmax(1) == gold).mean()), 4),
            valid_accuracy=round(float((mixed.argmax(1) == gold).mean()), 4),
        )
    return result


def _write_meta(out_dir: Path, metrics: dict[str, Any]) -> None:
    """Record the temperature, kNN weight and metrics in adapter.json."""
    meta_path = out_dir / META_FILE
    data = json.loads(meta_path.read_text())
    data["extra"] = {
        "temperature": metrics["temperature"],
        "knn_weight": 0.5,
        "metrics": metrics,
    }
    meta_path.write_text(json.dumps(data, indent=2) + "\n")
