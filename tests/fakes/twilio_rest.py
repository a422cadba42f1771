"""A FAKE Twilio REST API on 127.0.0.1: the call-update endpoint a transfer uses.

Twilio's API cannot be reached from here, so this plays its part: a real aiohttp
server that checks HTTP basic auth as Twilio does (account SID and auth token),
accepts `POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json` with a `Twiml`
form field, records each request, and answers with the status a test asks for (or
hangs, to test timeouts). Twilio's real reply is the call resource as JSON; the bot
only reads the status, so the fake returns a minimal resource.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Update:
    """One call update the bot sent."""

    account_sid: str
    call_sid: str
    twiml: str
    authorized: bool


@dataclass
class FakeTwilioRest:
    """`async with FakeTwilioRest("AC..", "token") as api:` then read `api.updates`."""

    account_sid: str
    auth_token: str
    status: int = 200
    hang: bool = False
    updates: list[Update] = field(default_factory=list)
    received: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set on exit, so a hanging answer does not hold the server's shutdown.
    released: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    url: str = ""

    async def __aenter__(self) -> FakeTwilioRest:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{call}.json", self._update)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _update(self, request: web.Request) -> web.Response:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        authorized = request.headers.get("Authorization") == f"Basic {expected}"
        form = await request.post()
        update = Update(
            request.match_info["account"],
            request.match_info["call"],
            str(form.get("Twiml", "")),
            authorized,
        )
        self.updates.append(update)
        self.received.set()
        if self.hang:
            await self.released.wait()
        if not authorized:
            return web.json_response({"code": 20003, "message": "Authenticate"}, status=401)
        body = {"sid": update.call_sid, "account_sid": update.account_sid, "status": "in-progress"}
        return web.Response(
            status=self.status, text=json.dumps(body), content_type="application/json"
        )
