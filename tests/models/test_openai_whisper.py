"""The CTranslate2 -> openai-whisper converter and the PyTorch recognizer, on real weights.

Equivalence is checked three ways on the packaged tiny.en: the converted encoder
against CTranslate2's own encoder (numbers), the PyTorch recognizer against
faster-whisper at float32 (same text, same confidences), and the checkpoint against
openai-whisper's own loader (same tensors). Caller speech is made with flite.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from models.asr_faster_whisper import FasterWhisperRecognizer
from models.asr_openai_whisper import OpenAiWhisperRecognizer, load_whisper
from models.weights import WeightsError, resolve
from models.whisper_convert import (
    ConversionError,
    check_vocabulary,
    converted_checkpoint,
    read_ct2_model,
)
from tests.helpers import flite_pcm
from voicebot.wer import word_errors

SENTENCE = "Please transfer two hundred dollars from my checking account to savings."


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("whisper-cache")


@pytest.fixture(scope="module")
def checkpoint(cache) -> Path:
    return converted_checkpoint("tiny.en", cache)


@pytest.fixture(scope="module")
def recognizer(checkpoint) -> OpenAiWhisperRecognizer:
    return OpenAiWhisperRecognizer(str(checkpoint), device="cpu")


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return flite_pcm(SENTENCE)


def test_conversion_is_cached_by_source(cache, checkpoint):
    mtime = checkpoint.stat().st_mtime_ns
    assert converted_checkpoint("tiny.en", cache) == checkpoint
    assert checkpoint.stat().st_mtime_ns == mtime  # not converted again
    assert "tiny.en" in checkpoint.name


def test_checkpoint_round_trips_through_openai_whispers_loader(checkpoint, tmp_path):
    import whisper

    raw = torch.load(checkpoint, weights_only=True)
    assert raw["dims"] == {
        "n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6,
        "n_audio_layer": 4, "n_vocab": 51864, "n_text_ctx": 448, "n_text_state": 384,
        "n_text_head": 6, "n_text_layer": 4,
    }  # fmt: skip
    model = whisper.load_model(str(checkpoint), device="cpu")  # strict: no key missing
    assert not model.is_multilingual
    loaded = model.state_dict()
    for name, tensor in raw["model_state_dict"].items():
        assert torch.equal(loaded[name], tensor.float()), name
    again = tmp_path / "again.pt"
    torch.save({"dims": raw["dims"], "model_state_dict": model.state_dict()}, again)
    reloaded = whisper.load_model(str(again), device="cpu").state_dict()
    assert all(torch.equal(reloaded[k], v) for k, v in loaded.items())


def test_encoder_matches_ctranslate2(recognizer, speech):
    import ctranslate2

    mel = recognizer.log_mel(speech.astype(np.float32) / 32768.0)[None]
    with torch.no_grad():
        ours = recognizer.model.encoder(mel).numpy()
    ct2 = ctranslate2.models.Whisper(
        resolve("whisper", "tiny.en").location, device="cpu", compute_type="float32"
    )
    theirs = np.array(ct2.encode(ctranslate2.StorageView.from_array(mel.numpy())))
    assert theirs.shape == ours.shape == (1, 1500, 384)
    assert np.abs(ours - theirs).max() < 1e-4 * np.abs(theirs).max()  # seen: 2e-6
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.9999


def test_same_transcript_as_faster_whisper(recognizer, speech):
    ours = recognizer.transcribe(speech)
    # The same 30 s window as this recognizer (faster-whisper trims it by default).
    theirs = FasterWhisperRecognizer(
        "tiny.en", compute_type="float32", cpu_threads=1, min_window_s=30
    )
    reference = theirs.transcribe(speech)
    assert ours.text == reference.text
    assert word_errors(SENTENCE, ours.text).wer <= 0.1
    assert ours.no_speech_prob == pytest.approx(reference.no_speech_prob, abs=2e-3)
    assert ours.avg_logprob == pytest.approx(reference.avg_logprob, abs=2e-3)
    assert ours.audio_s == pytest.approx(speech.size / 16000)


def test_recognizer_rejects_silence_and_too_little_audio(recognizer):
    silence = recognizer.transcribe(np.zeros(16000, np.int16))
    assert silence.no_speech_prob > 0.5 or silence.text == ""
    blip = recognizer.transcribe(np.zeros(800, np.int16))
    assert blip.text == "" and blip.no_speech_prob == 1.0


def test_batch_gives_the_single_results(recognizer, speech):
    short = flite_pcm("Yes.")
    together = recognizer.transcribe_batch([speech, short, np.zeros(100, np.int16)])
    assert [t.text for t in together] == [
        recognizer.transcribe(speech).text,
        recognizer.transcribe(short).text,
        "",
    ]


def test_threads_share_one_model_safely(recognizer, speech):
    """Worker threads may call one recognizer at once; decodes must not mix KV caches."""
    from concurrent.futures import ThreadPoolExecutor

    other = flite_pcm("My card was stolen yesterday.", voice="rms")
    alone = [recognizer.transcribe(speech).text, recognizer.transcribe(other).text]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda a: recognizer.transcribe(a).text, [speech, other] * 2))
    assert together == alone * 2


def test_audio_over_30_s_is_windowed(recognizer, speech):
    gap = np.zeros(16000 * 30 - speech.size + 8000, np.int16)
    long = recognizer.transcribe(np.concatenate([speech, gap, speech[:16000]]))
    assert long.audio_s > 30
    assert word_errors(SENTENCE, long.text).wer <= 0.35  # plus a second's worth of words


def test_fp16_weights_give_the_same_words(checkpoint, speech):
    """The CUDA path's fp16 cast (layer norms kept fp32), exercised on the CPU."""
    half = OpenAiWhisperRecognizer(str(checkpoint), device="cpu", fp16=True)
    assert half.model.encoder.conv1.weight.dtype == torch.float16
    assert half.model.encoder.ln_post.weight.dtype == torch.float32
    assert word_errors(SENTENCE, half.transcribe(speech).text).wer <= 0.1


