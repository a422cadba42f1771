"""Scale-out: kamailio (dispatcher) and rtpengine in front of two real bot processes.

Two `voicebot serve --sip-port` instances with their own data dirs sit behind
kamailio, which record-routes the calls, picks a bot round robin and probes both with
OPTIONS; rtpengine (userspace, no kernel module) anchors the media, so each bot sees
only rtpengine's address in the SDP. sipp places the calls, with flite speech as RTP.
The test shows what an operator relies on: calls are spread across both bots, each
call's speech reaches its bot through the relay and the bot's audio comes back through
it, BYE follows the route set; then one bot is stopped (SIGTERM), the dispatcher's
probe takes it out of rotation, and every new call lands on the other one. All
processes are started and stopped here, on 127.0.0.1, and stopped even on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from tests.helpers import (
    ServerProcess,
    build_call,
    spawn_server,
    wait_for_transcript,
    wait_healthy,
    words,
)
from tests.telephony.sip.kamailio_cfg import write_kamailio_cfg, write_scenario
from tests.telephony.sip.peers import (
    call_dirs,
    events,
    free_udp_port,
    require_binary,
    stopped,
)

pytestmark = pytest.mark.slow

RTPENGINE_PORTS = (21200, 21399)  # below the ephemeral range: see peers.py


@pytest.fixture(scope="module")
def binaries() -> dict[str, str]:
    return {
        "kamailio": require_binary("kamailio", "kamailio kamailio-extra-modules"),
        "rtpengine": require_binary("rtpengine", "rtpengine-daemon"),
        "sipp": require_binary("sipp", "sip-tester"),
    }


@dataclass
class Bot:
    """One bot process: its SIP port and data dir."""

    server: ServerProcess
    sip_port: int
    data: Path
    log: IO[bytes]

    def calls(self) -> set[Path]:
        return call_dirs(self.data)


def _stop_bot(bot: Bot) -> None:
    if bot.server.proc.poll() is None:
        bot.server.proc.terminate()
        try:
            bot.server.proc.wait(20)
        except subprocess.TimeoutExpired:
            bot.server.proc.kill()
            bot.server.proc.wait()
    bot.log.close()


@pytest.fixture
def bots(binaries, tmp_path) -> Iterator[list[Bot]]:
    """Two bot processes, each with its own SIP port, RTP range and data dir."""
    started: list[Bot] = []
    try:
        for index, rtp in enumerate(("21000-21099", "21100-21199")):
            data, port = tmp_path / f"bot{index}", free_udp_port()
            log = (tmp_path / f"bot{index}.log").open("wb")
            server = spawn_server(
                data, "--sip-port", str(port), "--rtp-ports", rtp, output=log
            )  # fmt: skip
            started.append(Bot(server, port, data, log))
        for bot in started:
            wait_healthy(bot.server)
        yield started
    finally:
        for bot in started:
            _stop_bot(bot)


async def _ng_ping(port: int) -> bool:
    """rtpengine's control protocol (bencode over UDP): does it answer a ping?"""
    loop = asyncio.get_running_loop()
    answered = loop.create_future()

    class Ping(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr) -> None:
            if not answered.done():
                answered.set_result(b"pong" in data)

    transport, _ = await loop.create_datagram_endpoint(Ping, remote_addr=("127.0.0.1", port))
    try:
        transport.sendto(b"probe d7:command4:pinge")
        return await asyncio.wait_for(answered, 0.3)
    except TimeoutError:
        return False
    finally:
        transport.close()


@dataclass
class Proxy:
    """kamailio's SIP port and where its log goes (the test reads dispatcher events there)."""

    port: int
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_for(self, pattern: str, timeout_s: float) -> None:
        for _ in range(int(timeout_s / 0.1)):
            if re.search(pattern, self.text()):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"kamailio never logged {pattern!r}:\n{self.text()[-3000:]}")


