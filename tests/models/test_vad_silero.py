"""Silero VAD, for real: the packaged ONNX model under onnxruntime, on flite speech."""

from __future__ import annotations

import numpy as np
import pytest

from models.vad_silero import SileroModel, SileroVad, packaged_model_path
from tests.helpers import flite_pcm

SENTENCE = "Please freeze my card, I think it was stolen this morning."


@pytest.fixture(scope="module")
def model() -> SileroModel:
    return SileroModel()


def frames(pcm: np.ndarray) -> np.ndarray:
    return pcm[: pcm.size // 320 * 320].reshape(-1, 320)


def decisions(vad: SileroVad, pcm: np.ndarray) -> np.ndarray:
    return np.array([vad.is_speech(f) for f in frames(pcm)])


def test_the_onnx_file_comes_from_the_package_without_torch() -> None:
    assert packaged_model_path().name == "silero_vad.onnx"


def test_silero_finds_the_speech_between_silences(model: SileroModel) -> None:
    speech = flite_pcm(SENTENCE, "rms")
    second = np.zeros(16_000, np.int16)
    said = decisions(SileroVad(model), np.concatenate([second, speech, second]))
    before, during, after = said[:45], said[50 : 50 + speech.size // 320 - 10], said[-40:]
    assert not before.any()
    assert during.mean() > 0.8
    assert not after.any()


def test_silero_ignores_noise_and_silence(model: SileroModel) -> None:
    rng = np.random.default_rng(1)
    hiss = (rng.standard_normal(16_000 * 2) * 300).astype(np.int16)  # about -40 dBFS
    vad = SileroVad(model)
    assert decisions(vad, hiss).mean() < 0.05
    assert not decisions(vad, np.zeros(8_000, np.int16)).any()


def test_calls_keep_their_own_state_on_one_shared_model(model: SileroModel) -> None:
    speech = flite_pcm("Hello, I need some help.", "slt")
    quiet = np.zeros(speech.size, np.int16)
    talking, silent = SileroVad(model), SileroVad(model)
    mixed = [
        (talking.is_speech(a), silent.is_speech(b))
        for a, b in zip(frames(speech), frames(quiet), strict=True)
    ]
    assert any(t for t, _ in mixed) and not any(s for _, s in mixed)
    alone = decisions(SileroVad(model), speech)
    assert [t for t, _ in mixed] == alone.tolist()  # interleaving changed nothing


def test_bad_frames_and_settings_are_errors(model: SileroModel) -> None:
    with pytest.raises(ValueError):
        SileroVad(model).is_speech(np.zeros(160, np.int16))
    with pytest.raises(ValueError):
        SileroVad(model, threshold=1.5)
    with pytest.raises(ValueError):
        SileroVad(model, threshold=0.3, neg_threshold=0.6)


def test_the_config_selects_the_backend_and_shares_one_model() -> None:
    from voicebot.app import vad_factory
    from voicebot.config import Config, VadConfig

    make = vad_factory(Config(vad=VadConfig(backend="silero", threshold=0.6)))
    first, second = make(), make()
    assert isinstance(first, SileroVad) and isinstance(second, SileroVad)
    assert first.model is second.model and first.threshold == 0.6
    with pytest.raises(ValueError, match="silero"):
        vad_factory(Config(vad=VadConfig(backend="nope")))
