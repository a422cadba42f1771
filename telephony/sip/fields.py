"""Structured header values a user agent needs: Via, name-addr (From/To/Contact), SIP URIs.

Only what dialogs and responses use: the Via branch and sent-by (to match
transactions and answer the sender), the tag of From/To (dialog ids), the URI inside
<...> (remote target, route set) and its host, port and user part. Parsing is lenient
about what we do not use and raises ValueError on what we must understand.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

#: RFC 3261 8.1.1.7: branches of RFC 3261 agents start with this magic cookie.
MAGIC_COOKIE = "z9hG4bK"
_VIA = re.compile(r"^SIP\s*/\s*2\.0\s*/\s*([A-Za-z]+)\s+([^;\s]+)\s*(.*)$", re.IGNORECASE)


def parse_params(text: str) -> dict[str, str]:
    """`;a=1;lr;b="x"` -> {"a": "1", "lr": "", "b": "x"} (names lower-cased)."""
    params: dict[str, str] = {}
    for part in text.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            params[name.strip().lower()] = value.strip().strip('"')
    return params


@dataclass(frozen=True, slots=True)
class Via:
    """One Via entry: transport, sent-by host and port, and its parameters."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str]

    @property
    def branch(self) -> str:
        """The transaction id the sender chose ("" when missing)."""
        return self.params.get("branch", "")


def parse_via(value: str) -> Via:
    """`SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds` -> Via; raises ValueError."""
    match = _VIA.match(value.strip())
    if not match:
        raise ValueError(f"malformed Via {value[:80]!r}")
    transport, sent_by, rest = match.groups()
    host, port = split_host_port(sent_by)
    return Via(transport.upper(), host, port, parse_params(rest))


def split_host_port(text: str) -> tuple[str, int | None]:
    """`host:5060` / `[::1]:5060` / `host` -> (host, port or None); raises ValueError."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = text.partition(":")
    if not host:
        raise ValueError(f"no host in {text!r}")
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        raise ValueError(f"bad port in {text!r}")
    return host, int(port) if port else None


@dataclass(frozen=True, slots=True)
class SipUri:
    """The parts of a sip:/sips: URI a user agent routes by."""

    scheme: str
    user: str
    host: str
    port: int | None
    params: dict[str, str]

    @property
    def loose_route(self) -> bool:
        """True for a route entry with `;lr` (RFC 3261 16.12)."""
        return "lr" in self.params


def parse_uri(text: str) -> SipUri:
    """`sip:alice@atlanta.com:5060;transport=udp` -> SipUri; raises ValueError."""
    scheme, colon, rest = text.strip().partition(":")
    if not colon or scheme.lower() not in ("sip", "sips", "tel"):
        raise ValueError(f"not a SIP URI: {text[:80]!r}")
    rest = rest.split("?", 1)[0]
    address, _, params = rest.partition(";")
    if scheme.lower() == "tel":
        return SipUri("tel", address, "", None, parse_params(params))
    user, at, hostport = address.rpartition("@")
    host, port = split_host_port(hostport if at else address)
    return SipUri(scheme.lower(), user.split(":", 1)[0], host, port, parse_params(params))


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A From/To/Contact/Route value: optional display name, URI, header parameters."""

    display: str
    uri: str
    params: dict[str, str]

    @property
    def tag(self) -> str:
        """The dialog tag ("" when absent)."""
        return self.params.get("tag", "")


def parse_name_addr(value: str) -> NameAddr:
    """`"Bob" <sip:bob@biloxi.com>;tag=a6c85cf` -> NameAddr; raises ValueError."""
    text = value.strip()
    if "<" in text:
        display, _, rest = text.partition("<")
        uri, close, params = rest.partition(">")
        if not close:
            raise ValueError(f"unclosed <...> in {value[:80]!r}")
        return NameAddr(display.strip().strip('"'), uri.strip(), parse_params(params))
    uri, _, params = text.partition(";")  # addr-spec form: parameters belong to the header
    if not uri:
        raise ValueError("empty address")
    return NameAddr("", uri.strip(), parse_params(params))


def user_part(value: str | None) -> str:
    """The user of a From/To header (the caller's number), or "" when unreadable."""
    try:
        return parse_uri(parse_name_addr(value or "").uri).user
    except ValueError:
        return ""


def is_ip_literal(host: str) -> bool:
    """True when `host` needs no DNS lookup (we never resolve names on the call path)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
