"""Handing a Twilio caller to a person: the REST redirect (against a FAKE Twilio API on
127.0.0.1, since the real one cannot be reached here), recorded with its reason; when
the carrier refuses the transfer, the caller is told instead of left in silence; and
where no transfer target is configured at all, a person is never promised."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from tests.fakes.twilio_rest import FakeTwilioRest
from tests.helpers import build_call, transcribe_async, wait_for_transcript
from tests.telephony.serving import start_on_free_port
from tests.voicebot.test_call_e2e import words
from voicebot.dial import dial
from voicebot.metrics import Metrics
from voicebot.transcript import safe_call_dir_name

pytestmark = pytest.mark.slow

SID, TOKEN, AGENT = "AC" + "7" * 32, "rest-token", "+441632960000"


async def call_pressing_zero(services, tmp_path, monkeypatch, api: FakeTwilioRest):
    """A call to a server whose transfers go to `api`; the caller presses 0 at 3 s."""
    from voicebot.app import build_server, warm_prompts

    monkeypatch.setenv("TWILIO_ACCOUNT_SID", SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    base = services.config
    config = replace(
        base,
        server=replace(base.server, data_dir=str(tmp_path / "data")),
        # Signatures off: the simulated caller does not come through a signed webhook.
        twilio=replace(
            base.twilio, validate_signatures=False, transfer_number=AGENT, api_url=api.url
        ),
    )
    await warm_prompts(services)
    server = build_server(replace(services, config=config, metrics=Metrics(), store=None))
    runner, host = await start_on_free_port(server)
    try:
        call = build_call(tmp_path / "quiet.wav", ["Hello."], tail_s=9.0)
        result = await dial(f"ws://{host}/twilio/media", call.path, tmp_path / "out",
                            turns=call.turns, dtmf=[(3.0, "0")], max_wait_s=8)  # fmt: skip
    finally:
        await runner.cleanup()
    directory = tmp_path / "data" / "calls" / safe_call_dir_name(result.call_sid)
    return result, await wait_for_transcript(directory)


async def test_pressing_zero_redirects_the_call_to_the_agent(services, tmp_path, monkeypatch):
    async with FakeTwilioRest(SID, TOKEN) as api:
        result, record = await call_pressing_zero(services, tmp_path, monkeypatch, api)
    (update,) = api.updates
    assert update.authorized and update.call_sid == result.call_sid
    assert ET.fromstring(update.twiml).find("Dial").text == AGENT
    assert record["handoff"]["transfer"] == "transferred"
    assert "0" in record["handoff"]["reason"]
    assert record["end_reason"].startswith("transferred")
    # The caller heard "I'll put you through" before the redirect, and nothing after it.
    assert [p["kind"] for p in record["prompts"]][-1] == "dtmf"


async def test_a_refused_transfer_is_told_to_the_caller(services, tmp_path, monkeypatch):
    async with FakeTwilioRest(SID, TOKEN, status=500) as api:
        _, record = await call_pressing_zero(services, tmp_path, monkeypatch, api)
    assert len(api.updates) == 1
    assert record["handoff"]["transfer"] == "transfer_failed"
    assert "500" in record["handoff"]["error"]
    told = record["prompts"][-1]
    assert told["kind"] == "transfer_failed"
    spoken = await transcribe_async(services, tmp_path / "out" / "bot.wav", told["at_s"])
    assert words(told["bot_text"]) & words(spoken)


ASK_FOR_A_PERSON = "Can I speak to a real person, please?"


async def test_without_a_transfer_target_a_person_is_never_promised(live_server, tmp_path):
    """The live server has no transfer target (a websocket line with nobody behind it):
    the caller who asks for a person hears that nobody can be reached on this line and
    when the bank's people can be, never "I'll put you through"; the transcript keeps
    the wish for a person, as an unavailable handoff, and no transfer is attempted."""
    replies = live_server.services.dialogue.replies
    promises = [replies.prompt(key) for key in ("handoff_offer", "handoff_accepted")]
    call = build_call(tmp_path / "caller.wav", [ASK_FOR_A_PERSON], tail_s=2.0)
    result = await dial(live_server.ws, call.path, tmp_path / "out", turns=call.turns,
                        max_wait_s=40)  # fmt: skip
    directory = live_server.data_dir / "calls" / safe_call_dir_name(result.call_sid)
    record = await wait_for_transcript(directory)

    [turn] = record["turns"]
    assert turn["outcome"] == "handoff_unavailable", turn
    assert turn["handoff"]["state"] == "unavailable", turn["handoff"]
    assert turn["handoff"]["reason"] == "caller asked for a person"
    assert record["handoff"]["state"] == "unavailable" and "transfer" not in record["handoff"]
    assert [p["kind"] for p in record["prompts"]] == ["greeting"]  # no transfer_failed
    said = [turn["bot_text"], *(p["bot_text"] for p in record["prompts"])]
    assert not [text for text in said if any(promise in text for promise in promises)]
    assert not [text for text in said if "put you through" in text.lower()]
    assert all(sentence in turn["bot_text"] for sentence in replies.contact_points())
    events = [json.loads(line) for line in (directory / "events.jsonl").read_text().splitlines()]
    assert [e["value"] for e in events if e["event"] == "can_transfer"] == [False]
    assert not [e for e in events if e["event"] == "transfer"]

    # What the caller actually heard: the honest answer, all of it, and no promise.
    start = result.turns[0].first_bot_audio_s
    assert start is not None
    heard = await transcribe_async(live_server.services, tmp_path / "out" / "bot.wav", start)
    meant = words(turn["bot_text"])
    assert len(words(heard) & meant) >= 0.6 * len(meant), (heard, meant)
    assert "through" not in words(heard) and "stay on the line" not in heard.lower(), heard
