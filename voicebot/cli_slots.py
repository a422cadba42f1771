"""`voicebot train-slots` and `voicebot eval-slots`: the slot tagger from data to figures.

Kept apart from `voicebot.cli` so the slot tooling (and its torch import) stays out of
the server's start-up path; `register` adds both commands to the main parser. Training
reads NLU++ folds from a data path and writes the adapter into the domain pack by
default; evaluation scores a model on folds it was not trained on, which is the figure
to quote (`--folds`), and reports how often value normalization agrees with NLU++.
"""

from __future__ import annotations

import argparse
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from voicebot.dialogue.slots import NLUPP_CALL_TIME, SHIPPED_MODEL

#: ../shared/data/nluplusplus/banking next to the repository (where the team keeps data).
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared/data/nluplusplus/banking"


def parse_folds(items: list[str] | None) -> list[int] | None:
    """'0-11', '12 13', '1,2' (any mix) -> sorted fold numbers; None stays None (all)."""
    if not items:
        return None
    folds: set[int] = set()
    for item in items:
        for part in item.replace(",", " ").split():
            low, sep, high = part.partition("-")
            try:
                first, last = int(low), int(high) if sep else int(low)
            except ValueError as exc:
                raise ValueError(f"bad fold {part!r} (use e.g. 3, 0-11 or 1,2)") from exc
            if last < first:
                raise ValueError(f"bad fold range {part!r}")
            folds.update(range(first, last + 1))
    return sorted(folds)


def _cmd_train(args: argparse.Namespace) -> int:
    from models.slot_training import train_slot_tagger
    from voicebot.dialogue.slots import read_nluplusplus

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    examples = read_nluplusplus(Path(args.data), parse_folds(args.folds))
    metrics = train_slot_tagger(
        [(e.text, e.spans) for e in examples],
        Path(args.out),
        epochs=args.epochs,
        seed=args.seed,
        rank=args.rank,
        batch_size=args.batch_size,
        lr=args.lr,
        valid_fraction=args.valid_fraction,
        progress=not args.quiet,
        threads=args.threads or None,
    )
    metrics["data"] = str(args.data)
    metrics["folds"] = parse_folds(args.folds) or "all"
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=2) + "\n")
    valid = metrics.get("valid", {}).get("micro", {}).get("f1")
    shown = f", validation span F1 {valid:.3f} (epoch {metrics['kept_epoch']})" if valid else ""
    print(f"trained on {metrics['train_examples']} examples in {metrics['seconds']:.0f} s"
          f"{shown}; saved to {args.out}")  # fmt: skip
    return 0


def format_scores(result: dict[str, Any]) -> str:
    """The per-slot table `eval-slots` prints."""
    lines = [f"{'slot':<20} {'P':>6} {'R':>6} {'F1':>6} {'gold':>5} {'pred':>5}"]
    rows = [*result["per_slot"].items(), ("micro", result["micro"])]
    for name, s in rows:
        lines.append(
            f"{name:<20} {s['precision']:6.3f} {s['recall']:6.3f} {s['f1']:6.3f} "
            f"{s['gold']:5d} {s['predicted']:5d}"
        )
    latency = result["latency_ms"]
    lines.append(
        f"{result['examples']} utterances; latency per utterance mean {latency['mean']:.1f} ms, "
        f"p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms"
    )
    agreement = result.get("normalization")
    if agreement:
        lines.append(
            f"normalization agrees with NLU++ values on {agreement['agree']}/{agreement['total']}"
            f" gold spans ({agreement['rate']:.1%})"
        )
    return "\n".join(lines)


def _cmd_eval(args: argparse.Namespace) -> int:
    from models.slot_tagger import SlotTagger
    from voicebot.dialogue.slots import agreement, evaluate, read_nluplusplus

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    folds = parse_folds(args.folds)
    examples = read_nluplusplus(Path(args.data), folds)
    tagger = SlotTagger.load(Path(args.model))
    tagger.tag("warm up")  # the first call pays for lazy initialisation; not a turn
    result = evaluate(tagger, examples)
    call_time = datetime.fromisoformat(args.call_time)
    result["normalization"] = agreement(examples, call_time)
    result.update(model=str(args.model), data=str(args.data), folds=folds or "all")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(format_scores(result))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `train-slots` and `eval-slots` to the `voicebot` sub-command parser."""
    train = sub.add_parser("train-slots", help="train the slot tagger on NLU++ folds")
    train.add_argument("--data", default=str(DEFAULT_DATA), help="folder of NLU++ foldN.json")
    train.add_argument("--out", default=str(SHIPPED_MODEL), help="model folder (default: shipped)")
    train.add_argument("--folds", nargs="+", help="folds to train on, e.g. 0-11 (default: all)")
    train.add_argument("--epochs", type=int, default=12)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--rank", type=int, default=8, help="LoRA rank")
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument(
        "--valid-fraction", type=float, default=0.1, help="held out to pick the epoch"
    )
    train.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: reproducible, fastest on a busy machine; 0: torch's choice)",
    )
    train.add_argument("--json", help="also write the training metrics here")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser("eval-slots", help="span P/R/F1 of a slot tagger on NLU++ folds")
    evaluate.add_argument("--data", required=True, help="folder of NLU++ foldN.json")
    evaluate.add_argument("--json", required=True, help="write the scores here")
    evaluate.add_argument("--model", default=str(SHIPPED_MODEL), help="model folder")
    evaluate.add_argument("--folds", nargs="+", help="folds to score, e.g. 12-15 (default: all)")
    evaluate.add_argument(
        "--call-time",
        default=NLUPP_CALL_TIME.isoformat(timespec="minutes"),
        help="when the calls took place, for relative dates (NLU++: 2022-03-15T09:00)",
    )
    evaluate.add_argument(
        "--threads", type=int, default=1, help="torch threads for latency (0: torch's choice)"
    )
    evaluate.set_defaults(func=_cmd_eval)
