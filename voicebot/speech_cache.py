"""Synthesised speech kept for reuse: prompts and grounded answers, in memory and on disk.

Template answers are known before any caller asks: every intent's grounded sentences
and every fixed prompt can be synthesised ahead of time, exactly as an IVR ships its
recorded prompts. Then the caller's wait after the end of a turn is ASR + dialogue
only, not + TTS (about 250 ms for a first sentence on this CPU). Pinned phrases are
also written to disk (one .npy per phrase, keyed by a hash of the text, under a
directory keyed by the voice), so a restarted server is warm at once. A phrase in
`keep` (every template phrase the bot can say) that had to be synthesised on demand is
pinned and saved too, so a replay or a restart never synthesises it again. Everything
else (LLM replies later, one-off texts) goes through a small LRU.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Collection
from pathlib import Path

import numpy as np

from models.protocols import PCM16

log = logging.getLogger(__name__)


def _file_name(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32] + ".npy"


class SpeechCache:
    """Audio by text: pinned phrases (memory + disk) and an LRU for the rest."""

    def __init__(self, directory: Path | None = None, lru_size: int = 64) -> None:
        self.directory = directory
        self._pinned: dict[str, PCM16] = {}
        self._recent: OrderedDict[str, PCM16] = OrderedDict()
        self._lru_size = lru_size
        #: Phrases worth keeping for good when synthesised on demand (the templates), in
        #: the order they are worth preparing (prompts first; the app sets a dict).
        self.keep: Collection[str] = ()

    def __len__(self) -> int:
        return len(self._pinned) + len(self._recent)

    def get(self, text: str) -> PCM16 | None:
        """Cached audio for `text`, if any (memory only: never blocks)."""
        pinned = self._pinned.get(text)
        if pinned is not None:
            return pinned
        recent = self._recent.get(text)
        if recent is not None:
            self._recent.move_to_end(text)
        return recent

    def is_pinned(self, text: str) -> bool:
        """True when `text` is kept for good."""
        return text in self._pinned

    def remember(self, text: str, pcm: PCM16) -> bool:
        """Keep freshly synthesised audio: pinned if in `keep` (True: save it), else LRU."""
        if text in self._pinned:
            return False
        if text in self.keep:
            self.pin(text, pcm)
            return self.directory is not None
        self._recent[text] = pcm
        self._recent.move_to_end(text)
        while len(self._recent) > self._lru_size:
            self._recent.popitem(last=False)
        return False

    def pin(self, text: str, pcm: PCM16) -> None:
        """Keep audio for good (memory); `save` writes it to disk (blocking)."""
        self._pinned[text] = pcm
        self._recent.pop(text, None)

    def load(self, text: str) -> PCM16 | None:
        """Read a pinned phrase from disk (blocking); pins it when found."""
        if self.directory is None:
            return None
        path = self.directory / _file_name(text)
        try:
            pcm = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            if path.exists():
                log.warning("speech cache entry %s unreadable (%r); resynthesising", path, exc)
            return None
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            return None
        audio: PCM16 = pcm
        self.pin(text, audio)
        return audio

    def save(self, text: str, pcm: PCM16) -> None:
        """Write a pinned phrase to disk (blocking; atomic rename, safe across processes)."""
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / _file_name(text)
        tmp = path.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp.npy")
        try:
            np.save(tmp, np.asarray(pcm, dtype=np.int16), allow_pickle=False)
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk must not keep half a file either
            raise
