"""Short-lived tokens that prove a media stream was started by our own webhook.

The voice webhook is authenticated (Twilio signs it), but the media websocket it points
to is not: anyone who can reach it could open streams, use up capacity and talk to the
bot outside any real call. So the webhook adds a token to the TwiML as a `<Parameter>`;
Twilio hands it back in the stream's `start` message; the media server accepts the
stream only if the token is ours, for this callSid, and fresh.

The key is derived from the Twilio auth token (every instance behind a load balancer
already shares it), so a stream may land on another instance than its webhook.
"""

from __future__ import annotations

import hashlib
import hmac
import time

#: The custom parameter that carries the token (stripped before the call sees it).
PARAMETER = "voicebot_stream_token"
_CONTEXT = b"voicebot media stream token v1"


def derive_key(auth_token: str) -> bytes:
    """The signing key, from the Twilio auth token (never the token itself)."""
    return hmac.new(auth_token.encode("utf-8"), _CONTEXT, hashlib.sha256).digest()


def _mac(key: bytes, call_sid: str, expires: int) -> str:
    message = f"{call_sid}:{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def issue(key: bytes, call_sid: str, ttl_s: float, now: float | None = None) -> str:
    """A token for `call_sid`, valid for `ttl_s` seconds."""
    expires = int((time.time() if now is None else now) + ttl_s)
    return f"{expires}.{_mac(key, call_sid, expires)}"


def verify(key: bytes, call_sid: str, token: str | None, now: float | None = None) -> str | None:
    """None when `token` is valid for `call_sid` now; otherwise why it is not."""
    if not token:
        return "no stream token"
    expires_text, _, mac = token.partition(".")
    if not expires_text.isdigit() or not mac:
        return "malformed stream token"
    expires = int(expires_text)
    if not hmac.compare_digest(mac, _mac(key, call_sid, expires)):
        return "stream token not issued for this call"
    if (time.time() if now is None else now) > expires:
        return "stream token expired"
    return None
