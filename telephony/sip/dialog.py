"""One SIP call as the answering side sees it: the INVITE transaction plus the dialog.

A plain state machine (sans-I/O): methods take a request or the time and return
`Action`s. States: `early` (INVITE received, no final answer), `accepted` (200 OK
sent, resent on Timer G until the ACK), `confirmed` (ACK seen), `ended`. An ended
dialog lingers for 64*T1 so late retransmissions (an INVITE, an ACK) are absorbed
instead of being answered 481. Requests we send (BYE, REFER) follow the route set
that the INVITE's Record-Route built (RFC 3261 12.1.1), so calls work behind a proxy
such as kamailio.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from telephony.sip.fields import (
    is_ip_literal,
    parse_name_addr,
    parse_uri,
    parse_via,
    user_part,
)
from telephony.sip.message import Headers, Request, Response, parse_cseq
from telephony.sip.sdp import Negotiated, Offer, SdpError, build_answer, negotiate, parse_offer
from telephony.sip.transaction import (
    TIMEOUT,
    Action,
    Addr,
    ClientTransaction,
    DialogEnded,
    DtmfInfo,
    IncomingCall,
    MediaChanged,
    ResponseCache,
    Send,
    ServerInvite,
    TransferResult,
    new_branch,
    new_tag,
    transaction_key,
)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, NOTIFY, INFO"
_DTMF_KEYS = "0123456789*#ABCD"


@dataclass(frozen=True, slots=True)
class Local:
    """How we name ourselves in Via and Contact (the address peers can reach)."""

    host: str
    port: int
    user: str = "voicebot"

    @property
    def contact(self) -> str:
        """Our Contact header value."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"<sip:{self.user}@{host}:{self.port}>"


def _addr_of(uri: str, default_port: int = 5060) -> Addr | None:
    """Where a SIP URI points, if it names an IP address (we never resolve names here)."""
    try:
        parsed = parse_uri(parse_name_addr(uri).uri)
    except ValueError:
        return None
    if not is_ip_literal(parsed.host):
        return None
    return parsed.host, parsed.port or default_port


