"""SIP message parsing and serialization on literal messages, plus a fuzzer.

The RFC 3261 examples are copied from the RFC text (section 24, the Alice-Bob INVITE);
malformed variants check that every failure is a `SipParseError` with the status the
request deserves, and hypothesis checks that nothing else ever escapes.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.sip.fields import parse_name_addr, parse_uri, parse_via, split_host_port, user_part
from telephony.sip.message import (
    MAX_HEADERS,
    MAX_MESSAGE_BYTES,
    Request,
    Response,
    SipParseError,
    canonical_name,
    parse,
)
from tests.telephony.sip.messages import invite

# RFC 3261 section 24.2, message F1 (with its body).
RFC_INVITE = (
    b"INVITE sip:bob@biloxi.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.com>\r\n"
    b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\r"
)


def test_rfc3261_invite_parses():
    message = parse(RFC_INVITE)
    assert isinstance(message, Request)
    assert (message.method, message.uri) == ("INVITE", "sip:bob@biloxi.com")
    assert message.headers.get("call-id") == "a84b4c76e66710"
    assert message.headers.get("CSEQ") == "314159 INVITE"
    assert message.body == b"v=0\r"
    via = parse_via(message.headers.get("Via") or "")
    assert (via.transport, via.host, via.port, via.branch) == (
        "UDP",
        "pc33.atlanta.com",
        None,
        "z9hG4bKnashds8",
    )
    assert parse_name_addr(message.headers.get("From") or "").tag == "1928301774"


def test_serialize_round_trips_and_recomputes_content_length():
    message = parse(RFC_INVITE)
    message.body = b"v=0\r\n"
    again = parse(message.serialize())
    assert isinstance(again, Request) and again.body == b"v=0\r\n"
    assert again.headers.get("Content-Length") == "5"
    assert again.headers.items[:3] == message.headers.items[:3]


def test_response_status_line():
    data = (
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@h>;tag=x\r\n"
        b"From: <sip:a@h>;tag=y\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse(data)
    assert isinstance(message, Response) and (message.status, message.reason) == (180, "Ringing")


def test_compact_forms_and_folded_headers():
    data = (
        b"OPTIONS sip:bot@h SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa\r\n"
        b"f: <sip:a@h>;tag=1\r\nt: <sip:b@h>\r\ni: compact-1\r\n"
        b"CSeq: 7 OPTIONS\r\n"
        b"Subject: lunch\r\n  tomorrow\r\n"
        b"l: 0\r\n\r\n"
    )
    message = parse(data)
    assert message.headers.get("Call-ID") == "compact-1"
    assert message.headers.get("Via", "").startswith("SIP/2.0/UDP 10.0.0.1")
    assert message.headers.get("Subject") == "lunch tomorrow"
    assert canonical_name("i") == "Call-ID" and canonical_name("cseq") == "CSeq"


def test_comma_separated_vias_and_routes_split_but_uris_do_not():
    extra = "Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    message = parse(invite(extra=extra))
    assert message.headers.get_all("Record-Route") == [
        "<sip:p1.example.com;lr>",
        "<sip:p2.example.com;lr>",
    ]


def test_body_longer_than_content_length_is_cut_and_missing_length_takes_the_rest():
    base = b"BYE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@h>;tag=x\r\n"
    base += b"From: <sip:a@h>;tag=y\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n"
    assert parse(base + b"Content-Length: 2\r\n\r\nabcd").body == b"ab"
    assert parse(base + b"\r\nabcd").body == b"abcd"


@pytest.mark.parametrize(
    ("data", "status", "answerable"),
    [
        (b"INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: c", 400, False),
        (invite().replace(b"Content-Length: ", b"Content-Length: 9"), 400, True),
        (invite().replace(b"Content-Length: ", b"Content-Length: x"), 400, True),
        (invite().replace(b"CSeq: 1 INVITE", b"CSeq: one INVITE"), 400, True),
        (invite().replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE"), 400, True),
        (invite().replace(b"Call-ID:", b"X-Call-ID:"), 400, True),
        (invite().replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505, True),
        (invite().replace(b"Max-Forwards: 70", b"Max-Forwards 70"), 400, True),
        (b"\xff\xfe garbage\r\n\r\n", 400, False),
        (b"HELLO\r\n\r\n", 400, False),
    ],
    ids=[
        "truncated-headers",
        "content-length-too-big",
        "content-length-not-a-number",
        "bad-cseq",
        "cseq-method-mismatch",
        "missing-call-id",
        "wrong-version",
        "header-without-colon",
        "not-utf8",
        "bad-start-line",
    ],
)
def test_malformed_messages_raise_a_typed_error(data, status, answerable):
    with pytest.raises(SipParseError) as caught:
        parse(data)
    assert caught.value.status == status
    assert (caught.value.partial is not None) == answerable


def test_limits_on_size_and_header_count():
    with pytest.raises(SipParseError) as caught:
        parse(invite(extra="X-Pad: " + "a" * MAX_MESSAGE_BYTES + "\r\n"))
    assert caught.value.status == 413
    many = "".join(f"X-H{i}: v\r\n" for i in range(MAX_HEADERS + 1))
    with pytest.raises(SipParseError):
        parse(invite(extra=many))


def test_uri_and_address_helpers():
    uri = parse_uri("sip:+15551234567@[2001:db8::1]:5080;transport=udp;lr")
    assert (uri.user, uri.host, uri.port, uri.loose_route) == (
        "+15551234567",
        "2001:db8::1",
        5080,
        True,
    )
    assert user_part('"Alice" <sip:+1555@atlanta.example.com>;tag=1') == "+1555"
    assert user_part("garbage") == ""
    assert parse_name_addr("sip:a@h;tag=9").tag == "9"
    with pytest.raises(ValueError):
        split_host_port("h:99999")
    with pytest.raises(ValueError):
        parse_via("TCP nonsense")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_random_bytes_only_ever_raise_sip_parse_error(data):
    with contextlib.suppress(SipParseError):
        parse(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(invite()) - 1), st.binary(min_size=0, max_size=8))
def test_fuzz_mutated_invites_only_ever_raise_sip_parse_error(at, junk):
    data = invite()
    with contextlib.suppress(SipParseError):
        parse(data[:at] + junk + data[at + len(junk) :])
