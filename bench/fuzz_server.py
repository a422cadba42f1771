"""Server-level fuzz run: malformed sessions on every front door while good calls go on.

Starts `voicebot serve` (the real bot, packaged models) with the Twilio, Telnyx, Vonage
and Asterisk websocket routes, AudioSocket (TCP) and SIP (UDP) all on, then for the
given time opens sessions that start like a carrier's (documented messages from
tests/fixtures/carrier_messages.py) and continue with mutations: truncated, bit-flipped,
duplicated, reordered and oversized messages, random JSON, text where binary is
expected and the reverse, random bytes on TCP and UDP, abrupt closes. A well-behaved
Twilio caller asks a question every ~20 s throughout. Pass: the server never exits,
never logs a traceback or "call handler failed", /healthz answers at the end, no call
is left open, and every good call is answered.

    .venv/bin/python bench/fuzz_server.py --minutes 3 --seed 1 --json bench/fuzz_run.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from telephony.twilio.peer import TwilioPeer  # noqa: E402
from tests.fixtures import carrier_messages as fx  # noqa: E402
from tests.helpers import AGE_QUESTION, build_call, free_port, spawn_server, wait_healthy  # noqa: E402
from voicebot.dial import dial  # noqa: E402

QUESTION = AGE_QUESTION
SIP_OPTIONS = (
    "OPTIONS sip:bot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK{n}\r\n"
    "From: <sip:fuzz@127.0.0.1>;tag=f{n}\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: fuzz{n}\r\n"
    "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)


def mutate(rng: random.Random, message: str | bytes) -> str | bytes:
    """One random corruption of a valid message."""
    data = message.encode() if isinstance(message, str) else bytes(message)
    kind = rng.randrange(8)
    if kind == 0 and data:  # truncate
        data = data[: rng.randrange(len(data))]
    elif kind == 1 and data:  # flip bytes
        buf = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        data = bytes(buf)
    elif kind == 2:  # oversized
        data = data + b"A" * rng.choice((70_000, 300_000))
    elif kind == 3:  # random JSON
        value: Any = rng.choice([None, 1, [], {"event": rng.random()}, {"event": "media"}, "x"])
        data = json.dumps(value).encode()
    elif kind == 4:  # random bytes
        data = rng.randbytes(rng.randrange(1, 2000))
    elif kind == 5:  # swap text/binary below
        pass
    elif kind == 6 and data:  # duplicate
        data = data + data
    text = kind != 5 and isinstance(message, str)
    return data.decode("utf-8", "replace") if text else data


def seeds(carrier: str) -> tuple[list[str | bytes], list[str | bytes]]:
    """A carrier's opening messages and the messages that follow, as documented."""
    if carrier == "twilio":
        peer = TwilioPeer("CA" + "f" * 32, "MZ" + "f" * 32, "AC" + "f" * 32, {})
        return [peer.connected(), peer.start()], [peer.media(b"\xff" * 160, 0), peer.dtmf("5"),
                                                  peer.mark("r1.0"), peer.stop()]  # fmt: skip
    if carrier == "telnyx":
        rest: list[str | bytes] = [fx.TELNYX_MEDIA, fx.TELNYX_DTMF, fx.TELNYX_MARK]
        return [fx.TELNYX_CONNECTED, fx.TELNYX_START], [*rest, fx.TELNYX_ERROR, fx.TELNYX_STOP]
    if carrier == "vonage":
        return [fx.VONAGE_CONNECTED], [b"\x00\x01" * 320, fx.VONAGE_DTMF]
    return [fx.ASTERISK_MEDIA_START], [b"\xff" * 160, fx.ASTERISK_DTMF_END, fx.ASTERISK_STATUS]


async def fuzz_websocket(rng: random.Random, port: int, carrier: str, tally: Counter[str]) -> None:
    opening, rest = seeds(carrier)
    try:
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/{carrier}/media", max_size=None, open_timeout=10
        ) as ws:
            for message in opening:
                await ws.send(mutate(rng, message) if rng.random() < 0.2 else message)
            for _ in range(rng.randint(1, 60)):
                message = rng.choice(rest)
                await ws.send(mutate(rng, message) if rng.random() < 0.6 else message)
                await asyncio.sleep(rng.choice((0, 0, 0.02)))
            if rng.random() < 0.5:
                await ws.close()
        tally[f"{carrier}:completed"] += 1
    except websockets.ConnectionClosed as closed:
        tally[f"{carrier}:closed_by_server:{closed.rcvd.code if closed.rcvd else 'none'}"] += 1
    except (OSError, websockets.InvalidStatus, TimeoutError) as exc:
        tally[f"{carrier}:refused:{type(exc).__name__}"] += 1


