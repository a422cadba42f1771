"""Hand a Twilio call to a person: update the live call with new TwiML over Twilio's REST API.

A `<Connect><Stream>` call belongs to our websocket until the call is given new
instructions. Updating the call resource (`POST /2010-04-01/Accounts/{AccountSid}/
Calls/{CallSid}.json` with a `Twiml` field) ends the stream (Twilio sends `stop`) and
makes Twilio run the new TwiML: `<Dial>` to an agent's number or `<Enqueue>` into a
queue. This is a REST call, outside the sans-I/O codec (DESIGN.md keeps codecs free
of I/O). The API base URL is a setting so tests can point it at a fake on 127.0.0.1.
Docs: https://www.twilio.com/docs/voice/api/call-resource#update-a-call-resource
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

import aiohttp

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.twilio.com"


class TwilioRestError(Exception):
    """Twilio refused or did not answer the update (the call is still ours)."""


@dataclass(frozen=True)
class TransferTarget:
    """Where a transferred call goes: a phone number or SIP URI to dial, or a queue."""

    number: str = ""
    queue: str = ""
    #: Seconds `<Dial>` rings the agent before giving up.
    dial_timeout_s: int = 30

    def __post_init__(self) -> None:
        if bool(self.number) == bool(self.queue):
            raise ValueError("a transfer target needs exactly one of number or queue")

    def twiml(self) -> str:
        """The TwiML the call runs once it leaves the bot."""
        if self.queue:
            body = f"<Enqueue>{escape(self.queue)}</Enqueue>"
        else:
            who = escape(self.number)
            callee = f"<Sip>{who}</Sip>" if self.number.startswith("sip:") else who
            body = f"<Dial timeout={quoteattr(str(self.dial_timeout_s))}>{callee}</Dial>"
        return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'


class TwilioCalls:
    """The one REST operation the bot needs: give a live call new TwiML."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_url: str = DEFAULT_API_URL,
        timeout_s: float = 5.0,
    ) -> None:
        if not account_sid or not auth_token:
            raise ValueError("Twilio REST needs an account SID and an auth token")
        self.account_sid = account_sid
        self._headers = {"Authorization": aiohttp.encode_basic_auth(account_sid, auth_token)}
        self.api_url = api_url.rstrip("/")
        self.timeout_s = timeout_s

    async def update_twiml(self, call_sid: str, twiml: str) -> None:
        """Replace what the live call `call_sid` is doing with `twiml`."""
        url = (
            f"{self.api_url}/2010-04-01/Accounts/{quote(self.account_sid, safe='')}"
            f"/Calls/{quote(call_sid, safe='')}.json"
        )
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(url, data={"Twiml": twiml}, headers=self._headers) as response,
            ):
                if response.status >= 300:
                    detail = (await response.text())[:200]
                    raise TwilioRestError(f"Twilio answered {response.status}: {detail}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TwilioRestError(f"Twilio REST API unreachable: {exc!r}") from exc
        log.info("call %s redirected by the Twilio REST API", call_sid)
