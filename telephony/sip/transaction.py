"""What the user agent asks its I/O shell to do, and the transaction layer over UDP.

UDP loses datagrams, so RFC 3261 17 makes both sides retransmit: a client resends
its non-INVITE request (Timer E: T1 doubling to T2) until a final response or Timer F
(64*T1); a server answers a retransmitted request with the response it already sent,
which `ResponseCache` keeps for 64*T1. Responses go back to the datagram's source
address (symmetric signalling, RFC 3581), which also works through NAT and proxies.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from telephony.sip.fields import MAGIC_COOKIE, parse_via
from telephony.sip.message import REASONS, Headers, Request, Response
from telephony.sip.sdp import Negotiated

#: RFC 3261 timer values: round-trip estimate, largest retransmit interval, give-up.
T1 = 0.5
T2 = 4.0
TIMEOUT = 64 * T1

Addr = tuple[str, int]


# ------------------------------------------------------------------ actions


@dataclass(frozen=True, slots=True)
class Send:
    """Send `data` in one datagram to `addr`."""

    data: bytes
    addr: Addr


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A new INVITE with a usable offer: admit it (`ringing` + `answer`) or `reject` it."""

    call_id: str
    agreed: Negotiated
    caller: str
    callee: str
    remote: Addr


@dataclass(frozen=True, slots=True)
class MediaChanged:
    """A re-INVITE changed the session (hold, resume, new address): reconfigure RTP."""

    call_id: str
    agreed: Negotiated


@dataclass(frozen=True, slots=True)
class DialogEnded:
    """The call is over for signalling: `reason` is bye, cancelled, hung up, no ACK, ..."""

    call_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class TransferResult:
    """The outcome of `refer`: the target answered (`ok`) or why not."""

    call_id: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class DtmfInfo:
    """A key press carried in SIP INFO (application/dtmf-relay) instead of RTP."""

    call_id: str
    digit: str


@dataclass(frozen=True, slots=True)
class BadMessage:
    """A datagram we could not use: log it (`answered` says whether it got a 4xx/5xx)."""

    addr: Addr
    reason: str
    answered: bool


Action = Send | IncomingCall | MediaChanged | DialogEnded | TransferResult | DtmfInfo | BadMessage


# --------------------------------------------------------------- responses


def new_tag() -> str:
    """A random dialog tag."""
    return secrets.token_hex(6)


def new_branch() -> str:
    """A random RFC 3261 branch (unique per transaction)."""
    return MAGIC_COOKIE + secrets.token_hex(8)


def transaction_key(request: Request) -> str:
    """The server transaction a request belongs to (RFC 3261 17.2.3)."""
    top = request.headers.get("Via") or ""
    try:
        via = parse_via(top.split(",")[0])
    except ValueError:
        return f"?{request.headers.get('Call-ID')}|{request.headers.get('CSeq')}"
    if via.branch.startswith(MAGIC_COOKIE):
        return f"{via.branch}|{via.host}:{via.port}"
    # RFC 2543 peers: no reliable branch, so match on what identifies the request.
    cseq = (request.headers.get("CSeq") or "").split()[:1]
    return f"{request.headers.get('Call-ID')}|{cseq}|{request.headers.get('From')}|{top}"


def _stamp_via(value: str, source: Addr) -> str:
    """Add `received` (and fill `rport`) to the top Via, as RFC 3261 18.2.1 and 3581 ask."""
    try:
        via = parse_via(value)
    except ValueError:
        return value
    if via.host != source[0]:
        value += f";received={source[0]}"
    if "rport" in via.params and not via.params["rport"]:
        value = value.replace(";rport", f";rport={source[1]}", 1)
    return value


def make_response(
    request: Request,
    status: int,
    source: Addr,
    *,
    to_tag: str = "",
    reason: str | None = None,
    extra: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    content_type: str = "application/sdp",
) -> Response:
    """A response to `request` (RFC 3261 8.2.6): Via, From, To (+tag), Call-ID, CSeq copied."""
    headers = Headers()
    vias = [v for k, v in request.headers if k == "Via"]
    for index, value in enumerate(vias):
        headers.add("Via", _stamp_via(value, source) if index == 0 else value)
    for name in ("From", "To", "Call-ID", "CSeq"):
        copied = request.headers.get(name)
        if copied is None:
            continue
        if name == "To" and to_tag and status > 100 and ";tag=" not in copied.replace(" ", ""):
            copied += f";tag={to_tag}"
        headers.add(name, copied)
    if request.method == "INVITE" and 100 < status < 300:
        for name, value in request.headers:
            if name == "Record-Route":
                headers.add(name, value)
    headers.add("Server", "voicebot")
    for name, value in extra or []:
        headers.add(name, value)
    if body:
        headers.add("Content-Type", content_type)
    return Response(status, reason or REASONS.get(status, "Unknown"), headers, body)


