"""Literal SIP messages for the sans-I/O tests (shaped after RFC 3665's call flows)."""

from __future__ import annotations

ALICE = ("192.0.2.101", 5060)

OFFER = (
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.101\r\n"
    "t=0 0\r\n"
    "m=audio 49172 RTP/AVP 18 0 8 101\r\n"
    "a=rtpmap:18 G729/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=ptime:20\r\n"
)


def request(
    method: str,
    *,
    branch: str = "z9hG4bKnashds8",
    cseq: int = 1,
    call_id: str = "a84b4c76e66710@pc33.atlanta.example.com",
    to_tag: str = "",
    body: str = "",
    extra: str = "",
    uri: str = "sip:bot@192.0.2.4",
    cseq_method: str | None = None,
) -> bytes:
    """A request from Alice (RFC 3665 3.1 style); `extra` is more header lines."""
    to = "<sip:bot@192.0.2.4>" + (f";tag={to_tag}" if to_tag else "")
    text = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.101:5060;branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        f"To: {to}\r\n"
        'From: "Alice" <sip:+15551234567@atlanta.example.com>;tag=1928301774\r\n'
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {cseq_method or method}\r\n"
        "Contact: <sip:alice@192.0.2.101:5060>\r\n"
        f"{extra}"
    )
    if body:
        text += f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    else:
        text += "Content-Length: 0\r\n\r\n"
    return text.encode()


def invite(**kwargs: object) -> bytes:
    """The initial INVITE with a G.729/PCMU/telephone-event offer."""
    kwargs.setdefault("body", OFFER)
    return request("INVITE", **kwargs)  # type: ignore[arg-type]
