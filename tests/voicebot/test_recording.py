"""Recording files: valid after every write, encrypted at rest, calls on the call clock."""

from __future__ import annotations

import base64
import json
import os
import wave
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from voicebot.recording.files import (
    EncryptedWav,
    GrowingWav,
    RecordingKeyError,
    decrypt_recording,
    parse_key,
)
from voicebot.recording.recorder import CallRecorder
from voicebot.wavio import read_pcm16_channels

KEY = os.urandom(32)


def test_growing_wav_is_a_valid_file_after_every_append(tmp_path):
    path = tmp_path / "r.wav"
    wav = GrowingWav(path, 16000, 2)
    for chunk in range(3):
        wav.append(np.full(640, chunk + 1, dtype=np.int16).tobytes())
        with wave.open(str(path)) as reader:  # read while still open for writing
            assert reader.getnchannels() == 2 and reader.getframerate() == 16000
            assert reader.getnframes() == 320 * (chunk + 1)
    wav.close()
    samples, rate = read_pcm16_channels(path.read_bytes())
    assert rate == 16000 and samples.shape == (960, 2) and samples[-1, 1] == 3


def test_encrypted_recording_round_trip_and_wrong_key(tmp_path):
    path = tmp_path / "r.wav.enc"
    wav = EncryptedWav(path, 16000, 2, KEY)
    wav.append(np.arange(1000, dtype=np.int16).tobytes())
    wav.append(np.arange(1000, 2000, dtype=np.int16).tobytes())
    wav.close()
    assert b"RIFF" not in path.read_bytes()  # nothing readable at rest
    samples, _ = read_pcm16_channels(decrypt_recording(path, KEY))
    assert samples.reshape(-1).tolist() == list(range(2000))
    with pytest.raises(RecordingKeyError):
        decrypt_recording(path, os.urandom(32))


def test_a_torn_last_record_loses_only_that_record(tmp_path):
    path = tmp_path / "r.wav.enc"
    wav = EncryptedWav(path, 16000, 1, KEY)
    wav.append(np.ones(100, dtype=np.int16).tobytes())
    wav.append(np.ones(100, dtype=np.int16).tobytes())
    wav.close()
    path.write_bytes(path.read_bytes()[:-10])  # killed in the middle of the last write
    samples, _ = read_pcm16_channels(decrypt_recording(path, KEY))
    assert samples.shape[0] == 100


def test_keys_are_parsed_from_base64_or_hex_and_checked():
    assert parse_key(base64.b64encode(KEY).decode()) == KEY
    assert parse_key(KEY.hex()) == KEY
    with pytest.raises(RecordingKeyError):
        parse_key("too-short")


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_recorder_lays_both_legs_on_the_call_clock_and_stays_bounded(tmp_path):
    clock = Clock()
    io = ThreadPoolExecutor(1)
    recorder = CallRecorder(tmp_path / "call", now=clock, executor=io, flush_s=0.5)
    caller = np.full(320, 1000, dtype=np.int16)
    bot = np.full(320, -2000, dtype=np.int16)
    for tick in range(3000):  # 60 s of call
        clock.t = tick * 0.02
        recorder.caller_audio(caller)
        if 1000 <= tick < 1100:  # the bot speaks from 20 s to 22 s, played 0.1 s after sending
            recorder.bot_audio(bot, clock.t + 0.1)
        if tick == 50:
            recorder.event("transcript", text="hello", turn=1)
    # Memory is a fixed window, not the whole call.
    assert recorder._stereo.buffer.nbytes <= 8 * 16000 * 2 * 2
    recorder.close().result()
    io.shutdown()
    samples, rate = read_pcm16_channels((tmp_path / "call" / "recording.wav").read_bytes())
    assert samples.shape[0] == 3000 * 320
    bot_active = np.flatnonzero(samples[:, 1] != 0)
    assert bot_active[0] == round(20.1 * rate) and bot_active[-1] == round(22.1 * rate) - 1
    assert (samples[:, 0] == 1000).all()
    events = [
        json.loads(line) for line in (tmp_path / "call" / "events.jsonl").read_text().splitlines()
    ]
    assert events == [{"t": 1.0, "event": "transcript", "text": "hello", "turn": 1}]


def test_recorder_counts_disk_failures_and_keeps_going(tmp_path):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    failures = []
    io = ThreadPoolExecutor(1)
    recorder = CallRecorder(
        blocker / "call", now=lambda: 1.0, executor=io, on_error=failures.append
    )
    recorder.caller_audio(np.zeros(320, np.int16))
    recorder.event("x")
    recorder.close().result()
    io.shutdown()
    assert recorder.failures >= 1 and failures
