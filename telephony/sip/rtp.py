"""RTP packets (RFC 3550 section 5.1): parse and build, plus wrap-around arithmetic.

Sans-I/O and allocation-light, because every call handles 50 packets a second in each
direction. Anything on a UDP port can be junk (scanners, a stray RTCP packet, a
truncated datagram), so `parse_rtp` raises only `RtpError`; the media layer turns it
into a counted drop, never a crash. Header extensions (RFC 8285 and older profiles)
are skipped by their declared length, CSRCs are kept, padding is stripped.

Sequence numbers are 16 bits and wrap every 21 minutes at 50 packets/s; timestamps
are 32 bits. `seq_diff`/`ts_diff` give the signed distance the short way round the
circle, and `SequenceExtender` turns wrapping numbers into a monotonic count so a
jitter buffer can sort packets across the wrap.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTP_VERSION = 2
HEADER_BYTES = 12
SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
#: A sequence jump bigger than this is a new stream (restart), not loss (RFC 3550 A.1).
MAX_DROPOUT = 3000

_HEADER = struct.Struct("!BBHII")
_EXTENSION = struct.Struct("!HH")


class RtpError(ValueError):
    """A datagram is not a valid RTP packet (counted and dropped by callers)."""


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet; `payload` excludes header, CSRCs, extension and padding."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()

    def to_bytes(self, *, padding: int = 0) -> bytes:
        """Serialize (no extension header; optional padding for tests and SRTP-like use)."""
        if not 0 <= self.payload_type < 128:
            raise ValueError(f"payload type {self.payload_type} is not 0-127")
        if len(self.csrcs) > 15:
            raise ValueError("at most 15 CSRCs fit in an RTP header")
        if not 0 <= padding < 256:
            raise ValueError(f"padding {padding} is not 0-255")
        first = (RTP_VERSION << 6) | (0x20 if padding else 0) | len(self.csrcs)
        second = (0x80 if self.marker else 0) | self.payload_type
        header = _HEADER.pack(
            first, second, self.sequence % SEQ_MOD, self.timestamp % TS_MOD, self.ssrc % TS_MOD
        )
        csrcs = b"".join(struct.pack("!I", c % TS_MOD) for c in self.csrcs)
        pad = bytes(padding - 1) + bytes([padding]) if padding else b""
        return header + csrcs + self.payload + pad


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one datagram; raises `RtpError` (only) when it is not valid RTP."""
    if len(data) < HEADER_BYTES:
        raise RtpError(f"{len(data)} bytes is shorter than an RTP header")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != RTP_VERSION:
        raise RtpError(f"RTP version {first >> 6}, expected 2")
    csrc_count = first & 0x0F
    offset = HEADER_BYTES + 4 * csrc_count
    end = len(data)
    if offset > end:
        raise RtpError(f"{csrc_count} CSRCs do not fit in {end} bytes")
    csrcs = struct.unpack_from(f"!{csrc_count}I", data, HEADER_BYTES) if csrc_count else ()
    if first & 0x10:  # extension: 16-bit profile, 16-bit length in 32-bit words
        if offset + 4 > end:
            raise RtpError("extension header is truncated")
        _profile, words = _EXTENSION.unpack_from(data, offset)
        offset += 4 + 4 * words
        if offset > end:
            raise RtpError(f"extension of {words} words runs past the packet")
    if first & 0x20:  # padding: the last byte counts the padding bytes, itself included
        pad = data[-1]
        if pad == 0 or offset + pad > end:
            raise RtpError(f"padding of {pad} bytes is invalid")
        end -= pad
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=bytes(data[offset:end]),
        marker=bool(second & 0x80),
        csrcs=tuple(csrcs),
    )


def seq_diff(a: int, b: int) -> int:
    """Signed distance a - b between 16-bit sequence numbers, in [-32768, 32767]."""
    return (a - b + SEQ_MOD // 2) % SEQ_MOD - SEQ_MOD // 2


def ts_diff(a: int, b: int) -> int:
    """Signed distance a - b between 32-bit RTP timestamps, in [-2**31, 2**31)."""
    return (a - b + TS_MOD // 2) % TS_MOD - TS_MOD // 2


def seq_add(seq: int, n: int) -> int:
    """`seq + n` modulo 2**16."""
    return (seq + n) % SEQ_MOD


def ts_add(ts: int, n: int) -> int:
    """`ts + n` modulo 2**32."""
    return (ts + n) % TS_MOD


class SequenceExtender:
    """Turns 16-bit sequence numbers into a monotonic extended count (RFC 3550 A.1).

    The first packet defines the origin. A jump larger than `MAX_DROPOUT` either way
    means the sender restarted; `extend` then returns None and the caller re-syncs
    (after `reset`), rather than sorting the new stream 30,000 packets into the future.
    """

    def __init__(self) -> None:
        self._highest: int | None = None

    @property
    def highest(self) -> int | None:
        """The highest extended sequence number seen so far."""
        return self._highest

    def reset(self) -> None:
        """Forget the origin; the next packet starts a new count."""
        self._highest = None

    def extend(self, sequence: int) -> int | None:
        """Extended number for `sequence`, or None when it is too far from the stream."""
        if self._highest is None:
            self._highest = sequence
            return sequence
        delta = seq_diff(sequence, self._highest % SEQ_MOD)
        if abs(delta) > MAX_DROPOUT:
            return None
        extended = self._highest + delta
        self._highest = max(self._highest, extended)
        return extended
