"""Simulated calls through the voice webhook, as Twilio places them: signed, with the
stream token the server issued, against a server whose media route requires both."""

from __future__ import annotations

from dataclasses import replace

import pytest

from telephony.twilio.twiml import connect_stream, say_and_hangup
from tests.helpers import build_call
from tests.telephony.serving import start_on_free_port
from tests.voicebot.test_call_e2e import AGE
from voicebot.dial import dial
from voicebot.dial_webhook import CallRefused, WebhookError, parse_twiml
from voicebot.metrics import Metrics

TOKEN = "webhook-test-auth-token"


def test_the_stream_and_its_parameters_are_read_from_the_twiml():
    twiml = connect_stream("wss://bot.example.com/twilio/media", {"vbt": "t0k&n", "From": "+1"})
    answer = parse_twiml(twiml)
    assert answer.url == "wss://bot.example.com/twilio/media"
    assert answer.parameters == {"vbt": "t0k&n", "From": "+1"}


def test_a_spoken_refusal_is_call_refused_and_junk_is_an_error():
    with pytest.raises(CallRefused, match="lines are busy"):
        parse_twiml(say_and_hangup("All our lines are busy."))
    with pytest.raises(WebhookError, match="not TwiML"):
        parse_twiml("<Response><Connect>")
    with pytest.raises(WebhookError, match="no <Connect>"):
        parse_twiml("<Response><Pause/></Response>")


@pytest.fixture
async def secured_server(services, tmp_path, monkeypatch):
    """The real bot with signatures and stream tokens on (an auth token in the env)."""
    from voicebot.app import build_server, warm_prompts

    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    base = services.config
    config = replace(base, server=replace(base.server, data_dir=str(tmp_path / "data")))
    await warm_prompts(services)
    server = build_server(replace(services, config=config, metrics=Metrics(), store=None))
    assert server.settings.twilio.stream_key is not None
    runner, host = await start_on_free_port(server)
    yield server, host
    await runner.cleanup()


@pytest.mark.slow
async def test_a_call_through_the_signed_webhook_is_answered(secured_server, tmp_path):
    _, host = secured_server
    call = build_call(tmp_path / "caller.wav", [AGE], voice="rms", tail_s=5.0)
    result = await dial(f"http://{host}/twilio/voice", call.path, tmp_path / "out",
                        turns=call.turns, auth_token=TOKEN)  # fmt: skip
    assert result.turns[0].voice_to_voice_ms is not None


async def test_a_wrong_signature_or_a_draining_server_refuses_the_call(secured_server, tmp_path):
    server, host = secured_server
    call = build_call(tmp_path / "caller.wav", ["Hello."], tail_s=0.5)
    with pytest.raises(WebhookError, match="403"):
        await dial(f"http://{host}/twilio/voice", call.path, tmp_path / "a", auth_token="wrong")
    server.draining = True
    with pytest.raises(CallRefused):
        await dial(f"http://{host}/twilio/voice", call.path, tmp_path / "b", auth_token=TOKEN)
