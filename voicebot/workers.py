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
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

from models.asr_batch import AsrTimeout, BatchingRecognizer
from models.protocols import (
    PCM16,
    SpeechRecognizer,
    SpeechSynthesizer,
    TextEmbedder,
    Transcript,
)
from voicebot.clock import Clock
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


@dataclass(frozen=True, slots=True)
class Pacing:
    """Virtual time each model call takes, for offline replay on a virtual clock.

    Live, a model call takes as long as it takes. Replay runs faster than real time on
    a virtual clock and must reach the same turn-taking decisions on any machine, so
    each call is made to take a fixed, configured virtual time instead.
    """

    clock: Clock
    asr_s: float
    nlu_s: float
    tts_s: float

    def seconds(self, kind: str) -> float:
        """Virtual duration of one call of this kind ("asr", "nlu", "tts")."""
        return {"asr": self.asr_s, "nlu": self.nlu_s, "llm": self.nlu_s, "tts": self.tts_s}[kind]


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
        llm_timeout_s: float = 10.0,
        speech_cache: SpeechCache | None = None,
    ) -> None:
        self.recognizer = recognizer
        self.synthesizer = synthesizer
        self.embedder = embedder
        self._asr_pool = ThreadPoolExecutor(asr_threads, thread_name_prefix="asr")
        # Piper's phonemizer (espeak-ng) is not thread-safe: one TTS thread.
        self._tts_pool = ThreadPoolExecutor(1, thread_name_prefix="tts")
        self._nlu_pool = ThreadPoolExecutor(1, thread_name_prefix="nlu")
        # LLM replies wait on the network or a local model: their own threads, so a slow
        # reply never holds up another call's intent classification.
        self._llm_pool = ThreadPoolExecutor(8, thread_name_prefix="llm")
        self._timeouts = {
            "asr": asr_timeout_s,
            "tts": tts_timeout_s,
            "nlu": nlu_timeout_s,
            "llm": llm_timeout_s,
        }
        self.speech_cache = speech_cache if speech_cache is not None else SpeechCache()
        #: Set for offline replay (see `Pacing`); None live.
        self.pacing: Pacing | None = None
        self.in_flight = 0
        # Transcriptions computing in the ASR pool right now. Counted in the thread, not
        # around the await: a cancelled speculation stops waiting at once, but its thread
        # computes on until Whisper returns, and it is that thread that a new request
        # would queue behind.
        self._asr_computing = 0
        self._asr_lock = threading.Lock()
        # Plain futures, not an asyncio.Event: replay may run on more than one event loop
        # over the life of these workers, and an Event binds to the first loop it sees.
        self._quiet_waiters: list[asyncio.Future[None]] = []

    async def _run(self, pool: ThreadPoolExecutor, kind: str, fn: Callable[[], T]) -> Timed[T]:
        loop = asyncio.get_running_loop()

        def timed() -> Timed[T]:
            started = time.perf_counter()
            value = fn()
            return Timed(value, (time.perf_counter() - started) * 1000)

        pacing = self.pacing
        if pacing is not None:
            # Replay: the work "takes" its virtual time first and is computed only then,
            # so work that is cancelled meanwhile (a speculation the caller made void)
            # costs nothing, and the result is the same as if computed at the start.
            await pacing.clock.sleep_until(pacing.clock.now() + pacing.seconds(kind))
        try:
            with self._busy():
                work = loop.run_in_executor(pool, timed)
                return await asyncio.wait_for(work, self._timeouts[kind])
        except TimeoutError:
            raise ModelTimeout(f"{kind} took longer than {self._timeouts[kind]} s") from None

    @contextmanager
    def _busy(self) -> Iterator[None]:
        """Count work running in threads, so replay knows when the call has caught up."""
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                for waiter in self._quiet_waiters:
                    if not waiter.done():
                        waiter.set_result(None)
                self._quiet_waiters.clear()

    async def wait_quiet(self) -> None:
        """Until no model call is computing (replay uses it to let the call catch up)."""
        if self.in_flight == 0:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._quiet_waiters.append(waiter)
        await waiter

    async def transcribe(self, audio: PCM16) -> Timed[Transcript]:
        """Speech -> text: through the shared batching worker if there is one, else the ASR pool."""
        recognizer = self.recognizer
        if isinstance(recognizer, BatchingRecognizer):
            return await self._transcribe_batched(recognizer, audio)
        return await self._run(self._asr_pool, "asr", partial(self._transcribe_now, audio))

    def _transcribe_now(self, audio: PCM16) -> Transcript:
        with self._asr_lock:
            self._asr_computing += 1
        try:
            return self.recognizer.transcribe(audio)
        finally:
            with self._asr_lock:
                self._asr_computing -= 1

    @property
    def asr_busy(self) -> bool:
        """A transcription is computing in the ASR pool.

        Never "busy" with the batching worker (it decodes concurrent requests together,
        so speculating early is cheap) nor in replay (`pacing` set): there, when a
        speculation starts must not depend on how fast this machine happens to compute,
        or two replays of one call would differ.
        """
        return self.pacing is None and self._asr_computing > 0

    async def _transcribe_batched(
        self, recognizer: BatchingRecognizer, audio: PCM16
    ) -> Timed[Transcript]:
        """One request to the worker every call shares; cancelling the caller withdraws it."""
        pacing = self.pacing
        if pacing is not None:
            await pacing.clock.sleep_until(pacing.clock.now() + pacing.seconds("asr"))
        started = time.perf_counter()
        with self._busy():
            try:
                value = await recognizer.transcribe_async(audio, self._timeouts["asr"])
            except AsrTimeout:
                raise ModelTimeout(f"asr took longer than {self._timeouts['asr']} s") from None
        return Timed(value, (time.perf_counter() - started) * 1000)

    async def synthesize(self, text: str) -> Timed[PCM16]:
        """Text -> 16 kHz speech, in the TTS pool; known phrases come from the cache.

        A phrase not in memory may still be on disk from an earlier run (the pinned
        prompts and answers): that costs a file read, not a synthesis.
        """
        cached = self.speech_cache.get(text)
        if cached is None and self.speech_cache.directory is not None:
            with self._busy():
                cached = await asyncio.to_thread(self.speech_cache.load, text)
        if cached is not None:
            if self.pacing is not None:
                now = self.pacing.clock.now()
                await self.pacing.clock.sleep_until(now + self.pacing.seconds("tts"))
            return Timed(cached, 0.0)
        result = await self._run(self._tts_pool, "tts", lambda: self.synthesizer.synthesize(text))
        if self.speech_cache.remember(text, result.value):  # a template phrase: keep it on disk
            self._save_later(text, result.value)
        return result

    def _save_later(self, text: str, pcm: PCM16) -> None:
        """Write a phrase to the disk cache off the reply's path; a failure is only logged."""

        def save() -> None:
            try:
                self.speech_cache.save(text, pcm)
            except OSError as exc:
                log.warning("speech cache: cannot save %r (%s)", text[:40], exc)

        asyncio.get_running_loop().run_in_executor(None, save)

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
            made += 1
            try:
                await asyncio.to_thread(cache.save, text, result.value)
            except OSError as exc:  # a full disk: the phrase stays in memory, calls go on
                log.warning("speech cache: cannot save %r (%s)", text[:40], exc)
        return made

    async def run_nlu(self, fn: Callable[[], T]) -> Timed[T]:
        """Run a dialogue step (embedding + lookups) in the NLU pool."""
        return await self._run(self._nlu_pool, "nlu", fn)

    async def run_llm(self, fn: Callable[[], T]) -> Timed[T]:
        """Run one step of an LLM reply (the next sentence) in the LLM pool."""
        return await self._run(self._llm_pool, "llm", fn)

    def submit_llm(self, fn: Callable[[], None]) -> None:
        """Fire-and-forget work in the LLM pool (closing a stream nobody reads any more)."""
        self._llm_pool.submit(fn)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Blocking embedding, for use inside `run_nlu` functions."""
        return self.embedder.embed(texts)

    def close(self) -> None:
        """Stop the pools (at process exit)."""
        if isinstance(self.recognizer, BatchingRecognizer):
            self.recognizer.close()
        for pool in (self._asr_pool, self._tts_pool, self._nlu_pool, self._llm_pool):
            pool.shutdown(wait=False, cancel_futures=True)
