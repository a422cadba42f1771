"""faster-whisper on trimmed encoder windows: same decode rules, a guard against runaways.

The session's recognizer (packaged tiny.en, int8) is the one a call uses. These tests check
what the trimmed path promises: its decode of a full 30 s window is faster-whisper's own
decode (so the two paths differ only in padding), a short turn is heard as well on its
10 s window, and a decode that runs away falls back to the full window.
"""

from __future__ import annotations

import numpy as np
import pytest

from models.asr_faster_whisper import FasterWhisperRecognizer
from models.whisper_windows import (
    RUNAWAY_COMPRESSION_RATIO,
    compression_ratio,
    encoder_window_s,
    step_windows,
    window_index,
)
from tests.helpers import AGE_QUESTION, flite_pcm, words

SENTENCE = "Please freeze my card, I think it was stolen this morning."


@pytest.mark.parametrize(
    ("audio_s", "min_window_s", "window"),
    [
        (2.5, 10, 10),
        (9.0, 10, 10),
        (9.01, 10, 20),
        (18.5, 10, 20),
        (19.5, 10, None),  # 30 s: the plain path
        (45.0, 10, None),  # longer than one window: faster-whisper's own seeking
        (2.5, 30, None),  # trimming off
        (2.5, 0, None),
        (3.5, 5, 5),
    ],
)
def test_the_window_is_the_smallest_step_holding_the_audio_and_a_second(
    audio_s, min_window_s, window
):
    assert encoder_window_s(audio_s, min_window_s) == window


@pytest.mark.parametrize("step", [5.0, 7.0, 10.0, 30.0])
def test_the_batched_buckets_for_a_step_pick_faster_whispers_window(step):
    """`[asr] min_window_s` gives whisper-batched buckets that choose as faster-whisper does."""
    windows = step_windows(step)
    assert windows[-1] == 30 and list(windows) == sorted(set(windows))
    for tenths in range(0, 400):
        audio_s = tenths / 10
        trimmed = encoder_window_s(audio_s, step)
        assert windows[window_index(audio_s, windows)] == (trimmed or 30), audio_s


def test_compression_ratio_tells_a_loop_from_a_sentence():
    assert compression_ratio(SENTENCE) < RUNAWAY_COMPRESSION_RATIO
    assert compression_ratio("go stop " * 20) > RUNAWAY_COMPRESSION_RATIO
    assert compression_ratio("") == 0.0


@pytest.fixture(scope="module")
def recognizer(services) -> FasterWhisperRecognizer:
    recognizer = services.workers.recognizer
    if not isinstance(recognizer, FasterWhisperRecognizer):
        pytest.skip("the configured recognizer is not faster-whisper")
    return recognizer


def _samples(text: str, voice: str) -> np.ndarray:
    return flite_pcm(text, voice).astype(np.float32) / 32768.0


@pytest.mark.parametrize(("text", "voice"), [(SENTENCE, "rms"), (AGE_QUESTION, "slt")])
def test_the_trimmed_path_on_a_full_window_is_faster_whispers_own_decode(recognizer, text, voice):
    samples = _samples(text, voice)
    own = recognizer._decode_full(samples)
    ours = recognizer._decode_trimmed(samples, 30)
    assert ours is not None
    assert ours.text == own.text
    assert ours.avg_logprob == pytest.approx(own.avg_logprob, abs=1e-3)
    assert ours.no_speech_prob == pytest.approx(own.no_speech_prob, abs=1e-3)


def test_a_short_turn_is_heard_on_its_10_s_window(recognizer):
    pcm = flite_pcm(SENTENCE, "rms")
    assert encoder_window_s(pcm.size / 16000, recognizer.min_window_s) == 10
    retries = recognizer.full_window_retries
    heard = recognizer.transcribe(pcm)
    assert recognizer.full_window_retries == retries  # no fallback was needed
    assert len(words(SENTENCE) & words(heard.text)) >= 0.7 * len(words(SENTENCE)), heard.text
    assert heard.no_speech_prob < 0.5
    quiet = recognizer.transcribe(np.zeros(32000, np.int16))
    assert quiet.text == "" or quiet.no_speech_prob > 0.5


def test_a_decode_that_uses_its_whole_budget_is_redone_on_the_full_window(recognizer, monkeypatch):
    """A budget of 3 tokens stands in for a runaway: the trimmed decode hits it."""
    pcm = flite_pcm(SENTENCE, "rms")
    monkeypatch.setattr(FasterWhisperRecognizer, "token_budget", staticmethod(lambda _s: 3))
    retries = recognizer.full_window_retries
    heard = recognizer.transcribe(pcm)
    assert recognizer.full_window_retries == retries + 1
    assert heard.text.split() == ["Please", "freeze", "my"]  # the full window, same budget


def test_a_multilingual_model_left_to_detect_the_language_is_never_trimmed():
    """Language detection is faster-whisper's own 30 s path; the trimmed one assumes it."""
    detect = FasterWhisperRecognizer("base", language=None, cpu_threads=1)
    assert not detect.trims
    english = FasterWhisperRecognizer("base", language="en", cpu_threads=1)
    assert english.trims
    heard = detect.transcribe(flite_pcm(SENTENCE, "rms"))
    assert len(words(SENTENCE) & words(heard.text)) >= 0.7 * len(words(SENTENCE)), heard.text
