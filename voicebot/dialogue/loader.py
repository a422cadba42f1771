"""Build the dialogue core from configuration: the one place that picks concrete parts.

The domain pack (a name under ``domain/`` or a directory) supplies the graph, templates,
account data (``customers/``), the fine-tuned intent model (``intent_model/``) and the
kNN index; `[dialogue] intent_model` chooses between the two intent models or names a
directory written by `voicebot train-intents`.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

from voicebot.config import DialogueConfig
from voicebot.dialogue.accounts import AccountStore
from voicebot.dialogue.core import DOMAIN_ROOT, DialogueCore
from voicebot.dialogue.grounded import GroundedReplies
from voicebot.dialogue.intents import INDEX_FILE, Embed, IntentIndex
from voicebot.dialogue.nlu import ClassifierIntents, IntentModel, KnnIntents
from voicebot.dialogue.tasks import AccountTasks

log = logging.getLogger(__name__)

INTENT_MODEL_DIR = "intent_model"
CUSTOMERS_DIR = "customers"
SLOTS_DIR = "slots"


def pack_dir(config: DialogueConfig) -> Path:
    """The domain pack directory named in the config."""
    pack = Path(config.domain)
    if not pack.is_dir():
        pack = DOMAIN_ROOT / config.domain
    if not pack.is_dir():
        raise FileNotFoundError(f"domain pack {config.domain!r} not found")
    return pack


def load_intents(config: DialogueConfig, pack: Path, embed: Embed | None) -> IntentModel:
    """The intent model the config names ("" = the pack's fine-tuned classifier)."""
    choice = config.intent_model
    if choice == "knn":
        if embed is None:
            raise ValueError("the knn intent model needs a sentence encoder")
        index = IntentIndex.load(pack / INDEX_FILE, neighbours=config.neighbours)
        return KnnIntents(index, embed)
    from models.intent_classifier import IntentClassifier

    directory = Path(choice) if choice else pack / INTENT_MODEL_DIR
    on_topic = None
    if embed is not None and (pack / INDEX_FILE).is_file():
        on_topic = KnnIntents(IntentIndex.load(pack / INDEX_FILE), embed)
    return ClassifierIntents(IntentClassifier(directory), on_topic)


class TaggedSlots:
    """Slot tagger + normalisation relative to today's date, as the core's `SlotReader`."""

    def __init__(self, directory: Path) -> None:
        from models.slot_tagger import SlotTagger

        self.tagger = SlotTagger.load(directory)

    def __call__(self, text: str) -> tuple[tuple[str, str], ...]:
        """(slot, canonical value) for each span the tagger finds."""
        from voicebot.dialogue.slots import normalize

        today = date.today()
        return tuple(
            (span.slot, normalize(span.slot, span.text, today).canonical)
            for span in self.tagger.tag(text)
        )


def load_slots(config: DialogueConfig, pack: Path) -> TaggedSlots | None:
    """The slot tagger the config names ("" = the pack's, "none" = no slots)."""
    if config.slot_model == "none":
        return None
    directory = Path(config.slot_model) if config.slot_model else pack / SLOTS_DIR
    if not config.slot_model and not directory.is_dir():
        return None  # a pack without a slot model
    return TaggedSlots(directory)


def one_blas_thread() -> None:
    """Keep numpy's BLAS single-threaded in this process.

    torch parallelises the model work with its own OpenMP threads; OpenBLAS's threads,
    woken for the small similarity products of the kNN lookups, then spin against them:
    measured here, that turned a 14 ms intent prediction into 32 ms on two cores."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def load_dialogue(config: DialogueConfig, embed: Embed | None = None) -> DialogueCore:
    """The dialogue core with its graph, templates, intent model and account tasks."""
    one_blas_thread()
    pack = pack_dir(config)
    replies = GroundedReplies.from_pack(pack)
    nlu = load_intents(config, pack, embed)
    tasks = None
    if (pack / CUSTOMERS_DIR).is_dir():
        store = AccountStore.load(pack / CUSTOMERS_DIR)
        delivery = ""
        if "card_delivery_estimate" in replies.graph.intents():
            delivery = replies.answer("card_delivery_estimate")[0]
        tasks = AccountTasks(store, replies.prompt, delivery)
    return DialogueCore(replies, replies.graph, nlu, config, tasks, load_slots(config, pack))
