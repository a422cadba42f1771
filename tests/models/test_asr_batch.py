"""The shared batching ASR worker: who is decoded with whom, and when requests are dropped.

The scheduling tests use a fake backend (named so) that records batches and blocks
until released, so what meets in a batch is decided by the test, not by timing. The
end-to-end tests use real Whisper code on a random-weight model of tiny.en's layout
(small widths, built in the test) and, where packaged, the real tiny.en weights.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import CancelledError

import numpy as np
import pytest

from models.asr_batch import AsrOverloaded, AsrTimeout, BatchingRecognizer, BatchPolicy, Redo
from models.protocols import PCM16, Transcript


class FakeBackend:
    """Fake model: bucket = whole seconds (capped at 3); text = the clip's first sample."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.fail = False
        #: tag -> the bucket the fake asks to redo that clip in (`Redo`) until it is there
        self.redo: dict[int, int] = {}

    def bucket(self, samples: int) -> int:
        return min(samples // 16_000, 3)

    def transcribe_batch(self, audios: Sequence[PCM16], bucket: int) -> list[Transcript | Redo]:
        self.batches.append([int(a[0]) for a in audios])
        self.entered.set()
        assert self.release.wait(5)
        if self.fail:
            raise RuntimeError("the device fell over")
        return [
            Redo(self.redo[tag], "loop")
            if self.redo.get(tag, bucket) != bucket
            else Transcript(str(tag), audio_s=a.size / 16_000)
            for tag, a in ((int(a[0]), a) for a in audios)
        ]


def clip(tag: int, seconds: float = 0.5) -> PCM16:
    audio = np.zeros(int(seconds * 16_000), np.int16)
    audio[0] = tag
    return audio


def hold_worker(worker: BatchingRecognizer, backend: FakeBackend) -> None:
    """Occupy the worker with request 0, so what is submitted next queues up behind it."""
    worker.submit(clip(0))
    assert backend.entered.wait(5)


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


def make(backend: FakeBackend, **policy: float) -> BatchingRecognizer:
    return BatchingRecognizer(backend, BatchPolicy(**policy))  # type: ignore[arg-type]


def test_requests_queued_while_busy_are_decoded_together(backend):
    worker = make(backend)
    hold_worker(worker, backend)
    futures = [worker.submit(clip(tag)) for tag in (1, 2, 3)]
    backend.release.set()
    assert [f.result(5).text for f in futures] == ["1", "2", "3"]
    assert backend.batches == [[0], [1, 2, 3]]
    assert worker.stats.sizes == {1: 1, 3: 1}
    worker.close()


def test_a_window_gathers_requests_that_arrive_close_together(backend):
    backend.release.set()
    worker = make(backend, window_s=0.3)
    futures = [worker.submit(clip(tag)) for tag in (1, 2)]
    assert [f.result(5).text for f in futures] == ["1", "2"]
    assert backend.batches == [[1, 2]]
    worker.close()


def test_short_utterances_first_and_never_in_a_long_batch(backend):
    worker = make(backend, starve_s=10)
    hold_worker(worker, backend)
    long_one = worker.submit(clip(7, seconds=3.5))
    short = [worker.submit(clip(tag, seconds=0.4)) for tag in (1, 2)]
    middle = worker.submit(clip(5, seconds=1.5))
    backend.release.set()
    for future in (long_one, *short, middle):
        future.result(5)
    assert backend.batches == [[0], [1, 2], [5], [7]]
    worker.close()


def test_a_request_waiting_too_long_goes_first_whatever_its_length(backend):
    worker = make(backend, starve_s=0.05)
    hold_worker(worker, backend)
    long_one = worker.submit(clip(7, seconds=3.5))
    threading.Event().wait(0.1)  # the long one is now older than starve_s
    short = worker.submit(clip(1))
    backend.release.set()
    long_one.result(5), short.result(5)
    assert backend.batches == [[0], [7], [1]]
    worker.close()


def test_batches_are_capped_in_count_and_seconds_of_audio(backend):
    worker = make(backend, max_batch=2, max_batch_audio_s=1.0)
    hold_worker(worker, backend)
    futures = [worker.submit(clip(tag, seconds=0.4)) for tag in (1, 2, 3)]
    futures += [worker.submit(clip(tag, seconds=0.7)) for tag in (4, 5)]
    backend.release.set()
    for future in futures:
        future.result(5)
    assert backend.batches == [[0], [1, 2], [3], [4], [5]]
    worker.close()


def test_a_withdrawn_speculative_request_is_never_decoded(backend):
    worker = make(backend)
    hold_worker(worker, backend)
    speculative = worker.submit(clip(1))
    kept = worker.submit(clip(2))
    assert speculative.cancel()  # the caller went on talking
    backend.release.set()
    assert kept.result(5).text == "2"
    assert backend.batches == [[0], [2]]
    assert worker.stats.cancelled == 1
    worker.close()


def test_a_request_past_its_deadline_is_dropped_not_decoded(backend):
    worker = make(backend)
    hold_worker(worker, backend)
    late = worker.submit(clip(1), timeout_s=0.01)
    threading.Event().wait(0.05)
    backend.release.set()
    with pytest.raises(AsrTimeout):
        late.result(5)
    assert backend.batches == [[0]]
    worker.close()


async def test_async_callers_share_a_batch_and_cancelling_withdraws(backend):
    worker = make(backend)
    hold_worker(worker, backend)
    first = asyncio.create_task(worker.transcribe_async(clip(1)))
    gone = asyncio.create_task(worker.transcribe_async(clip(2)))
    third = asyncio.create_task(worker.transcribe_async(clip(3)))
    await asyncio.sleep(0.05)
    gone.cancel()
    await asyncio.sleep(0.01)
    backend.release.set()
    assert [(await first).text, (await third).text] == ["1", "3"]
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert backend.batches == [[0], [1, 3]]
    worker.close()


async def test_async_timeout_raises_and_withdraws(backend):
    worker = make(backend)
    hold_worker(worker, backend)
    with pytest.raises(AsrTimeout):
        await worker.transcribe_async(clip(1), timeout_s=0.05)
    backend.release.set()
    worker.submit(clip(2)).result(5)
    assert backend.batches == [[0], [2]]
    worker.close()


def test_a_failing_batch_fails_its_requests_and_the_worker_goes_on(backend):
    worker = make(backend)
    backend.fail = True
    backend.release.set()
    with pytest.raises(RuntimeError, match="fell over"):
        worker.submit(clip(1)).result(5)
    backend.fail = False
    assert worker.transcribe(clip(2)).text == "2"
    assert worker.stats.failed == 1
    worker.close()


def test_a_redone_request_joins_the_longer_buckets_batch_and_the_rest_is_delivered(backend):
    """A runaway in a short batch is decoded again with the long ones, not before them."""
    worker = make(backend, starve_s=10)
    hold_worker(worker, backend)
    backend.redo = {1: 3}
    futures = [worker.submit(clip(tag)) for tag in (1, 2)]
    long_one = worker.submit(clip(7, seconds=3.5))
    backend.release.set()
    assert [f.result(5).text for f in (*futures, long_one)] == ["1", "2", "7"]
    assert backend.batches == [[0], [1, 2], [1, 7]]
    assert worker.stats.redone == 1 and worker.stats.sizes == {1: 1, 2: 2}
    worker.close()


def test_a_redo_into_a_bucket_no_longer_fails_instead_of_looping(backend):
    backend.release.set()
    backend.redo = {1: 0}
    worker = make(backend)
    with pytest.raises(RuntimeError, match="redo in bucket 0 from 1"):
        worker.submit(clip(1, seconds=1.5)).result(5)
    assert backend.batches == [[1]] and worker.stats.failed == 1
    worker.close()


def test_full_queue_refuses_and_close_cancels_the_waiting(backend):
    worker = make(backend, max_queue=1)
    hold_worker(worker, backend)
    waiting = worker.submit(clip(1))
    with pytest.raises(AsrOverloaded):
        worker.submit(clip(2))
    closing = threading.Thread(target=worker.close)
    closing.start()
    backend.release.set()
    closing.join(5)
    with pytest.raises(CancelledError):
        waiting.result(1)
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit(clip(3))


# --- real Whisper code ------------------------------------------------------------------

torch = pytest.importorskip("torch")
pytest.importorskip("whisper")


@pytest.fixture(scope="module")
def small_whisper():
    from models.whisper_arch import random_model
    from tests.models.test_whisper_static import SMALL

    return random_model(SMALL, seed=3, std=0.2)


def test_whisper_batches_equal_one_by_one_decoding(small_whisper):
    """Random weights: the transcripts are tokens of noise, compared as scores and text."""
    from models.asr_whisper_batched import WhisperBatchBackend

    backend = WhisperBatchBackend(
        small_whisper, max_tokens=8, buckets_s=(2.0, 4.0), redo_runaways=False
    )
    rng = np.random.default_rng(0)
    clips = [
        (rng.standard_normal(n) * 3000).astype(np.int16) for n in (8_000, 20_000, 30_000, 60_000)
    ]
    # a window keeps a second after the audio; the last one takes the rest (truncated)
    assert [backend.bucket(c.size) for c in clips] == [0, 1, 1, 1]
    one_by_one = [backend.transcribe_batch([c], backend.bucket(c.size))[0] for c in clips]
    worker = BatchingRecognizer(backend, BatchPolicy(window_s=0.2))
    futures = [worker.submit(c) for c in clips]
    together = [f.result(30) for f in futures]
    worker.close()
    assert worker.stats.sizes == {1: 1, 3: 1}
    for a, b in zip(together, one_by_one, strict=True):
        assert a.text == b.text and a.audio_s == b.audio_s
        assert a.avg_logprob == pytest.approx(b.avg_logprob, abs=1e-4)


def test_real_tiny_en_batched_transcribes_speech():
    from models.asr_whisper_batched import batched_whisper
    from models.weights import WeightsError
    from models.whisper_arch import load_checkpoint
    from tests.helpers import TWO_QUESTIONS, flite_pcm

    convert = pytest.importorskip("models.whisper_convert")
    try:
        model = load_checkpoint(str(convert.converted_checkpoint("tiny.en")))
    except WeightsError as exc:
        pytest.skip(f"tiny.en not packaged here: {exc}")
    worker = batched_whisper(model, BatchPolicy(window_s=0.1), max_tokens=48)
    clips = [flite_pcm(text) for text in TWO_QUESTIONS]  # spoken first: submitted together
    futures = [worker.submit(clip) for clip in clips]
    texts = [f.result(60).text.lower() for f in futures]
    quiet = worker.transcribe(np.zeros(16_000, np.int16))
    worker.close()
    assert "close my account" in texts[0] and "age limit" in texts[1], texts
    assert quiet.text == "" or quiet.no_speech_prob > 0.5
    assert worker.stats.sizes[2] == 1


async def test_model_workers_route_transcription_through_the_shared_worker(backend):
    from voicebot.workers import ModelTimeout, ModelWorkers

    backend.release.set()
    batching = make(backend)
    workers = ModelWorkers(batching, None, None, asr_timeout_s=0.5)  # type: ignore[arg-type]
    results = await asyncio.gather(*(workers.transcribe(clip(tag)) for tag in (1, 2)))
    assert [r.value.text for r in results] == ["1", "2"]
    backend.release.clear()
    with pytest.raises(ModelTimeout):
        await workers.transcribe(clip(3))
    backend.release.set()
    workers.close()
    with pytest.raises(RuntimeError, match="closed"):
        batching.submit(clip(4))


def test_gpu_benchmark_runs_on_the_cpu(tmp_path):
    """bench/asr_gpu.py in its CPU mode (tiny shapes, 1 and 4 calls): the JSON it writes."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "asr.json"
    script = Path(__file__).resolve().parents[2] / "bench" / "asr_gpu.py"
    args = ["--device", "cpu", "--small", "--decoders", "static,eager", "--json", str(out)]
    subprocess.run([sys.executable, str(script), *args], check=True, timeout=300)
    report = json.loads(out.read_text())
    assert "random weights" in report["note"] and "4 tokens" in report["note"]
    seen = {(r["decoder"], r["calls"], r["pattern"]) for r in report["runs"]}
    assert seen == {
        (d, c, p) for d in ("static", "eager") for c in (1, 4) for p in ("burst", "steady")
    }
    assert all(r["p95_ms"] >= r["p50_ms"] > 0 for r in report["runs"])


@pytest.fixture(scope="module")
def tiny_en():
    """The real tiny.en weights converted to openai-whisper (skipped where not packaged)."""
    from models.weights import WeightsError
    from models.whisper_arch import load_checkpoint

    convert = pytest.importorskip("models.whisper_convert")
    try:
        return load_checkpoint(str(convert.converted_checkpoint("tiny.en")))
    except WeightsError as exc:
        pytest.skip(f"tiny.en not packaged here: {exc}")


def test_the_default_buckets_are_faster_whispers_windows(tiny_en):
    from models.asr_whisper_batched import WhisperBatchBackend
    from models.whisper_windows import encoder_window_s

    backend = WhisperBatchBackend(tiny_en, max_tokens=8)
    assert backend.buckets_s == (10.0, 20.0, 30.0)
    for audio_s in (0.5, 2.5, 8.99, 9.0, 9.01, 18.5, 19.0, 19.5, 29.5, 45.0):
        window = backend.buckets_s[backend.bucket(int(audio_s * 16_000))]
        assert window == (encoder_window_s(audio_s, 10.0) or 30.0), audio_s


def _real_clip(tmp_path, name: str) -> PCM16:
    """A clip of the shared real-speech set at 16 kHz (sox reads the FLAC)."""
    import shutil
    import subprocess
    from pathlib import Path

    from voicebot.wavio import read_wav

    source = Path(__file__).resolve().parents[3] / "shared/data/speech/real/audio_16k" / name
    if not source.is_file() or shutil.which("sox") is None:
        pytest.skip(f"{source} (or sox) is not here")
    wav = tmp_path / "clip.wav"
    subprocess.run(["sox", str(source), "-b", "16", "-r", "16000", str(wav)], check=True)
    return read_wav(wav).pcm


def test_a_trimmed_window_padded_with_zeros_does_not_loop(tiny_en, tmp_path):
    """The clip that looped on its 10 s window: log-mel silence after it, not zeros, did it.

    Raw decodes (no redo): with faster-whisper's zero padding the 10 s window hears the
    sentence; with openai-whisper's silence padding the same window runs on to the token
    limit, which is what made trimmed buckets look unusable (bench/RESULTS.md).
    """
    from models.asr_whisper_batched import WhisperBatchBackend
    from tests.helpers import words

    said = (
        "of the more formal ecclesiastical writing which obtained at that time; "
        "this has since been called mixed letter"
    )
    audio = _real_clip(tmp_path, "ljspeech_LJ001-0022.flac")
    heard = {}
    for zeros in (True, False):
        backend = WhisperBatchBackend(
            tiny_en, max_tokens=64, zero_mel_padding=zeros, redo_runaways=False
        )
        assert backend.buckets_s[backend.bucket(audio.size)] == 10.0
        answer = backend.transcribe_batch([audio], backend.bucket(audio.size))[0]
        assert isinstance(answer, Transcript)
        heard[zeros] = answer.text
    assert len(heard[True].split()) <= len(said.split()) + 2, heard[True]
    assert len(words(said) & words(heard[True])) >= 0.8 * len(words(said)), heard[True]
    assert len(heard[False].split()) > 1.5 * len(said.split()), heard[False]


def test_a_trimmed_decode_that_uses_its_budget_is_redone_on_30_s(tiny_en, monkeypatch):
    """A budget of 3 tokens stands in for a runaway: the worker redoes it on the 30 s window."""
    import models.asr_whisper_batched as batched
    from tests.helpers import flite_pcm, words

    sentence = "Please freeze my card, I think it was stolen this morning."
    pcm = flite_pcm(sentence, "rms")
    worker = batched.batched_whisper(tiny_en, BatchPolicy(), max_tokens=48)
    trimmed = worker.transcribe(pcm)
    assert worker.stats.redone == 0 and worker.stats.sizes == {1: 1}  # heard on 10 s
    monkeypatch.setattr(batched, "token_budget", lambda _s: 3)
    redone = worker.transcribe(pcm)
    worker.close()
    assert worker.stats.redone == 1 and worker.stats.sizes == {1: 3}
    for heard in (trimmed, redone):
        assert len(words(sentence) & words(heard.text)) >= 0.7 * len(words(sentence)), heard


def test_the_configured_min_window_sets_the_batched_buckets(tiny_en):
    """`[asr] min_window_s` is one setting for both backends: 30 turns trimming off here too."""
    from voicebot.asr_backends import build_recognizer
    from voicebot.config import AsrConfig

    for min_window_s, buckets in ((10.0, (10.0, 20.0, 30.0)), (30.0, (30.0,))):
        worker = build_recognizer(AsrConfig(backend="whisper-batched", min_window_s=min_window_s))
        assert isinstance(worker, BatchingRecognizer)
        worker.close()
        assert worker.backend.buckets_s == buckets  # type: ignore[attr-defined]
