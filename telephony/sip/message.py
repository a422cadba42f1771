"""SIP messages (RFC 3261 section 7): parse and serialize, sans-I/O, with hard limits.

A SIP trunk sends us datagrams from the open internet, so the parser trusts nothing:
the size, the number of headers and each line are bounded; Content-Length must be a
number that the datagram honours (RFC 3261 18.3: a request whose body is shorter is
answered 400, extra bytes are discarded). Everything that goes wrong raises
`SipParseError`, which carries whatever was readable (the method, Via, Call-ID), so
the user agent can still answer 400 to a broken request, or drop it when not even
the headers needed for an answer survived. Nothing here raises anything else.

Header names are stored in canonical form (compact forms such as `v` and `i`
expanded), values in arrival order, so serialization keeps Via and Record-Route order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

#: Largest datagram we read (RFC 3261 allows 65,535; real trunks stay near the MTU).
MAX_MESSAGE_BYTES = 16 * 1024
MAX_HEADERS = 100
MAX_LINE_BYTES = 4096

#: RFC 3261 7.3.3 compact forms plus the ones REFER (RFC 3515) and events use.
COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "r": "Refer-To",
    "b": "Referred-By",
    "u": "Allow-Events",
}
#: Canonical spelling of headers whose capitalisation is not plain Title-Case.
_SPECIAL = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "rack": "RAck",
    "rseq": "RSeq",
    "mime-version": "MIME-Version",
}
_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6][0-9][0-9]) ?(.*)$")

REASONS = {
    100: "Trying",
    180: "Ringing",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    420: "Bad Extension",
    481: "Call/Transaction Does Not Exist",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "Version Not Supported",
}


def canonical_name(name: str) -> str:
    """`v` -> `Via`, `call-id` -> `Call-ID`, `content-length` -> `Content-Length`."""
    lower = name.strip().lower()
    if lower in COMPACT:
        return COMPACT[lower]
    if lower in _SPECIAL:
        return _SPECIAL[lower]
    return "-".join(part.capitalize() for part in lower.split("-"))


class SipParseError(Exception):
    """A datagram that is not an acceptable SIP message.

    `status` is what a request deserves (400, 413, 505); `partial` holds the headers
    that were readable, so the answer can still be addressed to the sender.
    """

    def __init__(self, reason: str, status: int = 400, partial: Request | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.partial = partial


@dataclass
class Headers:
    """Ordered, repeatable header fields with case-insensitive, compact-aware lookup."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of `name` (None or `default` when absent)."""
        key = canonical_name(name)
        return next((v for k, v in self.items if k == key), default)

    def get_all(self, name: str) -> list[str]:
        """Every value of `name`, comma-separated lists split (Via, Route, Record-Route)."""
        key = canonical_name(name)
        return [part for k, v in self.items if k == key for part in split_list(v)]

    def add(self, name: str, value: str) -> None:
        """Append a header (after any others of the same name)."""
        self.items.append((canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace every `name` header with one value."""
        self.remove(name)
        self.add(name, value)

    def remove(self, name: str) -> None:
        """Drop every `name` header."""
        key = canonical_name(name)
        self.items = [(k, v) for k, v in self.items if k != key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)

    def copy(self) -> Headers:
        """An independent copy."""
        return Headers(list(self.items))


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, respecting quotes and <...> (URIs hold commas)."""
    parts: list[str] = []
    depth, quoted, start = 0, False, 0
    for index, char in enumerate(value):
        if char == '"' and (index == 0 or value[index - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char == "<":
            depth += 1
        elif not quoted and char == ">":
            depth = max(0, depth - 1)
        elif not quoted and depth == 0 and char == ",":
            parts.append(value[start:index].strip())
            start = index + 1
    parts.append(value[start:].strip())
    return [p for p in parts if p]


@dataclass
class Request:
    """A SIP request."""

    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def serialize(self) -> bytes:
        """Wire bytes, with a correct Content-Length."""
        return _serialize(f"{self.method} {self.uri} SIP/2.0", self.headers, self.body)


@dataclass
class Response:
    """A SIP response."""

    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def serialize(self) -> bytes:
        """Wire bytes, with a correct Content-Length."""
        return _serialize(f"SIP/2.0 {self.status} {self.reason}", self.headers, self.body)


Message = Request | Response


def _serialize(start: str, headers: Headers, body: bytes) -> bytes:
    lines = [start]
    lines += [f"{name}: {value}" for name, value in headers if name != "Content-Length"]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def _unfold(lines: Iterable[str]) -> list[str]:
    """Join continuation lines (RFC 3261 7.3.1: leading whitespace continues a header)."""
    joined: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t") and joined:
            joined[-1] = joined[-1].rstrip() + " " + line.strip()
        elif line[:1] in (" ", "\t"):
            raise SipParseError("continuation line before any header")
        else:
            joined.append(line)
    return joined


def _start_line(line: str) -> tuple[Request | Response, SipParseError | None]:
    """The message shell, and an error to raise once the headers are read (505)."""
    if match := _STATUS_LINE.match(line):
        return Response(int(match.group(1)), match.group(2).strip()), None
    parts = line.split(" ")
    if len(parts) != 3 or not parts[1]:
        raise SipParseError(f"malformed start line {line[:80]!r}")
    method, uri, version = parts
    if not _TOKEN.match(method):
        raise SipParseError(f"malformed method {method[:40]!r}")
    if version.upper() != "SIP/2.0":
        return Request(method, uri), SipParseError(f"unsupported version {version[:20]!r}", 505)
    return Request(method, uri), None


def parse(data: bytes) -> Message:
    """One SIP message from one datagram; raises `SipParseError` and nothing else."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError(f"message of {len(data)} bytes is over {MAX_MESSAGE_BYTES}", 413)
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")  # bare LF: tolerated, as most stacks do
    if not sep:
        raise SipParseError("truncated: no blank line after the headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("headers are not UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[0]:  # RFC 3261 7.5: ignore CRLFs before the start line
        lines.pop(0)
    if not lines:
        raise SipParseError("empty message")
    message, error = _start_line(lines[0])
    headers = message.headers
    for line in _unfold(lines[1:]):
        if len(line) > MAX_LINE_BYTES:
            error = error or SipParseError("header line too long", 400)
            continue
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.match(name.strip()):
            error = error or SipParseError(f"malformed header line {line[:60]!r}")
            continue
        headers.add(name, value.strip())
        if len(headers.items) > MAX_HEADERS:
            raise SipParseError(f"more than {MAX_HEADERS} headers", 400, _partial(message))
    if error is not None:
        error.partial = _partial(message)
        raise error
    message.body = _body(message, body)
    _check_mandatory(message)
    return message


def _partial(message: Message) -> Request | None:
    return message if isinstance(message, Request) else None


def _body(message: Message, body: bytes) -> bytes:
    length = message.headers.get("Content-Length")
    if length is None:
        return body  # UDP: the body is the rest of the datagram
    if not length.isdigit() or len(length) > 6:
        raise SipParseError(f"bad Content-Length {length[:20]!r}", 400, _partial(message))
    size = int(length)
    if size > len(body):
        raise SipParseError(
            f"Content-Length {size} but only {len(body)} body bytes", 400, _partial(message)
        )
    return body[:size]  # extra bytes in the datagram are discarded (RFC 3261 18.3)


def _check_mandatory(message: Message) -> None:
    """RFC 3261 8.1.1: every message has To, From, CSeq, Call-ID and Via."""
    for name in ("Via", "Call-ID", "From", "To", "CSeq"):
        if message.headers.get(name) is None:
            raise SipParseError(f"missing {name}", 400, _partial(message))
    try:
        _, method = parse_cseq(message.headers.get("CSeq", ""))
    except ValueError as exc:
        raise SipParseError(str(exc), 400, _partial(message)) from None
    if isinstance(message, Request) and method != message.method:
        raise SipParseError("CSeq method does not match the request", 400, message)


def parse_cseq(value: str | None) -> tuple[int, str]:
    """`"314159 INVITE"` -> (314159, "INVITE"); raises ValueError."""
    parts = (value or "").split()
    if len(parts) != 2 or not parts[0].isdigit() or len(parts[0]) > 10:
        raise ValueError(f"malformed CSeq {value!r}")
    number = int(parts[0])
    if number >= 2**31:
        raise ValueError(f"CSeq {number} out of range")
    return number, parts[1]
