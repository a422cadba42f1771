"""One ASR worker per device, shared by every call: requests that meet are decoded together.

On a GPU a batch of 64 utterances costs little more than one (the decoder is bound by
kernel launches, not arithmetic), so the worker takes whatever finalization requests
are waiting when the device becomes free, optionally after a short gathering window,
and decodes them as one batch. This file is the scheduling only (threads, futures,
deadlines); the model work is a `BatchBackend` (`models.asr_whisper_batched` for
Whisper), so the policy is testable without a model and torch is never imported here.

Policy (why): requests are grouped by the backend's length bucket, so a 2 s utterance
is never padded to, nor waits for the decoding of, a 25 s one in the same batch.
Among buckets the shortest goes first (shortest-job-first minimises the mean wait, and
short finalizations are the common case on a phone line), except that a request older
than `starve_s` is served next whatever its length, which bounds a long one's wait. A
batch is capped in count and in seconds of audio, so one burst cannot make the next
arrival wait for a huge batch. A request whose caller has given up (a speculative
transcription made void because the caller went on talking: its future is cancelled)
or whose deadline has passed is dropped before it reaches the device.

A backend may answer `Redo(bucket)` for one utterance of a batch (Whisper on a trimmed
window that ran away): the worker puts that request back at the head of the queue in the
longer bucket, so it is batched with the other requests of that bucket instead of
holding up the rest of its batch, whose results are delivered at once. Its submission
time is kept, so the starvation rule serves it next. Once redone it can no longer be
withdrawn (its future is already running); its deadline still holds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

from models.protocols import PCM16, SAMPLE_RATE, Transcript

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Redo:
    """A backend's answer for one utterance: decode it again in `bucket` (a longer one)."""

    bucket: int
    #: What the rejected decode said (for logs and benchmarks).
    rejected: str = ""


class BatchBackend(Protocol):
    """Transcribes a batch of utterances of one length bucket."""

    def bucket(self, samples: int) -> int:
        """The length bucket of an utterance (smaller = shorter); one batch, one bucket."""
        ...

    def transcribe_batch(
        self, audios: Sequence[PCM16], bucket: int
    ) -> Sequence[Transcript | Redo]: ...


class AsrTimeout(TimeoutError):
    """A request waited past its deadline; it was dropped without being decoded."""


class AsrOverloaded(RuntimeError):
    """The worker's queue is full: the caller should apologise rather than wait."""


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """How requests are gathered into batches (see the module docstring for why)."""

    #: Wait this long after the oldest request before starting a batch (0: start as soon
    #: as the device is free; under load, the running batch is itself the window).
    window_s: float = 0.0
    max_batch: int = 64
    #: Audio seconds in one batch, at most (one request always fits).
    max_batch_audio_s: float = 600.0
    #: A request waiting longer than this is served next, whatever its length.
    starve_s: float = 0.25
    #: Default deadline of a request, from its submission.
    timeout_s: float = 10.0
    max_queue: int = 4096


@dataclass
class BatchStats:
    """What the worker did, for benchmarks and logs."""

    batches: int = 0
    decoded: int = 0
    cancelled: int = 0
    timed_out: int = 0
    failed: int = 0
    #: Requests a backend asked to decode again in a longer bucket (`Redo`).
    redone: int = 0
    sizes: Counter[int] = field(default_factory=Counter)


@dataclass(slots=True)
class _Request:
    audio: PCM16
    bucket: int
    future: Future[Transcript]
    submitted: float
    deadline: float
    #: Put back by a `Redo`: its future is already running (it cannot be cancelled).
    redone: bool = False


