"""Validation of Twilio's `X-Twilio-Signature` on webhook requests.

Twilio signs every webhook with HMAC-SHA1 over the full URL it requested followed by
the POST parameters sorted by name (name + value, concatenated), keyed with the
account's auth token, base64-encoded. For GET requests the query string is part of
the URL and there are no body parameters. Because proxies and load balancers often
rewrite the port, Twilio's own helper libraries accept the URL both with and without
the standard port; so do we. Comparison is constant-time.
Reference: https://www.twilio.com/docs/usage/security#validating-requests
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit


def compute_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """The signature Twilio would send for this URL and POST parameters."""
    payload = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _url_variants(url: str) -> list[str]:
    """The URL as given, plus the same URL with the default port added or removed."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    variants = [url]
    if default is None or parts.hostname is None:
        return variants
    host = parts.hostname
    userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    if parts.port is None:
        netloc = f"{userinfo}{host}:{default}"
    elif parts.port == default:
        netloc = f"{userinfo}{host}"
    else:
        return variants
    variants.append(urlunsplit(parts._replace(netloc=netloc)))
    return variants


def is_valid_signature(
    auth_token: str,
    url: str,
    params: Iterable[tuple[str, str]],
    signature: str | None,
) -> bool:
    """True when `signature` is Twilio's signature of this request."""
    if not signature or not auth_token:
        return False
    param_list = list(params)
    return any(
        hmac.compare_digest(compute_signature(auth_token, candidate, param_list), signature)
        for candidate in _url_variants(url)
    )
