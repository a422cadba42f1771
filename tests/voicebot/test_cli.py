"""The command line as an integrator uses it: calls list/show, decrypt, clear errors."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import asdict

import numpy as np

from voicebot.recording.files import EncryptedWav
from voicebot.store import open_store
from voicebot.transcript import CallRecord, TurnRecord
from voicebot.wavio import read_pcm16_channels


def voicebot(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "voicebot.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_calls_list_and_show_read_the_store(tmp_path):
    store = open_store("", tmp_path)
    record = CallRecord("CA-cli-1", "MZ1", "twilio", started_at="2026-11-28T10:00:00+00:00")
    record.turns.append(
        TurnRecord(1, 0.5, 2.0, caller_text="I lost my card", intent="lost_or_stolen_card",
                   outcome="answer", bot_text="To cancel a lost card, open the app.")
    )  # fmt: skip
    record.ended_s = 9.5
    store.save_call(asdict(record))
    store.close()

    listed = voicebot("calls", "list", "--data-dir", str(tmp_path))
    assert listed.returncode == 0, listed.stderr
    assert "CA-cli-1" in listed.stdout and "lost_or_stolen_card" in listed.stdout
    as_json = json.loads(voicebot("calls", "list", "--json", "--data-dir", str(tmp_path)).stdout)
    assert [row["call_id"] for row in as_json] == ["CA-cli-1"]
    shown = voicebot("calls", "show", "CA-cli-1", "--data-dir", str(tmp_path))
    assert shown.returncode == 0 and "I lost my card" in shown.stdout
    missing = voicebot("calls", "show", "CA-nope", "--data-dir", str(tmp_path))
    assert missing.returncode == 1 and "no call" in missing.stderr


def test_decrypt_gives_back_a_playable_wav(tmp_path):
    key = os.urandom(32)
    wav = EncryptedWav(tmp_path / "recording.wav.enc", 16000, 2, key)
    wav.append(np.arange(640, dtype=np.int16).tobytes())
    wav.close()
    env = {"VOICEBOT_RECORDING_KEY": base64.b64encode(key).decode()}
    out = tmp_path / "plain.wav"
    done = voicebot("decrypt", str(tmp_path / "recording.wav.enc"), "--out", str(out), env=env)
    assert done.returncode == 0, done.stderr
    samples, rate = read_pcm16_channels(out.read_bytes())
    assert rate == 16000 and samples.reshape(-1).tolist() == list(range(640))
    no_key = voicebot("decrypt", str(tmp_path / "recording.wav.enc"), "--out", str(out))
    assert no_key.returncode == 2 and "VOICEBOT_RECORDING_KEY" in no_key.stderr


def test_bad_input_is_a_one_line_error_not_a_traceback(tmp_path):
    done = voicebot("replay", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[replay]\nfail_on = 'intent,nonsense'\n")
    done = voicebot("replay", str(tmp_path), "--out", str(tmp_path / "o"), "--config", str(bad))
    assert done.returncode == 2 and "Traceback" not in done.stderr
