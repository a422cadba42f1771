"""Misbehaving peers beside a good call: the good caller still gets their answer.

Three bad peers connect to the real bot at the same time as one well-behaved caller:
one that opens the socket and never sends a message, one that starts a call and
speaks but never reads what we send (nor answers pings), and one that sends garbage
(binary where text is expected, broken JSON, invalid base64, an oversized frame).
Each bad call must end with a clean close, and the recorded ones with a reason; the
good call's answer is checked by re-transcribing what it heard.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from dataclasses import replace

import pytest
import websockets

from telephony.twilio.peer import TwilioPeer
from tests.helpers import build_call, transcribe_async, wait_for_transcript
from tests.telephony.serving import start_on_free_port
from tests.voicebot.test_call_e2e import AGE, words
from voicebot.dial import caller_audio, dial
from voicebot.metrics import Metrics
from voicebot.transcript import safe_call_dir_name

pytestmark = pytest.mark.slow

FRAME = 160  # 20 ms of 8 kHz mu-law


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One client-to-server websocket frame (RFC 6455: clients must mask)."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


async def deaf_caller(host: str, port: int, ulaw: bytes) -> TwilioPeer:
    """Starts a call and speaks in real time, but never reads a byte from the socket."""
    peer = TwilioPeer("CA" + "d" * 32, "MZ" + "d" * 32, "AC" + "d" * 32, {})
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    handshake = (
        f"GET /twilio/media HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    try:
        await loop.sock_sendall(sock, handshake.encode())
        for text in (peer.connected(), peer.start()):
            await loop.sock_sendall(sock, masked_frame(0x1, text.encode()))
        for index in range(0, len(ulaw) - FRAME, FRAME):
            message = peer.media(ulaw[index : index + FRAME], index // 8)
            await loop.sock_sendall(sock, masked_frame(0x1, message.encode()))
            await asyncio.sleep(0.02)
        await asyncio.sleep(8)  # still connected, still not reading, not answering pings
    except OSError:
        pass  # the server gave up on us: that is the point
    finally:
        sock.close()
    return peer


async def silent_peer(url: str) -> int | None:
    """Opens the media socket and sends nothing; returns the close code it was given."""
    async with websockets.connect(url) as ws:
        try:
            await asyncio.wait_for(ws.recv(), 15)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
    return None


async def garbage_peer(url: str) -> int | None:
    """Starts a call, then sends everything a broken client might; returns the close code."""
    peer = TwilioPeer("CA" + "b" * 32, "MZ" + "b" * 32, "AC" + "b" * 32, {})
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(peer.connected())
        await ws.send(peer.start())
        bad_media = '{"event": "media", "media": {"payload": "%%%"}}'
        junk_messages = (b"\x00\xff binary", "{not json", bad_media, '{"event": "nonsense"}')
        for junk in (*junk_messages, '["a list"]', "x" * 300_000):
            try:
                await ws.send(junk)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None
        try:
            await asyncio.wait_for(ws.recv(), 10)
            await asyncio.wait_for(ws.wait_closed(), 10)
        except websockets.ConnectionClosed:
            pass
        return ws.close_code


async def test_bad_peers_end_cleanly_and_a_concurrent_call_is_answered(services, tmp_path):
    from voicebot.app import build_server, warm_prompts

    base = services.config
    config = replace(
        base,
        server=replace(base.server, data_dir=str(tmp_path / "data"), idle_timeout_s=3.0),
        twilio=replace(base.twilio, validate_signatures=False),
    )
    await warm_prompts(services)
    server = build_server(replace(services, config=config, metrics=Metrics(), store=None))
    server.settings.heartbeat_s = 1.0  # a peer that answers no ping is gone within ~2 s
    runner, address = await start_on_free_port(server)
    url = f"ws://{address}/twilio/media"
    host, port = address.split(":")
    good_call = build_call(tmp_path / "good.wav", [AGE], voice="rms", tail_s=6.0)
    deaf_call = build_call(tmp_path / "deaf.wav", [AGE], voice="slt", tail_s=1.0)
    try:
        good, deaf, silent_code, garbage_code = await asyncio.gather(
            dial(url, good_call.path, tmp_path / "good", turns=good_call.turns),
            deaf_caller(host, int(port), caller_audio(deaf_call.path)),
            silent_peer(url),
            garbage_peer(url),
        )
        for _ in range(100):  # every bad call has been let go
            if server.active_connections == 0:
                break
            await asyncio.sleep(0.1)
        assert server.active_connections == 0
    finally:
        await runner.cleanup()
    calls = tmp_path / "data" / "calls"
    # The good caller got the answer to their question, and heard it.
    record = await wait_for_transcript(calls / safe_call_dir_name(good.call_sid))
    assert [t["intent"] for t in record["turns"]] == ["age_limit"]
    heard = await transcribe_async(
        services, tmp_path / "good" / "bot.wav", good.turns[0].first_bot_audio_s
    )
    assert len(words(heard) & words(record["turns"][0]["bot_text"])) >= 3, heard
    # The deaf caller's call was recorded and ended as dropped, not left hanging.
    deaf_record = await wait_for_transcript(calls / safe_call_dir_name(deaf.call_sid))
    assert deaf_record["end_reason"].startswith("dropped"), deaf_record["end_reason"]
    # The silent peer timed out with a policy close; the garbage peer was closed cleanly.
    assert silent_code == 1008
    assert garbage_code in (1008, 1009)
