"""Signatures (checked against Twilio's own RequestValidator) and the voice webhook over HTTP."""

import xml.etree.ElementTree as ET

import aiohttp
import pytest
from twilio.request_validator import RequestValidator

from telephony.server import MediaServer, ServerSettings, TwilioWebhookSettings
from telephony.twilio.signature import compute_signature, is_valid_signature
from telephony.twilio.twiml import connect_stream
from tests.telephony.serving import start_on_free_port

TOKEN = "12345678901234567890123456789012"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "From": "+12349013030",
    "To": "+18005551212",
    "Digits": "1234",
}


@pytest.mark.parametrize(
    "url",
    [
        "https://mycompany.com/myapp.php?foo=1&bar=2",
        "https://bot.example.com/twilio/voice",
        "https://bot.example.com:443/twilio/voice",
        "http://127.0.0.1:8080/twilio/voice?x=%20y",
    ],
)
def test_signature_matches_twilio_request_validator(url):
    expected = RequestValidator(TOKEN).compute_signature(url, PARAMS)
    assert compute_signature(TOKEN, url, PARAMS.items()) == expected
    assert is_valid_signature(TOKEN, url, PARAMS.items(), expected)


def test_signature_accepts_url_with_or_without_default_port_like_twilio():
    signed = RequestValidator(TOKEN).compute_signature("https://bot.example.com:443/v", PARAMS)
    assert is_valid_signature(TOKEN, "https://bot.example.com/v", PARAMS.items(), signed)
    signed = RequestValidator(TOKEN).compute_signature("https://bot.example.com/v", PARAMS)
    assert is_valid_signature(TOKEN, "https://bot.example.com:443/v", PARAMS.items(), signed)


@pytest.mark.parametrize(
    ("token", "params", "signature"),
    [
        ("wrong-token-000000000000000000000", PARAMS, None),
        (TOKEN, {**PARAMS, "Digits": "9999"}, None),
        (TOKEN, PARAMS, ""),
    ],
)
def test_signature_rejects_tampering(token, params, signature):
    url = "https://bot.example.com/twilio/voice"
    good = RequestValidator(TOKEN).compute_signature(url, PARAMS)
    sig = good if signature is None else signature
    assert not is_valid_signature(token, url, params.items(), sig)


def test_twiml_connects_a_stream_with_escaped_parameters():
    twiml = connect_stream("wss://bot.example.com/twilio/media", {"From": '+1 <&>"x', "n": "2"})
    root = ET.fromstring(twiml)
    stream = root.find("./Connect/Stream")
    assert stream is not None and stream.get("url") == "wss://bot.example.com/twilio/media"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"From": '+1 <&>"x', "n": "2"}
    with pytest.raises(ValueError):
        connect_stream("https://not-a-websocket", {})


async def never_called(conn):
    raise AssertionError("no media connection expected")


@pytest.fixture
async def webhook_server():
    settings = ServerSettings(twilio=TwilioWebhookSettings(auth_token=TOKEN))
    server = MediaServer(never_called, settings)
    runner, host = await start_on_free_port(server)
    yield f"http://{host}"
    await runner.cleanup()


async def test_webhook_post_with_valid_signature_returns_connect_stream(webhook_server):
    url = f"{webhook_server}/twilio/voice"
    signature = RequestValidator(TOKEN).compute_signature(url, PARAMS)
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=PARAMS, headers={"X-Twilio-Signature": signature}) as response,
    ):
        assert response.status == 200
        assert response.content_type == "text/xml"
        root = ET.fromstring(await response.text())
    stream = root.find("./Connect/Stream")
    assert stream.get("url") == f"{webhook_server.replace('http', 'ws')}/twilio/media"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params["CallSid"] == "CA1234567890ABCDE" and params["From"] == "+12349013030"


async def test_webhook_get_with_valid_signature_is_accepted(webhook_server):
    url = f"{webhook_server}/twilio/voice?CallSid=CA9&From=%2B15550001"
    signature = RequestValidator(TOKEN).compute_signature(url, {})
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, headers={"X-Twilio-Signature": signature}) as response,
    ):
        assert response.status == 200
        assert "CA9" in await response.text()


@pytest.mark.parametrize("header", [None, "bm90IGEgc2lnbmF0dXJl", "forged"])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_webhook_without_valid_signature_is_403(webhook_server, method, header):
    url = f"{webhook_server}/twilio/voice"
    headers = {"X-Twilio-Signature": header} if header else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, url, data=PARAMS if method == "POST" else None, headers=headers
        ) as response,
    ):
        assert response.status == 403


async def test_webhook_signed_for_other_params_is_403(webhook_server):
    url = f"{webhook_server}/twilio/voice"
    signature = RequestValidator(TOKEN).compute_signature(url, PARAMS)
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            url, data={**PARAMS, "To": "+19990000000"}, headers={"X-Twilio-Signature": signature}
        ) as response,
    ):
        assert response.status == 403


async def test_webhook_with_no_token_configured_refuses():
    server = MediaServer(
        never_called, ServerSettings(twilio=TwilioWebhookSettings(auth_token=None))
    )
    runner, host = await start_on_free_port(server)
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"http://{host}/twilio/voice",
                data=PARAMS,
                headers={"X-Twilio-Signature": "anything"},
            ) as response,
        ):
            assert response.status == 403
    finally:
        await runner.cleanup()
