"""RTP packet parse/build (RFC 3550 5.1) and wrap-around arithmetic."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.sip.rtp import (
    RtpError,
    RtpPacket,
    SequenceExtender,
    parse_rtp,
    seq_add,
    seq_diff,
    ts_add,
    ts_diff,
)

# A literal PCMU packet: V=2, M=1, PT=0, seq=0x1234, ts=0x00000A00, SSRC=0xDEADBEEF.
LITERAL = bytes.fromhex("8080123400000a00deadbeef") + b"\xff" * 160


def test_parse_literal_packet() -> None:
    packet = parse_rtp(LITERAL)
    assert packet == RtpPacket(0, 0x1234, 0xA00, 0xDEADBEEF, b"\xff" * 160, marker=True)
    assert packet.to_bytes() == LITERAL


def test_round_trip_with_csrcs_and_padding() -> None:
    packet = RtpPacket(101, 65535, 2**32 - 1, 7, b"\x05\x8a\x00\xa0", csrcs=(1, 2, 3))
    data = packet.to_bytes(padding=4)
    assert data[0] == 0x80 | 0x20 | 3
    assert parse_rtp(data) == packet


def test_extension_header_is_skipped() -> None:
    header = bytes.fromhex("900800010000000000000001")
    extension = struct.pack("!HH", 0xBEDE, 2) + b"\x10\xaa\x00\x00" + b"\x00" * 4
    packet = parse_rtp(header + extension + b"payload")
    assert packet.payload == b"payload"
    assert packet.payload_type == 8


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter"),
        (b"\x80\x00\x00", "shorter"),
        (bytes.fromhex("400000010000000000000001"), "version"),
        (bytes.fromhex("8f0000010000000000000001"), "CSRC"),
        (bytes.fromhex("900000010000000000000001") + b"\x00\x00", "truncated"),
        (bytes.fromhex("900000010000000000000001") + b"\x00\x00\x00\x09", "past"),
        (bytes.fromhex("a00000010000000000000001") + b"ab\x00", "padding"),
        (bytes.fromhex("a00000010000000000000001") + b"ab\x09", "padding"),
    ],
)
def test_malformed_packets_raise_rtp_error(data: bytes, reason: str) -> None:
    with pytest.raises(RtpError, match=reason):
        parse_rtp(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_datagrams_only_raise_rtp_error(data: bytes) -> None:
    try:
        packet = parse_rtp(data)
    except RtpError:
        return
    assert len(packet.payload) <= len(data) - 12


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 127),
    st.integers(0, 65535),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=200),
    st.booleans(),
    st.lists(st.integers(0, 2**32 - 1), max_size=15),
    st.integers(0, 255),
)
def test_built_packets_parse_back(pt, seq, ts, ssrc, payload, marker, csrcs, padding) -> None:
    packet = RtpPacket(pt, seq, ts, ssrc, payload, marker, tuple(csrcs))
    assert parse_rtp(packet.to_bytes(padding=padding)) == packet


def test_wrap_around_arithmetic() -> None:
    assert seq_diff(2, 65534) == 4
    assert seq_diff(65534, 2) == -4
    assert seq_add(65535, 1) == 0
    assert ts_diff(10, 2**32 - 150) == 160
    assert ts_add(2**32 - 80, 160) == 80


def test_sequence_extender_crosses_the_wrap_and_detects_jumps() -> None:
    extender = SequenceExtender()
    assert [extender.extend(s) for s in (65534, 65535, 1, 0, 2)] == [
        65534,
        65535,
        65537,
        65536,
        65538,
    ]
    assert extender.highest == 65538
    assert extender.extend(40000) is None  # a restart, not 25,000 lost packets
