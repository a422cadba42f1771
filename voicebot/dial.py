"""A simulated caller that behaves as Twilio does, for tests, benchmarks and demos.

`dial()` opens the media websocket, sends `connected` and `start` (generated callSid and
streamSid, custom parameters), then the WAV's audio as 20 ms mu-law frames (160 bytes)
in real time, then silence until the bot has finished answering the last caller turn,
then `stop`. It plays what the bot sends in real time, as a phone would: bot audio is
queued and consumed 160 bytes per 20 ms tick; a `mark` is echoed only once the audio
queued before it has been played; `clear` drops the queue (and, as Twilio does, echoes
the marks it dropped). What the caller heard is written to `bot.wav` (8 kHz, aligned to
the call clock: sample n*160 is tick n), with per-turn timings in `dial.json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import websockets

from telephony.g711 import ulaw_decode, ulaw_encode
from telephony.resample import resample
from telephony.twilio.peer import BotClear, BotMark, BotMedia, BotProtocolError, TwilioPeer
from voicebot.dial_webhook import is_webhook_url, ring
from voicebot.wavio import FORMAT_MULAW, read_wav, write_wav

RATE = 8000
FRAME_BYTES = 160
FRAME_S = 0.02
SILENCE = bytes([0xFF]) * FRAME_BYTES  # mu-law zero
#: Bot audio quieter than this (PCM16 peak) does not count as the bot answering.
AUDIBLE_PEAK = 500
#: The part name of the mark the bot sends after a reply's last audio ("r3.end").
END_MARK = "end"


@dataclass
class TurnTiming:
    """One caller turn and when the bot's answer became audible."""

    index: int
    caller_start_s: float
    caller_end_s: float
    first_bot_audio_s: float | None = None
    voice_to_voice_ms: float | None = None


@dataclass
class DialResult:
    """What happened on the call, from the caller's side."""

    call_sid: str
    stream_sid: str
    url: str
    wav: str
    duration_s: float = 0.0
    turns: list[TurnTiming] = field(default_factory=list)
    marks_echoed: int = 0
    clears: list[float] = field(default_factory=list)
    bot_media_messages: int = 0
    protocol_errors: list[str] = field(default_factory=list)
    ended_by: str = "caller"
    late_ticks: int = 0
    #: 20 ms ticks the phone played bot audio, and ticks it starved in the middle of a
    #: reply (the next frame came late: the caller heard a gap).
    played_ticks: int = 0
    starved_ticks: int = 0


def caller_audio(path: str | Path) -> bytes:
    """A WAV file as 8 kHz mu-law bytes (G.711 8 kHz files pass through untouched)."""
    audio = read_wav(path)
    if audio.format_tag == FORMAT_MULAW and audio.sample_rate == RATE and audio.raw_g711:
        return audio.raw_g711
    return ulaw_encode(resample(audio.pcm, audio.sample_rate, RATE))


def detect_turns(
    ulaw: bytes, *, min_gap_s: float = 1.0, min_turn_s: float = 0.2
) -> list[tuple[float, float]]:
    """Caller speech segments by frame energy (independent of the bot's own VAD)."""
    pcm = ulaw_decode(ulaw).astype(np.float64)
    frames = pcm[: pcm.size // FRAME_BYTES * FRAME_BYTES].reshape(-1, FRAME_BYTES)
    if frames.size == 0:
        return []
    level = 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1.0)
    floor, peak = np.percentile(level, 20), np.percentile(level, 99)
    active = level > max(floor + 0.4 * (peak - floor), 30.0)
    segments: list[tuple[float, float]] = []
    for index in np.flatnonzero(active):
        start, end = index * FRAME_S, (index + 1) * FRAME_S
        if segments and start - segments[-1][1] < min_gap_s:
            segments[-1] = (segments[-1][0], end)
        else:
            segments.append((start, end))
    return [(round(float(s), 3), round(float(e), 3)) for s, e in segments if e - s >= min_turn_s]


