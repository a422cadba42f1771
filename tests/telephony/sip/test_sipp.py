"""Whole SIP calls placed by the real `sipp` (Debian sip-tester) against the real bot.

The caller's speech is flite audio written as an 8 kHz mu-law WAV that sipp streams
as RTP (`<exec rtp_stream>`); the INVITE's SDP points the bot's RTP at a UDP socket
in this test, which records it so the answers can be checked for pacing and
re-transcribed. Everything stays on 127.0.0.1. Without sipp these tests skip, unless
VOICEBOT_REQUIRE_SIPP=1 (as in CI), where a missing sipp fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from telephony.g711 import ulaw_decode
from telephony.sip.server import SipServer, SipSettings
from tests.helpers import AGE_QUESTION, CLOSE_QUESTION, build_call, transcribe_async, words
from voicebot.wavio import read_wav, write_wav

pytestmark = pytest.mark.slow

SIPP = shutil.which("sipp")
REQUIRE_ENV = "VOICEBOT_REQUIRE_SIPP"
SCENARIOS = Path(__file__).parent / "scenarios"
QUESTIONS = [
    "What is the most I can top up with my card in one day?",
    AGE_QUESTION,
    CLOSE_QUESTION,
]


@pytest.fixture(scope="module")
def sipp() -> str:
    if SIPP is None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"sipp is not installed but {REQUIRE_ENV}=1 (apt-get install sip-tester)")
        pytest.skip("sipp is not installed (apt-get install sip-tester)")
    return SIPP


@dataclass
class RtpRecorder(asyncio.DatagramProtocol):
    """Where the INVITE's SDP sends the bot's RTP: keeps (arrival time, packet)."""

    packets: list[tuple[float, bytes]] = field(default_factory=list)

    def datagram_received(self, data: bytes, addr) -> None:
        self.packets.append((asyncio.get_running_loop().time(), data))

    def audio(self) -> np.ndarray:
        """The PCMU payloads, in sequence order, as 8 kHz PCM16."""
        ordered = sorted(
            (p for _, p in self.packets if p[1] & 0x7F == 0),
            key=lambda p: int.from_bytes(p[2:4], "big"),
        )
        return ulaw_decode(np.frombuffer(b"".join(p[12:] for p in ordered), np.uint8))


@pytest.fixture
async def bridge(services, config):
    from voicebot.app import build_server, warm_prompts

    await warm_prompts(services)
    handler = build_server(services).handler  # the app's own call handler, not started
    server = SipServer(handler, SipSettings(host="127.0.0.1", port=0, rtp_ports=(25000, 25999)))
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def recorder():
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        RtpRecorder, local_addr=("127.0.0.1", 0)
    )
    protocol.port = transport.get_extra_info("sockname")[1]
    yield protocol
    transport.close()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scenario(tmp_path: Path, name: str, listen_port: int, **values: object) -> Path:
    """A scenario file from `scenarios/`, with the shared INVITE/BYE parts filled in."""
    text = (SCENARIOS / name).read_text()
    text = text.replace("@INVITE@", (SCENARIOS / "invite.part").read_text())
    text = text.replace("@BYE@", (SCENARIOS / "bye.part").read_text())
    text = text.replace("@LISTEN_PORT@", str(listen_port))
    for key, value in values.items():
        text = text.replace(f"@{key.upper()}@", str(value))
    path = tmp_path / name
    path.write_text(text)
    return path


async def run_sipp(
    sipp: str, bridge: SipServer, path: Path, *, calls: int = 1, limit_s: int = 120
) -> str:
    """Run sipp to the end; fails the test unless every call succeeded."""
    media_base = 20000 + 2 * (os.getpid() % 4000)
    proc = await asyncio.create_subprocess_exec(
        sipp, f"127.0.0.1:{bridge.port}", "-sf", str(path), "-s", "bot",
        "-m", str(calls), "-l", str(calls), "-r", str(calls),
        "-i", "127.0.0.1", "-p", str(free_udp_port()), "-mp", str(media_base),
        "-nostdin", "-timeout", f"{limit_s}s", "-timeout_error", "-trace_err",
        cwd=path.parent, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    errors = "".join(p.read_text(errors="replace") for p in path.parent.glob("*_errors.log"))
    assert proc.returncode == 0, f"sipp exited {proc.returncode}\n{text[-3000:]}\n{errors[-3000:]}"
    return text


def new_calls(data_dir: Path, before: set[str]) -> list[Path]:
    return sorted(p for p in (data_dir / "calls").iterdir() if p.name not in before)


def existing(data_dir: Path) -> set[str]:
    calls = data_dir / "calls"
    return {p.name for p in calls.iterdir()} if calls.is_dir() else set()


async def test_three_questions_get_three_spoken_answers(sipp, bridge, recorder, services, tmp_path):
    call = build_call(tmp_path / "caller.wav", QUESTIONS, voice="rms", gap_s=9.0)
    audio_s = call.turns[-1][1] + 1.0
    path = scenario(
        tmp_path,
        "caller_hangs_up.xml",
        recorder.port,
        wav=call.path,
        pause_ms=int(audio_s * 1000) + 9000,
    )
    before = existing(_data(services))
    await run_sipp(sipp, bridge, path, limit_s=int(audio_s) + 60)
    await bridge.drain(10)

    [directory] = new_calls(_data(services), before)
    record = json.loads((directory / "transcript.json").read_text())
    assert record["carrier"] == "sip" and record["end_reason"] == "bye"
    assert record["custom_parameters"]["From"] == "+15550001111"
    turns = record["turns"]
    assert len(turns) == 3 and all(t["caller_text"] and t["bot_text"] for t in turns), turns

    times = [t for t, _ in recorder.packets]
    gaps = np.diff(times)
    assert len(times) > audio_s * 50  # 20 ms packets for the whole call, silence included
    assert 0.018 < statistics.median(gaps) < 0.022
    assert np.percentile(gaps, 95) < 0.06
    returned = tmp_path / "returned.wav"
    write_wav(returned, recorder.audio(), 8000)
    # Whisper hears one window at a time: re-transcribe the ~45 s in overlapping pieces.
    duration_s = len(recorder.audio()) / 8000
    pieces = [
        await transcribe_async(services, returned, start, start + 20.0)
        for start in np.arange(0.0, duration_s, 15.0)
    ]
    heard = " ".join(pieces)
    said = set().union(*(words(t["bot_text"]) for t in turns))
    assert len(words(heard) & said) >= 0.3 * len(said), (heard, said)


def _data(services) -> Path:
    return Path(services.config.server.data_dir)


async def test_bot_hangs_up_with_bye_and_the_recording_is_complete(
    sipp, bridge, recorder, services, tmp_path
):
    call = build_call(tmp_path / "caller.wav", QUESTIONS[1:2], voice="rms", tail_s=2.0)
    path = scenario(tmp_path, "bot_hangs_up.xml", recorder.port, wav=call.path, pause_ms=60_000)
    before = existing(_data(services))
    running = asyncio.create_task(run_sipp(sipp, bridge, path))
    await asyncio.sleep(call.turns[-1][1] + 6.0)  # the question asked and answered
    await bridge.shutdown(grace_s=0.0, goodbye_s=20.0)  # the bot says goodbye and hangs up
    await running  # sipp got our BYE and answered 200

    [directory] = new_calls(_data(services), before)
    record = json.loads((directory / "transcript.json").read_text())
    assert record["end_reason"] == "server shutdown" and len(record["turns"]) == 1
    events = [json.loads(line) for line in (directory / "events.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert "shutdown" in kinds and "stop" in kinds, kinds[-5:]
    recording = read_wav(directory / "recording.wav")
    assert recording.pcm.shape[0] / recording.sample_rate >= call.turns[-1][1] + 2.0


async def test_twenty_concurrent_calls_are_all_answered(sipp, bridge, recorder, services, tmp_path):
    call = build_call(tmp_path / "caller.wav", ["Hello?"], voice="rms", tail_s=0.5)
    path = scenario(tmp_path, "caller_hangs_up.xml", recorder.port, wav=call.path, pause_ms=4000)
    before = existing(_data(services))
    out = await run_sipp(sipp, bridge, path, calls=20)
    assert re.search(r"Successful call\s*\|\s*\d+\s*\|\s*20", out), out[-2000:]
    await bridge.drain(20)
    assert len(new_calls(_data(services), before)) == 20


async def test_rfc4733_dtmf_reaches_the_dialogue(sipp, bridge, recorder, services, tmp_path):
    path = scenario(tmp_path, "dtmf.xml", recorder.port, digits="123#", pause_ms=3000)
    before = existing(_data(services))
    await run_sipp(sipp, bridge, path)
    await bridge.drain(10)
    [directory] = new_calls(_data(services), before)
    events = [json.loads(line) for line in (directory / "events.jsonl").read_text().splitlines()]
    digits = [e["digit"] for e in events if e["event"] == "dtmf"]
    assert len(digits) == 4 and digits[-1] == "#", digits
