"""A caller reads out a card and an account number on a live call: nothing keeps them.

The caller is flite over the phone codec, heard by the real Whisper model; whether
Whisper writes the numbers in digits or in words, the transcript file, the events log,
the call store and the server log must only hold the redaction tags. Key presses are
masked in the events log and the transcript.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest

from tests.helpers import build_call
from voicebot.dial import dial
from voicebot.privacy import RedactingFilter
from voicebot.transcript import safe_call_dir_name

pytestmark = pytest.mark.slow

CARD_WORDS = "four five three nine, one four eight eight, zero three four three, six four six seven"
ACCOUNT_WORDS = "one two three four five six seven eight"
SAID = [f"My card number is {CARD_WORDS}.", f"And my account number is {ACCOUNT_WORDS}."]
PIN = "4831"

DIGIT_WORDS = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)"
# Six digits in a row (in figures or in words, with any separators) would be a leak.
LEAK = re.compile(rf"(?:\d[\s,.-]*){{6}}|(?:\b{DIGIT_WORDS}\b[\s,.-]*){{6}}", re.I)


# Not personal data: identifiers that mix letters and digits, ISO timestamps, IP addresses.
IGNORED = re.compile(
    r"\b(?=\w*[A-Za-z])(?=\w*\d)\w+\b|\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-][\d:]+)?"
    r"|\b(?:\d{1,3}\.){3}\d{1,3}\b"
)


def strings(value: object) -> list[str]:
    """Every string in a JSON-like value (numbers are clock readings, not what was said)."""
    if isinstance(value, str):
        return [IGNORED.sub(" ", value)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def leaks(texts: list[str]) -> list[str]:
    found = [m[0] for text in texts for m in LEAK.finditer(text)]
    return found + [PIN] * any(PIN in text for text in texts)


async def test_numbers_said_on_a_call_are_redacted_everywhere(live_server, tmp_path, caplog):
    call = build_call(tmp_path / "caller.wav", SAID, voice="rms", gap_s=8.0)
    handler = caplog.handler
    handler.addFilter(RedactingFilter(live_server.services.redactor))
    caplog.set_level(logging.INFO)
    dtmf = [(call.turns[-1][1] + 3.0 + 0.3 * i, d) for i, d in enumerate(PIN)]
    result = await dial(live_server.ws, call.path, tmp_path / "dial", turns=call.turns, dtmf=dtmf)
    directory = live_server.data_dir / "calls" / safe_call_dir_name(result.call_sid)
    transcript_path = directory / "transcript.json"
    for _ in range(50):  # the call's last writes land just after the socket closes
        if transcript_path.is_file() and json.loads(transcript_path.read_text()).get("ended_s"):
            break
        await asyncio.sleep(0.1)

    transcript = json.loads(transcript_path.read_text())
    heard = " ".join(turn["caller_text"] for turn in transcript["turns"])
    assert "[card number]" in heard, heard  # Whisper heard the numbers, and they were replaced
    assert "[account number]" in heard or heard.count("[card number]") >= 2, heard
    events = (directory / "events.jsonl").read_text()
    stored = live_server.services.store.get_call(transcript["call_id"])
    assert stored is not None
    for name, texts in [
        ("transcript", strings(transcript)),
        ("events", [s for line in events.splitlines() for s in strings(json.loads(line))]),
        ("store", strings(stored)),
        ("log", [IGNORED.sub(" ", r.getMessage()) for r in caplog.records]),
    ]:
        assert leaks(texts) == [], name

    pressed = [json.loads(line) for line in events.splitlines() if '"dtmf"' in line]
    assert [e["digit"] for e in pressed if e["event"] == "dtmf"] == ["*"] * len(PIN)
