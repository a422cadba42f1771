"""Replays one call through the real `Call`, on a virtual clock, as fast as the CPU allows.

The caller's side is fed 20 ms at a time; after each step the driver lets the call
catch up (all model work done, all inbound events taken) before virtual time moves on.
Model calls take a fixed virtual time (`[replay]` settings, by default the live medians),
so the bot answers at the same virtual moment on any machine, and turn-taking (endpoints,
barge-in, what was heard) comes out the same on every run. The phone side is the same
`PhonePlayer` the dial client uses: bot audio is played 20 ms per tick, marks echoed
when played, `clear` honoured; everything goes through the real Twilio codec.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field, replace

from telephony.connection import CallConnection, TransferFailed
from telephony.events import AudioIn, Event, ProtocolError, WireMessage
from telephony.twilio.codec import TwilioCodec
from telephony.twilio.peer import BotClear, BotMark, BotMedia, BotProtocolError, TwilioPeer
from voicebot.call import Call
from voicebot.clock import ManualClock
from voicebot.config import Config
from voicebot.dial import FRAME_S, PhonePlayer
from voicebot.metrics import Metrics
from voicebot.replay.sources import CallerSide, iter_ulaw_frames
from voicebot.services import Activity, CallServices
from voicebot.transcript import CallRecord
from voicebot.workers import Pacing

log = logging.getLogger(__name__)

#: Stop waiting for the bot this long after the caller's input ends.
MAX_TAIL_S = 30.0
#: The bot counts as done after this much quiet.
IDLE_S = 1.0


@dataclass
class VirtualPhone:
    """The carrier and the phone, in virtual time."""

    peer: TwilioPeer
    player: PhonePlayer = field(default_factory=PhonePlayer)
    errors: list[str] = field(default_factory=list)
    closed: bool = False

    async def send(self, message: WireMessage) -> None:
        """What the bot sends to the carrier."""
        parsed = self.peer.receive(message)
        if isinstance(parsed, BotMedia):
            self.player.add_audio(parsed.ulaw, 0.0)
        elif isinstance(parsed, BotMark):
            self.player.add_mark(parsed.name)
        elif isinstance(parsed, BotClear):
            self.player.clear()
        elif isinstance(parsed, BotProtocolError):
            self.errors.append(parsed.message)

    async def close(self, code: int, reason: str) -> None:
        """The bot hung up."""
        self.closed = True


def replay_ids(name: str) -> tuple[str, str, str]:
    """Deterministic call, stream and account ids for a replayed input."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    return "CA" + digest[:32], "MZ" + digest[32:64], "AC" + digest[:32][::-1]


class _Replay:
    """One replay in progress: the call, its connection, the phone and the virtual clock."""

    def __init__(
        self,
        name: str,
        base: CallServices,
        config: Config,
        *,
        can_transfer: bool = False,
        transfers: tuple[bool, ...] = (),
    ) -> None:
        self.clock = ManualClock(0.0)
        self.services = replace(
            base,
            config=config,
            clock=self.clock,
            activity=Activity(),
            metrics=Metrics(),
            store=None,
        )
        settings = config.replay
        self.services.workers.pacing = Pacing(
            self.clock, settings.asr_ms / 1000, settings.dialogue_ms / 1000, settings.tts_ms / 1000
        )
        self.peer = TwilioPeer(*replay_ids(name), {"replay": name})
        self.phone = VirtualPhone(self.peer)
        self.codec = TwilioCodec()
        self.conn = CallConnection(
            self.codec, self.phone.send, self.phone.close, capacity=1_000_000, send_timeout_s=60
        )
        #: Transfers the replayed call asked for (there is no carrier to hand it to).
        self.transfers: list[str] = []
        self._outcomes = list(transfers)
        if can_transfer:
            self.conn.transferer = self._pretend_transfer
        self.call = Call(self.conn, self.services)
        self.task = asyncio.create_task(self._run(), name=f"replay-{name}")

    async def _pretend_transfer(self, reason: str) -> None:
        """A named fake: the original line could transfer, so the replay transfers too, and
        ends each transfer as the original's did (put through when nothing was recorded)."""
        self.transfers.append(reason)
        if self._outcomes and not self._outcomes.pop(0):
            raise TransferFailed("the original call's transfer failed here (replayed)")

    async def _run(self) -> None:
        async with self.call:
            await self.call.run()

    def feed(self, message: str) -> None:
        """A carrier message, through the real codec."""
        for event in self.codec.receive(message):
            self.push(event)

    def push(self, event: Event) -> None:
        """An event straight into the call (malformed captured messages are skipped)."""
        if not isinstance(event, ProtocolError):
            self.conn.push(event)

    async def settle(self) -> None:
        """Let the call do everything it can at this virtual instant."""
        workers, quiet = self.services.workers, 0
        if self.conn.pending == 0 and workers.in_flight == 0 and not self.clock.due():
            return  # nothing is waiting to run at this instant
        while quiet < 2 and not self.task.done():
            for _ in range(4):
                await asyncio.sleep(0)
            if self.conn.pending == 0 and workers.in_flight == 0 and not self.clock.due():
                quiet += 1
                continue
            quiet = 0
            if workers.in_flight:
                await workers.wait_quiet()
            else:
                await asyncio.sleep(0.0005)  # a transcript write on the I/O thread

    def busy(self) -> bool:
        """Is the bot still talking or working?"""
        return bool(
            self.call.reply is not None
            or self.conn.pending
            or self.services.workers.in_flight
            or not self.phone.player.idle
        )

    async def drive(self, side: CallerSide) -> None:
        """Tick through the caller's input, then until the bot has finished."""
        ulaw = list(iter_ulaw_frames(side.ulaw)) if side.ulaw is not None else []
        keys = list(side.dtmf)
        ticks, idle_ticks, tick = side.ticks, 0, 0
        limit = ticks + int(MAX_TAIL_S / FRAME_S)
        while tick < limit and not self.task.done() and not self.phone.closed:
            self.clock.advance(FRAME_S)
            now = tick * FRAME_S
            await self.settle()
            for mark in self.phone.player.due_marks():
                self.feed(self.peer.mark(mark))
            self.phone.player.play_frame()
            while keys and keys[0][0] <= now:
                self.feed(self.peer.dtmf(keys.pop(0)[1]))
            if tick < ticks:
                if side.frames is not None:
                    self.push(AudioIn(side.frames[tick], tick * 20, tick + 1))
                else:
                    self.feed(self.peer.media(ulaw[tick], tick * 20))
            await self.settle()
            tick += 1
            if tick >= ticks:
                idle_ticks = 0 if self.busy() else idle_ticks + 1
                if idle_ticks * FRAME_S >= IDLE_S:
                    break

    async def finish(self) -> None:
        """Hang up as the caller, and wait for the call to write everything."""
        self.feed(self.peer.stop())
        await self.settle()
        try:
            await asyncio.wait_for(self.task, 60)
        finally:
            self.services.workers.pacing = None


async def replay_call(
    name: str, side: CallerSide, base: CallServices, config: Config
) -> tuple[CallRecord | None, VirtualPhone]:
    """Run one call; returns its record and the phone (what the caller heard)."""
    replay = _Replay(name, base, config, can_transfer=side.can_transfer, transfers=side.transfers)
    try:
        replay.feed(replay.peer.connected())
        replay.feed(replay.peer.start())
        await replay.settle()
        await replay.drive(side)
        await replay.finish()
    finally:
        if not replay.task.done():
            replay.task.cancel()
        replay.services.workers.pacing = None
    return replay.call.record, replay.phone
