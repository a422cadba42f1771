"""Held-out accuracy and calibration of the kNN intent index, on the Banking77 training split.

Holds out 1,000 examples (seeded), indexes the rest with the packaged MiniLM encoder,
and reports accuracy for several k and temperatures, how accurate the turns are that
clear the confidence bar (and how many do), and the nearest-similarity floor that tells
banking from off-topic talk. The shipped index (all 10,003 examples) is built with
`voicebot build-intent-index`; this script only measures.

    .venv/bin/python bench/intent_knn.py [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.embedder_minilm import MiniLmEmbedder  # noqa: E402
from voicebot.dialogue.intents import IntentIndex, read_examples  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "banking77" / "train.csv"
OFF_TOPIC = [
    "what is the weather like today",
    "can you tell me a joke",
    "I want to book a table for two",
    "who won the football last night",
    "my dog is sick",
    "play some music",
    "what's the capital of France",
    "I'd like a pizza delivered",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json")
    args = parser.parse_args()
    texts, labels = read_examples(DATA)
    names = sorted(set(labels))
    y = np.array([names.index(label) for label in labels], dtype=np.int16)
    embedder = MiniLmEmbedder()
    vectors = embedder.embed(texts)
    order = np.random.default_rng(0).permutation(len(texts))
    held, train = order[:1000], order[1000:]
    report: dict[str, object] = {"held_out": len(held), "indexed": len(train)}
    for k, temperature in [(1, 0.02), (10, 0.02), (10, 0.05), (20, 0.02)]:
        index = IntentIndex(vectors[train], y[train], names, neighbours=k, temperature=temperature)
        guesses = [index.classify(vectors[i]) for i in held]
        correct = np.array([g.intent == names[y[i]] for g, i in zip(guesses, held, strict=True)])
        report[f"accuracy k={k} T={temperature}"] = round(float(correct.mean()), 4)
        if (k, temperature) == (10, 0.02):
            confidence = np.array([g.confidence for g in guesses])
            similarity = np.array([g.similarity for g in guesses])
            for bar in (0.3, 0.6, 0.8):
                kept = confidence >= bar
                report[f"confidence>={bar}"] = {
                    "coverage": round(float(kept.mean()), 4),
                    "accuracy": round(float(correct[kept].mean()), 4),
                }
            report["held_out_similarity_p1"] = round(float(np.percentile(similarity, 1)), 3)
            off = [index.classify(v).similarity for v in embedder.embed(OFF_TOPIC)]
            report["off_topic_similarity_max"] = round(float(max(off)), 3)
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
