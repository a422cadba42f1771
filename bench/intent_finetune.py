"""The fine-tuned intent classifier against the frozen-encoder baselines, on one split.

Rebuilds the exact validation split `voicebot train-intents` held out (same data, same
seed, same stratified split), then measures on its Banking77 part:
  * the fine-tuned model (the shipped adapter, or --model DIR): accuracy, macro-F1,
    latency per utterance (eval-intents' code path), calibration at the 0.6 bar,
    and how off-topic sentences score;
  * kNN (k=10, T=0.02) and logistic regression on the frozen MiniLM embeddings, both
    fitted on the training part only (the baselines the issue names).

    .venv/bin/python bench/intent_finetune.py [--model DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.intent_knn import OFF_TOPIC  # noqa: E402
from models.embedder_minilm import MiniLmEmbedder  # noqa: E402
from models.intent_classifier import IntentClassifier  # noqa: E402
from models.intent_training import TrainSettings, stratified_split  # noqa: E402
from voicebot.cli_intents import (  # noqa: E402
    SHIPPED_INTENT_MODEL,
    default_training_data,
    evaluate,
)
from voicebot.dialogue.intent_data import repo_data_dir  # noqa: E402
from voicebot.dialogue.intents import IntentIndex, read_examples  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(SHIPPED_INTENT_MODEL))
    parser.add_argument("--json")
    args = parser.parse_args()
    data = repo_data_dir()
    texts, labels = default_training_data()
    settings = TrainSettings()
    train, valid = stratified_split(labels, settings.valid_fraction, settings.seed)
    banking = set(read_examples(data / "banking77" / "train.csv")[1])
    valid_b77 = [i for i in valid if labels[i] in banking]
    report: dict[str, object] = {"valid_all": len(valid), "valid_banking77": len(valid_b77)}
    with tempfile.TemporaryDirectory() as tmp:
        split = Path(tmp) / "valid.csv"
        with open(split, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "category"])
            writer.writerows([texts[i], labels[i]] for i in valid_b77)
        fine = evaluate(Path(args.model), split, threads=0)
        fine.pop("errors")
        report["finetuned"] = fine
        print(json.dumps(fine), flush=True)
    classifier = IntentClassifier(args.model)
    predictions = classifier.predict([texts[i] for i in valid_b77])
    confident = [p.confidence >= 0.6 for p in predictions]
    right = [p.label == labels[i] for p, i in zip(predictions, valid_b77, strict=True)]
    report["finetuned_at_0.6"] = {
        "share_confident": round(float(np.mean(confident)), 4),
        "accuracy_when_confident": round(
            float(np.mean([r for r, c in zip(right, confident, strict=True) if c])), 4
        ),
    }
    report["off_topic_confidence"] = {
        text: [p.label, round(p.confidence, 3)]
        for text, p in zip(OFF_TOPIC, classifier.predict(OFF_TOPIC), strict=True)
    }
    b77_train = [i for i in train if labels[i] in banking]
    names = sorted(banking)
    y = np.array([names.index(x) if x in banking else -1 for x in labels], dtype=np.int16)
    embedder = MiniLmEmbedder()
    vectors = embedder.embed(texts)
    index = IntentIndex(vectors[b77_train], y[b77_train], names, neighbours=10, temperature=0.02)
    knn = [index.classify(vectors[i]).intent == labels[i] for i in valid_b77]
    report["knn_frozen_accuracy"] = round(float(np.mean(knn)), 4)
    from sklearn.linear_model import LogisticRegression

    logistic = LogisticRegression(max_iter=2000, C=10.0)
    logistic.fit(vectors[b77_train], y[b77_train])
    report["logreg_frozen_accuracy"] = round(
        float((logistic.predict(vectors[valid_b77]) == y[valid_b77]).mean()), 4
    )
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