class PhonePlayer:
    """The phone's playback buffer: bot audio and marks in order, consumed in real time.

    Shared by the live dial client and offline replay (which consumes it in virtual time).
    """

    def __init__(self) -> None:
        self.queue: deque[bytes | str] = deque()
        self.to_echo: list[str] = []
        self.last_media_at = -1.0
        self.played_ticks = 0
        self.starved_ticks = 0
        self._in_reply = False  # between a reply's first played frame and its end mark

    def add_audio(self, ulaw: bytes, at: float) -> None:
        self.queue.append(ulaw)
        self.last_media_at = at

    def add_mark(self, name: str) -> None:
        self.queue.append(name)

    def clear(self) -> None:
        self.to_echo.extend(item for item in self.queue if isinstance(item, str))
        self.queue.clear()
        self._in_reply = False

    def due_marks(self) -> list[str]:
        """Marks with no unplayed audio before them (plus those dropped by clear)."""
        while self.queue and isinstance(self.queue[0], str):
            name = self.queue.popleft()
            assert isinstance(name, str)
            self.to_echo.append(name)
            if name.endswith(f".{END_MARK}"):
                self._in_reply = False
        due, self.to_echo = self.to_echo, []
        return due

    def play_frame(self) -> bytes | None:
        """Take the next 20 ms of bot audio (None when nothing is queued)."""
        out = bytearray()
        while len(out) < FRAME_BYTES and self.queue and isinstance(self.queue[0], bytes):
            head = self.queue.popleft()
            assert isinstance(head, bytes)
            take = FRAME_BYTES - len(out)
            out += head[:take]
            if len(head) > take:
                self.queue.appendleft(head[take:])
        if not out:
            self.starved_ticks += self._in_reply
            return None
        self.played_ticks += 1
        self._in_reply = True
        return bytes(out) + SILENCE[: FRAME_BYTES - len(out)]

    @property
    def idle(self) -> bool:
        return not any(isinstance(item, bytes) for item in self.queue)