async def fuzz_audiosocket(rng: random.Random, port: int, tally: Counter[str]) -> None:
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        frames = [
            fx.AUDIOSOCKET_ID,
            fx.AUDIOSOCKET_AUDIO,
            fx.AUDIOSOCKET_DTMF,
            fx.AUDIOSOCKET_ERROR,
        ]
        for _ in range(rng.randint(1, 40)):
            frame = rng.choice(frames)
            writer.write(mutate(rng, frame) if rng.random() < 0.5 else frame)  # type: ignore[arg-type]
            await writer.drain()
        writer.close()
        tally["audiosocket:completed"] += 1
    except OSError as exc:
        tally[f"audiosocket:closed:{type(exc).__name__}"] += 1


def fuzz_sip(rng: random.Random, port: int, tally: Counter[str], n: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i in range(rng.randint(1, 20)):
            datagram = mutate(rng, SIP_OPTIONS.format(n=f"{n}x{i}"))
            raw = datagram.encode() if isinstance(datagram, str) else datagram
            sock.sendto(raw[:60_000], ("127.0.0.1", port))  # a UDP datagram's limit
    tally["sip:datagram_bursts"] += 1


def sip_alive(port: int) -> bool:
    """The SIP bridge still answers OPTIONS after the fuzzing."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(SIP_OPTIONS.format(n="final").encode(), ("127.0.0.1", port))
        try:
            return sock.recv(65535).startswith(b"SIP/2.0 200")
        except TimeoutError:
            return False


async def good_calls(
    port: int, wav: Path, turns: Any, out: Path, stop: asyncio.Event
) -> list[bool]:
    answered: list[bool] = []
    while not stop.is_set():
        result = await dial(
            f"ws://127.0.0.1:{port}/twilio/media", wav, out, turns=turns, save=False
        )
        answered.append(bool(result.turns) and result.turns[0].voice_to_voice_ms is not None)
        await asyncio.sleep(5)
    return answered


def read_health(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
        return dict(json.loads(response.read()))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="fuzz-"))
    log_path = work / "server.log"
    sip_port, audiosocket_port = free_port(), free_port()
    with log_path.open("wb") as log:
        fronts = ["--sip-port", str(sip_port), "--audiosocket-port", str(audiosocket_port)]
        # Capacity high enough that the fuzz reaches the codecs, not only the 503 refusal.
        server = spawn_server(work / "data", *fronts, "--rtp-ports", "31000-31199", output=log,
                              env={"VOICEBOT_SERVER__MAX_CALLS": "64"})  # fmt: skip
        try:
            await asyncio.to_thread(wait_healthy, server, 300)
            call = build_call(work / "good.wav", [QUESTION], voice="rms", tail_s=5.0)
            stop, tally, sessions = asyncio.Event(), Counter[str](), 0
            good = asyncio.create_task(good_calls(server.port, call.path, call.turns, work, stop))
            deadline = time.monotonic() + args.minutes * 60
            while time.monotonic() < deadline and server.proc.poll() is None:
                batch = []
                for _ in range(4):
                    sessions += 1
                    kind = rng.choice(
                        ("twilio", "telnyx", "vonage", "asterisk", "audiosocket", "sip")
                    )
                    if kind == "audiosocket":
                        batch.append(fuzz_audiosocket(rng, audiosocket_port, tally))
                    elif kind == "sip":
                        batch.append(asyncio.to_thread(fuzz_sip, rng, sip_port, tally, sessions))
                    else:
                        batch.append(fuzz_websocket(rng, server.port, kind, tally))
                await asyncio.gather(*batch)
            stop.set()
            answered = await good
            await asyncio.sleep(3)
            alive = server.proc.poll() is None
            health = await asyncio.to_thread(read_health, server.base)
            sip_ok = sip_alive(sip_port)
        finally:
            server.proc.terminate()
            server.proc.wait(60)
    text = log_path.read_text(errors="replace")
    return {
        "command": f"bench/fuzz_server.py --minutes {args.minutes} --seed {args.seed}",
        "machine": f"{socket.gethostname()}, 2 cores (shared)",
        "sessions": sessions,
        "outcomes": dict(sorted(tally.items())),
        "good_calls": len(answered),
        "good_calls_answered": sum(answered),
        "server_alive": alive,
        "healthz_status": health["status"],
        "active_calls_at_end": health["active_calls"],
        "sip_answers_options_after": sip_ok,
        "tracebacks_in_log": text.count("Traceback"),
        "handler_failures_in_log": text.count("call handler failed"),
        "protocol_error_lines": text.count("protocol error"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default="bench/fuzz_run.json")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = (result["server_alive"] and not result["tracebacks_in_log"]
          and not result["handler_failures_in_log"] and result["active_calls_at_end"] == 0
          and result["good_calls"] == result["good_calls_answered"] > 0)  # fmt: skip
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
