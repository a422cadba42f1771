"""Run a MediaServer on a free port on 127.0.0.1 for a test."""

from __future__ import annotations

from aiohttp import web

from telephony.server import MediaServer


async def start_on_free_port(server: MediaServer) -> tuple[web.AppRunner, str]:
    """Start `server`; returns its runner (clean it up) and "127.0.0.1:PORT"."""
    runner = web.AppRunner(server.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"127.0.0.1:{port}"
