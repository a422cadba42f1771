"""The access log never writes a query string (a media secret travels in one)."""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web

from telephony.access_log import PathOnlyAccessLogger


async def test_the_access_log_keeps_the_path_and_status_but_not_the_query(caplog):
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/vonage/media", hello)
    runner = web.AppRunner(app, access_log_class=PathOnlyAccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/vonage/media?token=s3cret-123456") as r,
            ):
                assert r.status == 200
    finally:
        await runner.cleanup()
    [line] = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert "/vonage/media" in line and "status=200" in line and "size=" in line
    assert "s3cret" not in line and "token" not in line and "?" not in line
