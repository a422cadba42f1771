"""The user agent server on literal datagrams and a fake clock: no sockets, no sleeps.

Each test plays the caller's side of an RFC 3665 call flow (3.1 successful call, 3.8
unsuccessful busy, 3.10 cancel...) and checks what the UAS sends back and reports.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.sip.fields import parse_name_addr, parse_via
from telephony.sip.message import Request, Response, parse
from telephony.sip.sdp import negotiate, parse_offer
from telephony.sip.transaction import (
    BadMessage,
    DialogEnded,
    DtmfInfo,
    IncomingCall,
    MediaChanged,
    Send,
    TransferResult,
)
from telephony.sip.uas import UserAgentServer
from tests.telephony.sip.messages import ALICE, OFFER, invite, request

CALL_ID = "a84b4c76e66710@pc33.atlanta.example.com"


def sent(actions) -> list[Request | Response]:
    return [parse(a.data) for a in actions if isinstance(a, Send)]


def statuses(actions) -> list[int]:
    return [m.status for m in sent(actions) if isinstance(m, Response)]


def of_type(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


@pytest.fixture
def uas():
    return UserAgentServer("192.0.2.4", 5060)


def answered(uas: UserAgentServer, extra: str = "") -> str:
    """Run INVITE -> 100 -> 180 -> 200 -> ACK; returns our To-tag."""
    actions = uas.receive(invite(extra=extra), ALICE, 0.0)
    assert statuses(actions) == [100] and of_type(actions, IncomingCall)
    assert statuses(uas.ringing(CALL_ID, 0.1)) == [180]
    ok = sent(uas.answer(CALL_ID, "192.0.2.4", 10000, 0.2))[0]
    tag = parse_name_addr(ok.headers.get("To") or "").tag
    assert uas.receive(request("ACK", branch="z9hG4bKack1", to_tag=tag), ALICE, 0.3) == []
    return tag


def test_successful_call_flow_and_caller_hangs_up(uas):
    actions = uas.receive(invite(), ALICE, 0.0)
    trying = sent(actions)[0]
    assert trying.status == 100 and parse_name_addr(trying.headers.get("To") or "").tag == ""
    call = of_type(actions, IncomingCall)[0]
    assert (call.call_id, call.caller, call.callee) == (CALL_ID, "+15551234567", "bot")
    assert call.agreed.encoding == "PCMU" and call.remote == ALICE
    ringing = sent(uas.ringing(CALL_ID, 0.1))[0]
    tag = parse_name_addr(ringing.headers.get("To") or "").tag
    assert ringing.status == 180 and tag
    ok = sent(uas.answer(CALL_ID, "192.0.2.4", 10000, 0.2))[0]
    assert ok.status == 200 and parse_name_addr(ok.headers.get("To") or "").tag == tag
    assert ok.headers.get("Contact") == "<sip:voicebot@192.0.2.4:5060>"
    assert ok.headers.get("Content-Type") == "application/sdp"
    answer = negotiate(parse_offer(ok.body))
    assert answer.remote == ("192.0.2.4", 10000) and answer.payload_type == 0
    assert "received" not in parse_via(ok.headers.get("Via") or "").params  # sent-by is right
    assert uas.receive(request("ACK", branch="z9hG4bKa", to_tag=tag), ALICE, 0.3) == []
    assert uas.tick(5.0) == []  # acknowledged: no more 200s
    bye = request("BYE", branch="z9hG4bKbye", cseq=2, to_tag=tag)
    actions = uas.receive(bye, ALICE, 6.0)
    assert statuses(actions) == [200] and of_type(actions, DialogEnded)[0].reason == "bye"
    again = uas.receive(bye, ALICE, 6.5)  # a retransmitted BYE gets the same 200
    assert statuses(again) == [200] and not of_type(again, DialogEnded)
    uas.tick(100.0)
    assert uas.dialogs == {}


def test_200_ok_is_retransmitted_with_timer_g_until_ack(uas):
    uas.receive(invite(), ALICE, 0.0)
    uas.answer(CALL_ID, "192.0.2.4", 10000, 0.0)
    times = [t / 10 for t in range(0, 80)]
    resent = [t for t in times if statuses(uas.tick(t)) == [200]]
    assert resent == [0.5, 1.5, 3.5, 7.5]  # T1, then doubling (T2 = 4 s caps later)
    dialog = uas.dialogs[CALL_ID]
    uas.receive(request("ACK", branch="z9hG4bKa", to_tag=dialog.local_tag), ALICE, 8.0)
    assert all(uas.tick(t) == [] for t in (11.5, 15.5, 20.0))


def test_no_ack_ends_the_call_with_a_bye_after_timer_h(uas):
    uas.receive(invite(), ALICE, 0.0)
    uas.answer(CALL_ID, "192.0.2.4", 10000, 0.0)
    actions = uas.tick(32.0)
    byes = [m for m in sent(actions) if isinstance(m, Request)]
    assert [m.method for m in byes] == ["BYE"]
    ok = Response(200, "OK", byes[0].headers.copy())
    ended = uas.receive(ok.serialize(), ALICE, 32.1)
    assert of_type(ended, DialogEnded)[0].reason == "no ACK"


def test_responses_go_back_to_the_source_and_note_it_in_via(uas):
    nat = ("198.51.100.9", 40000)
    data = invite().replace(b"192.0.2.101:5060;branch=", b"10.0.0.5:5060;rport;branch=")
    trying = uas.receive(data, nat, 0.0)[0]
    assert isinstance(trying, Send) and trying.addr == nat
    via = parse_via(parse(trying.data).headers.get("Via") or "")
    assert (via.params["received"], via.params["rport"]) == ("198.51.100.9", "40000")


def test_invite_retransmission_gets_the_last_response_again(uas):
    uas.receive(invite(), ALICE, 0.0)
    uas.ringing(CALL_ID, 0.1)
    assert statuses(uas.receive(invite(), ALICE, 0.2)) == [180]
    assert not of_type(uas.receive(invite(), ALICE, 0.2), IncomingCall)


def test_bot_hangs_up_with_bye_following_the_route_set(uas):
    rr = "Record-Route: <sip:192.0.2.50:5070;lr>, <sip:proxy2.example.com;lr>\r\n"
    answered(uas, extra=rr)
    actions = uas.hangup(CALL_ID, 1.0)
    bye = sent(actions)[0]
    assert isinstance(bye, Request) and bye.method == "BYE"
    assert bye.uri == "sip:alice@192.0.2.101:5060"  # the caller's Contact (remote target)
    assert bye.headers.get_all("Route") == [
        "<sip:192.0.2.50:5070;lr>",
        "<sip:proxy2.example.com;lr>",
    ]
    assert [a.addr for a in actions if isinstance(a, Send)] == [("192.0.2.50", 5070)]
    assert bye.headers.get("CSeq") == "1 BYE"
    assert parse_name_addr(bye.headers.get("To") or "").tag == "1928301774"
    assert [t for t in (1.5, 2.5, 4.5) if sent(uas.tick(t))] == [1.5, 2.5, 4.5]  # Timer E
    assert uas.hangup(CALL_ID, 5.0) == []  # idempotent
    ok = Response(200, "OK", bye.headers.copy()).serialize()
    assert of_type(uas.receive(ok, ("192.0.2.50", 5070), 5.0), DialogEnded)[0].reason == "hung up"


def test_bye_that_is_never_answered_ends_the_call_at_timer_f(uas):
    answered(uas)
    uas.hangup(CALL_ID, 1.0)
    ended = [a for t in range(2, 40) for a in uas.tick(float(t)) if isinstance(a, DialogEnded)]
    assert [e.reason for e in ended] == ["hung up"]


def test_hangup_before_the_ack_waits_for_it(uas):
    uas.receive(invite(), ALICE, 0.0)
    ok = sent(uas.answer(CALL_ID, "192.0.2.4", 10000, 0.0))[0]
    assert uas.hangup(CALL_ID, 0.1) == []
    tag = parse_name_addr(ok.headers.get("To") or "").tag
    actions = uas.receive(request("ACK", branch="z9hG4bKa", to_tag=tag), ALICE, 0.2)
    assert [m.method for m in sent(actions)] == ["BYE"]


def test_cancel_before_answer_gets_200_and_487(uas):
    uas.receive(invite(), ALICE, 0.0)
    uas.ringing(CALL_ID, 0.1)
    actions = uas.receive(request("CANCEL", cseq=1), ALICE, 0.5)
    assert sorted(statuses(actions)) == [200, 487]
    assert of_type(actions, DialogEnded)[0].reason == "cancelled"
    assert statuses(uas.tick(1.0)) == [487]  # resent until the ACK
    uas.receive(request("ACK", cseq=1), ALICE, 1.1)
    assert uas.tick(2.0) == [] and uas.answer(CALL_ID, "h", 1, 2.0) == []


def test_cancel_for_an_unknown_transaction_is_481(uas):
    assert statuses(uas.receive(request("CANCEL", call_id="nope"), ALICE, 0.0)) == [481]


@pytest.mark.parametrize(("status", "retry_after"), [(486, None), (503, 30)])
def test_at_capacity_the_call_is_refused(uas, status, retry_after):
    uas.receive(invite(), ALICE, 0.0)
    refused = sent(uas.reject(CALL_ID, status, 0.0, retry_after=retry_after))[0]
    assert refused.status == status
    assert refused.headers.get("Retry-After") == (str(retry_after) if retry_after else None)
    uas.receive(request("ACK", cseq=1), ALICE, 0.1)
    assert uas.tick(1.0) == []


def test_no_common_codec_is_488_without_an_incoming_call(uas):
    body = OFFER.replace("RTP/AVP 18 0 8 101", "RTP/AVP 18")
    actions = uas.receive(invite(body=body), ALICE, 0.0)
    assert statuses(actions) == [488] and not of_type(actions, IncomingCall)


def test_options_keepalive_and_unknown_methods(uas):
    ok = sent(uas.receive(request("OPTIONS", call_id="ka"), ALICE, 0.0))[0]
    assert ok.status == 200 and "INVITE" in (ok.headers.get("Allow") or "")
    assert ok.headers.get("Accept") == "application/sdp"
    assert statuses(uas.receive(request("PUBLISH", call_id="x"), ALICE, 0.0)) == [501]
    assert statuses(uas.receive(request("BYE", call_id="x", to_tag="t"), ALICE, 0.0)) == [481]
    assert uas.receive(request("ACK", call_id="x", to_tag="t"), ALICE, 0.0) == []
    assert uas.receive(b"\r\n\r\n", ALICE, 0.0) == []


def test_options_gets_503_while_draining_so_proxies_stop_routing_here(uas):
    uas.unavailable_retry_after = 30
    busy = sent(uas.receive(request("OPTIONS", call_id="probe"), ALICE, 0.0))[0]
    assert busy.status == 503 and busy.headers.get("Retry-After") == "30"


def test_require_of_an_unknown_extension_is_420(uas):
    actions = uas.receive(invite(extra="Require: 100rel\r\n"), ALICE, 0.0)
    refused = sent(actions)[0]
    assert refused.status == 420 and refused.headers.get("Unsupported") == "100rel"


def test_reinvite_puts_the_call_on_hold_and_resumes(uas):
    tag = answered(uas)
    hold = OFFER + "a=sendonly\r\n"
    actions = uas.receive(invite(branch="z9hG4bKre1", cseq=2, to_tag=tag, body=hold), ALICE, 5.0)
    ok = sent(actions)[0]
    assert ok.status == 200 and b"a=recvonly" in ok.body and b"o=voicebot" in ok.body
    assert of_type(actions, MediaChanged)[0].agreed.on_hold
    uas.receive(request("ACK", branch="z9hG4bKa2", cseq=2, to_tag=tag), ALICE, 5.1)
    actions = uas.receive(invite(branch="z9hG4bKre2", cseq=3, to_tag=tag), ALICE, 9.0)
    assert not of_type(actions, MediaChanged)[0].agreed.on_hold
    versions = [line for line in sent(actions)[0].body.decode().split("\r\n") if line[:2] == "o="]
    assert versions[0].split()[2] == "3"  # answer 1, hold 2, resume 3


def test_in_dialog_request_with_old_cseq_is_500(uas):
    tag = answered(uas)
    assert statuses(uas.receive(request("OPTIONS", cseq=1, to_tag=tag), ALICE, 1.0)) == [500]


def test_sip_info_dtmf(uas):
    tag = answered(uas)
    info = request(
        "INFO", cseq=2, to_tag=tag, extra="Content-Type: application/dtmf-relay\r\n"
    ).replace(b"Content-Length: 0\r\n\r\n", b"Content-Length: 21\r\n\r\nSignal=5\r\nDuration=160")
    actions = uas.receive(info, ALICE, 1.0)
    assert statuses(actions) == [200] and of_type(actions, DtmfInfo)[0].digit == "5"


def refer_sent(uas) -> tuple[str, Request]:
    tag = answered(uas)
    actions = uas.refer(CALL_ID, "sip:agent@192.0.2.77", 1.0)
    refer = sent(actions)[0]
    assert isinstance(refer, Request) and refer.method == "REFER"
    assert refer.headers.get("Refer-To") == "<sip:agent@192.0.2.77>"
    return tag, refer


def notify(tag: str, cseq: int, frag: str, state: str = "active") -> bytes:
    extra = f"Event: refer\r\nSubscription-State: {state}\r\nContent-Type: message/sipfrag\r\n"
    text = request("NOTIFY", branch=f"z9hG4bKn{cseq}", cseq=cseq, to_tag=tag, extra=extra)
    return text.replace(
        b"Content-Length: 0\r\n\r\n", f"Content-Length: {len(frag)}\r\n\r\n{frag}".encode()
    )


def test_refer_transfer_succeeds_then_we_hang_up(uas):
    tag, refer = refer_sent(uas)
    accepted = Response(202, "Accepted", refer.headers.copy()).serialize()
    assert uas.receive(accepted, ALICE, 1.1) == []
    assert statuses(uas.receive(notify(tag, 2, "SIP/2.0 100 Trying"), ALICE, 1.2)) == [200]
    actions = uas.receive(notify(tag, 3, "SIP/2.0 200 OK", "terminated"), ALICE, 3.0)
    assert statuses(actions) == [200]
    assert of_type(actions, TransferResult)[0].ok
    assert [m.method for m in sent(actions) if isinstance(m, Request)] == ["BYE"]


@pytest.mark.parametrize("how", ["refused", "target-busy", "timeout", "no-notify"])
def test_refer_transfer_failures_are_reported(uas, how):
    tag, refer = refer_sent(uas)
    if how == "refused":
        actions = uas.receive(
            Response(403, "Forbidden", refer.headers.copy()).serialize(), ALICE, 1.1
        )
    elif how == "target-busy":
        uas.receive(Response(202, "Accepted", refer.headers.copy()).serialize(), ALICE, 1.1)
        actions = uas.receive(notify(tag, 2, "SIP/2.0 486 Busy Here", "terminated"), ALICE, 2.0)
    elif how == "timeout":
        actions = [a for t in range(2, 40) for a in uas.tick(float(t))]
    else:
        uas.receive(Response(202, "Accepted", refer.headers.copy()).serialize(), ALICE, 1.1)
        actions = [a for t in range(2, 40) for a in uas.tick(float(t))]
    results = of_type(actions, TransferResult)
    assert len(results) == 1 and not results[0].ok
    assert uas.dialogs[CALL_ID].state == "confirmed"  # the call is still ours


def test_malformed_requests_get_400_or_are_dropped(uas):
    bad_length = invite().replace(b"Content-Length: ", b"Content-Length: 9")
    actions = uas.receive(bad_length, ALICE, 0.0)
    assert statuses(actions) == [400] and of_type(actions, BadMessage)[0].answered
    assert "Content-Length" in (sent(actions)[0].headers.get("Warning") or "")
    truncated = b"INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: c"
    actions = uas.receive(truncated, ALICE, 0.0)
    assert of_type(actions, BadMessage) and not sent(actions)
    huge = invite(extra="X-Pad: " + "a" * 20_000 + "\r\n")
    actions = uas.receive(huge, ALICE, 0.0)
    assert statuses(actions) in ([413], []) and of_type(actions, BadMessage)
    bad_contact = invite(extra="").replace(b"Contact: <sip:alice@", b"Contact: <sip:alice@[")
    assert statuses(uas.receive(bad_contact.replace(b">", b"", 1), ALICE, 0.0)) == [400]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 600), st.binary(min_size=1, max_size=12), st.sampled_from(["INVITE", "BYE"]))
def test_fuzz_receive_never_raises(at, junk, method):
    uas = UserAgentServer("192.0.2.4", 5060)
    tag = answered(uas)
    data = request(method, cseq=5, to_tag=tag if method == "BYE" else "", body=OFFER)
    uas.receive(data[:at] + junk + data[at + len(junk) :], ALICE, 1.0)
    uas.tick(40.0)
