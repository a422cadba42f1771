"""Sentence embeddings from a BERT-style encoder (the packaged all-MiniLM-L6-v2).

Mean pooling over tokens and L2 normalisation, as sentence-transformers does for this
model, implemented on plain transformers so the fine-tuning work that builds on it
(intent and slot heads) uses the same code path. About 18 ms for one sentence on one
CPU core pair here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from models.weights import resolve

log = logging.getLogger(__name__)


def mean_pool(hidden: Any, attention_mask: Any) -> Any:
    """Unit-length mean of the token vectors that are not padding (torch tensors), as
    sentence-transformers pools this model; the intent classifier pools the same way."""
    import torch

    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled.float(), dim=-1)


class MiniLmEmbedder:
    """Encoder + mean pooling; batches internally."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", *, max_length: int = 64) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        weights = resolve("encoder", model)
        started = time.perf_counter()
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(weights.location)
        self._model = AutoModel.from_pretrained(weights.location).eval()
        self.max_length = max_length
        self.dimension = int(self._model.config.hidden_size)
        self.name = model
        log.info(
            "encoder %s (%s) loaded in %.2f s",
            model,
            weights.source,
            time.perf_counter() - started,
        )

    def embed(self, texts: Sequence[str], batch_size: int = 128) -> npt.NDArray[np.float32]:
        """Sentences -> (n, dimension) float32, unit length."""
        torch = self._torch
        out: list[npt.NDArray[np.float32]] = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self._tokenizer(
                    list(texts[start : start + batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self._model(**batch).last_hidden_state
                pooled = mean_pool(hidden, batch["attention_mask"])
                out.append(pooled.numpy().astype(np.float32))
        if not out:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.concatenate(out)
