"""Shared by the tests that run real SIP peers (baresip, kamailio, rtpengine) on 127.0.0.1.

These peers are Debian packages that `.ci/run` installs. Where one is missing the test
skips with the package to install, unless VOICEBOT_REQUIRE_SIP_PEERS=1 (as in CI),
where a missing peer is a failure: a peer test that silently skips proves nothing.
Every process a test starts is stopped by `stopped`, even when the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from telephony.sip.server import SipServer, SipSettings

REQUIRE_ENV = "VOICEBOT_REQUIRE_SIP_PEERS"


def require_binary(name: str, package: str) -> str:
    """The path of `name`, or skip (fail under VOICEBOT_REQUIRE_SIP_PEERS=1)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        message = f"{name} is not installed (apt-get install {package})"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{message} but {REQUIRE_ENV}=1")
        pytest.skip(message)
    return path


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to right now.

    It comes from the kernel's ephemeral range (32768-60999 here), so every fixed RTP
    range in these tests lies below 32768: a CI run once gave kamailio's SIP port 47388,
    inside rtpengine's 47200-47399, and rtpengine's media socket then took the BYEs.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def sip_bridge(services, rtp_ports: tuple[int, int]) -> AsyncIterator[SipServer]:
    """The app's own call handler behind an in-process SIP bridge on a free UDP port."""
    from voicebot.app import build_server, warm_prompts

    await warm_prompts(services)
    handler = build_server(services).handler
    server = SipServer(handler, SipSettings(host="127.0.0.1", port=0, rtp_ports=rtp_ports))
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def stopped(proc: asyncio.subprocess.Process, timeout_s: float = 5.0) -> int:
    """SIGTERM, then SIGKILL if it lingers; the exit status."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode


def call_dirs(data_dir: Path) -> set[Path]:
    """The per-call directories a server has written so far."""
    calls = data_dir / "calls"
    return set(calls.iterdir()) if calls.is_dir() else set()


def events(directory: Path) -> list[dict]:
    """A call's events.jsonl, as far as it has been written."""
    path = directory / "events.jsonl"
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


async def wait_for_event(
    directory: Path, match: Callable[[dict, list[dict]], bool], timeout_s: float
) -> dict:
    """The first event of a live call for which `match(event, all_events)` holds."""
    for _ in range(int(timeout_s / 0.1)):
        seen = events(directory)
        for event in seen:
            if match(event, seen):
                return event
        await asyncio.sleep(0.1)
    raise AssertionError(f"no matching event in {directory}/events.jsonl: {events(directory)}")
