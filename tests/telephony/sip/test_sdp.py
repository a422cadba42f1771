"""SDP offer/answer for one G.711 stream (RFC 3264 direction rules, RFC 4733 events)."""

from __future__ import annotations

import pytest

from telephony.sip.sdp import SdpError, build_answer, negotiate, parse_offer
from tests.telephony.sip.messages import OFFER

# RFC 4317 section 2.1-style offer: audio plus video, several codecs.
AUDIO_VIDEO = (
    "v=0\r\no=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\r\ns=\r\n"
    "c=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "m=audio 49170 RTP/AVP 97 8 96\r\na=rtpmap:97 iLBC/8000\r\n"
    "a=rtpmap:96 telephone-event/8000\r\n"
    "m=video 51372 RTP/AVP 31\r\na=rtpmap:31 H261/90000\r\n"
)


def answer_lines(offer_text: str) -> tuple[object, list[str]]:
    offer = parse_offer(offer_text.encode())
    agreed = negotiate(offer)
    body = build_answer(offer, agreed, host="127.0.0.1", port=10002, session_id=7, version=1)
    return agreed, body.decode().split("\r\n")


def test_first_offered_g711_codec_wins_and_dtmf_payload_type_is_echoed():
    agreed, lines = answer_lines(OFFER)
    assert agreed.encoding == "PCMU" and agreed.payload_type == 0
    assert agreed.dtmf_payload_type == 101
    assert agreed.remote == ("192.0.2.101", 49172) and agreed.direction == "sendrecv"
    assert "m=audio 10002 RTP/AVP 0 101" in lines
    assert "c=IN IP4 127.0.0.1" in lines
    assert {"a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000", "a=ptime:20"} <= set(lines)
    assert "a=sendrecv" in lines


def test_pcma_with_dynamic_event_type_and_rejected_video_keeps_m_line_count():
    agreed, lines = answer_lines(AUDIO_VIDEO)
    assert (agreed.encoding, agreed.payload_type, agreed.dtmf_payload_type) == ("PCMA", 8, 96)
    assert agreed.mime_type == "audio/PCMA"
    m_lines = [line for line in lines if line.startswith("m=")]
    assert m_lines == ["m=audio 10002 RTP/AVP 8 96", "m=video 0 RTP/AVP 31"]


def test_static_payload_types_need_no_rtpmap():
    offer = OFFER.replace("m=audio 49172 RTP/AVP 18 0 8 101", "m=audio 49172 RTP/AVP 8 0")
    offer = "\r\n".join(line for line in offer.split("\r\n") if "rtpmap:0" not in line)
    agreed, _ = answer_lines(offer)
    assert (agreed.encoding, agreed.dtmf_payload_type) == ("PCMA", None)


@pytest.mark.parametrize(
    ("attribute", "ours"),
    [
        ("a=sendonly", "recvonly"),
        ("a=recvonly", "sendonly"),
        ("a=inactive", "inactive"),
        ("a=sendrecv", "sendrecv"),
    ],
)
def test_direction_attributes_map_as_rfc3264_says(attribute, ours):
    agreed, lines = answer_lines(OFFER + attribute + "\r\n")
    assert agreed.direction == ours and f"a={ours}" in lines
    assert agreed.on_hold == (ours in ("recvonly", "inactive"))


def test_session_level_direction_applies_when_the_media_has_none():
    offer = OFFER.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n")
    agreed, _ = answer_lines(offer)
    assert agreed.direction == "recvonly"


def test_legacy_hold_with_zero_address():
    agreed, lines = answer_lines(OFFER.replace("c=IN IP4 192.0.2.101", "c=IN IP4 0.0.0.0"))
    assert agreed.on_hold and "a=recvonly" in lines


def test_no_common_codec_is_488():
    offer = OFFER.replace("RTP/AVP 18 0 8 101", "RTP/AVP 18 101")
    with pytest.raises(SdpError) as caught:
        negotiate(parse_offer(offer.encode()))
    assert caught.value.status == 488


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not sdp at all",
        b"v=0\r\nc=IN IP4 192.0.2.1\r\n",
        b"v=0\r\nc=IN IP4 atlanta.example.com\r\nm=audio 1 RTP/AVP 0\r\n",
        b"v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 99999 RTP/AVP 0\r\n",
        b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n",
    ],
    ids=["empty", "garbage", "no-m-line", "hostname", "bad-port", "no-address"],
)
def test_unusable_offers_raise_sdp_error(body):
    with pytest.raises(SdpError):
        negotiate(parse_offer(body))
