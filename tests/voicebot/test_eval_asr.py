"""`voicebot eval-asr`: WER arithmetic, manifests, audio formats, and the command end to end.

The end-to-end manifest is made in the test with flite: one clip as an 8 kHz mu-law
WAV (as a carrier delivers it), one as a 16 kHz PCM WAV, both decoded by the real
packaged tiny.en through each backend.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from telephony.g711 import ulaw_encode
from telephony.resample import resample
from tests.helpers import flite_pcm
from voicebot.asr_eval import ManifestError, load_audio, read_manifest
from voicebot.cli import main
from voicebot.wavio import write_ulaw_wav, write_wav
from voicebot.wer import WordErrors, align, word_errors

SHARED = Path("/work/shared/data/speech/real/manifest.jsonl")
TEXTS = ["I would like to check my balance.", "My card was stolen yesterday."]


def _align(reference: str, hypothesis: str) -> WordErrors:
    return align(reference.split(), hypothesis.split())


def test_alignment_counts_each_kind_of_edit():
    assert _align("a b c", "a b c") == WordErrors(0, 0, 0, 3)
    assert _align("a b c", "a x c") == WordErrors(1, 0, 0, 3)
    assert _align("a b c", "a c") == WordErrors(0, 1, 0, 3)
    assert _align("a b c", "a b c d") == WordErrors(0, 0, 1, 3)
    assert _align("a b", "x y z") == WordErrors(2, 0, 1, 2)
    assert _align("", "").wer == 0.0 and _align("", "a").wer == 1.0
    assert _align("a", "").wer == 1.0
    total = _align("a b c d", "a x c") + _align("e f", "e f")
    assert (total.errors, total.reference_words, total.wer) == (2, 6, pytest.approx(1 / 3))


def test_whisper_normalizer_ignores_style_not_words():
    assert word_errors("Mr. Smith paid twenty-five dollars.", "mister smith paid $25").wer == 0
    assert word_errors("Hello, WORLD!", "hello world").wer == 0
    assert word_errors("colour", "color").wer == 0
    assert word_errors("the cat sat", "the cat sad").errors == 1


def _write_manifest(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_manifest_errors_name_the_line(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    good = json.dumps({"audio": "a.wav", "text": "hi"})
    cases = {
        "not JSON": [good, "{nope"],
        "expected a JSON object": ["[1, 2]"],
        "no 'audio' path": [json.dumps({"text": "hi"})],
        "no reference 'text'": [json.dumps({"audio": "a.wav"})],
        "does not exist": [json.dumps({"audio": "missing.wav", "text": "hi"})],
    }
    for message, lines in cases.items():
        manifest = _write_manifest(tmp_path / "m.jsonl", lines)
        with pytest.raises(ManifestError, match=message) as error:
            read_manifest(manifest)
        assert f"m.jsonl:{len(lines)}" in str(error.value)
    with pytest.raises(ManifestError, match="no clips"):
        read_manifest(_write_manifest(tmp_path / "m.jsonl", [""]))
    with pytest.raises(ManifestError, match="no such manifest"):
        read_manifest(tmp_path / "absent.jsonl")
    clips = read_manifest(_write_manifest(tmp_path / "m.jsonl", ["", good]))
    assert clips[0].id == "a" and clips[0].audio == tmp_path / "a.wav"


@pytest.mark.skipif(not SHARED.is_file(), reason="the shared speech set is not here")
def test_shared_manifest_fields_and_flac():
    clips = read_manifest(SHARED, "file_8k_ulaw")
    assert len(clips) >= 10 and all(c.audio.suffix == ".wav" for c in clips)
    flac = read_manifest(SHARED, "file_16k")
    duration = json.loads(SHARED.read_text().splitlines()[0])["duration_s"]
    if shutil.which("sox") is None:
        pytest.skip("sox is not installed")
    audio = load_audio(flac[0].audio)
    assert audio.dtype == np.int16 and audio.size == pytest.approx(duration * 16000, rel=0.01)
    eight = load_audio(clips[0].audio)  # mu-law, resampled 8 -> 16 kHz
    assert eight.size == pytest.approx(audio.size, rel=0.01)


@pytest.fixture(scope="module")
def phone_manifest(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("asr-manifest")
    narrow = resample(flite_pcm(TEXTS[0]), 16000, 8000)
    write_ulaw_wav(folder / "phone.wav", ulaw_encode(narrow), 8000)
    (folder / "wide").mkdir()
    write_wav(folder / "wide" / "clean.wav", flite_pcm(TEXTS[1], voice="rms"), 16000)
    lines = [
        json.dumps({"audio": "phone.wav", "text": TEXTS[0], "id": "phone"}),
        json.dumps({"audio": "wide/clean.wav", "text": TEXTS[1]}),
    ]
    return _write_manifest(folder / "manifest.jsonl", lines)


@pytest.mark.parametrize("backend", ["faster-whisper", "openai-whisper"])
def test_eval_asr_command(backend, phone_manifest, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VOICEBOT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "eval.json"
    argv = ["eval-asr", "--manifest", str(phone_manifest), "--json", str(out)]
    assert main([*argv, "--backend", backend, "--threads", "1", "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert (result["backend"], result["model"], result["clips"]) == (backend, "tiny.en", 2)
    assert [row["id"] for row in result["per_clip"]] == ["phone", "clean"]
    assert result["wer"] <= 0.2, result["per_clip"]
    assert result["words"] == 12 and result["rtf"] > 0
    for row in result["per_clip"]:
        assert row["audio_s"] > 1 and 0 <= row["no_speech_prob"] <= 1
    table = capsys.readouterr().out
    assert "phone" in table and "WER" in table and str(out) in table


def test_eval_asr_command_errors(phone_manifest, tmp_path, capsys):
    out = str(tmp_path / "eval.json")
    argv = ["eval-asr", "--manifest", str(phone_manifest), "--json", out]
    assert main([*argv, "--backend", "nemo"]) == 2
    assert "unknown ASR backend 'nemo'" in capsys.readouterr().err
    assert main([*argv, "--backend", "openai-whisper", "--model", "no-such-model"]) == 2
    assert "no-such-model" in capsys.readouterr().err
    assert main([*argv[:2], str(tmp_path / "none.jsonl"), *argv[3:]]) == 2
    assert "no such manifest" in capsys.readouterr().err
    assert main([*argv, "--audio-field", "file_8k_ulaw"]) == 2
    assert "no 'file_8k_ulaw' path" in capsys.readouterr().err


def test_convert_whisper_command(tmp_path, capsys):
    import whisper

    out = tmp_path / "tiny.pt"
    assert main(["convert-whisper", "--model", "tiny.en", "--out", str(out)]) == 0
    assert whisper.load_model(str(out), device="cpu").dims.n_vocab == 51864
    assert "n_text_layer" in capsys.readouterr().out
    assert main(["convert-whisper", "--model", str(tmp_path), "--out", str(out)]) == 2
    assert "holds no CTranslate2 model.bin" in capsys.readouterr().err


def test_sox_reads_flac(tmp_path):
    if shutil.which("sox") is None:
        pytest.skip("sox is not installed")
    pcm = (np.sin(np.arange(8000) / 5) * 8000).astype(np.int16)
    write_wav(tmp_path / "tone.wav", pcm, 8000)
    subprocess.run(["sox", str(tmp_path / "tone.wav"), str(tmp_path / "tone.flac")], check=True)
    audio = load_audio(tmp_path / "tone.flac")
    assert audio.size == 16000
    assert np.allclose(audio[::2][100:-100], pcm[100:-100], atol=400)


def test_openai_whisper_backend_is_greedy_only():
    from voicebot.asr_backends import build_recognizer
    from voicebot.config import AsrConfig

    with pytest.raises(ValueError, match="beam_size = 1"):
        build_recognizer(AsrConfig(backend="openai-whisper", beam_size=5))
