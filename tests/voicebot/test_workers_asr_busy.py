"""`ModelWorkers.asr_busy`: what the turn-taker reads to decide how early to speculate.

With the real Whisper: busy while a transcription computes, still busy after the call
that asked for it stopped waiting (a thread cannot be interrupted, and that is exactly
the work a new speculation would queue behind), idle once the thread returns.
"""

from __future__ import annotations

import asyncio

import numpy as np

from tests.helpers import CLOSE_QUESTION, flite_pcm
from voicebot.workers import ModelWorkers


async def wait_until(condition, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.001)


async def test_asr_busy_covers_an_abandoned_transcription_until_its_thread_returns(services):
    workers = ModelWorkers(services.workers.recognizer, None, None)  # type: ignore[arg-type]
    speech = np.concatenate([flite_pcm(CLOSE_QUESTION)] * 3)
    try:
        assert not workers.asr_busy
        asking = asyncio.create_task(workers.transcribe(speech))
        await wait_until(lambda: workers.asr_busy)
        asking.cancel()
        await asyncio.gather(asking, return_exceptions=True)
        assert workers.asr_busy  # the caller stopped waiting; Whisper did not stop
        await wait_until(lambda: not workers.asr_busy)
        heard = await workers.transcribe(speech)
        assert "close" in heard.value.text.lower() and not workers.asr_busy
    finally:
        workers.close()
