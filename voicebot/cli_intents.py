"""`voicebot train-intents` and `voicebot eval-intents`: the fine-tuned intent model.

Training reads Banking77 and NLU++ from a data path and writes a model directory (a
LoRA adapter of a few MB plus adapter.json); the bank domain pack ships one, which
the server loads by default. Evaluation takes any Banking77-format CSV.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from voicebot.dialogue.intent_data import repo_data_dir, training_examples
from voicebot.dialogue.intents import read_examples

EXTRA_INTENTS = Path(__file__).parent / "dialogue" / "domain" / "bank" / "extra_intents.csv"
SHIPPED_INTENT_MODEL = Path(__file__).parent / "dialogue" / "domain" / "bank" / "intent_model"


def default_training_data() -> tuple[list[str], list[str]]:
    """Exactly what `train-intents` trains on by default (for benchmarks that need its split)."""
    data = repo_data_dir()
    texts, labels = training_examples(
        data / "banking77" / "train.csv", data / "nluplusplus" / "banking"
    )
    extra_texts, extra_labels = read_examples(EXTRA_INTENTS)
    return texts + extra_texts, labels + extra_labels


def _cmd_train(args: argparse.Namespace) -> int:
    from models.intent_training import TrainSettings, train_intent_classifier

    nlu = None if args.no_general else Path(args.nluplusplus)
    texts, labels = training_examples(Path(args.data), nlu)
    for extra in args.extra:
        more_texts, more_labels = read_examples(Path(extra))
        texts += more_texts
        labels += more_labels
    settings = TrainSettings(epochs=args.epochs, seed=args.seed, rank=args.rank)
    metrics = train_intent_classifier(
        texts, labels, Path(args.out), settings, progress=not args.quiet, threads=args.threads
    )
    print(json.dumps({k: v for k, v in metrics.items() if k != "settings"}, indent=2))
    print(f"model saved to {args.out}")
    return 0


def macro_f1(gold: list[str], predicted: list[str]) -> float:
    """Unweighted mean F1 over the labels that occur in `gold`."""
    scores = []
    for label in sorted(set(gold)):
        tp = sum(1 for g, p in zip(gold, predicted, strict=True) if g == label == p)
        fp = sum(1 for g, p in zip(gold, predicted, strict=True) if p == label != g)
        fn = sum(1 for g, p in zip(gold, predicted, strict=True) if g == label != p)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def evaluate(model_dir: Path, csv_path: Path, *, threads: int = 0) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-utterance latency of a model on a labelled CSV."""
    from models.intent_classifier import IntentClassifier
    from voicebot.dialogue.loader import one_blas_thread

    one_blas_thread()
    texts, gold = read_examples(csv_path)
    classifier = IntentClassifier(model_dir, threads=threads)
    unknown = sorted(set(gold) - set(classifier.labels))
    if unknown:
        raise ValueError(f"{csv_path}: labels the model does not know: {unknown[:5]}")
    started = time.perf_counter()
    predicted = [p.label for p in classifier.predict(texts)]
    batch_ms = (time.perf_counter() - started) * 1000 / len(texts)
    single: list[float] = []
    for text in texts[: min(200, len(texts))]:
        t0 = time.perf_counter()
        classifier.predict([text])
        single.append((time.perf_counter() - t0) * 1000)
    correct = sum(g == p for g, p in zip(gold, predicted, strict=True))
    errors = [
        {"text": t, "gold": g, "predicted": p}
        for t, g, p in zip(texts, gold, predicted, strict=True)
        if g != p
    ]
    return {
        "model": str(model_dir),
        "data": str(csv_path),
        "examples": len(texts),
        "accuracy": round(correct / len(texts), 4),
        "macro_f1": round(macro_f1(gold, predicted), 4),
        "latency_ms_per_utterance": {
            "single_median": round(statistics.median(single), 2),
            "single_p95": round(sorted(single)[int(0.95 * (len(single) - 1))], 2),
            "batched_mean": round(batch_ms, 2),
        },
        "errors": errors,
    }


def _cmd_eval(args: argparse.Namespace) -> int:
    result = evaluate(Path(args.model), Path(args.data), threads=args.threads)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    latency = result["latency_ms_per_utterance"]
    print(
        f"{result['examples']} utterances: accuracy {result['accuracy']:.2%}, "
        f"macro-F1 {result['macro_f1']:.4f}, {latency['single_median']:.1f} ms per utterance "
        f"(median, one at a time; {latency['batched_mean']:.1f} ms batched)"
    )
    return 0


def register(sub: Any) -> None:
    """Add train-intents and eval-intents to the CLI's subcommands."""
    data = repo_data_dir()
    train = sub.add_parser("train-intents", help="fine-tune the intent classifier")
    train.add_argument(
        "--data",
        default=str(data / "banking77" / "train.csv"),
        help="Banking77-format CSV (text,category)",
    )
    train.add_argument(
        "--nluplusplus",
        default=str(data / "nluplusplus" / "banking"),
        help="NLU++ folds directory (adds the general dialogue acts)",
    )
    train.add_argument("--no-general", action="store_true", help="Banking77 intents only")
    train.add_argument(
        "--extra",
        action="append",
        default=[str(EXTRA_INTENTS)],
        help="more text,category CSVs (default: the pack's extra intents)",
    )
    train.add_argument("--out", default=str(SHIPPED_INTENT_MODEL), help="model directory")
    train.add_argument("--epochs", type=int, default=6)
    train.add_argument("--seed", type=int, default=13)
    train.add_argument("--rank", type=int, default=16, help="LoRA rank")
    train.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser("eval-intents", help="accuracy, macro-F1 and latency on a labelled CSV")
    ev.add_argument("--data", required=True, help="CSV with columns text,category")
    ev.add_argument("--json", required=True, help="where to write the results")
    ev.add_argument("--model", default=str(SHIPPED_INTENT_MODEL), help="model directory")
    ev.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ev.set_defaults(func=_cmd_eval)
