"""Low-rank fine-tuning of the packaged encoder, saved as a few megabytes.

A full fine-tuned MiniLM is 90 MB; the repository ships what it learns as numbers kept
small. So the intent and slot models are trained with LoRA (Hu et al. 2021): every
linear layer of the encoder gets a trainable rank-r update ``B @ A`` beside its frozen
weight, and the task head, pooler and layer norms train in full. Only those tensors are
saved (``adapter.safetensors``, about 2 MB in float16) with ``adapter.json`` naming the
base encoder. Loading rebuilds the plain transformers model
(`BertForSequenceClassification` or `BertForTokenClassification`) from the packaged base
weights and merges the update into them, so inference costs exactly what the base model
costs. A directory holding a complete transformers model (``config.json`` plus weights)
loads as it is, so models trained elsewhere plug in too.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.weights import resolve

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

ADAPTER_FILE = "adapter.safetensors"
META_FILE = "adapter.json"
#: Linear layers of a BERT encoder that get a low-rank update.
TARGETS = ("query", "key", "value", "attention.output.dense", "intermediate.dense", ".output.dense")
#: Parameters (by name fragment) trained in full: small, and the head starts random.
FULL = ("classifier", "pooler", "LayerNorm")
TASKS = {"sequence": "BertForSequenceClassification", "token": "BertForTokenClassification"}


class FinetuneError(ValueError):
    """A model directory that cannot be loaded (missing files, wrong task, bad shapes)."""


@dataclass(frozen=True, slots=True)
class AdapterMeta:
    """What ``adapter.json`` records: enough to rebuild the model from the base encoder."""

    base: str
    task: str
    labels: tuple[str, ...]
    rank: int
    alpha: float
    max_length: int
    extra: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The JSON form written next to the adapter weights."""
        return {
            "base": self.base,
            "task": self.task,
            "labels": list(self.labels),
            "rank": self.rank,
            "alpha": self.alpha,
            "max_length": self.max_length,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AdapterMeta:
        """Parse ``adapter.json``, with a clear error for anything missing."""
        try:
            return cls(
                base=str(data["base"]),
                task=str(data["task"]),
                labels=tuple(str(x) for x in data["labels"]),
                rank=int(data["rank"]),
                alpha=float(data["alpha"]),
                max_length=int(data.get("max_length", 64)),
                extra=dict(data.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FinetuneError(f"{META_FILE} is incomplete: {exc!r}") from exc


def _lora_linear_class() -> type[nn.Module]:
    """Defined lazily so that importing this module never imports torch."""
    import torch
    from torch import nn

    class LoraLinear(nn.Module):
        """A frozen linear layer plus a trainable low-rank update (scale * B @ A)."""

        def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float) -> None:
            super().__init__()
            self.base = base
            self.scale = alpha / rank
            self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
            self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
            nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
            self.dropout = nn.Dropout(dropout)
            base.weight.requires_grad_(False)
            if base.bias is not None:
                base.bias.requires_grad_(False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            update = self.dropout(x) @ self.lora_a.T @ self.lora_b.T
            out: torch.Tensor = self.base(x) + update * self.scale
            return out

        def merged(self) -> nn.Linear:
            with torch.no_grad():
                self.base.weight += (self.lora_b @ self.lora_a) * self.scale
            return self.base

    return LoraLinear


def _targets(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """(parent, attribute, linear) for every encoder linear layer that gets an update."""
    from torch import nn

    found: list[tuple[nn.Module, str, nn.Module]] = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or ".encoder." not in f".{name}":
            continue
        if not any(name.endswith(t) or (t.startswith(".") and t in f".{name}") for t in TARGETS):
            continue
        parent_name, _, attr = name.rpartition(".")
        found.append((model.get_submodule(parent_name), attr, module))
    return found


def add_lora(model: nn.Module, rank: int, alpha: float, dropout: float = 0.1) -> int:
    """Freeze `model`, wrap its encoder linears with LoRA; returns the trainable count."""
    lora = _lora_linear_class()
    for param in model.parameters():
        param.requires_grad_(False)
    for parent, attr, linear in _targets(model):
        setattr(parent, attr, lora(linear, rank, alpha, dropout))
    for name, param in model.named_parameters():
        if "lora_" in name or any(part in name for part in FULL):
            param.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA update into its base weight; the model is plain transformers again."""
    lora = _lora_linear_class().__name__
    for name, module in list(model.named_modules()):
        if type(module).__name__ == lora:
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name), attr, module.merged())
    return model


def save_adapter(model: nn.Module, directory: Path, meta: AdapterMeta) -> Path:
    """Write the trained tensors (float16) and ``adapter.json`` into `directory`."""
    import torch
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    tensors = {
        name: param.detach().to(torch.float16).contiguous()
        for name, param in model.named_parameters()
        if param.requires_grad
    }
    save_file(tensors, str(directory / ADAPTER_FILE))
    (directory / META_FILE).write_text(json.dumps(meta.to_json(), indent=2) + "\n")
    return directory


def base_model(meta: AdapterMeta) -> tuple[nn.Module, Any]:
    """The untrained task model on the packaged base encoder, and its tokenizer."""
    import transformers
    from transformers import AutoTokenizer

    if meta.task not in TASKS:
        raise FinetuneError(f"unknown task {meta.task!r} (known: {', '.join(TASKS)})")
    cls = getattr(transformers, TASKS[meta.task])
    location = resolve("encoder", meta.base).location
    labels = dict(enumerate(meta.labels))
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # "newly initialized head" is expected
    try:
        model = cls.from_pretrained(
            location,
            num_labels=len(labels),
            id2label=labels,
            label2id={v: k for k, v in labels.items()},
        )
    finally:
        transformers.logging.set_verbosity(verbosity)
    tokenizer = AutoTokenizer.from_pretrained(location)
    return model, tokenizer


def load_model(directory: Path, task: str) -> tuple[nn.Module, Any, AdapterMeta]:
    """Load an adapter directory (merged onto the base) or a complete transformers model."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FinetuneError(f"model directory {directory} does not exist")
    if (directory / META_FILE).is_file():
        meta = AdapterMeta.from_json(json.loads((directory / META_FILE).read_text()))
        if meta.task != task:
            raise FinetuneError(f"{directory} holds a {meta.task} model, not a {task} model")
        model, tokenizer = base_model(meta)
        add_lora(model, meta.rank, meta.alpha, dropout=0.0)
        _load_tensors(model, directory / ADAPTER_FILE)
        return merge_lora(model).eval(), tokenizer, meta
    if (directory / "config.json").is_file():
        return _load_full(directory, task)
    raise FinetuneError(f"{directory} has neither {META_FILE} nor a transformers config.json")


def _load_tensors(model: nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    if not path.is_file():
        raise FinetuneError(f"{path} is missing")
    saved = load_file(str(path))
    params = dict(model.named_parameters())
    for name, tensor in saved.items():
        target = params.get(name)
        if target is None or target.shape != tensor.shape:
            shape = None if target is None else tuple(target.shape)
            raise FinetuneError(
                f"{path}: {name} {tuple(tensor.shape)} does not fit the model ({shape})"
            )
        target.data.copy_(tensor.to(target.dtype))


def _load_full(directory: Path, task: str) -> tuple[nn.Module, Any, AdapterMeta]:
    import transformers
    from transformers import AutoTokenizer

    cls = getattr(transformers, TASKS[task])
    model = cls.from_pretrained(str(directory)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    id2label = model.config.id2label
    labels = tuple(str(id2label[i]) for i in range(len(id2label)))
    meta = AdapterMeta(str(directory), task, labels, 0, 0.0, 64, {})
    return model, tokenizer, meta
