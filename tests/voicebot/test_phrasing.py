"""A reply's sentences: fixed templates, or streamed from an engine with a fallback."""

from __future__ import annotations

from collections.abc import Iterator

from voicebot.phrasing import SentenceSource
from voicebot.workers import ModelWorkers

TEMPLATE = ("There is no fee for that.", "Anything else?")


def workers() -> ModelWorkers:
    # Only the LLM pool is used here: no ASR, TTS or encoder is needed.
    return ModelWorkers(None, None, None, llm_timeout_s=2.0)  # type: ignore[arg-type]


async def drain(source: SentenceSource) -> list[str]:
    out = []
    while (text := await source.next()) is not None:
        out.append(text)
    return out


async def test_templates_are_spoken_as_decided():
    assert await drain(SentenceSource(TEMPLATE, workers())) == list(TEMPLATE)


async def test_a_stream_is_spoken_sentence_by_sentence():
    pulled: list[str] = []

    def engine() -> Iterator[str]:
        for text in ("It's free.", "Shall I do it?"):
            pulled.append(text)
            yield text

    source = SentenceSource(TEMPLATE, workers(), engine())
    assert await source.next() == "It's free."
    assert pulled == ["It's free."]  # the second sentence is not asked for yet
    assert await drain(source) == ["Shall I do it?"]
    assert source.streamed


async def test_an_engine_that_fails_first_falls_back_to_the_templates():
    def broken() -> Iterator[str]:
        raise RuntimeError("model down")
        yield ""  # pragma: no cover

    def empty() -> Iterator[str]:
        return
        yield ""  # pragma: no cover

    assert await drain(SentenceSource(TEMPLATE, workers(), broken())) == list(TEMPLATE)
    assert await drain(SentenceSource(TEMPLATE, workers(), empty())) == list(TEMPLATE)


async def test_an_engine_that_fails_midway_stops_without_repeating():
    def half() -> Iterator[str]:
        yield "It's free."
        raise RuntimeError("connection reset")

    assert await drain(SentenceSource(TEMPLATE, workers(), half())) == ["It's free."]


async def test_closing_stops_the_engine():
    closed: list[bool] = []

    def engine() -> Iterator[str]:
        try:
            yield "One."
            yield "Two."
        finally:
            closed.append(True)

    pool = workers()
    source = SentenceSource(TEMPLATE, pool, engine())
    assert await source.next() == "One."
    source.close()
    pool._llm_pool.shutdown(wait=True)  # the close runs in the LLM pool
    pool.close()
    assert closed == [True]
    assert await source.next() is None
