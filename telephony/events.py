"""Carrier-neutral events that every carrier codec produces.

Each carrier speaks its own wire format; the call logic should not care which one a
call came in on. Codecs translate wire messages into these small frozen dataclasses,
so the same Call, turn-taking and recording code serves every carrier.
Audio inside the bot is mono PCM16 (numpy int16) at 16 kHz; codecs convert at the edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

#: Sample rate of all audio inside the bot.
BOT_SAMPLE_RATE = 16_000
#: Samples in one 20 ms frame of bot audio.
BOT_FRAME_SAMPLES = BOT_SAMPLE_RATE // 50

PCM16 = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class MediaFormat:
    """The carrier's native audio format, as announced at stream start."""

    encoding: str
    sample_rate: int
    channels: int = 1


@dataclass(frozen=True, slots=True)
class CallStarted:
    """The carrier has connected a call and told us who it is."""

    carrier: str
    call_id: str
    stream_id: str
    account_id: str = ""
    media_format: MediaFormat = MediaFormat("audio/x-mulaw", 8000, 1)
    custom_parameters: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    tracks: tuple[str, ...] = ("inbound",)


@dataclass(frozen=True, slots=True)
class AudioIn:
    """Caller audio, already converted to bot PCM16 at 16 kHz.

    `timestamp_ms` is the carrier's media clock (ms since the stream started) where the
    carrier gives one, so that timing survives network jitter.
    """

    pcm: PCM16
    timestamp_ms: int | None = None
    sequence: int | None = None


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """The caller pressed a key."""

    digit: str


@dataclass(frozen=True, slots=True)
class MarkPlayed:
    """The carrier played all audio queued before this mark (or dropped it on clear)."""

    name: str


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The stream is over: the carrier said stop, or the connection went away."""

    reason: str


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """A message could not be understood.

    `fatal` errors mean the stream cannot continue (the server closes it cleanly);
    others are logged and counted, and the call goes on.
    """

    message: str
    fatal: bool = False


@dataclass(frozen=True, slots=True)
class ShutdownRequested:
    """The server is going down: say goodbye now and hang up (sent by the server, not a carrier)."""

    reason: str


Event = (
    CallStarted | AudioIn | DtmfDigit | MarkPlayed | CallEnded | ProtocolError | ShutdownRequested
)

WireMessage = str | bytes
