"""The dial client's pieces (playback buffer, turn detection) and the file formats."""

from __future__ import annotations

import numpy as np
import pytest

from telephony.g711 import ulaw_encode
from voicebot.dial import SILENCE, PhonePlayer, caller_audio, detect_turns
from voicebot.transcript import safe_call_dir_name
from voicebot.wavio import WavError, read_wav, write_ulaw_wav, write_wav


def test_player_echoes_a_mark_only_after_the_audio_before_it_played():
    player = PhonePlayer()
    player.add_audio(b"\x01" * 320, 0.0)
    player.add_mark("r1.0")
    assert player.due_marks() == []
    assert player.play_frame() == b"\x01" * 160
    assert player.due_marks() == []
    assert player.play_frame() == b"\x01" * 160
    assert player.due_marks() == ["r1.0"]
    assert player.idle and player.play_frame() is None


def test_player_clear_drops_audio_and_returns_pending_marks_like_twilio():
    player = PhonePlayer()
    player.add_audio(b"\x02" * 800, 0.0)
    player.add_mark("r1.0")
    player.add_audio(b"\x03" * 800, 0.0)
    player.add_mark("r1.end")
    player.play_frame()
    player.clear()
    assert player.play_frame() is None
    assert player.due_marks() == ["r1.0", "r1.end"]


def test_short_trailing_bot_audio_is_padded_with_silence():
    player = PhonePlayer()
    player.add_audio(b"\x04" * 100, 0.0)
    assert player.play_frame() == b"\x04" * 100 + SILENCE[:60]


def test_detect_turns_finds_speech_bursts_in_noise():
    rng = np.random.default_rng(0)
    pcm = (rng.standard_normal(8000 * 10) * 100).astype(np.int16)
    t = np.arange(8000 * 2) / 8000
    for start in (1.0, 6.0):
        i = int(start * 8000)
        pcm[i : i + t.size] += (np.sin(2 * np.pi * 300 * t) * 8000).astype(np.int16)
    turns = detect_turns(ulaw_encode(pcm))
    assert len(turns) == 2
    assert turns[0][0] == pytest.approx(1.0, abs=0.05) and turns[0][1] == pytest.approx(
        3.0, abs=0.05
    )
    assert turns[1][0] == pytest.approx(6.0, abs=0.05)


def test_ulaw_wavs_pass_through_untouched_and_others_are_converted(tmp_path):
    ulaw = ulaw_encode((np.sin(np.arange(8000) / 8) * 5000).astype(np.int16))
    write_ulaw_wav(tmp_path / "a.wav", ulaw)
    assert caller_audio(tmp_path / "a.wav") == ulaw
    write_wav(tmp_path / "b.wav", np.zeros(16000, np.int16), 16000)
    assert len(caller_audio(tmp_path / "b.wav")) == 8000


def test_wav_reader_handles_stereo_and_float_and_rejects_junk(tmp_path):
    stereo = np.array([100, 300, -100, -300] * 10, dtype=np.int16)
    write_wav(tmp_path / "s.wav", stereo, 8000, channels=2)
    audio = read_wav(tmp_path / "s.wav")
    assert audio.pcm[:2].tolist() == [200, -200]
    (tmp_path / "junk.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(WavError):
        read_wav(tmp_path / "junk.wav")
    (tmp_path / "text.wav").write_text("hello")
    with pytest.raises(WavError):
        read_wav(tmp_path / "text.wav")


@pytest.mark.parametrize("hostile", ["../../etc/passwd", "..", "a/b", "", "x" * 200, "CA\x00"])
def test_call_ids_from_the_carrier_cannot_escape_the_calls_directory(hostile):
    name = safe_call_dir_name(hostile)
    assert "/" not in name and name not in ("", ".", "..") and len(name) <= 64


def test_normal_call_ids_are_kept():
    assert safe_call_dir_name("CA0123456789abcdef0123456789abcdef") == (
        "CA0123456789abcdef0123456789abcdef"
    )