@contextlib.asynccontextmanager
async def running(log: Path, *command: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """A child process whose output goes to `log`; stopped on the way out, whatever happens."""
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
        try:
            yield proc
        finally:
            await stopped(proc)


@pytest.fixture
async def proxy(binaries, bots, tmp_path) -> AsyncIterator[Proxy]:
    """rtpengine, then kamailio dispatching to both bots (rtpengine must answer first:
    kamailio disables a relay that fails its startup ping for a minute)."""
    ng_port, sip_port = free_udp_port(), free_udp_port()
    rtpengine = (
        binaries["rtpengine"], "--config-file=none", "--table=-1", "--foreground",
        "--log-stderr", "--interface=127.0.0.1", f"--listen-ng=127.0.0.1:{ng_port}",
        f"--port-min={RTPENGINE_PORTS[0]}", f"--port-max={RTPENGINE_PORTS[1]}",
    )  # fmt: skip
    async with running(tmp_path / "rtpengine.log", *rtpengine) as relay:
        for _ in range(50):
            assert relay.returncode is None, (tmp_path / "rtpengine.log").read_text()
            if await _ng_ping(ng_port):
                break
        else:
            raise AssertionError("rtpengine never answered a ping")
        cfg = write_kamailio_cfg(
            tmp_path, sip_port=sip_port, ng_port=ng_port, bots=[b.sip_port for b in bots]
        )
        kamailio = (
            binaries["kamailio"], "-f", str(cfg), "-DD", "-E", "-Y", str(tmp_path),
            "-m", "64", "-M", "8",
        )  # fmt: skip
        log = tmp_path / "kamailio.log"
        async with running(log, *kamailio) as proc:
            proxy = Proxy(sip_port, log)
            await proxy.wait_for(r"Listening on", 10)
            await asyncio.sleep(0.5)  # its workers are forked after that line
            assert proc.returncode is None, proxy.text()
            yield proxy


@dataclass
class RtpRecorder(asyncio.DatagramProtocol):
    """The callers' RTP address in their SDP: counts what arrives, and from where."""

    sources: dict[tuple[str, int], int] = field(default_factory=dict)

    def datagram_received(self, data: bytes, addr) -> None:
        self.sources[addr] = self.sources.get(addr, 0) + 1


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[RtpRecorder, int]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        RtpRecorder, local_addr=("127.0.0.1", 0)
    )
    yield protocol, transport.get_extra_info("sockname")[1]
    transport.close()


async def place_calls(sipp: str, proxy: Proxy, scenario: Path, calls: int) -> None:
    """`calls` concurrent sipp calls to kamailio; fails unless every one succeeded."""
    command = (
        sipp, f"127.0.0.1:{proxy.port}", "-sf", str(scenario), "-s", "bot",
        "-m", str(calls), "-l", str(calls), "-r", "10", "-i", "127.0.0.1",
        "-p", str(free_udp_port()), "-mp", str(free_udp_port()),
        "-nostdin", "-timeout", "40s", "-timeout_error", "-trace_err", "-trace_msg",
    )  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=scenario.parent, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await stopped(proc)
    errors = "".join(p.read_text(errors="replace") for p in scenario.parent.glob("*_errors.log"))
    assert proc.returncode == 0, (
        f"sipp exited {proc.returncode}\n{out.decode(errors='replace')[-2000:]}\n"
        f"{errors[-2000:]}\nkamailio:\n{proxy.text()[-3000:]}"
    )


async def test_calls_spread_over_two_bots_and_fail_over_when_one_stops(
    binaries, bots, proxy, recorder, tmp_path
):
    rtp, rtp_port = recorder
    # The silent tail outlasts the call: sipp sends the file's last partial packet padded
    # with mu-law zeros (a click the bot would hear as the caller speaking again).
    call = build_call(
        tmp_path / "caller.wav", ["How do I close my account?"], voice="rms", tail_s=11.0
    )
    # Long enough for the question to be transcribed and answered before sipp's BYE.
    scenario = write_scenario(
        tmp_path / "call.xml", wav=call.path, listen_port=rtp_port, pause_ms=10_000
    )

    await place_calls(binaries["sipp"], proxy, scenario, calls=4)
    first, second = bots
    assert len(first.calls()) == 2 and len(second.calls()) == 2, (first.calls(), second.calls())
    for bot in bots:
        answered = 0
        for directory in bot.calls():
            record = await wait_for_transcript(directory)
            # The caller's BYE came through kamailio along the route set.
            assert record["carrier"] == "sip" and record["end_reason"] == "bye", record
            # The caller's speech reached this bot through rtpengine: a whole turn of it.
            spoken = [e for e in events(directory) if e["event"] == "turn_ended"]
            assert spoken and spoken[0]["speech_ms"] > 1000, events(directory)
            # Understood and answered: at least once per bot (on two shared cores a
            # transcription can still be running at the BYE, and then the turn is not kept).
            for turn in record["turns"]:
                answered += {"close", "account"} <= words(turn["caller_text"]) and bool(
                    turn["bot_text"]
                )
        assert answered >= 1, [(d / "events.jsonl").read_text() for d in bot.calls()]
    # The bots' audio reached the callers only through rtpengine's ports.
    assert sum(rtp.sources.values()) > 4 * 5 * 50, rtp.sources
    assert all(RTPENGINE_PORTS[0] <= port <= RTPENGINE_PORTS[1] for _, port in rtp.sources)

    first.server.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(first.server.proc.wait, 20) == 0
    await proxy.wait_for(rf"bot down: sip:127\.0\.0\.1:{first.sip_port}\b", 10)

    short = write_scenario(tmp_path / "short.xml", wav=call.path, listen_port=rtp_port,
                           pause_ms=1500)  # fmt: skip
    await place_calls(binaries["sipp"], proxy, short, calls=3)
    assert len(first.calls()) == 2 and len(second.calls()) == 5, (first.calls(), second.calls())