def _first_audible(bot: npt.NDArray[np.int16], start_s: float, end_s: float | None) -> float | None:
    first = round(start_s / FRAME_S)
    last = bot.size // FRAME_BYTES if end_s is None else round(end_s / FRAME_S)
    for tick in range(first, min(last, bot.size // FRAME_BYTES)):
        frame = bot[tick * FRAME_BYTES : (tick + 1) * FRAME_BYTES]
        if int(np.abs(frame.astype(np.int32)).max()) >= AUDIBLE_PEAK:
            return round(tick * FRAME_S, 3)
    return None


async def dial(
    url: str,
    wav: str | Path,
    out_dir: str | Path,
    *,
    turns: Sequence[tuple[float, float]] | None = None,
    custom_parameters: Mapping[str, str] | None = None,
    dtmf: Sequence[tuple[float, str]] = (),
    idle_after_answer_s: float = 1.5,
    max_wait_s: float = 20.0,
    open_timeout_s: float = 10.0,
    save: bool = True,
    auth_token: str | None = None,
) -> DialResult:
    """Place one simulated Twilio call; write `bot.wav` and `dial.json` if `save`.

    `url` is the media websocket, or the voice webhook (http/https): then the call
    rings the webhook first, signed with `auth_token`, and opens the stream it returns
    with its parameters (the stream token among them), as Twilio does. A refusal
    raises `CallRefused`.
    """
    out = Path(out_dir)
    audio = await asyncio.to_thread(caller_audio, wav)
    segments = list(turns) if turns is not None else detect_turns(audio)
    call_sid, account_sid = "CA" + secrets.token_hex(16), "AC" + secrets.token_hex(16)
    parameters = dict(custom_parameters or {"caller": "voicebot-dial"})
    if is_webhook_url(url):
        answer = await ring(url, call_sid=call_sid, account_sid=account_sid, auth_token=auth_token)
        url, parameters = answer.url, {**answer.parameters, **parameters}
    peer = TwilioPeer(
        call_sid=call_sid,
        stream_sid="MZ" + secrets.token_hex(16),
        account_sid=account_sid,
        custom_parameters=parameters,
    )
    result = DialResult(peer.call_sid, peer.stream_sid, url, str(wav))
    player = PhonePlayer()
    heard: list[bytes] = []
    pending_dtmf = sorted(dtmf)
    last_caller_end = segments[-1][1] if segments else len(audio) / RATE
    wav_ticks = (len(audio) + FRAME_BYTES - 1) // FRAME_BYTES

    async with websockets.connect(url, open_timeout=open_timeout_s, max_size=2**20) as ws:

        async def receive() -> None:
            loop = asyncio.get_running_loop()
            async for message in ws:
                parsed = peer.receive(message)
                if isinstance(parsed, BotMedia):
                    result.bot_media_messages += 1
                    player.add_audio(parsed.ulaw, loop.time())
                elif isinstance(parsed, BotMark):
                    player.add_mark(parsed.name)
                elif isinstance(parsed, BotClear):
                    result.clears.append(round(len(heard) * FRAME_S, 3))
                    player.clear()
                elif isinstance(parsed, BotProtocolError):
                    result.protocol_errors.append(parsed.message)

        await ws.send(peer.connected())
        await ws.send(peer.start())
        receiver = asyncio.create_task(receive())
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        tick = 0
        try:
            while not receiver.done():
                for name in player.due_marks():
                    await ws.send(peer.mark(name))
                    result.marks_echoed += 1
                played = player.play_frame()
                heard.append(played if played is not None else SILENCE)
                now_s = tick * FRAME_S
                while pending_dtmf and pending_dtmf[0][0] <= now_s:
                    await ws.send(peer.dtmf(pending_dtmf.pop(0)[1]))
                chunk = audio[tick * FRAME_BYTES : (tick + 1) * FRAME_BYTES]
                await ws.send(
                    peer.media(chunk.ljust(FRAME_BYTES, b"\xff") if chunk else SILENCE, tick * 20)
                )
                tick += 1
                if tick >= wav_ticks and _finished(
                    player,
                    loop.time(),
                    now_s,
                    last_caller_end,
                    heard,
                    idle_after_answer_s,
                    max_wait_s,
                ):
                    break
                deadline = t0 + tick * FRAME_S
                delay = deadline - loop.time()
                if delay < -FRAME_S:
                    result.late_ticks += 1
                await asyncio.sleep(max(delay, 0))
            if receiver.done():
                result.ended_by = "bot"
            else:
                await ws.send(peer.stop())
        except websockets.ConnectionClosed:
            result.ended_by = "bot"
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await receiver

    bot = ulaw_decode(b"".join(heard))
    result.duration_s = round(len(heard) * FRAME_S, 3)
    result.played_ticks, result.starved_ticks = player.played_ticks, player.starved_ticks
    for index, (start, end) in enumerate(segments):
        next_start = segments[index + 1][0] if index + 1 < len(segments) else None
        first = _first_audible(bot, end, next_start)
        timing = TurnTiming(index + 1, start, end, first)
        if first is not None:
            timing.voice_to_voice_ms = round((first - end) * 1000, 1)
        result.turns.append(timing)
    if save:
        await asyncio.to_thread(_save, out, bot, result)
    return result


def _save(out: Path, bot: npt.NDArray[np.int16], result: DialResult) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_wav(out / "bot.wav", bot, RATE)
    (out / "dial.json").write_text(json.dumps(asdict(result), indent=2))


def _finished(
    player: PhonePlayer,
    now: float,
    call_s: float,
    last_caller_end: float,
    heard: list[bytes],
    idle_s: float,
    max_wait_s: float,
) -> bool:
    """The bot has answered the last turn and gone quiet, or we have waited long enough."""
    if call_s >= last_caller_end + max_wait_s:
        return True
    answered = any(frame != SILENCE for frame in heard[int(last_caller_end / FRAME_S) :])
    return answered and player.idle and now - player.last_media_at >= idle_s
