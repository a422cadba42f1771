"""Model inference off the event loop, shared by every call in the process.

Models are loaded once per process (loading per call costs 0.5-0.9 s). Each capability
gets its own small thread pool, so a long transcription never delays another call's
synthesis, and every call to a model has a timeout: a backend that hangs costs that
caller an apology, not the whole server. CTranslate2, onnxruntime and torch release the
GIL while they compute, so threads give real parallelism on the two cores.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from models.protocols import (
    PCM16,
    SpeechRecognizer,
    SpeechSynthesizer,
    TextEmbedder,
    Transcript,
)
from voicebot.speech_cache import SpeechCache

log = logging.getLogger(__name__)
T = TypeVar("T")


class ModelTimeout(TimeoutError):
    """A model call took longer than its configured limit."""


@dataclass(frozen=True, slots=True)
class Timed(Generic[T]):
    """A result and how long it took to compute (ms)."""

    value: T
    ms: float


class ModelWorkers:
    """Async access to the process-wide ASR, TTS and text-embedding models."""

    def __init__(
        self,
        recognizer: SpeechRecognizer,
        synthesizer: SpeechSynthesizer,
        embedder: TextEmbedder,
        *,
        asr_threads: int = 1,
        asr_timeout_s: float = 10.0,
        tts_timeout_s: float = 10.0,
        nlu_timeout_s: float = 5.0,
        speech_cache: SpeechCache | None = None,
    ) -> None:
        self.recognizer = recognizer
        self.synthesizer = synthesizer
        self.embedder = embedder
        self._asr_pool = ThreadPoolExecutor(asr_threads, thread_name_prefix="asr")
        # Piper's phonemizer (espeak-ng) is not thread-safe: one TTS thread.
        self._tts_pool = ThreadPoolExecutor(1, thread_name_prefix="tts")
        self._nlu_pool = ThreadPoolExecutor(1, thread_name_prefix="nlu")
        self._timeouts = {"asr": asr_timeout_s, "tts": tts_timeout_s, "nlu": nlu_timeout_s}
        self.speech_cache = speech_cache or SpeechCache()

    async def _run(self, pool: ThreadPoolExecutor, kind: str, fn: Callable[[], T]) -> Timed[T]:
        loop = asyncio.get_running_loop()

        def timed() -> Timed[T]:
            started = time.perf_counter()
            value = fn()
            return Timed(value, (time.perf_counter() - started) * 1000)

        try:
            return await asyncio.wait_for(loop.run_in_executor(pool, timed), self._timeouts[kind])
        except TimeoutError:
            raise ModelTimeout(f"{kind} took longer than {self._timeouts[kind]} s") from None

    async def transcribe(self, audio: PCM16) -> Timed[Transcript]:
        """Speech -> text, in the ASR pool."""
        return await self._run(self._asr_pool, "asr", lambda: self.recognizer.transcribe(audio))

    async def synthesize(self, text: str) -> Timed[PCM16]:
        """Text -> 16 kHz speech, in the TTS pool; known phrases come from the cache."""
        cached = self.speech_cache.get(text)
        if cached is not None:
            return Timed(cached, 0.0)
        result = await self._run(self._tts_pool, "tts", lambda: self.synthesizer.synthesize(text))
        self.speech_cache.remember(text, result.value)
        return result

    async def prepare_speech(self, texts: Iterable[str], idle: asyncio.Event) -> int:
        """Synthesise and pin `texts` ahead of time, from disk where possible.

        Synthesis only happens while `idle` is set (no call in progress), one phrase at
        a time, so warming the cache never holds up a caller for more than one phrase.
        Returns how many phrases were synthesised.
        """
        made = 0
        for text in dict.fromkeys(texts):
            cache = self.speech_cache
            if cache.is_pinned(text) or await asyncio.to_thread(cache.load, text) is not None:
                continue
            await idle.wait()
            try:
                result = await self._run(
                    self._tts_pool, "tts", partial(self.synthesizer.synthesize, text)
                )
            except ModelTimeout:
                log.warning("speech cache: synthesis of %r timed out; skipped", text[:40])
                continue
            cache.pin(text, result.value)
            await asyncio.to_thread(cache.save, text, result.value)
            made += 1
        return made

    async def run_nlu(self, fn: Callable[[], T]) -> Timed[T]:
        """Run a dialogue step (embedding + lookups) in the NLU pool."""
        return await self._run(self._nlu_pool, "nlu", fn)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Blocking embedding, for use inside `run_nlu` functions."""
        return self.embedder.embed(texts)

    def close(self) -> None:
        """Stop the pools (at process exit)."""
        for pool in (self._asr_pool, self._tts_pool, self._nlu_pool):
            pool.shutdown(wait=False, cancel_futures=True)
