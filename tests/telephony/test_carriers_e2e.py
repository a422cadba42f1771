"""Telnyx, Vonage, Asterisk chan_websocket and AudioSocket on the real servers, 127.0.0.1.

First the front doors themselves with a recording handler (no models): the shared media
secret, admission, a carrier's clean close as a hang-up, emulated marks coming back after
their audio, AudioSocket over a real TCP socket. Then whole calls with the real bot
(slow): a flite-spoken question per carrier gets a spoken answer, re-transcribed with
Whisper, and leaves a transcript; a garbage peer on one carrier is closed while a
well-behaved call on another still gets its answer.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from telephony.asterisk.audiosocket_server import AudioSocketServer
from telephony.events import AudioIn, CallEnded, CallStarted, DtmfDigit, MarkPlayed
from telephony.server import HUNG_UP, MediaServer, ServerSettings
from tests.fixtures import carrier_messages as docs
from tests.helpers import AGE_QUESTION, flite_pcm, words
from tests.telephony.carrier_phones import (
    AsteriskPhone,
    AudioSocketPhone,
    Phone,
    TelnyxPhone,
    VonagePhone,
    place_call,
)
from tests.telephony.serving import start_on_free_port
from voicebot.transcript import safe_call_dir_name

SECRET = "s3cret-media-token"


class Recorder:
    """A call handler that keeps every event; it plays 200 ms and a mark after the start."""

    def __init__(self) -> None:
        self.events: list[tuple[float, object]] = []
        self.done = asyncio.Event()
        #: Just before the first of the 200 ms went out: playback cannot start earlier.
        self.first_sent_at = 0.0

    async def __call__(self, conn) -> None:
        async for event in conn.events():
            self.events.append((time.monotonic(), event))
            if isinstance(event, CallStarted):
                self.first_sent_at = time.monotonic()
                for _ in range(10):
                    await conn.send_audio(np.zeros(320, np.int16))
                await conn.mark("r1.end")
            if isinstance(event, CallEnded):
                break
        self.done.set()

    def of(self, kind: type) -> list:
        return [e for _, e in self.events if isinstance(e, kind)]


async def serve(recorder: Recorder, **settings):
    server = MediaServer(recorder, ServerSettings(**settings))
    runner, host = await start_on_free_port(server)
    return server, runner, host


@pytest.mark.parametrize("path", ["/telnyx/media", "/vonage/media", "/asterisk/media"])
async def test_the_media_secret_is_required_before_the_upgrade(path):
    _, runner, host = await serve(Recorder(), media_secret=SECRET)
    try:
        async with aiohttp.ClientSession() as http:
            for query, headers, status in [
                ("", {}, 403),
                ("?token=wrong", {}, 403),
                ("?token=" + SECRET, {}, 101),
                ("", {"Authorization": "Bearer " + SECRET}, 101),
            ]:
                try:
                    async with http.ws_connect(f"ws://{host}{path}{query}", headers=headers) as ws:
                        await ws.close()
                        got = 101
                except aiohttp.WSServerHandshakeError as exc:
                    got = exc.status
                assert got == status, (query, headers)
    finally:
        await runner.cleanup()


async def test_a_full_server_refuses_carrier_streams_before_the_upgrade():
    server = MediaServer(Recorder(), accept_call=lambda: False)
    runner, host = await start_on_free_port(server)
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(f"ws://{host}/vonage/media")
        assert refused.value.status == 503
    finally:
        await runner.cleanup()


async def test_vonage_close_is_a_hang_up_and_its_emulated_mark_follows_the_audio():
    recorder = Recorder()
    _, runner, host = await serve(recorder)
    try:
        url = f"ws://{host}/vonage/media"
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            await ws.send_str(docs.VONAGE_CONNECTED)
            await ws.send_bytes(bytes(640))
            await ws.send_str(docs.VONAGE_DTMF)
            got = 0
            while got < 10:  # the handler's 200 ms, as binary 20 ms frames
                message = await ws.receive(timeout=5)
                got += message.type == aiohttp.WSMsgType.BINARY
            await asyncio.sleep(0.5)
        await asyncio.wait_for(recorder.done.wait(), 5)
    finally:
        await runner.cleanup()
    assert recorder.of(DtmfDigit) == [DtmfDigit("5")] and recorder.of(AudioIn)
    [played_at] = [t for t, e in recorder.events if e == MarkPlayed("r1.end")]
    # Not before its 200 ms could have played. Measured from the first send, not the
    # last: on a loaded machine the ten sends themselves can take 100 ms or more.
    assert played_at - recorder.first_sent_at >= 0.2
    assert recorder.of(CallEnded) == [CallEnded(HUNG_UP)]


async def test_audiosocket_over_tcp_start_audio_dtmf_marks_and_hangup():
    recorder = Recorder()
    server = AudioSocketServer(recorder)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(docs.AUDIOSOCKET_ID + docs.AUDIOSOCKET_AUDIO[:100])  # a partial frame
        await asyncio.sleep(0.05)
        writer.write(docs.AUDIOSOCKET_AUDIO[100:] + docs.AUDIOSOCKET_DTMF)
        frames = [await reader.readexactly(323) for _ in range(10)]
        assert all(f.startswith(b"\x10\x01\x40") for f in frames)
        await asyncio.sleep(0.4)
        writer.write(docs.AUDIOSOCKET_HANGUP)
        await writer.drain()
        await asyncio.wait_for(recorder.done.wait(), 5)
        writer.close()
    finally:
        await server.close()
    [started] = recorder.of(CallStarted)
    assert started.call_id == docs.AUDIOSOCKET_UUID
    assert len(recorder.of(AudioIn)) == 1 and recorder.of(DtmfDigit) == [DtmfDigit("5")]
    [played_at] = [t for t, e in recorder.events if e == MarkPlayed("r1.end")]
    assert played_at - recorder.first_sent_at >= 0.2  # as for Vonage above
    assert recorder.of(CallEnded) == [CallEnded("hangup")]


async def test_audiosocket_refuses_when_full_and_closes_a_garbage_peer():
    server = AudioSocketServer(Recorder(), accept_call=lambda: False)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(reader.read(), 5) == docs.AUDIOSOCKET_HANGUP
        writer.close()
        server.accept_call = lambda: True
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\x10\x00\x04garbage before any UUID")
        assert await asyncio.wait_for(reader.read(), 5) == docs.AUDIOSOCKET_HANGUP  # then EOF
        writer.close()
        await server.drain(5)
        assert server.active_connections == 0
    finally:
        await server.close()


# ------------------------------------------------------------- the real bot


@pytest.fixture(scope="module")
async def bot(services, config):
    """The real bot on the websocket server and an AudioSocket listener beside it."""
    from voicebot.app import build_server, warm_prompts

    await warm_prompts(services)
    server = build_server(services)
    runner, host = await start_on_free_port(server)
    audiosocket = AudioSocketServer(server.handler, server.settings, accept_call=server.accept_call)
    server.other_calls.append(lambda: audiosocket.active_connections)
    await audiosocket.start()
    yield host, f"127.0.0.1:{audiosocket.port}", Path(config.server.data_dir)
    await server.drain(5)
    await audiosocket.close()
    await runner.cleanup()


async def transcript(data_dir: Path, call_id: str) -> dict:
    path = data_dir / "calls" / safe_call_dir_name(call_id) / "transcript.json"
    for _ in range(100):
        if path.is_file():
            return json.loads(path.read_text())
        await asyncio.sleep(0.1)
    raise AssertionError(f"no transcript for {call_id}")


def phone_for(carrier: str, bot) -> Phone:
    host, audiosocket, _ = bot
    return {
        "telnyx": lambda: TelnyxPhone(f"ws://{host}/telnyx/media"),
        "vonage": lambda: VonagePhone(f"ws://{host}/vonage/media"),
        "asterisk": lambda: AsteriskPhone(f"ws://{host}/asterisk/media"),
        "audiosocket": lambda: AudioSocketPhone(audiosocket),
    }[carrier]()


async def check_answered(services, data_dir: Path, phone: Phone, heard) -> None:
    spoken = await asyncio.to_thread(services.workers.recognizer.transcribe, heard.answer())
    record = await transcript(data_dir, phone.call_id)
    turns = record["turns"]
    assert turns and turns[0]["intent"] == "age_limit", turns
    bot_words = words(turns[0]["bot_text"])
    assert len(bot_words & words(spoken.text)) >= 0.5 * len(bot_words), (spoken.text, bot_words)
    # Marks (real or emulated) came back after the answer's audio: it was heard in full.
    assert turns[0]["heard_text"] == turns[0]["bot_text"]
    if phone.has_marks:
        assert heard.marks_echoed >= 1


@pytest.mark.slow
@pytest.mark.parametrize("carrier", ["telnyx", "vonage", "asterisk"])
async def test_a_spoken_question_gets_a_spoken_answer(bot, services, carrier):
    caller = np.concatenate([np.zeros(8000, np.int16), flite_pcm(AGE_QUESTION)])
    phone = phone_for(carrier, bot)
    heard = await place_call(phone, caller)
    await check_answered(services, bot[2], phone, heard)


@pytest.mark.slow
async def test_garbage_on_one_carrier_does_not_hurt_a_call_on_another(bot, services):
    host = bot[0]

    async def garbage() -> int | None:
        await asyncio.sleep(1.0)
        url = f"ws://{host}/telnyx/media"
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            await ws.send_bytes(b"\x00garbage")
            await ws.send_str('{"event": "start", "start": {"call_control_id": 5}}')
            await ws.receive(timeout=5)
            return ws.close_code

    caller = np.concatenate([np.zeros(8000, np.int16), flite_pcm(AGE_QUESTION)])
    phone = phone_for("audiosocket", bot)
    heard, code = await asyncio.gather(place_call(phone, caller), garbage())
    assert code == 1008
    await check_answered(services, bot[2], phone, heard)
    assert str(uuid.UUID(phone.call_id)) == phone.call_id
