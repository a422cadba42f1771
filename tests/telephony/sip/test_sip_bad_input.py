"""Malformed SIP and junk RTP beside a good SIP call: the good caller still gets an answer.

A real `sipp` caller asks the real bot one question. While that call is up, a Python
socket throws malformed SIP at the same port (truncated headers, bad Content-Length,
an unknown method, a 60 KB datagram, binary junk, an INVITE with broken SDP, BYE and
ACK for dialogs that do not exist, 500 OPTIONS in a second), and junk RTP goes to the
call's RTP port from a wrong host, from a wrong port on the right host, and with
payload types it did not negotiate. Each malformed message must get a 4xx (501 for the
unknown method, as RFC 3261 8.2.1 says) or be dropped; the server must still answer
OPTIONS; no call handler may fail; and the good call's turn and recording must be
complete. 127.0.0.2 is the "wrong host" (still loopback). Skips without sipp, as
test_sipp does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from telephony.sip.message import Response, parse
from telephony.sip.rtp import RtpPacket
from telephony.sip.server import SipServer
from tests.helpers import build_call
from tests.telephony.sip import test_sipp as base
from tests.telephony.sip.messages import request
from tests.telephony.sip.test_sipp import QUESTIONS, existing, new_calls, run_sipp, scenario
from voicebot.wavio import read_wav

pytestmark = pytest.mark.slow

sipp = base.sipp
recorder = base.recorder
bridge = base.bridge  # the app's own call handler behind a SIP bridge on a free port


G729_ONLY = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 18\r\n"


def malformed(port: int) -> dict[str, bytes]:
    """Bad datagrams by name; where one can be answered, its Call-ID is its name."""

    def req(method: str, name: str, **kwargs: Any) -> bytes:
        data = request(method, call_id=name, branch=f"z9hG4bK{name}", **kwargs)
        return data.replace(b"192.0.2.101:5060", f"127.0.0.1:{port}".encode())

    options = req("OPTIONS", "bad-length")
    return {
        "truncated": req("OPTIONS", "truncated")[:120],
        "bad-length": options.replace(b"Content-Length: 0", b"Content-Length: 900"),
        "neg-length": req("OPTIONS", "neg-length").replace(
            b"Content-Length: 0", b"Content-Length: -5"
        ),
        "unknown-method": req("FROBNICATE", "unknown-method"),
        "huge": req("OPTIONS", "huge", extra="X-Pad: " + "a" * 60_000 + "\r\n"),
        "binary": b"\x80\x00" + os.urandom(400),
        "broken-sdp": req("INVITE", "broken-sdp", body="v=0\r\nm=audio notaport RTP/AVP 0\r\n"),
        "no-sdp-codec": req(
            "INVITE",
            "no-sdp-codec",
            body="v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 18\r\n",
        ),
        "bye-unknown": req("BYE", "bye-unknown", cseq=2, to_tag="nosuchtag"),
        "ack-unknown": req("ACK", "ack-unknown", to_tag="nosuchtag"),
    }


async def collect(sock: socket.socket, wait_s: float) -> list[Response]:
    """Every response that comes back to `sock` within `wait_s`."""
    loop, got = asyncio.get_running_loop(), []
    try:
        async with asyncio.timeout(wait_s):
            while True:
                message = parse(await loop.sock_recv(sock, 70_000))
                assert isinstance(message, Response), message  # we sent no dialog: no requests
                got.append(message)
    except TimeoutError:
        return got


async def junk_rtp(rtp_port: int) -> None:
    """RTP the call never negotiated, from hosts and ports it never offered."""
    target = ("127.0.0.1", rtp_port)
    wrong_host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    wrong_port = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        wrong_host.bind(("127.0.0.2", 0))
        wrong_port.bind(("127.0.0.1", 0))
        for n in range(100):
            loud = RtpPacket(0, n, 160 * n, 0xBAD, b"\x00" * 160).to_bytes()  # PCMU, full scale
            wrong_host.sendto(loud, target)
            wrong_port.sendto(loud, target)
            for pt in (8, 13, 18, 127):
                wrong_port.sendto(
                    RtpPacket(pt, n, 160 * n, 0xBAD, b"\x01" * 160).to_bytes(), target
                )
            wrong_port.sendto(b"\x80\x7f" + os.urandom(4), target)  # shorter than a header
            await asyncio.sleep(0.01)
    finally:
        wrong_host.close()
        wrong_port.close()


async def test_malformed_sip_and_junk_rtp_leave_the_good_call_answered(
    sipp: str, bridge: SipServer, recorder: Any, services: Any, tmp_path: Path, caplog: Any
) -> None:
    caplog.set_level(logging.INFO)
    # A 2 s tail: when sipp's stream ends no more frames reach the VAD, so the turn must
    # be over by then (a noise at the very end was seen to leave VAD "speaking" for good).
    call = build_call(tmp_path / "caller.wav", QUESTIONS[1:2], voice="rms", tail_s=2.0)
    audio_s = call.turns[-1][1] + 1.0
    path = scenario(
        tmp_path, "caller_hangs_up.xml", recorder.port, wav=call.path,
        pause_ms=int(audio_s * 1000) + 9000,
    )  # fmt: skip
    data = Path(services.config.server.data_dir)
    before = existing(data)
    good = asyncio.create_task(run_sipp(sipp, bridge, path, limit_s=int(audio_s) + 60))

    async with asyncio.timeout(20):  # the good call is up and its RTP is flowing
        while not any(c.media and c.media.stats.packets_in > 10 for c in bridge._calls.values()):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    [good_call] = bridge._calls.values()
    assert good_call.media is not None
    media = good_call.media

    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    attacker.bind(("127.0.0.1", 0))
    attacker.setblocking(False)
    try:
        bad = malformed(attacker.getsockname()[1])
        for data_ in bad.values():
            attacker.sendto(data_, ("127.0.0.1", bridge.port))
        await junk_rtp(media.local_port)
        answers = {r.headers.get("Call-ID"): r.status for r in await collect(attacker, 0.4)}
        assert set(answers) <= set(bad), answers
        for name, status in answers.items():  # 4xx, or 501 for a method we do not know
            assert 400 <= status < 500 or (name, status) == ("unknown-method", 501), answers
        assert answers.get("unknown-method") == 501 and answers.get("bye-unknown") == 481
        assert answers.get("broken-sdp", 400) in range(400, 500)
        assert "ack-unknown" not in answers and "binary" not in answers

        flood = [
            request("OPTIONS", call_id=f"flood-{n}", branch=f"z9hG4bKflood{n}") for n in range(500)
        ]
        for n, data_ in enumerate(flood):
            attacker.sendto(data_, ("127.0.0.1", bridge.port))
            if n % 25 == 24:
                await asyncio.sleep(0.05)  # 500 in about a second
        # Only the flood's answers: our final answers to the bad INVITEs are resent until
        # an ACK that never comes (RFC 3261 Timer G), and may arrive meanwhile.
        answered = await collect(attacker, 1.0)
        flooded = [r for r in answered if (r.headers.get("Call-ID") or "").startswith("flood-")]
        assert flooded and all(r.status == 200 for r in flooded)

        attacker.sendto(request("OPTIONS", call_id="still-there").replace(
            b"192.0.2.101:5060", f"127.0.0.1:{attacker.getsockname()[1]}".encode()
        ), ("127.0.0.1", bridge.port))  # fmt: skip
        alive = [
            r for r in await collect(attacker, 2.0) if r.headers.get("Call-ID") == "still-there"
        ]
        assert alive[0].status == 200 and alive[0].headers.get("Allow")
    finally:
        attacker.close()

    stats = media.stats
    assert stats.ignored >= 500 and stats.malformed >= 100, stats  # junk seen, not played
    await good
    await bridge.drain(15)

    [directory] = new_calls(data, before)
    record = json.loads((directory / "transcript.json").read_text())
    assert record["end_reason"] == "bye"
    [turn] = record["turns"]
    assert "account" in turn["caller_text"].lower() and turn["bot_text"], turn
    recording = read_wav(directory / "recording.wav")
    assert recording.pcm.shape[0] / recording.sample_rate >= audio_s
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not failures, [r.getMessage() for r in failures]
    assert "sip: bad message" in caplog.text