@dataclass
class _Cached:
    data: bytes
    addr: Addr
    expires: float


@dataclass
class ResponseCache:
    """Last response per server transaction, so a retransmitted request gets it again."""

    entries: dict[str, _Cached] = field(default_factory=dict)
    max_entries: int = 20_000

    def store(self, key: str, data: bytes, addr: Addr, now: float) -> None:
        """Remember `data` as the answer to transaction `key` for 64*T1."""
        if len(self.entries) >= self.max_entries:
            self.expire(now)
            if len(self.entries) >= self.max_entries:  # a flood: forget the oldest
                self.entries.pop(next(iter(self.entries)))
        self.entries[key] = _Cached(data, addr, now + TIMEOUT)

    def respond(
        self, request: Request, status: int, source: Addr, now: float, **kwargs: Any
    ) -> Send:
        """Answer `request` (see `make_response`); non-INVITE answers are kept for resends."""
        data = make_response(request, status, source, **kwargs).serialize()
        if request.method not in ("INVITE", "ACK"):
            self.store(f"{transaction_key(request)}|{request.method}", data, source, now)
        return Send(data, source)

    def lookup(self, key: str) -> Send | None:
        """The response already sent to this transaction, if any."""
        cached = self.entries.get(key)
        return Send(cached.data, cached.addr) if cached else None

    def expire(self, now: float) -> None:
        """Forget transactions older than 64*T1."""
        for key in [k for k, c in self.entries.items() if c.expires <= now]:
            del self.entries[key]


# --------------------------------------------------------------- our requests


@dataclass
class ClientTransaction:
    """A non-INVITE request we sent (BYE, REFER): retransmitted until a final response."""

    method: str
    branch: str
    data: bytes
    addr: Addr
    deadline: float
    next_send: float
    interval: float = T1

    @classmethod
    def start(
        cls, method: str, branch: str, data: bytes, addr: Addr, now: float
    ) -> ClientTransaction:
        """A transaction whose first send happens now (the caller sends `data`)."""
        return cls(method, branch, data, addr, now + TIMEOUT, now + T1)

    def due(self, now: float) -> Send | None:
        """The retransmission due at `now` (Timer E), if any."""
        if now < self.next_send or now >= self.deadline:
            return None
        self.interval = min(self.interval * 2, T2)
        self.next_send = now + self.interval
        return Send(self.data, self.addr)

    def timed_out(self, now: float) -> bool:
        """Timer F: no final response within 64*T1."""
        return now >= self.deadline


@dataclass
class ServerInvite:
    """Our answer to one INVITE, retransmitted (Timer G) until its ACK or Timer H."""

    branch_key: str
    cseq: int
    last: Send | None = None
    final: int = 0
    acked: bool = False
    next_send: float = 0.0
    interval: float = T1
    deadline: float = 0.0

    def respond(self, send: Send, status: int, now: float) -> None:
        """Remember what we sent; final responses start the retransmit schedule."""
        self.last = send
        if status >= 200:
            self.final = status
            self.interval = T1
            self.next_send = now + T1
            self.deadline = now + TIMEOUT

    @property
    def waiting_ack(self) -> bool:
        """True between our final response and its ACK (or Timer H)."""
        return self.final >= 200 and not self.acked

    def due(self, now: float) -> Send | None:
        """The retransmission due at `now`, if any."""
        if not self.waiting_ack or now < self.next_send or now >= self.deadline:
            return None
        self.interval = min(self.interval * 2, T2)
        self.next_send = now + self.interval
        return self.last

    def timed_out(self, now: float) -> bool:
        """Timer H: our final response was never acknowledged."""
        return self.waiting_ack and now >= self.deadline