class BatchingRecognizer:
    """A `SpeechRecognizer` whose calls from many threads and loops share batches.

    `submit` returns a concurrent future at once (cancel it to withdraw the request);
    `transcribe_async` awaits one from an event loop; `transcribe` blocks, for one-off use.
    """

    def __init__(
        self,
        backend: BatchBackend,
        policy: BatchPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        name: str = "asr-batch",
    ) -> None:
        self.backend = backend
        self.policy = policy or BatchPolicy()
        self.stats = BatchStats()
        self._clock = clock
        self._pending: list[_Request] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, audio: PCM16, *, timeout_s: float | None = None) -> Future[Transcript]:
        """Queue one utterance; the future holds its transcript, or AsrTimeout."""
        future: Future[Transcript] = Future()
        now = self._clock()
        limit = self.policy.timeout_s if timeout_s is None else timeout_s
        request = _Request(audio, self.backend.bucket(audio.size), future, now, now + limit)
        with self._cond:
            if self._closed:
                raise RuntimeError("the ASR worker is closed")
            if len(self._pending) >= self.policy.max_queue:
                raise AsrOverloaded(f"{len(self._pending)} ASR requests already waiting")
            self._pending.append(request)
            self._cond.notify()
        return future

    async def transcribe_async(self, audio: PCM16, timeout_s: float | None = None) -> Transcript:
        """Await a transcript; cancelling the awaiting task withdraws the request."""
        limit = self.policy.timeout_s if timeout_s is None else timeout_s
        future = self.submit(audio, timeout_s=limit)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), limit)
        except TimeoutError:
            future.cancel()
            raise AsrTimeout(f"ASR took longer than {limit} s") from None

    def transcribe(self, audio: PCM16) -> Transcript:
        """Blocking, for one-off use (the `SpeechRecognizer` protocol)."""
        future = self.submit(audio)
        try:
            return future.result(self.policy.timeout_s)
        except TimeoutError:
            future.cancel()
            raise AsrTimeout(f"ASR took longer than {self.policy.timeout_s} s") from None

    def queued(self) -> int:
        """Requests waiting (not yet in a batch)."""
        with self._cond:
            return len(self._pending)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the worker: waiting requests are cancelled, a running batch finishes."""
        with self._cond:
            self._closed = True
            waiting, self._pending = self._pending, []
            self._cond.notify_all()
        for request in waiting:
            if request.redone:  # running: cannot be cancelled
                request.future.set_exception(RuntimeError("the ASR worker is closed"))
            else:
                request.future.cancel()
        self._thread.join(timeout_s)

    def _serve(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run(batch)

    def _next_batch(self) -> list[_Request] | None:
        """Block until a batch is due, then take it out of the queue."""
        window = self.policy.window_s
        with self._cond:
            while True:
                if self._closed:
                    return None
                self._drop_dead()
                if not self._pending:
                    self._cond.wait()
                    continue
                due = self._pending[0].submitted + window
                wait = due - self._clock()
                if wait > 0 and len(self._pending) < self.policy.max_batch:
                    self._cond.wait(wait)
                    continue
                return self._take()

    def _drop_dead(self) -> None:
        """Withdrawn and expired requests leave the queue before they cost anything."""
        now = self._clock()
        keep = []
        for request in self._pending:
            if request.future.cancelled():
                self.stats.cancelled += 1
            elif now > request.deadline:
                self.stats.timed_out += 1
                if request.redone or request.future.set_running_or_notify_cancel():
                    request.future.set_exception(AsrTimeout("ASR request expired in the queue"))
            else:
                keep.append(request)
        self._pending = keep

    def _take(self) -> list[_Request]:
        """Shortest bucket first unless someone has waited past `starve_s`; capped."""
        policy = self.policy
        oldest = self._pending[0]
        if self._clock() - oldest.submitted >= policy.starve_s:
            bucket = oldest.bucket
        else:
            bucket = min(request.bucket for request in self._pending)
        batch: list[_Request] = []
        rest: list[_Request] = []
        audio_s = 0.0
        for request in self._pending:
            seconds = request.audio.size / SAMPLE_RATE
            fits = len(batch) < policy.max_batch and (
                not batch or audio_s + seconds <= policy.max_batch_audio_s
            )
            if request.bucket == bucket and fits:
                batch.append(request)
                audio_s += seconds
            else:
                rest.append(request)
        self._pending = rest
        return batch

    def _run(self, batch: list[_Request]) -> None:
        """Decode the requests still wanted; every future gets a result or an exception."""
        live = [r for r in batch if r.redone or r.future.set_running_or_notify_cancel()]
        self.stats.cancelled += len(batch) - len(live)
        if not live:
            return
        try:
            results = self.backend.transcribe_batch([r.audio for r in live], live[0].bucket)
            if len(results) != len(live):
                raise RuntimeError(f"backend returned {len(results)} transcripts for {len(live)}")
        except Exception as exc:  # one bad batch fails its own requests, not the worker
            log.exception("ASR batch of %d failed", len(live))
            self.stats.failed += len(live)
            for request in live:
                request.future.set_exception(exc)
            return
        self.stats.batches += 1
        self.stats.decoded += len(live)
        self.stats.sizes[len(live)] += 1
        redo: list[_Request] = []
        for request, result in zip(live, results, strict=True):
            if not isinstance(result, Redo):
                request.future.set_result(result)
            elif result.bucket <= request.bucket:  # a backend bug: it would loop forever
                self.stats.failed += 1
                request.future.set_exception(
                    RuntimeError(f"redo in bucket {result.bucket} from {request.bucket}")
                )
            else:
                log.info("ASR: redo in bucket %d of %r", result.bucket, result.rejected[:80])
                request.bucket, request.redone = result.bucket, True
                redo.append(request)
        if redo:
            self.stats.redone += len(redo)
            with self._cond:
                closed = self._closed
                if not closed:
                    self._pending[:0] = redo
                    self._cond.notify()
            for request in redo if closed else ():
                request.future.set_exception(RuntimeError("the ASR worker is closed"))