def test_packaged_name_loads_through_the_converter(cache, checkpoint):
    model, source = load_whisper("tiny.en", "cpu", cache)
    assert str(checkpoint) in source
    assert model.alignment_heads.to_dense().sum() == 8  # from config.json
    with pytest.raises(WeightsError, match="not a checkpoint file"):
        load_whisper("no-such-model", "cpu", cache)


def test_vocabularies_match_openai_whisper(tmp_path):
    base = Path(resolve("whisper", "base").location)
    check_vocabulary(base, 51865)  # multilingual
    tiny = Path(resolve("whisper", "tiny.en").location)
    words = (tiny / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    words[1000] = "Ġchanged"
    (tmp_path / "vocabulary.txt").write_text("\n".join(words), encoding="utf-8")
    with pytest.raises(ConversionError, match="token 1000"):
        check_vocabulary(tmp_path, 51864)
    with pytest.raises(ConversionError, match="51864 tokens, model 51865"):
        check_vocabulary(tiny, 51865)


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<H", len(data) + 1) + data + b"\0"


def _variable(name: str, array: np.ndarray, dtype_id: int) -> bytes:
    head = _string(name) + struct.pack("<B", array.ndim)
    head += b"".join(struct.pack("<I", d) for d in array.shape)
    raw = array.tobytes()
    return head + struct.pack("<BI", dtype_id, len(raw)) + raw


def test_reader_decodes_dtypes_quantization_and_aliases(tmp_path):
    weight = np.arange(6, dtype=np.float16).reshape(2, 3)
    quantized = np.array([[10, -20], [30, 40]], dtype=np.int8)
    scale = np.array([10.0, 20.0], dtype=np.float32)
    bf16 = (np.array([1.5, -2.0], np.float32).view(np.uint32) >> 16).astype(np.uint16)
    body = struct.pack("<I", 6) + _string("WhisperSpec") + struct.pack("<II", 3, 4)
    body += _variable("a/weight", weight, 4) + _variable("q/weight", quantized, 1)
    body += _variable("q/weight_scale", scale, 0) + _variable("b", bf16, 5)
    body += struct.pack("<I", 1) + _string("a/alias") + _string("a/weight")
    path = tmp_path / "model.bin"
    path.write_bytes(body)
    spec, revision, variables = read_ct2_model(path)
    assert (spec, revision) == ("WhisperSpec", 3)
    assert np.array_equal(variables["a/alias"], weight)
    assert variables["b"].tolist() == [1.5, -2.0]
    from models.whisper_convert import _weight

    assert _weight(variables, "q/weight").tolist() == [[1.0, -2.0], [1.5, 2.0]]
    path.write_bytes(body[:-10])
    with pytest.raises(ConversionError, match="ends early"):
        read_ct2_model(path)
    path.write_bytes(struct.pack("<I", 5) + body[4:])
    with pytest.raises(ConversionError, match="version 5"):
        read_ct2_model(path)
