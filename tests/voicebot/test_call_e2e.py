"""Whole calls over real websockets on 127.0.0.1, with the real models, in real time.

The caller is `voicebot.dial` (it behaves as Twilio does); caller turns are flite
speech at 8 kHz mu-law. What the caller heard is re-transcribed with Whisper to check
that the bot answered the question that was asked.
"""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import numpy as np
import pytest

from tests.helpers import (
    AGE_QUESTION,
    CLOSE_QUESTION,
    build_call,
    transcribe_async,
    wait_for_transcript,
)
from voicebot.dial import AUDIBLE_PEAK, dial
from voicebot.transcript import safe_call_dir_name
from voicebot.wavio import read_wav

pytestmark = pytest.mark.slow

TOP_UP = "What is the most I can top up with my card in one day?"
AGE = AGE_QUESTION
CLOSE = CLOSE_QUESTION


def words(text: str) -> set[str]:
    return {
        w for w in re.sub(r"[^a-z0-9 ]", " ", text.lower().replace(",", "")).split() if len(w) > 3
    }


def transcript_of(server, call_sid: str) -> dict:
    path = server.data_dir / "calls" / safe_call_dir_name(call_sid) / "transcript.json"
    return json.loads(path.read_text())


def answer_window(result, index: int) -> tuple[float, float | None]:
    turn = result.turns[index]
    following = result.turns[index + 1].caller_start_s if index + 1 < len(result.turns) else None
    return turn.first_bot_audio_s, following


async def test_multi_turn_call_gets_spoken_answers_to_the_questions_asked(live_server, tmp_path):
    call = build_call(tmp_path / "caller.wav", [TOP_UP, AGE], voice="rms", gap_s=10.0)
    result = await dial(live_server.ws, call.path, tmp_path / "out", turns=call.turns)

    assert result.protocol_errors == []
    assert (tmp_path / "out" / "bot.wav").is_file() and (tmp_path / "out" / "dial.json").is_file()
    bot = read_wav(tmp_path / "out" / "bot.wav")
    assert bot.sample_rate == 8000
    assert abs(bot.pcm.size / 8000 - result.duration_s) < 0.05

    record = transcript_of(live_server, result.call_sid)
    assert record["call_id"] == result.call_sid and record["stream_id"] == result.stream_sid
    assert record["custom_parameters"] == {"caller": "voicebot-dial"}
    turns = record["turns"]
    assert [t["intent"] for t in turns] == ["top_up_limits", "age_limit"]
    assert [t["outcome"] for t in turns] == ["answer", "answer"]
    for index, turn in enumerate(turns):
        assert turn["caller_text"] and turn["bot_text"]
        assert -1 <= turn["sentiment"] <= 1
        assert set(turn["timings"]) >= {
            "asr_ms",
            "dialogue_ms",
            "tts_first_audio_ms",
            "voice_to_voice_ms",
        }
        assert turn["heard_text"] == turn["bot_text"] and not turn["barge_in"]
        assert result.turns[index].voice_to_voice_ms is not None
        # Slots are read after the answer started, and still land in the transcript.
        read = live_server.services.dialogue.read_slots(turn["caller_text"])
        assert turn["slots"] == dict(read), (turn["caller_text"], read)
        start, end = answer_window(result, index)
        spoken = await transcribe_async(
            live_server.services, tmp_path / "out" / "bot.wav", start, end
        )
        overlap = words(turn["bot_text"]) & words(spoken)
        assert len(overlap) >= 0.6 * len(words(turn["bot_text"])), (spoken, turn["bot_text"])
    assert any(turn["slots"] for turn in turns)  # "in one day": a time period
    assert result.marks_echoed >= 2

    async with aiohttp.ClientSession() as http:
        async with http.get(live_server.base + "/metrics") as response:
            metrics = await response.text()
        async with http.get(live_server.base + "/healthz") as response:
            health = await response.json()
    assert health["status"] == "ok"
    for stage in ("asr", "dialogue", "tts_first_audio", "voice_to_voice"):
        assert f'voicebot_stage_latency_seconds_count{{stage="{stage}"}}' in metrics
    assert "voicebot_active_calls" in metrics
    assert re.search(r'voicebot_turns_total\{outcome="answer"\} [1-9]', metrics)


