"""The media server: thin glue between carrier sockets and call handlers.

It accepts a connection, picks the codec by URL path, pumps messages through it, hands
events to the call handler and sends back what the codec produces. Call logic lives in
the handler (`voicebot`); this module knows only carriers. Each call runs in its own
task: an exception in one call is logged and closes that call's socket with 1011, and
no other call notices.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from aiohttp import WSMsgType, web

from telephony.asterisk.websocket_codec import AsteriskWebSocketCodec
from telephony.calls import CallHandler as CallHandler  # re-exported: front doors import it here
from telephony.calls import CallTasks
from telephony.connection import CallConnection, CarrierCodec, TransferFailed
from telephony.events import (
    CallEnded,
    CallStarted,
    ProtocolError,
    WireMessage,
)
from telephony.marks import TimedCodec, run_mark_timer
from telephony.telnyx.codec import TelnyxCodec
from telephony.twilio import stream_token
from telephony.twilio.codec import TwilioCodec
from telephony.twilio.rest import TransferTarget, TwilioCalls, TwilioRestError
from telephony.twilio.signature import is_valid_signature
from telephony.twilio.twiml import connect_stream, say_and_hangup
from telephony.vonage.codec import VonageCodec

log = logging.getLogger(__name__)


#: Close codes (RFC 6455).
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
#: The end reason of a stream that closed without the carrier saying stop.
DROPPED = "dropped: connection closed without stop"
#: The end reason where the carrier hangs up by closing the socket (Vonage, Asterisk).
HUNG_UP = "hangup: carrier closed the stream"


@dataclass
class TwilioWebhookSettings:
    """How the voice webhook authenticates Twilio and where it sends the media stream."""

    auth_token: str | None = None
    validate_signatures: bool = True
    public_url: str | None = None
    media_path: str = "/twilio/media"
    #: Webhook form fields forwarded to the stream as `<Parameter>`s.
    forward_fields: Sequence[str] = ("From", "To", "CallSid", "AccountSid", "Direction")
    refusal_message: str = "Sorry, all our lines are busy. Please call again later."
    #: With an auth token and signature validation on, media streams must carry a token
    #: from our own webhook (see `telephony.twilio.stream_token`).
    stream_tokens: bool = True
    stream_token_ttl_s: float = 300.0
    #: With both set, an accepted handoff redirects the call there over the REST API.
    rest: TwilioCalls | None = None
    transfer_target: TransferTarget | None = None

    @property
    def stream_key(self) -> bytes | None:
        """The stream-token key, or None when streams are not authenticated."""
        if self.stream_tokens and self.validate_signatures and self.auth_token:
            return stream_token.derive_key(self.auth_token)
        return None


@dataclass
class ServerSettings:
    """Limits that protect every call from a misbehaving peer."""

    max_message_bytes: int = 256 * 1024
    inbound_capacity: int = 500
    send_timeout_s: float = 5.0
    handler_grace_s: float = 15.0
    heartbeat_s: float | None = 30.0
    #: A carrier streams audio every 20 ms: this long without any message is a dead peer.
    idle_timeout_s: float = 30.0
    #: No call lasts longer than this (a stuck or abusive stream ends here).
    max_call_s: float = 3600.0
    #: Shared secret the non-Twilio media routes require (`?token=` or `Authorization:
    #: Bearer`): those carriers cannot carry our per-call Twilio stream token.
    media_secret: str | None = None
    twilio: TwilioWebhookSettings = field(default_factory=TwilioWebhookSettings)


def _external_url(request: web.Request, public_url: str | None) -> str:
    """The URL the carrier used to reach us (proxies rewrite scheme and host)."""
    if public_url:
        return public_url.rstrip("/") + request.path_qs
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    return f"{scheme}://{host}{request.path_qs}"


def _websocket_url(request: web.Request, settings: TwilioWebhookSettings) -> str:
    base = _external_url(request, settings.public_url)
    scheme, rest = base.split("://", 1)
    host = rest.split("/", 1)[0]
    ws_scheme = "wss" if scheme == "https" else "ws"
    return f"{ws_scheme}://{host}{settings.media_path}"


class MediaServer:
    """aiohttp application with the carrier routes; extra routes come from the caller."""

    def __init__(
        self,
        handler: CallHandler,
        settings: ServerSettings | None = None,
        *,
        accept_call: Callable[[], bool] | None = None,
        extra_routes: Sequence[web.RouteDef] = (),
    ) -> None:
        self.handler = handler
        self.settings = settings or ServerSettings()
        self.accept_call = accept_call or (lambda: True)
        self.calls = CallTasks(
            handler, label="websocket", handler_grace_s=self.settings.handler_grace_s
        )
        #: Set on shutdown: new calls are refused, calls in progress go on.
        self.draining = False
        #: Call counts of this process's other front doors (AudioSocket, SIP), which share
        #: the admission limit with the media sockets (see `active_calls`).
        self.other_calls: list[Callable[[], int]] = []
        self.app = web.Application(client_max_size=64 * 1024)
        self.app.add_routes(
            [
                web.get("/twilio/voice", self._twilio_voice),
                web.post("/twilio/voice", self._twilio_voice),
                web.get(self.settings.twilio.media_path, self._twilio_media),
                web.get("/telnyx/media", self._carrier_media(TelnyxCodec)),
                web.get("/vonage/media", self._carrier_media(VonageCodec)),
                web.get("/asterisk/media", self._carrier_media(AsteriskWebSocketCodec)),
                *extra_routes,
            ]
        )

    @property
    def active_connections(self) -> int:
        """Media sockets currently open."""
        return self.calls.active

    @property
    def active_calls(self) -> int:
        """Calls in progress on every front door of this process."""
        return self.active_connections + sum(count() for count in self.other_calls)

    # ----------------------------------------------------------------- webhook

    async def _twilio_voice(self, request: web.Request) -> web.Response:
        settings = self.settings.twilio
        form = await request.post() if request.method == "POST" else {}
        params = [(k, str(v)) for k, v in form.items()]
        if settings.validate_signatures:
            url = _external_url(request, settings.public_url)
            signature = request.headers.get("X-Twilio-Signature")
            if not settings.auth_token:
                log.error("twilio webhook refused: no auth token configured (TWILIO_AUTH_TOKEN)")
                return web.Response(status=403, text="signature validation is not configured")
            if not is_valid_signature(settings.auth_token, url, params, signature):
                log.warning("twilio webhook refused: bad or missing signature for %s", url)
                return web.Response(status=403, text="invalid Twilio signature")
        fields = dict(params) if request.method == "POST" else dict(request.query)
        if self.draining or not self.accept_call():
            why = "shutting down" if self.draining else "at capacity"
            log.warning("call %s refused: %s", fields.get("CallSid", "?"), why)
            return web.Response(
                text=say_and_hangup(settings.refusal_message), content_type="text/xml"
            )
        forwarded = {k: fields[k] for k in settings.forward_fields if k in fields}
        key = settings.stream_key
        if key is not None:  # first, so no parameter limit can drop it
            token = stream_token.issue(key, fields.get("CallSid", ""), settings.stream_token_ttl_s)
            forwarded = {stream_token.PARAMETER: token, **forwarded}
        twiml = connect_stream(_websocket_url(request, settings), forwarded)
        return web.Response(text=twiml, content_type="text/xml")

    # ------------------------------------------------------------------ media

    async def _twilio_media(self, request: web.Request) -> web.StreamResponse:
        return await self._serve_media(request, TwilioCodec())

    def _carrier_media(
        self, make_codec: Callable[[], CarrierCodec]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """A media route for a carrier with no webhook of ours in front of it.

        No webhook means no per-call stream token and no admission check before the
        stream, so both happen here, before the upgrade: the shared media secret (when
        configured) and capacity (a refused upgrade is the only refusal these carriers see).
        """

        async def route(request: web.Request) -> web.StreamResponse:
            codec = make_codec()
            if not self._has_media_secret(request):
                log.warning("%s stream refused: missing or wrong media secret", codec.carrier)
                return web.Response(status=403, text="media secret required")
            if not self.draining and not self.accept_call():
                log.warning("%s stream refused: at capacity", codec.carrier)
                return web.Response(status=503, text="at capacity")
            return await self._serve_media(request, codec)

        return route

    def _has_media_secret(self, request: web.Request) -> bool:
        """True without a configured secret, or when the request carries it (constant time)."""
        secret = self.settings.media_secret
        if not secret:
            return True
        auth = request.headers.get("Authorization", "")
        given = auth[7:] if auth[:7].lower() == "bearer " else request.query.get("token", "")
        return hmac.compare_digest(given.strip().encode(), secret.encode())

    async def _serve_media(self, request: web.Request, codec: CarrierCodec) -> web.StreamResponse:
        settings = self.settings
        if self.draining:
            log.warning("%s stream refused: shutting down", codec.carrier)
            return web.Response(status=503, text="shutting down")
        ws = web.WebSocketResponse(
            max_msg_size=settings.max_message_bytes, heartbeat=settings.heartbeat_s
        )
        await ws.prepare(request)

        async def send(message: WireMessage) -> None:
            if isinstance(message, str):
                await ws.send_str(message)
            else:
                await ws.send_bytes(message)

        async def close(code: int, reason: str) -> None:
            await ws.close(code=code, message=reason.encode()[:120])

        conn = CallConnection(
            codec,
            send,
            close,
            remote=request.remote or "",
            capacity=settings.inbound_capacity,
            send_timeout_s=settings.send_timeout_s,
        )
        task = self.calls.start(conn)
        timer = (  # emulated or locally reported marks (telephony.marks)
            asyncio.create_task(run_mark_timer(codec, conn.push))
            if isinstance(codec, TimedCodec)
            else None
        )
        try:
            await self._pump(ws, codec, conn, task)
        finally:
            if timer is not None:
                timer.cancel()
            # After a carrier's own stop this is ignored; without one, the call was dropped,
            # unless this carrier hangs up by closing the socket cleanly.
            hung_up = getattr(codec, "ends_by_closing", False) and ws.close_code == CLOSE_NORMAL
            conn.push(CallEnded(HUNG_UP if hung_up else DROPPED))
            await self.calls.finish(task)
            await conn.close()
        return ws

    async def _pump(
        self,
        ws: web.WebSocketResponse,
        codec: CarrierCodec,
        conn: CallConnection,
        task: asyncio.Task[None],
    ) -> None:
        """Read the socket until it closes, the call ends, a limit is hit or the peer misbehaves."""
        settings, loop = self.settings, asyncio.get_running_loop()
        deadline = loop.time() + settings.max_call_s
        idle_until = loop.time() + settings.idle_timeout_s
        while True:
            try:
                # One absolute deadline around the read: aiohttp restarts its own receive
                # timeout on every ping and pong, so a peer that only answers pings (or
                # only pings) would otherwise never count as idle.
                async with asyncio.timeout_at(min(deadline, idle_until)):
                    msg = await ws.receive()
            except TimeoutError:
                await self._end_at_limit(codec, conn, over_time=loop.time() >= deadline)
                return
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                idle_until = loop.time() + settings.idle_timeout_s
                if conn.tap is not None:
                    conn.tap("in", msg.data)
                for event in codec.receive(msg.data):
                    if isinstance(event, CallStarted):
                        admitted = self._admit(event)
                        if isinstance(admitted, str):
                            log.warning("%s stream refused: %s", codec.carrier, admitted)
                            await conn.close(CLOSE_POLICY, admitted)
                            return
                        event = admitted
                        self._arm_transfer(conn, event)
                    if isinstance(event, ProtocolError):
                        log.warning("%s protocol error: %s", codec.carrier, event.message)
                        if event.fatal:
                            await conn.close(CLOSE_POLICY, event.message)
                            return
                        continue
                    conn.push(event)
            elif msg.type == WSMsgType.ERROR:
                log.warning("%s socket error: %r", codec.carrier, ws.exception())
                return
            if conn.overflowed:
                log.error("%s peer flooded the control channel; closing", codec.carrier)
                await conn.close(CLOSE_POLICY, "too many messages")
                return
            if task.done() or conn.closed:
                return

    def _admit(self, event: CallStarted) -> CallStarted | str:
        """The start event without our token, or why the stream is refused."""
        params = dict(event.custom_parameters)
        token = params.pop(stream_token.PARAMETER, None)
        key = self.settings.twilio.stream_key if event.carrier == "twilio" else None
        if key is not None and (why := stream_token.verify(key, event.call_id, token)):
            return why
        return replace(event, custom_parameters=MappingProxyType(params))

    def _arm_transfer(self, conn: CallConnection, event: CallStarted) -> None:
        """Let this call be handed to a person, where the carrier and settings allow it."""
        twilio = self.settings.twilio
        if event.carrier != "twilio" or twilio.rest is None or twilio.transfer_target is None:
            return
        rest, twiml, call_sid = twilio.rest, twilio.transfer_target.twiml(), event.call_id

        async def transfer(reason: str) -> None:
            log.info("call %s: transferring to a person (%s)", call_sid, reason)
            try:
                await rest.update_twiml(call_sid, twiml)
            except TwilioRestError as exc:
                raise TransferFailed(str(exc)) from exc

        conn.transferer = transfer

    @staticmethod
    async def _end_at_limit(codec: CarrierCodec, conn: CallConnection, *, over_time: bool) -> None:
        """End a call that ran past `max_call_s` or went silent for `idle_timeout_s`."""
        reason = "maximum call duration" if over_time else "idle timeout: no messages"
        log.warning("%s call ended: %s", codec.carrier, reason)
        conn.push(CallEnded(reason))
        await conn.close(CLOSE_NORMAL if over_time else CLOSE_POLICY, reason)

    async def shutdown(self, grace_s: float, goodbye_s: float = 15.0) -> None:
        """Refuse new calls, let calls in progress finish, then ask the rest to say goodbye.

        Calls still going after `grace_s` get a `ShutdownRequested` event (the bot says
        goodbye and hangs up, and the recording is flushed); `goodbye_s` later whatever is
        left is closed by the caller of this method (the app runner's cleanup).
        """
        self.draining = True
        await self.calls.shutdown(grace_s, goodbye_s)

    async def drain(self, timeout_s: float) -> None:
        """Wait for the calls in progress to finish (on shutdown)."""
        await self.calls.drain(timeout_s)
