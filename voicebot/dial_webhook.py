"""Start a simulated call the way Twilio does: through the voice webhook.

A production server validates webhook signatures and only accepts media streams that
carry the short-lived token its own webhook issued (`telephony.twilio.stream_token`).
A simulated caller that opened the media socket directly would be refused there, so
`ring()` plays Twilio's part first: it POSTs the call's fields to the webhook, signed
with the auth token as Twilio signs them, reads the TwiML answer and returns the
stream URL with its `<Parameter>`s (the token among them). A server at capacity
answers with `<Say>...<Hangup/>`: that is `CallRefused`, which load tests count.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import aiohttp

from telephony.twilio.signature import compute_signature


class WebhookError(Exception):
    """The webhook did not answer with TwiML we can follow."""


class CallRefused(WebhookError):
    """The server answered the call with a message and a hang-up (at capacity, draining)."""


@dataclass(frozen=True)
class StreamAnswer:
    """Where the call's media goes, and the parameters the stream must carry."""

    url: str
    parameters: dict[str, str]


def is_webhook_url(url: str) -> bool:
    """True for an http(s) webhook URL (a ws(s) URL is a media socket)."""
    return url.startswith(("http://", "https://"))


def parse_twiml(twiml: str) -> StreamAnswer:
    """The `<Connect><Stream>` of a TwiML answer; `CallRefused` for `<Say>`/`<Hangup>`."""
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError as exc:
        raise WebhookError(f"webhook answer is not TwiML: {exc}") from None
    stream = root.find("Connect/Stream")
    if stream is not None and stream.get("url"):
        parameters = {
            str(p.get("name")): str(p.get("value", ""))
            for p in stream.findall("Parameter")
            if p.get("name")
        }
        return StreamAnswer(str(stream.get("url")), parameters)
    said = " ".join((say.text or "").strip() for say in root.iter("Say"))
    if root.find("Hangup") is not None or said:
        raise CallRefused(said or "the server hung up")
    raise WebhookError("webhook answer has no <Connect><Stream>")


async def ring(
    webhook_url: str,
    *,
    call_sid: str,
    account_sid: str,
    auth_token: str | None = None,
    caller: str = "+15005550006",
    timeout_s: float = 10.0,
) -> StreamAnswer:
    """POST the call to the webhook as Twilio would; the stream to open."""
    fields = {
        "CallSid": call_sid,
        "AccountSid": account_sid,
        "From": caller,
        "To": "+15005550001",
        "Direction": "inbound",
        "CallStatus": "ringing",
        "ApiVersion": "2010-04-01",
    }
    headers = {}
    if auth_token:
        headers["X-Twilio-Signature"] = compute_signature(
            auth_token, webhook_url, list(fields.items())
        )
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(webhook_url, data=fields, headers=headers) as response,
        ):
            body = await response.text()
            if response.status != 200:
                raise WebhookError(f"webhook answered {response.status}: {body[:200]}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise WebhookError(f"webhook unreachable: {exc!r}") from exc
    return parse_twiml(body)
