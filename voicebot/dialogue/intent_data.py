"""Training data for the intent classifier, read from a data path (never shipped).

Banking77's training split gives the 77 banking intents. The NLU++ banking folds add
the general dialogue acts a phone conversation needs and Banking77 lacks (yes, no, a
person please, repeat that, goodbye...): an NLU++ example is used when its only general
act is one of `GENERAL_INTENTS` and it names no banking intent, so "yes, I paid it
yesterday" teaches *affirm* but "I want to cancel, yes" is left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from voicebot.dialogue.intents import read_examples

GENERAL_INTENTS = frozenset(
    {"affirm", "deny", "dont_know", "handoff", "thank", "greet", "end_call", "repeat"}
)
#: Acts that may come along with a general one without making the example ambiguous.
_HARMLESS = frozenset({"acknowledge"})


def repo_data_dir() -> Path:
    """The shared data directory beside the repository (../shared/data)."""
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def nluplusplus_general(files: Iterable[Path]) -> tuple[list[str], list[str]]:
    """(texts, labels) of the NLU++ examples whose one intent is a general dialogue act."""
    texts: list[str] = []
    labels: list[str] = []
    for path in files:
        try:
            examples = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not an NLU++ fold: {exc}") from exc
        if not isinstance(examples, list):
            raise ValueError(f"{path}: expected a JSON list of examples")
        for example in examples:
            intents = set(example.get("intents") or ())
            general = intents & GENERAL_INTENTS
            if len(general) == 1 and intents <= GENERAL_INTENTS | _HARMLESS:
                texts.append(str(example["text"]).strip())
                labels.append(general.pop())
    return texts, labels


def training_examples(
    banking77_csv: Path, nluplusplus_dir: Path | None
) -> tuple[list[str], list[str]]:
    """Banking77 plus, when a directory is given, the NLU++ general acts."""
    texts, labels = read_examples(banking77_csv)
    if nluplusplus_dir is not None:
        files = sorted(Path(nluplusplus_dir).glob("*.json"))
        if not files:
            raise ValueError(f"{nluplusplus_dir}: no NLU++ fold files (*.json)")
        extra_texts, extra_labels = nluplusplus_general(files)
        texts += extra_texts
        labels += extra_labels
    return texts, labels