async def test_barge_in_stops_the_bot_and_keeps_what_the_caller_heard(live_server, tmp_path):
    call = build_call(
        tmp_path / "caller.wav", [CLOSE, "Sorry, actually, " + TOP_UP], voice="rms", gap_s=4.5
    )
    result = await dial(live_server.ws, call.path, tmp_path / "out", turns=call.turns)

    second_start, second_end = call.turns[1]
    clears = [t for t in result.clears if t >= second_start]
    assert clears, f"no clear after the caller started talking over the bot: {result.clears}"
    cleared_at = clears[0]
    assert cleared_at <= second_start + 1.5
    # No stale audio after the clear: silence until the caller's interrupting turn is over.
    bot = read_wav(tmp_path / "out" / "bot.wav").pcm
    after = bot[int((cleared_at + 0.1) * 8000) : int(second_end * 8000)]
    assert after.size > 0 and int(np.abs(after.astype(np.int32)).max()) < AUDIBLE_PEAK

    record = transcript_of(live_server, result.call_sid)
    first, second = record["turns"][0], record["turns"][1]
    assert first["intent"] == "terminate_account"
    assert first["barge_in"] is True
    assert first["bot_text"].startswith(first["heard_text"])
    assert len(first["heard_text"]) < len(first["bot_text"])
    assert second["intent"] == "top_up_limits" and not second["barge_in"]


async def test_two_concurrent_calls_do_not_mix_and_a_broken_one_hurts_neither(
    live_server, tmp_path
):
    age = build_call(tmp_path / "age.wav", [AGE], voice="rms", tail_s=1.0)
    top_up = build_call(tmp_path / "topup.wav", [TOP_UP], voice="awb", tail_s=1.0)

    async def broken_call():
        await asyncio.sleep(1.0)
        async with aiohttp.ClientSession() as http, http.ws_connect(live_server.ws) as ws:
            await ws.send_str('{"event": "start", "start": {"mediaFormat": {"encoding": "x"}}}')
            message = await ws.receive(timeout=5)
            return message.type, ws.close_code

    results = await asyncio.gather(
        dial(live_server.ws, age.path, tmp_path / "a", turns=age.turns),
        dial(live_server.ws, top_up.path, tmp_path / "b", turns=top_up.turns),
        broken_call(),
    )
    age_result, top_up_result, (_, close_code) = results
    assert close_code == 1008
    assert age_result.call_sid != top_up_result.call_sid
    records = {
        out: transcript_of(live_server, result.call_sid)
        for out, result in (("a", age_result), ("b", top_up_result))
    }
    assert [t["intent"] for t in records["a"]["turns"]] == ["age_limit"]
    assert [t["intent"] for t in records["b"]["turns"]] == ["top_up_limits"]
    answers = {out: words(record["turns"][0]["bot_text"]) for out, record in records.items()}
    for out, other, result in (("a", "b", age_result), ("b", "a", top_up_result)):
        start = result.turns[0].first_bot_audio_s
        assert start is not None
        heard = words(
            await transcribe_async(live_server.services, tmp_path / out / "bot.wav", start)
        )
        own, foreign = answers[out] - answers[other], answers[other] - answers[out]
        # Each caller heard their own answer, and nothing of the other call's.
        assert len(heard & own) >= 0.6 * len(own), (heard, own)
        assert len(heard & foreign) <= 0.2 * len(foreign), (heard, foreign)


async def test_pressing_zero_without_a_transfer_target_says_so(live_server, tmp_path):
    call = build_call(tmp_path / "quiet.wav", ["Hello."], tail_s=20.0)
    result = await dial(
        live_server.ws,
        call.path,
        tmp_path / "out",
        turns=call.turns,
        dtmf=[(3.0, "0")],
        max_wait_s=8,
    )
    directory = live_server.data_dir / "calls" / safe_call_dir_name(result.call_sid)
    record = await wait_for_transcript(directory)  # the last prompt is written at the end
    assert record["dtmf"] and record["dtmf"][0]["digit"] == "0"
    # This server has no transfer target: the caller is told so up front (and when the
    # bank's people can be reached), never promised a transfer that then fails.
    assert record["handoff"]["state"] == "unavailable" and "0" in record["handoff"]["reason"]
    assert "transfer" not in record["handoff"]
    kinds = [p["kind"] for p in record["prompts"]]
    assert kinds[-1] == "dtmf" and "transfer_failed" not in kinds
    told = record["prompts"][-1]
    replies = live_server.services.dialogue.replies
    assert told["bot_text"].startswith(replies.prompt("dtmf_unavailable"))
    assert replies.prompt("dtmf_operator") not in told["bot_text"]
    spoken = await transcribe_async(
        live_server.services, tmp_path / "out" / "bot.wav", told["at_s"]
    )
    assert words(told["bot_text"]) & words(spoken), (told, spoken)
    assert "through" not in words(spoken), spoken
