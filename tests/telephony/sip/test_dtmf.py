"""RFC 4733 telephone-events: parse, one digit per press, and generation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telephony.sip.dtmf import (
    DTMF_KEYS,
    DtmfError,
    DtmfReceiver,
    DtmfSender,
    TelephoneEvent,
    digit_packets,
    parse_event,
)


def test_parse_literal_payload() -> None:
    # Event 9, end bit, volume 10, duration 1600 (RFC 4733 2.3 layout).
    event = parse_event(bytes.fromhex("098a0640"))
    assert event == TelephoneEvent(9, True, 10, 1600)
    assert event.digit == "9"
    assert TelephoneEvent(11, False, 0, 0).digit == "#"
    assert TelephoneEvent(16, False, 0, 0).digit is None  # hook flash


def test_short_payload_is_an_error() -> None:
    with pytest.raises(DtmfError):
        parse_event(b"\x01\x02")


@given(st.binary(max_size=12))
def test_fuzzed_payloads_only_raise_dtmf_error(data: bytes) -> None:
    try:
        event = parse_event(data)
    except DtmfError:
        return
    reserved_bit_cleared = bytes([data[0], data[1] & 0xBF]) + data[2:4]
    assert event.to_bytes() == reserved_bit_cleared


def test_three_starts_and_three_ends_are_one_digit() -> None:
    receiver = DtmfReceiver()
    press = [TelephoneEvent(5, False, 10, d).to_bytes() for d in (160, 320, 480)]
    press += [TelephoneEvent(5, True, 10, 800).to_bytes()] * 3
    digits = [receiver.receive(48000, payload) for payload in press]
    assert digits == ["5", None, None, None, None, None]
    assert receiver.duplicates == 5
    # The same key pressed again is a new press (new timestamp).
    assert receiver.receive(49600, press[0]) == "5"


def test_press_seen_only_through_its_end_packets_still_counts() -> None:
    receiver = DtmfReceiver()
    end = TelephoneEvent(11, True, 10, 800).to_bytes()
    assert [receiver.receive(7, end) for _ in range(3)] == ["#", None, None]


def test_non_dtmf_events_are_ignored() -> None:
    assert DtmfReceiver().receive(0, TelephoneEvent(16, False, 10, 160).to_bytes()) is None


@pytest.mark.parametrize("digit", list(DTMF_KEYS))
def test_generated_press_round_trips(digit: str) -> None:
    packets = digit_packets(digit, duration_ms=100)
    events = [parse_event(p.payload) for p in packets]
    assert [p.marker for p in packets] == [True] + [False] * 7
    assert [e.end for e in events] == [False] * 5 + [True] * 3
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800, 800]
    receiver = DtmfReceiver()
    assert [d for p in packets if (d := receiver.receive(1234, p.payload))] == [digit]


@pytest.mark.parametrize("bad", ["", "12", "E", "x"])
def test_generating_a_non_key_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="DTMF"):
        digit_packets(bad)


def test_sender_gives_one_packet_per_tick_with_the_press_timestamp() -> None:
    sender = DtmfSender()
    finished: list[tuple[str, bool]] = []
    sender.add("1", lambda sent: finished.append(("1", sent)), duration_ms=40)
    sender.add("2", lambda sent: finished.append(("2", sent)), duration_ms=40)
    sent = []
    tick = 1000
    while (item := sender.next_packet(tick)) is not None:
        sent.append(item)
        tick += 160
    assert [ts for _, ts in sent] == [1000] * 5 + [1800] * 5
    receiver = DtmfReceiver()
    assert [d for p, ts in sent if (d := receiver.receive(ts, p.payload))] == ["1", "2"]
    assert finished == [("1", True), ("2", True)] and not sender

    sender.add("3", lambda ok: finished.append(("3", ok)))
    sender.cancel()
    assert finished[-1] == ("3", False) and sender.next_packet(0) is None
