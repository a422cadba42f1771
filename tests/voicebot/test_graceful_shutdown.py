"""SIGTERM with a call in progress: refuse new calls, say goodbye, flush, exit 0."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
import wave

import pytest
import websockets

from tests.helpers import (
    TWO_QUESTIONS,
    build_call,
    spawn_server,
    transcribe_async,
    wait_healthy,
)
from voicebot.dial import dial
from voicebot.transcript import safe_call_dir_name

pytestmark = pytest.mark.slow

TERM_AFTER_S = 8.0
GRACE_S = 1.0


async def test_sigterm_mid_call_says_goodbye_and_keeps_everything(tmp_path, services):
    data = tmp_path / "data"
    env = {
        "VOICEBOT_SERVER__SHUTDOWN_GRACE_S": str(GRACE_S),
        "VOICEBOT_TWILIO__VALIDATE_SIGNATURES": "false",
    }
    server = spawn_server(data, env=env)
    proc, base, ws_url = server.proc, server.base, server.ws
    try:
        await asyncio.to_thread(wait_healthy, server)
        call = build_call(
            tmp_path / "caller.wav",
            TWO_QUESTIONS,
            voice="rms",
            gap_s=20.0,  # the second question comes long after the shutdown
        )
        dialing = asyncio.create_task(dial(ws_url, call.path, tmp_path / "dial", turns=call.turns))
        await asyncio.sleep(TERM_AFTER_S)
        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        # While it winds down: the webhook refuses politely, a new stream gets 503.
        request = urllib.request.Request(base + "/twilio/voice", data=b"CallSid=CAnew")
        twiml = (await asyncio.to_thread(urllib.request.urlopen, request, None, 5)).read()
        assert b"<Hangup" in twiml and b"<Connect" not in twiml
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(ws_url, open_timeout=5)
        assert refused.value.response.status_code == 503
        result = await asyncio.wait_for(dialing, 60)
        code = await asyncio.to_thread(proc.wait, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0
    assert result.ended_by == "bot"  # the bot hung up, after its goodbye

    heard = await transcribe_async(services, tmp_path / "dial" / "bot.wav", TERM_AFTER_S + GRACE_S)
    assert "end this call" in heard.lower(), heard

    directory = data / "calls" / safe_call_dir_name(result.call_sid)
    transcript = json.loads((directory / "transcript.json").read_text())
    assert transcript["end_reason"] == "server shutdown" and transcript["ended_s"]
    assert [p["kind"] for p in transcript["prompts"]][-1] == "shutdown"
    assert transcript["turns"][0]["intent"] == "terminate_account"
    events = [json.loads(line) for line in (directory / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "shutdown" for e in events) and events[-1]["event"] == "end"
    with wave.open(str(directory / "recording.wav")) as reader:  # flushed and closed
        assert reader.getnframes() / reader.getframerate() >= TERM_AFTER_S + GRACE_S
