"""The Piper backend (packaged voice, for real): rate, shape, edges, clause pieces."""

from __future__ import annotations

import numpy as np
import pytest

from models.protocols import SAMPLE_RATE
from models.tts_piper import FADE_S, PiperSynthesizer, fade_edges
from voicebot.reply import speech_parts


@pytest.fixture(scope="module")
def piper() -> PiperSynthesizer:
    return PiperSynthesizer(threads=1)


def test_piper_speaks_22k_voice_as_16k_pcm16_starting_at_once(piper):
    assert piper.native_rate == 22_050  # resampled once, here, to the bot's rate
    audio = piper.synthesize("Your card is frozen now.")
    assert audio.dtype == np.int16 and audio.ndim == 1
    assert 0.8 < audio.size / SAMPLE_RATE < 3.0
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > 200)
    assert loud[0] < 0.05 * SAMPLE_RATE  # leading silence trimmed
    assert np.abs(audio).max() > 10_000  # speech, not a murmur
    assert piper.synthesize("").size == 0


def test_clause_pieces_are_speech_with_quiet_edges_so_joins_do_not_click(piper):
    parts = speech_parts(["To freeze your card straight away, open the app and tap Cards."])
    assert len(parts) == 2
    edge = int(FADE_S * SAMPLE_RATE)
    for part in parts:
        audio = piper.synthesize(part)
        assert audio.size > 0.5 * SAMPLE_RATE
        assert np.abs(audio[:2].astype(np.int32)).max() <= 50
        assert np.abs(audio[-2:].astype(np.int32)).max() <= 50
        assert np.abs(audio[edge:-edge]).max() > 10_000


def test_fade_edges_ramps_only_the_edges():
    pcm = np.full(1600, 10_000, np.int16)
    out = fade_edges(pcm, 16_000, 0.005)
    assert out[0] == 0 and out[-1] < 200 and np.all(out[80:-80] == 10_000)
    assert np.all(np.diff(out[:80].astype(np.int32)) > 0)
    assert fade_edges(np.zeros(0, np.int16), 16_000).size == 0
