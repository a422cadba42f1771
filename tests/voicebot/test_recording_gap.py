"""The recorder across a long stretch with no caller audio (a SIP caller whose phone
stopped sending RTP while the bot kept talking): the bot's later audio used to land
past the recorder's fixed window and raise, which took the whole call down."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from voicebot.recording.recorder import WINDOW_S, CallRecorder
from voicebot.wavio import read_pcm16_channels


def test_bot_audio_far_past_the_window_is_placed_and_the_gap_is_silence(tmp_path: Path) -> None:
    now = 0.0
    io = ThreadPoolExecutor(1)
    recorder = CallRecorder(tmp_path / "call", now=lambda: now, executor=io)
    caller = np.full(320, 1000, dtype=np.int16)
    bot = np.full(320, -2000, dtype=np.int16)
    for tick in range(100):  # 2 s of caller audio, then the caller goes quiet (no frames)
        now = tick * 0.02
        recorder.caller_audio(caller)
    late = 2.0 + 3.5 * WINDOW_S  # the bot speaks three and a half windows later
    for tick in range(50):
        now = late + tick * 0.02
        recorder.bot_audio(bot, now)
    recorder.close().result()
    io.shutdown()
    samples, rate = read_pcm16_channels((tmp_path / "call" / "recording.wav").read_bytes())
    assert samples.shape[0] == round((late + 1.0) * rate)
    assert (samples[: 2 * rate, 0] == 1000).all() and (samples[2 * rate :, 0] == 0).all()
    bot_at = np.flatnonzero(samples[:, 1])
    assert bot_at[0] == round(late * rate) and bot_at.size == 50 * 320
    assert recorder.samples_lost == 0
