"""One call's RTP media: a UDP endpoint that looks like any other carrier to a Call.

`RtpMedia` is both the call's `CarrierCodec` (`receive`, `send_audio`, `mark`,
`clear` turn bot audio and commands into wire messages without I/O) and its paced
`Sender` (`send` queues those messages for the sender task), so the SIP server wires
it exactly like a websocket carrier: `CallConnection(media, media.send, closer)`.

Inbound: datagram -> RTP parse -> payload-type filter -> jitter buffer (pulled every
20 ms) -> G.711 decode -> one 8->16 kHz stream resampler -> `AudioIn`; telephone-events
become one `DtmfDigit` per press. Bad datagrams are counted in `stats`, never raised.

Outbound: one task emits exactly one RTP packet per 20 ms tick, scheduled from a fixed
anchor (tick k is due at anchor + k * 20 ms) so sleep overshoot never accumulates into
drift. When no bot audio is queued it sends comfort silence rather than nothing:
carriers and SBCs hang up calls after an RTP inactivity timeout, NAT pinholes need
refreshing, and sipp and many gateways expect an unbroken 50 packets/s. The marker bit
flags each talk spurt's first packet. A talk spurt does not start on a lone frame: when
a tick finds only one frame queued and nothing after it (no second frame, no mark that
ends the reply), it sends silence once more and starts the spurt on the next tick. The
bot's lead reaches the queue one frame per event-loop turn, and a sender that wakes late
behind a busy thread runs its overdue ticks back to back; starting at once would send
frame one, then find the queue empty and put 20 ms of comfort silence inside the word.
The hold costs at most one tick and only when the second frame is late; a one-frame
reply (its mark follows) goes out at once, and `clear` drops a held frame too.
On hold (direction recvonly or inactive) nothing is sent, but the clock, the queue and
the marks keep moving, so the bot's playout never blocks and the timestamps on resume
reflect the time that passed.
`mark` is echoed as `MarkPlayed` on the tick after its audio went out; `clear` drops
queued audio and echoes the pending marks at once, as Twilio does.

A caller that vanishes without a BYE (a crashed phone, a lost network) would otherwise
hold the call until `max_call_s`, so with `idle_timeout_s` set the tick ends the call
with `CallEnded(IDLE_REASON)` once no RTP has come for that long. Only while the caller
should be sending (our direction `sendrecv`) does silence count: on hold (`inactive`,
or the caller `sendonly`/`recvonly`) nothing arriving is normal, and a re-INVITE that
resumes the call starts the wait afresh.

Inbound audio is latched to one source (symmetric RTP, as Asterisk's `strictrtp` does):
the first audio packet from the SDP's host fixes the source port, and audio from any
other port is ignored until the next re-INVITE. Without it a stray or hostile sender
on the caller's host (a NAT, a shared SBC) with another SSRC restarts the jitter buffer
on every packet and chops the caller's speech. Telephone-events are not latched: they
cannot disturb the audio stream, and some senders emit them from another socket (sipp's
`play_dtmf` does, from a raw socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from telephony.clock import Clock, MonotonicClock
from telephony.events import (
    BOT_SAMPLE_RATE,
    PCM16,
    AudioIn,
    CallEnded,
    DtmfDigit,
    Event,
    MarkPlayed,
    ProtocolError,
    WireMessage,
)
from telephony.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from telephony.resample import StreamResampler
from telephony.sip.dtmf import DtmfReceiver, DtmfSender
from telephony.sip.jitter import JitterBuffer, conceal
from telephony.sip.ports import PortAllocator, bind_rtp
from telephony.sip.rtp import RtpError, RtpPacket, parse_rtp, seq_add, ts_add

log = logging.getLogger(__name__)

CARRIER = "sip"
RTP_RATE = 8000
FRAME_S = 0.02
FRAME_BYTES = RTP_RATE // 50  # one 20 ms G.711 frame: one byte per sample
#: `mark` and `clear` wire messages (text; audio travels as bytes).
MARK_PREFIX = "mark:"
CLEAR = "clear"
#: Ticks the sender may burst to catch up after a stall; beyond that it skips ahead.
MAX_CATCH_UP = 5
#: After this long with no caller audio due, each tick gives the call 20 ms of silence
#: (longer than the deepest jitter buffer, so a late packet is not pre-empted).
SILENCE_FILL_S = 0.2
#: Why a call whose caller stopped sending RTP was ended (see `idle_timeout_s`).
IDLE_REASON = "idle timeout: no RTP"

Encoding = Literal["PCMU", "PCMA"]
Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
_CODECS = {"PCMU": (ulaw_decode, ulaw_encode, 0xFF), "PCMA": (alaw_decode, alaw_encode, 0xD5)}


@dataclass(slots=True)
class RtpStats:
    """Per-call media counters (a snapshot; see `RtpMedia.stats`)."""

    packets_in: int = 0
    packets_out: int = 0
    malformed: int = 0
    ignored: int = 0
    lost: int = 0
    late: int = 0
    duplicates: int = 0
    concealed: int = 0
    #: 20 ms frames of silence given to the call while the caller sent no audio.
    filled: int = 0
    dtmf_in: int = 0
    dtmf_out: int = 0
    send_errors: int = 0
    ticks_skipped: int = 0
    #: Ticks a talk spurt's lone first frame was held for its second (at most one each).
    spurts_held: int = 0
    jitter_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class _Mark:
    name: str


class _Endpoint(asyncio.DatagramProtocol):
    """Forwards socket callbacks to the media object (composition, not inheritance)."""

    def __init__(self, media: RtpMedia) -> None:
        self._media = media

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self._media._on_datagram(data, (str(addr[0]), int(str(addr[1]))))

    def error_received(self, exc: Exception) -> None:
        self._media._stats.send_errors += 1  # e.g. ICMP port unreachable from the far end


class RtpMedia:
    """RTP for one call: codec, paced sender and UDP endpoint. Create with `open`."""

    carrier = CARRIER

    def __init__(
        self,
        sink: Callable[[Event], None],
        clock: Clock,
        queue_frames: int,
        idle_timeout_s: float | None = None,
    ) -> None:
        self.local_port = 0
        self.remote: tuple[str, int] | None = None
        self.encoding: Encoding = "PCMU"
        self.payload_type = 0
        self.dtmf_payload_type: int | None = None
        self.direction: Direction = "sendrecv"
        self.strict_source = True
        #: End the call when no RTP came for this long while it should (None or 0: never).
        self.idle_timeout_s = idle_timeout_s
        self._sink = sink
        self._clock = clock
        self._heard = clock.now()  # when RTP last arrived (or the wait last restarted)
        self._idle_ended = False
        self._source: tuple[str, int] | None = None  # the latched audio sender
        self._audio_in = 0  # audio packets accepted (a latch needs one)
        self._capacity = queue_frames
        self._stats = RtpStats()
        self._transport: asyncio.DatagramTransport | None = None
        self._ports: PortAllocator | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # inbound
        self._jitter = JitterBuffer(clock_rate=RTP_RATE, frame_samples=FRAME_BYTES)
        self._dtmf_in = DtmfReceiver()
        self._upsample = StreamResampler(RTP_RATE, BOT_SAMPLE_RATE)
        self._last_in: PCM16 = np.zeros(FRAME_BYTES, dtype=np.int16)
        self._audio_out_at = clock.now()  # when audio last went to the sink
        self._losses_in_row = 0
        # outbound
        self._downsample = StreamResampler(BOT_SAMPLE_RATE, RTP_RATE)
        self._queue: deque[bytes | _Mark] = deque()
        self._partial = b""
        self._room = asyncio.Event()
        self._dtmf_out = DtmfSender()
        self._ssrc = secrets.randbits(32)
        self._seq = secrets.randbits(16)
        self._ts = secrets.randbits(32)
        self._talkspurt = True
        self._spurt_held = False  # the queued lone frame already waited its one tick
        self._resumed = True  # the first packet after a gap in sending carries the marker

    @classmethod
    async def open(
        cls,
        host: str,
        ports: PortAllocator,
        sink: Callable[[Event], None],
        *,
        clock: Clock | None = None,
        queue_frames: int = 50,
        bind_attempts: int = 8,
        idle_timeout_s: float | None = None,
    ) -> RtpMedia:
        """Bind a UDP endpoint on `host` at a port from `ports` and start the clock.

        Raises `PortsExhausted`, or `OSError` when no port can be bound.
        """
        media = cls(sink, clock or MonotonicClock(), queue_frames, idle_timeout_s)
        media._transport, media.local_port = await bind_rtp(
            host, ports, lambda: _Endpoint(media), attempts=bind_attempts
        )
        media._ports = ports
        media._task = asyncio.create_task(media._run(), name=f"rtp-{media.local_port}")
        return media

    def configure(
        self,
        remote: tuple[str, int],
        encoding: Encoding,
        payload_type: int,
        dtmf_payload_type: int | None,
        direction: Direction = "sendrecv",
    ) -> None:
        """Apply the negotiated SDP (again on every re-INVITE).

        `remote` must be an IP address (resolve names first). `direction` is OUR side's,
        as in our SDP answer: when the caller puts us on hold (their offer says
        sendonly), pass "recvonly" and we stop sending until a later "sendrecv".
        """
        if encoding not in _CODECS:
            raise ValueError(f"unsupported encoding {encoding!r}; PCMU or PCMA")
        if self.encoding != encoding:
            self._downsample.reset()
            self._upsample.reset()
        if direction in ("sendrecv", "sendonly") and self.direction not in ("sendrecv", "sendonly"):
            self._resumed = True
        if remote != self.remote:
            self._source = None  # a new address: latch afresh
        self._heard = self._clock.now()  # new SDP is a sign of life; resuming restarts the wait
        self.remote = remote
        self.encoding, self.payload_type = encoding, payload_type
        self.dtmf_payload_type, self.direction = dtmf_payload_type, direction

    @property
    def stats(self) -> RtpStats:
        """A snapshot of the counters, with the jitter buffer's figures folded in."""
        jitter = self._jitter.stats
        return dataclasses.replace(
            self._stats,
            lost=jitter.lost,
            late=jitter.late,
            duplicates=jitter.duplicates + self._dtmf_in.duplicates,
            jitter_ms=self._jitter.jitter_s * 1000,
        )

    # ---------------------------------------------------------------- inbound

    def _on_datagram(self, data: bytes, source: tuple[str, int]) -> None:
        self._stats.packets_in += 1
        audio = len(data) > 1 and data[1] & 0x7F == self.payload_type
        if self.remote is None or (
            self.strict_source
            and (source[0] != self.remote[0] or (audio and self._source not in (None, source)))
        ):
            self._stats.ignored += 1
            return
        accepted = self._audio_in
        events = self.receive(data)
        if self.strict_source and self._source is None and self._audio_in > accepted:
            self._source = source
        for event in events:
            self._sink(event)

    def receive(self, message: WireMessage) -> list[Event]:
        """One datagram in -> DTMF events plus any audio that is due now."""
        if isinstance(message, str):
            return [ProtocolError("RTP is binary; text message ignored")]
        try:
            packet = parse_rtp(message)
            self._heard = self._clock.now()
            events = self._accept(packet)
        except RtpError:
            self._stats.malformed += 1
            return []
        return events + self._due_audio(self._clock.now())

    def _accept(self, packet: RtpPacket) -> list[Event]:
        if self.direction in ("sendonly", "inactive"):
            self._stats.ignored += 1
        elif packet.payload_type == self.payload_type:
            if not 0 < len(packet.payload) <= RTP_RATE:  # G.711: 1 byte a sample, <= 1 s
                raise RtpError(f"audio payload of {len(packet.payload)} bytes")
            self._jitter.push(packet, self._clock.now())
            self._audio_in += 1
        elif packet.payload_type == self.dtmf_payload_type:
            digit = self._dtmf_in.receive(packet.timestamp, packet.payload)
            if digit is not None:
                self._stats.dtmf_in += 1
                return [DtmfDigit(digit)]
        else:
            self._stats.ignored += 1  # comfort noise, RTCP on a muxed port, unknown types
        return []

    def _due_audio(self, now: float) -> list[Event]:
        events: list[Event] = []
        if (
            self._audio_in  # the caller's audio has started (no fill during call set-up)
            and self._jitter.pending == 0
            and now - self._audio_out_at >= SILENCE_FILL_S
        ):
            return [self._silence()]
        decode = _CODECS[self.encoding][0]
        for frame in self._jitter.pop(now):
            if frame.payload is not None:
                pcm = decode(frame.payload)
                self._last_in, self._losses_in_row = pcm, 0
            else:  # conceal: the last frame once at half level, then silence
                self._stats.concealed += 1
                self._losses_in_row += 1
                pcm = conceal(self._last_in, self._losses_in_row, frame.samples)
            pcm16k = self._upsample.process(pcm)
            events.append(AudioIn(pcm16k, frame.timestamp * 1000 // RTP_RATE, frame.sequence))
        if events:
            self._audio_out_at = now
        return events

    def _silence(self) -> AudioIn:
        """20 ms of silence for a tick without caller audio.

        Phones with silence suppression (and callers whose stream simply stops) send no
        packets while quiet; the call's voice detection only hears what it is given, so
        without this a turn whose speech ended on a packet gap would never end.
        """
        self._stats.filled += 1
        return AudioIn(self._upsample.process(np.zeros(FRAME_BYTES, dtype=np.int16)))

    # ------------------------------------------------------- codec (outbound)

    def send_audio(self, pcm: PCM16) -> list[WireMessage]:
        """Bot audio (16 kHz) -> G.711 bytes at 8 kHz, for `send` to packetize."""
        encode = _CODECS[self.encoding][1]
        payload = encode(self._downsample.process(np.asarray(pcm, dtype=np.int16)))
        return [payload] if payload else []

    def mark(self, name: str) -> list[WireMessage]:
        """A marker that `send` echoes as `MarkPlayed(name)` once its audio went out."""
        return [MARK_PREFIX + name]

    def clear(self) -> list[WireMessage]:
        """Drop queued audio (barge-in); the resampler restarts with the next reply."""
        self._downsample.reset()
        return [CLEAR]

    # --------------------------------------------------------- paced sender

    async def send(self, message: WireMessage) -> None:
        """Queue one wire message for the paced sender; waits while the queue is full.

        Raises ConnectionError once the media is closed (CallConnection maps it).
        """
        if self._closed:
            raise ConnectionError("RTP media is closed")
        if isinstance(message, bytes):
            data = self._partial + message
            whole = len(data) - len(data) % FRAME_BYTES
            self._partial = data[whole:]
            for start in range(0, whole, FRAME_BYTES):
                await self._put(data[start : start + FRAME_BYTES])
        elif message == CLEAR:
            self._clear_queue()
        elif message.startswith(MARK_PREFIX):
            if self._partial:  # a mark ends its audio: pad the last frame with silence
                silence = bytes([_CODECS[self.encoding][2]]) * (FRAME_BYTES - len(self._partial))
                frame, self._partial = self._partial + silence, b""
                await self._put(frame)
            await self._put(_Mark(message[len(MARK_PREFIX) :]))
        else:
            raise ValueError(f"not an RTP media message: {message[:40]!r}")

    async def _put(self, item: bytes | _Mark) -> None:
        while len(self._queue) >= self._capacity:
            self._room.clear()
            await self._room.wait()
            if self._closed:
                raise ConnectionError("RTP media is closed")
        self._queue.append(item)

    def _clear_queue(self) -> None:
        marks = [item for item in self._queue if isinstance(item, _Mark)]
        self._queue.clear()
        self._partial = b""
        self._talkspurt = True
        self._spurt_held = False
        self._room.set()
        for mark in marks:
            self._sink(MarkPlayed(mark.name))

    async def send_dtmf(self, digit: str, *, duration_ms: int = 100) -> None:
        """Send one key press as RFC 4733 events; returns once its last packet went out.

        Bot audio pauses (is held back, not lost) while the press is on the wire.
        """
        if self._closed:
            raise ConnectionError("RTP media is closed")
        if self.dtmf_payload_type is None:
            raise ValueError("the far end did not negotiate telephone-event")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def finished(sent: bool) -> None:
            self._stats.dtmf_out += sent
            self._talkspurt = True
            if done.done():
                return
            if sent:
                done.set_result(None)
            else:
                done.cancel()

        self._dtmf_out.add(digit, finished, duration_ms=duration_ms)
        await done

    async def _run(self) -> None:
        """The 20 ms tick: release due inbound audio, send one outbound packet."""
        anchor = self._clock.now()
        tick = 0
        while True:
            tick += 1
            await self._clock.sleep_until(anchor + tick * FRAME_S)
            behind = int((self._clock.now() - anchor) / FRAME_S) - tick
            if behind > MAX_CATCH_UP:  # a long stall: skip ahead, keep timestamps true
                tick += behind
                self._ts = ts_add(self._ts, behind * FRAME_BYTES)
                self._stats.ticks_skipped += behind
            try:
                for event in self._due_audio(self._clock.now()):
                    self._sink(event)
                self._send_tick()
                self._check_idle(self._clock.now())
            except Exception:  # one bad tick must not silence the rest of the call
                log.exception("RTP tick failed on port %d", self.local_port)

    def _check_idle(self, now: float) -> None:
        """End the call once, when the caller should be sending but has not for too long."""
        if self.direction != "sendrecv":
            self._heard = now  # on hold silence is expected; the wait starts on resume
            return
        if self._idle_ended or not self.idle_timeout_s or now - self._heard < self.idle_timeout_s:
            return
        self._idle_ended = True
        log.info(
            "RTP port %d: no RTP for %.1f s; ending the call", self.local_port, now - self._heard
        )
        self._sink(CallEnded(IDLE_REASON))

    def _send_tick(self) -> None:
        timestamp = self._ts
        self._ts = ts_add(self._ts, FRAME_BYTES)
        dtmf = self._dtmf_out.next_packet(timestamp)
        if dtmf is not None and self.dtmf_payload_type is not None:
            event, event_ts = dtmf
            pt = self.dtmf_payload_type
            self._emit(RtpPacket(pt, self._seq, event_ts, self._ssrc, event.payload, event.marker))
            return
        payload = self._next_frame()
        marker = False
        if payload is not None:
            marker, self._talkspurt = self._talkspurt, False
        else:
            payload = bytes([_CODECS[self.encoding][2]]) * FRAME_BYTES
            self._talkspurt = True
        self._emit(RtpPacket(self.payload_type, self._seq, timestamp, self._ssrc, payload, marker))

    def _next_frame(self) -> bytes | None:
        """The frame this tick sends (None: silence), echoing marks whose audio went out.

        A talk spurt's first frame waits one tick when it is alone in the queue, so the
        spurt starts with its second frame (or the mark that ends a one-frame reply)
        already queued; see the module docstring.
        """
        while self._queue:
            head = self._queue[0]
            if isinstance(head, _Mark):  # its audio went out on an earlier tick
                self._queue.popleft()
                self._room.set()
                self._sink(MarkPlayed(head.name))
                continue
            if self._talkspurt and len(self._queue) == 1 and not self._spurt_held:
                self._spurt_held = True
                self._stats.spurts_held += 1
                return None
            self._queue.popleft()
            self._room.set()
            self._spurt_held = False
            return head
        return None

    def _emit(self, packet: RtpPacket) -> None:
        if self.remote is None or self.direction not in ("sendrecv", "sendonly"):
            return
        if self._transport is None or self._transport.is_closing():
            return
        if self._resumed:
            packet = dataclasses.replace(packet, marker=True)
            self._resumed = False
        self._transport.sendto(packet.to_bytes(), self.remote)
        self._seq = seq_add(self._seq, 1)
        self._stats.packets_out += 1

    # ----------------------------------------------------------------- close

    async def close(self) -> None:
        """Stop the tick, close the socket and give the port back (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._room.set()  # wake blocked senders; they raise ConnectionError
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._dtmf_out.cancel()
        if self._transport is not None:
            self._transport.close()
        if self._ports is not None:
            self._ports.release(self.local_port)
