"""Session fixtures: the real models (packaged weights) and a live server on 127.0.0.1."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web

from tests.helpers import LiveServer
from voicebot.config import Config


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("voicebot")


@pytest.fixture(scope="session")
def config(session_dir) -> Config:
    base = Config()
    return replace(
        base,
        server=replace(base.server, data_dir=str(session_dir / "data")),
        recording=replace(base.recording, capture=True),
    )


@pytest.fixture(scope="session")
def services(config):
    """The real models (packaged weights), loaded once for the whole session."""
    from voicebot.app import build_services

    services = build_services(config)
    yield services
    services.workers.close()


@pytest.fixture(scope="session")
async def live_server(services, config):
    from voicebot.app import build_server, warm_prompts

    await warm_prompts(services)
    server = build_server(services)
    runner = web.AppRunner(server.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield LiveServer(
        f"http://127.0.0.1:{port}",
        f"ws://127.0.0.1:{port}/twilio/media",
        services,
        Path(config.server.data_dir),
    )
    await server.drain(5)
    await runner.cleanup()
