"""Per-turn cost of the dialogue core on this CPU, stage by stage.

Runs caller turns one at a time (as calls do) through the shipped pack: the fine-tuned
intent classifier (head + its own kNN, one forward pass), the frozen-encoder on-topic
check, the slot tagger, and the whole `DialogueCore.respond`. Turns are Banking77
validation texts (the split train-intents held out), so nothing here was trained on.

    .venv/bin/python bench/dialogue_latency.py [--turns 200] [--threads 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from models.embedder_minilm import MiniLmEmbedder  # noqa: E402
from models.intent_training import TrainSettings, stratified_split  # noqa: E402
from voicebot.cli_intents import default_training_data  # noqa: E402
from voicebot.config import DialogueConfig  # noqa: E402
from voicebot.dialogue.intent_data import repo_data_dir  # noqa: E402
from voicebot.dialogue.intents import read_examples  # noqa: E402
from voicebot.dialogue.loader import load_dialogue  # noqa: E402
from voicebot.dialogue.nlu import ClassifierIntents  # noqa: E402
from voicebot.dialogue.state import DialogueState  # noqa: E402


def timed(fn: Callable[[str], object], texts: list[str]) -> dict[str, float]:
    """Median and p95 milliseconds of fn over texts, one at a time, after a warm-up."""
    for text in texts[:5]:
        fn(text)
    times = []
    for text in texts:
        started = time.perf_counter()
        fn(text)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    texts, labels = default_training_data()
    banking = set(read_examples(repo_data_dir() / "banking77" / "train.csv")[1])
    _, valid = stratified_split(labels, TrainSettings().valid_fraction, TrainSettings().seed)
    turns = [texts[i] for i in valid if labels[i] in banking][: args.turns]
    embedder = MiniLmEmbedder()
    core = load_dialogue(DialogueConfig(), embedder.embed)
    assert isinstance(core.nlu, ClassifierIntents)
    classifier, on_topic = core.nlu.classifier, core.nlu.on_topic
    report: dict[str, object] = {"turns": len(turns), "torch_threads": args.threads}
    report["intent_classifier"] = timed(lambda t: classifier.predict([t]), turns)
    if on_topic is not None:
        report["on_topic_check"] = timed(on_topic.understand, turns)
    if core.slots is not None:
        report["slot_tagger"] = timed(core.slots, turns)
    report["respond_whole_turn"] = timed(lambda t: core.respond(DialogueState(), t), turns)
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
