"""Test-side phones for Telnyx, Vonage, Asterisk chan_websocket and AudioSocket.

Each phone speaks its carrier's wire format from the carrier's side (what Telnyx,
Vonage or Asterisk would send us), over a real websocket or TCP socket on 127.0.0.1.
`place_call` streams the caller's audio in real time (20 ms ticks), plays what the bot
sends in real time as the carrier would (a playback queue consumed 20 ms per tick),
echoes marks once the audio before them has played (for carriers that have marks),
and hangs up once the bot has answered and gone quiet.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import websockets

from telephony.events import PCM16
from telephony.g711 import ulaw_decode, ulaw_encode
from telephony.resample import resample

TICK_S = 0.02
FRAME = 320  # 20 ms at 16 kHz
AUDIBLE = 500


@dataclass
class Heard:
    """What the phone played, tick by tick, and what it saw."""

    call_id: str
    ticks: list[PCM16] = field(default_factory=list)
    marks_echoed: int = 0
    clears: int = 0
    caller_end_tick: int = 0

    def answer(self) -> PCM16:
        """Everything played after the caller finished speaking (16 kHz)."""
        after = self.ticks[self.caller_end_tick :]
        return np.concatenate(after) if after else np.zeros(0, np.int16)


class Phone:
    """One carrier's side of a call; subclasses speak the wire format."""

    has_marks = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.call_id = str(uuid.uuid4())
        self.events: deque[tuple[str, Any]] = deque()
        self._ws: Any = None

    async def open(self) -> None:
        self._ws = await websockets.connect(self.url, open_timeout=10)

    async def send(self, frame: PCM16) -> None:
        raise NotImplementedError

    async def echo_mark(self, name: str) -> None:
        raise NotImplementedError

    def parse(self, message: str | bytes) -> None:
        raise NotImplementedError

    async def receive_forever(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in self._ws:
                self.parse(message)

    async def hangup(self) -> None:
        await self._ws.close()


class TelnyxPhone(Phone):
    async def open(self) -> None:
        await super().open()
        self.sequence = 1
        start = {
            "event": "start",
            "sequence_number": "1",
            "stream_id": "stream-" + self.call_id,
            "start": {
                "call_control_id": "v3:" + self.call_id,
                "custom_parameters": {"caller": "test"},
                "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
            },
        }
        await self._ws.send(json.dumps({"event": "connected", "version": "1.0.0"}))
        await self._ws.send(json.dumps(start))
        self.call_id = "v3:" + self.call_id
        self._held: str | None = None

    async def send(self, frame: PCM16) -> None:
        self.sequence += 1
        payload = base64.b64encode(ulaw_encode(resample(frame, 16000, 8000))).decode()
        media = {"track": "inbound", "chunk": str(self.sequence), "payload": payload}
        message = json.dumps({"event": "media", "sequence_number": str(self.sequence),
                              "media": media})  # fmt: skip
        if self.sequence % 7 == 0:  # every 7th frame arrives after the next one
            self._held = message
            return
        await self._ws.send(message)
        if self._held is not None:
            await self._ws.send(self._held)
            self._held = None

    async def echo_mark(self, name: str) -> None:
        self.sequence += 1
        mark = {"event": "mark", "sequence_number": str(self.sequence), "mark": {"name": name}}
        await self._ws.send(json.dumps(mark))

    def parse(self, message: str | bytes) -> None:
        data = json.loads(message)
        if data["event"] == "media":
            ulaw = base64.b64decode(data["media"]["payload"])
            self.events.append(("audio", resample(ulaw_decode(ulaw), 8000, 16000)))
        elif data["event"] == "mark":
            self.events.append(("mark", data["mark"]["name"]))
        elif data["event"] == "clear":
            self.events.append(("clear", None))

    async def hangup(self) -> None:
        self.sequence += 1
        await self._ws.send(json.dumps({"event": "stop", "sequence_number": str(self.sequence)}))
        await self._ws.close()


class VonagePhone(Phone):
    has_marks = False

    async def open(self) -> None:
        await super().open()
        connected = {"event": "websocket:connected", "content-type": "audio/l16;rate=16000",
                     "uuid": self.call_id, "caller": "test"}  # fmt: skip
        await self._ws.send(json.dumps(connected))

    async def send(self, frame: PCM16) -> None:
        await self._ws.send(frame.astype("<i2").tobytes())

    def parse(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            assert len(message) == 640, len(message)  # whole 20 ms frames only
            self.events.append(("audio", np.frombuffer(message, "<i2").astype(np.int16)))
        elif json.loads(message) == {"action": "clear"}:
            self.events.append(("clear", None))


class AsteriskPhone(Phone):
    async def open(self) -> None:
        await super().open()
        start = {"event": "MEDIA_START", "connection_id": self.call_id, "channel_id": self.call_id,
                 "channel": "WebSocket/test", "format": "slin16", "optimal_frame_size": 640,
                 "ptime": 20}  # fmt: skip
        await self._ws.send(json.dumps(start))

    async def send(self, frame: PCM16) -> None:
        await self._ws.send(frame.astype("<i2").tobytes())

    async def echo_mark(self, name: str) -> None:
        processed = {"event": "MEDIA_MARK_PROCESSED", "correlation_id": name}
        await self._ws.send(json.dumps(processed))

    def parse(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.events.append(("audio", np.frombuffer(message, "<i2").astype(np.int16)))
            return
        data = json.loads(message)
        if data["command"] == "MARK_MEDIA":
            self.events.append(("mark", data["correlation_id"]))
        elif data["command"] == "FLUSH_MEDIA":
            self.events.append(("clear", None))


class AudioSocketPhone(Phone):
    has_marks = False

    async def open(self) -> None:
        host, port = self.url.rsplit(":", 1)
        self._reader, self._writer = await asyncio.open_connection(host, int(port))
        self._writer.write(b"\x01\x00\x10" + uuid.UUID(self.call_id).bytes)

    async def send(self, frame: PCM16) -> None:
        self._writer.write(b"\x10\x01\x40" + resample(frame, 16000, 8000).astype("<i2").tobytes())
        await self._writer.drain()

    async def receive_forever(self) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                header = await self._reader.readexactly(3)
                kind, length = header[0], int.from_bytes(header[1:], "big")
                payload = await self._reader.readexactly(length)
                if kind == 0x10:
                    pcm = np.frombuffer(payload, "<i2").astype(np.int16)
                    self.events.append(("audio", resample(pcm, 8000, 16000)))
                elif kind == 0x00:
                    return

    async def hangup(self) -> None:
        with contextlib.suppress(ConnectionError):
            self._writer.write(b"\x00\x00\x00")
            await self._writer.drain()
        self._writer.close()


async def place_call(phone: Phone, caller: PCM16, *, quiet_s: float = 1.5,
                     max_s: float = 40.0) -> Heard:  # fmt: skip
    """Speak `caller` (16 kHz) in real time, play the bot, hang up when it has answered."""
    await phone.open()
    receiver = asyncio.create_task(phone.receive_forever())
    heard = Heard(phone.call_id, caller_end_tick=caller.size // FRAME)
    queue: deque[tuple[str, Any]] = deque()
    loop = asyncio.get_running_loop()
    start, answered, quiet = loop.time(), False, 0
    try:
        for tick in range(int(max_s / TICK_S)):
            await asyncio.sleep(max(0.0, start + tick * TICK_S - loop.time()))
            frame = caller[tick * FRAME : (tick + 1) * FRAME]
            await phone.send(np.pad(frame, (0, FRAME - frame.size)))
            while phone.events:
                kind, value = phone.events.popleft()
                if kind == "clear":
                    heard.clears += 1
                    queue = deque(item for item in queue if item[0] == "mark")
                else:
                    queue.append((kind, value))
            played = _play_tick(queue)
            while queue and queue[0][0] == "mark":
                await phone.echo_mark(queue.popleft()[1])
                heard.marks_echoed += 1
            heard.ticks.append(played)
            loud = int(np.abs(played.astype(np.int32)).max()) >= AUDIBLE
            if tick >= heard.caller_end_tick:
                answered = answered or loud
                quiet = 0 if loud else quiet + 1
                if answered and quiet * TICK_S >= quiet_s and not queue:
                    break
    finally:
        await phone.hangup()
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
    return heard


def _play_tick(queue: deque[tuple[str, Any]]) -> PCM16:
    """Take the next 20 ms of queued audio (silence where there is none)."""
    out: list[PCM16] = []
    need = FRAME
    while need and queue and queue[0][0] == "audio":
        audio = queue.popleft()[1]
        out.append(audio[:need])
        if audio.size > need:
            queue.appendleft(("audio", audio[need:]))
        need -= min(need, audio.size)
    out.append(np.zeros(need, np.int16))
    return np.concatenate(out)
