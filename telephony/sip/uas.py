"""The SIP user agent server: datagrams in, actions out, for every call on one port.

Sans-I/O like h11: `receive(datagram, addr, now)` and `tick(now)` return `Action`s
(datagrams to send, calls to admit, calls that ended) and never raise. The I/O shell
(`telephony.sip.server`) owns the socket, the clock and the admission decision. One
`Dialog` per Call-ID holds the call's state; this class routes requests to dialogs,
answers what needs no dialog (OPTIONS keep-alives, unknown methods, unknown dialogs),
and turns malformed input into a 400 (or a silent drop when no answer can be
addressed), so a hostile peer can cost us a log line but never the server loop.
"""

from __future__ import annotations

from telephony.sip.dialog import ALLOW, Dialog, Local
from telephony.sip.fields import parse_name_addr
from telephony.sip.message import Request, Response, SipParseError, parse
from telephony.sip.transaction import (
    Action,
    Addr,
    BadMessage,
    ResponseCache,
    Send,
    transaction_key,
)

#: Extensions we implement, for `Require` checks (RFC 3261 8.2.2.3): none yet.
SUPPORTED: frozenset[str] = frozenset()
KNOWN = frozenset(m.strip() for m in ALLOW.split(","))


class UserAgentServer:
    """Answers SIP calls on one address; holds every call's `Dialog` by Call-ID."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_dialogs: int = 10_000,
        transfer_timeout_s: float = 30.0,
    ) -> None:
        self.local = Local(host, port)
        self.max_dialogs = max_dialogs
        self.transfer_timeout_s = transfer_timeout_s
        self.dialogs: dict[str, Dialog] = {}
        self.cache = ResponseCache()
        #: Set while the shell refuses new calls (draining): OPTIONS then gets the 503 an
        #: INVITE would get (RFC 3261 11.2), so a proxy's OPTIONS probe (kamailio's
        #: dispatcher) takes this instance out of rotation instead of sending it calls.
        self.unavailable_retry_after: int | None = None

    # ------------------------------------------------------------------- input

    def receive(self, data: bytes, addr: Addr, now: float) -> list[Action]:
        """Handle one datagram from `addr`."""
        if not data.strip():
            return []  # CRLF keep-alives (RFC 5626) need no answer
        try:
            message = parse(data)
        except SipParseError as exc:
            return self._malformed(exc, addr, now)
        if isinstance(message, Response):
            dialog = self.dialogs.get(message.headers.get("Call-ID") or "")
            return dialog.on_response(message, now) if dialog else []
        try:
            return self._request(message, addr, now)
        except ValueError as exc:  # a header we must understand did not parse
            return self._malformed(SipParseError(str(exc), 400, message), addr, now)

    def _malformed(self, exc: SipParseError, addr: Addr, now: float) -> list[Action]:
        request = exc.partial
        answerable = (
            request is not None
            and request.method != "ACK"
            and request.headers.get("Via") is not None
            and request.headers.get("Call-ID") is not None
        )
        if not answerable or request is None:
            return [BadMessage(addr, exc.reason, answered=False)]
        warning = exc.reason.replace('"', "'")[:100]
        send = self.cache.respond(
            request, exc.status, addr, now, extra=[("Warning", f'399 voicebot "{warning}"')]
        )
        return [send, BadMessage(addr, exc.reason, answered=True)]

    def _request(self, request: Request, addr: Addr, now: float) -> list[Action]:
        method = request.method
        if method != "ACK" and method != "INVITE":
            cached = self.cache.lookup(f"{transaction_key(request)}|{method}")
            if cached is not None:
                return [Send(cached.data, addr)]  # a retransmission: same answer again
        if method not in KNOWN:
            return [self.cache.respond(request, 501, addr, now, extra=[("Allow", ALLOW)])]
        if method not in ("ACK", "CANCEL") and (unsupported := self._unsupported(request)):
            extra = [("Unsupported", ", ".join(unsupported))]
            return [self.cache.respond(request, 420, addr, now, extra=extra)]
        call_id = request.headers.get("Call-ID") or ""
        dialog = self.dialogs.get(call_id)
        if dialog is not None:
            return dialog.on_request(request, addr, now)
        if method == "INVITE" and not parse_name_addr(request.headers.get("To") or "").tag:
            if len(self.dialogs) >= self.max_dialogs:
                extra = [("Retry-After", "5")]
                return [self.cache.respond(request, 503, addr, now, extra=extra)]
            dialog = Dialog(
                request, addr, self.local, self.cache, now,
                transfer_timeout_s=self.transfer_timeout_s,
            )  # fmt: skip
            self.dialogs[call_id] = dialog
            return dialog.start(now)
        if method == "OPTIONS":
            if (retry := self.unavailable_retry_after) is not None:
                extra = [("Retry-After", str(retry))]
                return [self.cache.respond(request, 503, addr, now, extra=extra)]
            return [self.cache.respond(request, 200, addr, now, extra=self._capabilities())]
        if method == "ACK":
            return []  # never answered; an ACK for nothing we know is dropped
        return [self.cache.respond(request, 481, addr, now)]

    @staticmethod
    def _unsupported(request: Request) -> list[str]:
        values = request.headers.get_all("Require") + request.headers.get_all("Proxy-Require")
        required = [v.strip().lower() for value in values for v in value.split(",") if v.strip()]
        return [option for option in required if option not in SUPPORTED]

    @staticmethod
    def _capabilities() -> list[tuple[str, str]]:
        return [("Allow", ALLOW), ("Accept", "application/sdp"), ("Accept-Language", "en")]

    # ------------------------------------------------------------------ timers

    def tick(self, now: float) -> list[Action]:
        """Retransmissions and timeouts due now; forgets finished calls."""
        actions: list[Action] = []
        for call_id, dialog in list(self.dialogs.items()):
            actions += dialog.tick(now)
            if dialog.finished(now):
                del self.dialogs[call_id]
        self.cache.expire(now)
        return actions

    # --------------------------------------------------------------- commands

    def _dialog(self, call_id: str) -> Dialog | None:
        return self.dialogs.get(call_id)

    def ringing(self, call_id: str, now: float) -> list[Action]:
        """180 Ringing to a call the shell admitted."""
        dialog = self._dialog(call_id)
        return dialog.ringing(now) if dialog else []

    def answer(self, call_id: str, media_host: str, media_port: int, now: float) -> list[Action]:
        """200 OK with our SDP answer (media at `media_host:media_port`)."""
        dialog = self._dialog(call_id)
        return dialog.answer(media_host, media_port, now) if dialog else []

    def reject(
        self, call_id: str, status: int, now: float, *, retry_after: int | None = None
    ) -> list[Action]:
        """Refuse a call (486 Busy Here, 503 Service Unavailable with Retry-After...)."""
        dialog = self._dialog(call_id)
        return dialog.reject(status, now, retry_after=retry_after) if dialog else []

    def hangup(self, call_id: str, now: float, reason: str = "hung up") -> list[Action]:
        """End a call from our side (BYE; 480 when it was never answered)."""
        dialog = self._dialog(call_id)
        return dialog.hangup(now, reason) if dialog else []

    def refer(self, call_id: str, target: str, now: float) -> list[Action]:
        """Transfer the caller to `target` (a SIP URI) with REFER."""
        dialog = self._dialog(call_id)
        return dialog.refer(target, now) if dialog else []
