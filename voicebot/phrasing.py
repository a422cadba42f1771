"""The sentences of one reply, fixed or streamed from an LLM as each one is ready.

Template replies are known in full when decided. An LLM reply is pulled sentence by
sentence from the engine in a worker thread, so the first sentence is synthesised and
playing while the model is still writing the rest. If the engine fails before it has
produced anything, the template sentences are spoken instead: the caller always hears
the reply the policy decided on, in one wording or the other.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from voicebot.reply import SpeechUnit, speech_units
from voicebot.workers import ModelWorkers

log = logging.getLogger(__name__)


class SentenceSource:
    """Yields a reply's spoken units; `stream` is an engine's sentence iterator or None."""

    def __init__(
        self,
        template: tuple[str, ...],
        workers: ModelWorkers,
        stream: Iterator[str] | None = None,
    ) -> None:
        self._template = speech_units(template)
        self._workers = workers
        self._stream = stream
        self._queue: list[SpeechUnit] = [] if stream is not None else list(self._template)
        self.spoken = 0
        self.streamed = stream is not None

    async def next(self) -> str | None:
        """The text of the next unit to speak, or None when the reply is complete."""
        unit = await self.next_unit()
        return None if unit is None else unit.text

    async def next_unit(self) -> SpeechUnit | None:
        """The next unit to speak (a sentence or a first clause), or None when complete."""
        if not self._queue and self._stream is not None:
            await self._pull()
        if not self._queue:
            return None
        self.spoken += 1
        return self._queue.pop(0)

    async def _pull(self) -> None:
        stream = self._stream
        assert stream is not None
        try:
            text = (await self._workers.run_llm(lambda: next(stream, None))).value
        except Exception as exc:  # a broken or stuck engine: say what the policy decided
            log.error("reply engine failed after %d sentences: %r", self.spoken, exc)
            text = None
        if text is None:  # ended, or failed; with nothing said yet, use the templates
            self._stream = None
            if self.spoken == 0:
                self._queue = list(self._template)
            return
        self._queue = list(speech_units((text,)))

    def close(self) -> None:
        """Stop the engine (barge-in or hang-up): it stops generating and frees the model.

        Closing runs in the LLM pool, after any `next` in flight there has returned."""
        stream, self._stream = self._stream, None
        if stream is None or not hasattr(stream, "close"):
            return

        def close() -> None:
            with contextlib.suppress(ValueError, RuntimeError):  # still running: GC closes it
                stream.close()

        self._workers.submit_llm(close)
