"""A live call: the caller asks for their balance and verifies on the keypad.

flite asks the question over the phone codec; the account number and PIN are key
presses (Twilio `dtmf` events). The bot must stay silent while digits are keyed in,
answer with the balance once verified, and keep no digit of either number anywhere.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from tests.helpers import build_call, transcribe_async
from voicebot.dial import dial
from voicebot.dialogue.grounded import say_money
from voicebot.transcript import safe_call_dir_name

pytestmark = pytest.mark.slow

ACCOUNT, PIN, BALANCE = "12345678", "4321", "1523.40"


async def test_balance_after_keypad_verification_and_no_digits_kept(live_server, tmp_path):
    call = build_call(tmp_path / "caller.wav", ["What is my balance?"], voice="rms", tail_s=16.0)
    end = call.turns[-1][1]
    keys = [(end + 4.0 + 0.25 * i, d) for i, d in enumerate(ACCOUNT)]
    keys += [(end + 9.0 + 0.25 * i, d) for i, d in enumerate(PIN)]
    result = await dial(
        live_server.ws, call.path, tmp_path / "out", turns=call.turns, dtmf=keys, max_wait_s=10
    )
    directory = live_server.data_dir / "calls" / safe_call_dir_name(result.call_sid)
    path = directory / "transcript.json"
    for _ in range(50):
        if path.is_file() and json.loads(path.read_text()).get("ended_s"):
            break
        await asyncio.sleep(0.1)
    record = json.loads(path.read_text())
    assert record["turns"][0]["outcome"] == "verify"
    assert [d["digit"] for d in record["dtmf"]] == ["*"] * len(ACCOUNT + PIN)
    prompts = [p for p in record["prompts"] if p["kind"] == "dtmf"]
    # One prompt after the account number (asks for the PIN), one with the balance.
    assert len(prompts) == 2, prompts
    assert say_money(BALANCE) in prompts[-1]["bot_text"]
    spoken = await transcribe_async(
        live_server.services, tmp_path / "out" / "bot.wav", prompts[-1]["at_s"]
    )
    assert "balance" in spoken.lower(), spoken
    kept = path.read_text() + (directory / "events.jsonl").read_text()
    assert not re.search(r"1\D{0,3}2\D{0,3}3\D{0,3}4\D{0,3}5\D{0,3}6\D{0,3}7\D{0,3}8", kept)
    assert "4321" not in kept
