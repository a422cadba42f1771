"""kill -9 of the server in the middle of a call: what is on disk is valid and recent."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import wave

import pytest

from tests.helpers import TWO_QUESTIONS, build_call, spawn_server, wait_healthy
from voicebot.dial import dial
from voicebot.transcript import safe_call_dir_name
from voicebot.wavio import read_pcm16_channels

pytestmark = pytest.mark.slow

KILL_AFTER_S = 9.0


async def test_sigkill_mid_call_keeps_all_but_the_last_second(tmp_path):
    data = tmp_path / "data"
    server = spawn_server(data, "--capture")
    proc = server.proc
    try:
        await asyncio.to_thread(wait_healthy, server)
        call = build_call(
            tmp_path / "caller.wav",
            TWO_QUESTIONS,
            voice="rms",
            gap_s=6.0,
        )
        dialing = asyncio.create_task(
            dial(
                server.ws,
                call.path,
                tmp_path / "dial",
                turns=call.turns,
            )
        )
        started = time.monotonic()
        await asyncio.sleep(KILL_AFTER_S)
        proc.send_signal(signal.SIGKILL)
        lived = time.monotonic() - started
        proc.wait(10)
        result = await asyncio.wait_for(dialing, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert result.ended_by == "bot"  # the socket died under the caller

    directory = data / "calls" / safe_call_dir_name(result.call_sid)
    audio = directory / "recording.wav"
    with wave.open(str(audio)) as reader:  # a valid header despite the kill
        assert reader.getnchannels() == 2
        recorded_s = reader.getnframes() / reader.getframerate()
    samples, _ = read_pcm16_channels(audio.read_bytes())
    assert samples[:, 0].any() and samples[:, 1].any()
    assert lived - 1.0 <= recorded_s <= lived + 0.2, (lived, recorded_s)

    lines = (directory / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert events[0]["event"] == "start"
    # The first turn (over by about 3 s) was heard, understood and answered on disk.
    assert [e["turn"] for e in events if e["event"] == "decision"][:1] == [1]
    # The capture has a line every 20 ms: it shows how recent the last write was.
    capture = [json.loads(line) for line in (directory / "capture.jsonl").read_text().splitlines()]
    assert capture[-1]["t"] >= lived - 1.0, (lived, capture[-1]["t"])
    transcript = json.loads((directory / "transcript.json").read_text())
    assert transcript["call_id"] == result.call_sid and transcript["turns"]