class Dialog:
    """The INVITE server transaction and the dialog it creates, for one Call-ID."""

    def __init__(
        self,
        invite: Request,
        source: Addr,
        local: Local,
        cache: ResponseCache,
        now: float,
        *,
        transfer_timeout_s: float = 30.0,
    ) -> None:
        headers = invite.headers
        self.call_id = headers.get("Call-ID") or ""
        self.invite = invite
        self.source = source
        self.local = local
        self.cache = cache
        self.local_tag = new_tag()
        self.remote_cseq = parse_cseq(headers.get("CSeq"))[0]
        self.local_cseq = 0
        #: The route set, in the order of the INVITE's Record-Route (RFC 3261 12.1.1).
        self.route_set = headers.get_all("Record-Route")
        target = headers.get("Contact") or headers.get("From") or ""
        self.remote_target = parse_name_addr(target).uri
        self.state = "early"
        self.txn = ServerInvite(transaction_key(invite), self.remote_cseq)
        self.offer: Offer | None = None
        self.agreed: Negotiated | None = None
        self.media: Addr | None = None
        self.session_id = random.randrange(1, 2**31)
        self.version = 0
        self.clients: dict[str, ClientTransaction] = {}
        self.bye_reason = ""
        self.pending_hangup: str | None = None
        self.awaiting_answer = False
        self.transfer: str | None = None
        self.transfer_deadline = 0.0
        self.transfer_timeout_s = transfer_timeout_s
        self.end_reason: str | None = None
        self.linger_until = 0.0
        self.created = now

    # ---------------------------------------------------------------- helpers

    @property
    def peer(self) -> Addr:
        """Where our in-dialog requests go: the first route, else the remote target."""
        if self.route_set:
            addr = _addr_of(self.route_set[0])
            if addr is not None:
                return addr
        return _addr_of(self.remote_target) or self.source

    def _respond(
        self, request: Request, status: int, source: Addr, now: float, **kw: object
    ) -> Send:
        return self.cache.respond(request, status, source, now, to_tag=self.local_tag, **kw)

    def _answer_invite(self, status: int, now: float, **kw: object) -> Send:
        """A response to the current INVITE transaction (remembered for resends)."""
        if 100 < status < 300:
            kw.setdefault("extra", [("Contact", self.local.contact), ("Allow", ALLOW)])
        send = self._respond(self.invite, status, self.source, now, **kw)
        self.txn.respond(send, status, now)
        return send

    def _end(self, reason: str, now: float) -> list[Action]:
        if self.end_reason is not None:
            return []
        self.state = "ended"
        self.end_reason = reason
        self.linger_until = now + TIMEOUT
        return [DialogEnded(self.call_id, reason)]

    def finished(self, now: float) -> bool:
        """True once the dialog is over and late retransmissions can no longer arrive."""
        return self.state == "ended" and now >= self.linger_until and not self.clients

    def _request(self, method: str, now: float, extra: list[tuple[str, str]]) -> Send:
        """Send an in-dialog request as a client transaction (RFC 3261 12.2.1.1)."""
        self.local_cseq += 1
        branch = new_branch()
        host = f"[{self.local.host}]" if ":" in self.local.host else self.local.host
        headers = Headers()
        headers.add("Via", f"SIP/2.0/UDP {host}:{self.local.port};branch={branch};rport")
        headers.add("Max-Forwards", "70")
        headers.add("From", f"{self.invite.headers.get('To')};tag={self.local_tag}")
        headers.add("To", self.invite.headers.get("From") or "")
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self.local_cseq} {method}")
        for route in self.route_set:
            headers.add("Route", route)
        headers.add("Contact", self.local.contact)
        for name, value in extra:
            headers.add(name, value)
        data = Request(method, self.remote_target, headers).serialize()
        self.clients[branch] = ClientTransaction.start(method, branch, data, self.peer, now)
        return Send(data, self.peer)

    # ----------------------------------------------------------- INVITE side

    def start(self, now: float) -> list[Action]:
        """The first INVITE: 100 Trying and an `IncomingCall`, or a final error answer."""
        try:
            self.offer = parse_offer(self.invite.body)
            self.agreed = negotiate(self.offer)
        except SdpError as exc:
            return self.reject(exc.status, now, warning=exc.reason)
        headers = self.invite.headers
        trying = self._respond(self.invite, 100, self.source, now)
        self.txn.respond(trying, 100, now)
        caller = user_part(headers.get("From"))
        callee = user_part(headers.get("To"))
        return [trying, IncomingCall(self.call_id, self.agreed, caller, callee, self.source)]

    def ringing(self, now: float) -> list[Action]:
        """180 Ringing (with our tag: an early dialog)."""
        if self.state != "early" or self.txn.final:
            return []
        return [self._answer_invite(180, now)]

    def answer(self, media_host: str, media_port: int, now: float) -> list[Action]:
        """200 OK with the SDP answer; resent until the ACK arrives."""
        if self.state != "early" or self.txn.final or self.offer is None or self.agreed is None:
            return []
        self.media = (media_host, media_port)
        self.state = "accepted"
        return [self._answer_invite(200, now, body=self._sdp(self.offer, self.agreed))]

    def _sdp(self, offer: Offer, agreed: Negotiated) -> bytes:
        assert self.media is not None
        self.version += 1
        host, port = self.media
        return build_answer(
            offer, agreed, host=host, port=port, session_id=self.session_id, version=self.version
        )

    def reject(
        self, status: int, now: float, *, retry_after: int | None = None, warning: str = ""
    ) -> list[Action]:
        """A final error answer to the INVITE (486, 503, 488...); ends the call."""
        if self.txn.final:
            return []
        extra = [("Retry-After", str(retry_after))] if retry_after is not None else []
        if warning:
            extra.append(("Warning", f'399 voicebot "{warning[:100]}"'))
        actions: list[Action] = [self._answer_invite(status, now, extra=extra)]
        return actions + self._end(_rejected(status), now)

    def hangup(self, now: float, reason: str = "hung up") -> list[Action]:
        """End the call from our side: BYE (after the ACK, RFC 3261 15), or 480 if early."""
        if self.state == "ended" or self.bye_reason:
            return []
        if self.state == "early":
            return self.reject(480, now)
        if self.state == "accepted":
            self.pending_hangup = reason  # sent when the ACK arrives or Timer H fires
            return []
        self.bye_reason = reason
        return [self._request("BYE", now, [])]

    def refer(self, target: str, now: float) -> list[Action]:
        """Ask the caller's side to call `target` instead (RFC 3515 REFER)."""
        if self.state != "confirmed" or self.bye_reason:
            return [TransferResult(self.call_id, False, f"call is {self.state}, not confirmed")]
        if self.transfer is not None:
            return [TransferResult(self.call_id, False, "a transfer is already in progress")]
        self.transfer = "requested"
        referred_by = f"<sip:{self.local.user}@{self.local.host}>"
        return [self._request("REFER", now, [("Refer-To", f"<{target}>"),
                                             ("Referred-By", referred_by)])]  # fmt: skip

    # ------------------------------------------------------------- requests in

    def on_request(self, request: Request, source: Addr, now: float) -> list[Action]:
        """A request with this dialog's Call-ID."""
        method = request.method
        if method == "ACK":
            return self._on_ack(request, now)
        key = transaction_key(request)
        if method == "CANCEL":
            return self._on_cancel(request, key, source, now)
        if method == "INVITE" and key == self.txn.branch_key:
            return [self.txn.last] if self.txn.last else []  # a retransmission
        tag = parse_name_addr(request.headers.get("To") or "").tag
        if method == "INVITE" and not tag:
            return [self._respond(request, 482, source, now)]  # same Call-ID, new INVITE
        if tag != self.local_tag or self.state in ("early", "ended"):
            return [self._respond(request, 481, source, now)]
        number = parse_cseq(request.headers.get("CSeq"))[0]
        if number <= self.remote_cseq:
            return [self._respond(request, 500, source, now, reason="CSeq Out of Order")]
        self.remote_cseq = number
        if method == "BYE":
            return [self._respond(request, 200, source, now), *self._end("bye", now)]
        if method == "INVITE":
            return self._on_reinvite(request, key, source, now)
        if method == "NOTIFY":
            return self._on_notify(request, source, now)
        if method == "INFO":
            return self._on_info(request, source, now)
        return [self._respond(request, 200, source, now, extra=[("Allow", ALLOW)])]

    def _on_ack(self, request: Request, now: float) -> list[Action]:
        try:
            number = parse_cseq(request.headers.get("CSeq"))[0]
        except ValueError:
            return []
        if not self.txn.waiting_ack or number != self.txn.cseq:
            return []
        self.txn.acked = True
        actions: list[Action] = []
        if self.awaiting_answer and request.body and self.offer is not None:
            self.awaiting_answer = False
            actions += self._renegotiate(request.body)
        if self.state == "accepted":
            self.state = "confirmed"
            if self.pending_hangup is not None:
                actions += self.hangup(now, self.pending_hangup)
        return actions

    def _on_cancel(self, request: Request, key: str, source: Addr, now: float) -> list[Action]:
        if key != self.txn.branch_key:
            return [self._respond(request, 481, source, now)]
        actions: list[Action] = [self._respond(request, 200, source, now)]
        if self.state == "early" and not self.txn.final:
            actions += [self._answer_invite(487, now)]
            actions += self._end("cancelled", now)
        return actions

    def _on_reinvite(self, request: Request, key: str, source: Addr, now: float) -> list[Action]:
        """Hold, resume or a new address: a new offer in the dialog (RFC 3261 14.2)."""
        self.txn.acked = True  # the caller sends a new INVITE only after ACKing the last
        self.invite, self.source = request, source
        self.txn = ServerInvite(key, self.remote_cseq)
        if contact := request.headers.get("Contact"):
            self.remote_target = parse_name_addr(contact).uri  # a target refresh
        assert self.offer is not None and self.agreed is not None
        if not request.body:  # offerless: our 200 carries an offer, the ACK the answer
            self.awaiting_answer = True
            return [self._answer_invite(200, now, body=self._sdp(self.offer, self.agreed))]
        try:
            offer = parse_offer(request.body)
            agreed = negotiate(offer)
        except SdpError as exc:
            extra = [("Warning", f'399 voicebot "{exc.reason[:100]}"')]
            return [self._answer_invite(exc.status, now, extra=extra)]
        self.offer, self.agreed = offer, agreed
        body = self._sdp(offer, agreed)
        return [self._answer_invite(200, now, body=body), MediaChanged(self.call_id, agreed)]

    def _renegotiate(self, body: bytes) -> list[Action]:
        try:
            agreed = negotiate(parse_offer(body))
        except SdpError:
            return []
        self.agreed = agreed
        return [MediaChanged(self.call_id, agreed)]

    def _on_notify(self, request: Request, source: Addr, now: float) -> list[Action]:
        """Progress of our REFER (RFC 3515): a sipfrag of the target's answer."""
        event = (request.headers.get("Event") or "").split(";")[0].strip().lower()
        if event != "refer":
            return [self._respond(request, 489, source, now, reason="Bad Event")]
        if self.transfer != "accepted" and self.transfer != "requested":
            return [self._respond(request, 481, source, now)]
        actions: list[Action] = [self._respond(request, 200, source, now)]
        line = request.body.decode("utf-8", "replace").strip().splitlines()[:1]
        parts = line[0].split(" ", 2) if line else []
        status = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
        state = (request.headers.get("Subscription-State") or "").lower()
        if 200 <= status < 300:
            self.transfer = None
            actions.append(TransferResult(self.call_id, True, line[0]))
            actions += self.hangup(now, "transferred")
        elif status >= 300 or (state.startswith("terminated") and status < 200):
            self.transfer = None
            detail = line[0] if line else "subscription terminated without an answer"
            actions.append(TransferResult(self.call_id, False, detail))
        return actions

    def _on_info(self, request: Request, source: Addr, now: float) -> list[Action]:
        """SIP INFO key presses (application/dtmf-relay `Signal=5`, or application/dtmf)."""
        actions: list[Action] = [self._respond(request, 200, source, now)]
        kind = (request.headers.get("Content-Type") or "").lower()
        text = request.body.decode("utf-8", "replace").strip()
        digit = ""
        if kind.startswith("application/dtmf-relay"):
            for line in text.splitlines():
                name, _, value = line.partition("=")
                if name.strip().lower() == "signal":
                    digit = value.strip().upper()
        elif kind.startswith("application/dtmf"):
            digit = text.upper()
        if len(digit) == 1 and digit in _DTMF_KEYS:
            actions.append(DtmfInfo(self.call_id, digit))
        return actions

    # ------------------------------------------------------------ responses in

    def on_response(self, response: Response, now: float) -> list[Action]:
        """A response to one of our requests (BYE, REFER)."""
        try:
            branch = parse_via((response.headers.get("Via") or "").split(",")[0]).branch
        except ValueError:
            return []
        client = self.clients.get(branch)
        if client is None or response.status < 200:
            return []
        del self.clients[branch]
        if client.method == "BYE":
            return self._end(self.bye_reason, now)
        if client.method == "REFER" and self.transfer == "requested":
            if response.status < 300:
                self.transfer = "accepted"
                self.transfer_deadline = now + self.transfer_timeout_s
                return []
            self.transfer = None
            detail = f"REFER refused: {response.status} {response.reason}"
            return [TransferResult(self.call_id, False, detail)]
        return []

    # ------------------------------------------------------------------ timers

    def tick(self, now: float) -> list[Action]:
        """Retransmissions and timeouts due at `now`."""
        actions: list[Action] = []
        if (resend := self.txn.due(now)) is not None:
            actions.append(resend)
        if self.txn.timed_out(now):
            self.txn.acked = True  # Timer H: stop resending
            if self.txn.final < 300 and self.state in ("accepted", "confirmed"):
                self.state = "confirmed"
                actions += self.hangup(now, self.pending_hangup or "no ACK")
        for branch, client in list(self.clients.items()):
            if (resend := client.due(now)) is not None:
                actions.append(resend)
            elif client.timed_out(now):
                del self.clients[branch]
                if client.method == "BYE":
                    actions += self._end(self.bye_reason, now)
                elif client.method == "REFER" and self.transfer == "requested":
                    self.transfer = None
                    actions.append(TransferResult(self.call_id, False, "REFER timed out"))
        if self.transfer == "accepted" and now >= self.transfer_deadline:
            self.transfer = None
            actions.append(TransferResult(self.call_id, False, "no final NOTIFY in time"))
        return actions


def _rejected(status: int) -> str:
    return {487: "cancelled", 486: "busy", 503: "unavailable"}.get(status, f"rejected {status}")
