"""Only streams started by our own webhook are taken (real HTTP and websockets, 127.0.0.1)."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import aiohttp
import pytest
import websockets

from telephony.events import CallStarted
from telephony.server import CLOSE_POLICY, MediaServer, ServerSettings, TwilioWebhookSettings
from telephony.twilio import stream_token
from telephony.twilio.peer import TwilioPeer
from telephony.twilio.signature import compute_signature
from tests.telephony.serving import start_on_free_port

AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
KEY = stream_token.derive_key(AUTH_TOKEN)
CALL_SID = "CA" + "a" * 32


def test_a_token_is_valid_only_for_its_call_and_only_until_it_expires():
    token = stream_token.issue(KEY, CALL_SID, ttl_s=60, now=1000.0)
    assert stream_token.verify(KEY, CALL_SID, token, now=1059.0) is None
    assert stream_token.verify(KEY, CALL_SID, token, now=1061.0) == "stream token expired"
    assert stream_token.verify(KEY, "CA" + "b" * 32, token, now=1001.0) == (
        "stream token not issued for this call"
    )
    other_key = stream_token.derive_key("another account's token")
    assert stream_token.verify(other_key, CALL_SID, token, now=1001.0) is not None
    expires, mac = token.split(".")
    later = f"{int(expires) + 3600}.{mac}"  # pushing the expiry breaks the signature
    assert stream_token.verify(KEY, CALL_SID, later, now=1001.0) is not None
    for bad in (None, "", "nonsense", "12.", ".abc", "x.y"):
        assert stream_token.verify(KEY, CALL_SID, bad, now=1001.0) is not None


class Handler:
    """Keeps the first event of each call it is given."""

    def __init__(self) -> None:
        self.starts: list[CallStarted] = []

    async def __call__(self, conn) -> None:
        async for event in conn.events():
            if isinstance(event, CallStarted):
                self.starts.append(event)
                return


@pytest.fixture
async def server():
    handler = Handler()
    settings = ServerSettings(twilio=TwilioWebhookSettings(auth_token=AUTH_TOKEN))
    media = MediaServer(handler, settings)
    runner, host = await start_on_free_port(media)
    yield host, handler
    await runner.cleanup()


async def webhook_parameters(host: str) -> dict[str, str]:
    """What Twilio would put in the stream's customParameters after our webhook."""
    url = f"http://{host}/twilio/voice"
    form = {"CallSid": CALL_SID, "From": "+441234567890"}
    signature = compute_signature(AUTH_TOKEN, url, sorted(form.items()))
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=form, headers={"X-Twilio-Signature": signature}) as response,
    ):
        root = ET.fromstring(await response.text())
    stream = root.find("./Connect/Stream")
    assert stream is not None
    return {p.get("name"): p.get("value") for p in stream.findall("Parameter")}


async def open_stream(host: str, parameters: dict[str, str], call_sid: str = CALL_SID):
    """Start a stream as Twilio does; returns the close code, or None if it stayed open."""
    peer = TwilioPeer(call_sid, "MZ" + "c" * 32, "AC" + "d" * 32, parameters)
    async with websockets.connect(f"ws://{host}/twilio/media") as ws:
        await ws.send(peer.connected())
        await ws.send(peer.start())
        try:
            await asyncio.wait_for(ws.recv(), 1.0)
        except websockets.ConnectionClosed as closed:
            return (
                closed.rcvd.code if closed.rcvd else -1,
                closed.rcvd.reason if closed.rcvd else "",
            )
        except TimeoutError:
            return None


async def test_a_stream_from_our_webhook_is_taken_without_the_token(server):
    host, handler = server
    parameters = await webhook_parameters(host)
    assert stream_token.PARAMETER in parameters and parameters["From"] == "+441234567890"
    assert await open_stream(host, parameters) is None
    [start] = handler.starts
    assert start.call_id == CALL_SID and stream_token.PARAMETER not in start.custom_parameters
    assert start.custom_parameters["From"] == "+441234567890"


async def test_streams_without_a_valid_token_are_closed_as_a_policy_violation(server):
    host, handler = server
    parameters = await webhook_parameters(host)
    assert await open_stream(host, {"From": "+44"}) == (CLOSE_POLICY, "no stream token")
    assert await open_stream(host, parameters, call_sid="CA" + "e" * 32) == (
        CLOSE_POLICY,
        "stream token not issued for this call",
    )
    forged = {stream_token.PARAMETER: stream_token.issue(b"guess", CALL_SID, 60)}
    assert (await open_stream(host, forged))[0] == CLOSE_POLICY
    assert handler.starts == []  # the bot never saw any of them
