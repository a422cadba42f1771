"""SDP offer/answer (RFC 4566, RFC 3264) for one narrowband audio stream.

A trunk offers a list of codecs; we speak G.711 only (PCMU, PCMA: no transcoding
library, and every trunk supports them) plus RFC 4733 `telephone-event` for DTMF at
whatever dynamic payload type the offer uses (we echo it back). We follow the
offerer's codec order, answer with exactly one codec (so both sides know what will
flow) and `ptime:20` (our playout frames). Direction attributes map as RFC 3264 6.1
says; the legacy hold `c=0.0.0.0` (RFC 2543) means "do not send to me". Other media
lines (video) are rejected with port 0, keeping the m-line count the offer had.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

Encoding = Literal["PCMU", "PCMA"]
Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]

#: Static payload types of RFC 3551 we accept, by encoding name.
STATIC = {0: "PCMU", 8: "PCMA"}
SUPPORTED: dict[str, Encoding] = {"PCMU": "PCMU", "PCMA": "PCMA"}
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_ANSWER_DIRECTION: dict[str, Direction] = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}
MAX_SDP_BYTES = 8192


class SdpError(Exception):
    """An offer we cannot use: `status` is 400 (malformed) or 488 (nothing in common)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass
class MediaLine:
    """One m= section of an offer."""

    media: str
    port: int
    proto: str
    formats: list[str]
    address: str | None = None
    direction: str | None = None
    rtpmap: dict[int, str] = field(default_factory=dict)
    ptime: int | None = None


@dataclass
class Offer:
    """The parts of an SDP offer that matter to one audio stream."""

    address: str | None
    direction: str
    media: list[MediaLine]


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What both sides agreed: where to send RTP, in which codec, and in which direction.

    `direction` is ours (the answer's attribute): "sendrecv"; "sendonly" (the caller
    only listens); "recvonly" (we must not send: the caller put us on hold);
    "inactive" (nothing flows either way).
    """

    remote_host: str
    remote_port: int
    encoding: Encoding
    payload_type: int
    dtmf_payload_type: int | None
    direction: Direction

    @property
    def remote(self) -> tuple[str, int]:
        """Where our RTP goes."""
        return self.remote_host, self.remote_port

    @property
    def on_hold(self) -> bool:
        """True when the caller does not want our audio now."""
        return self.direction in ("recvonly", "inactive")

    @property
    def mime_type(self) -> str:
        """`audio/PCMU` or `audio/PCMA`, as `MediaFormat.encoding`."""
        return f"audio/{self.encoding}"


def parse_offer(body: bytes) -> Offer:
    """Parse an SDP body; raises `SdpError` (400) when it is not usable SDP."""
    if not body:
        raise SdpError("no SDP offer (offerless INVITE is not supported)", 488)
    if len(body) > MAX_SDP_BYTES:
        raise SdpError("SDP body too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("SDP is not UTF-8") from None
    offer = Offer(None, "sendrecv", [])
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line:
            continue
        kind, eq, value = line.partition("=")
        if not eq or len(kind) != 1:
            raise SdpError(f"malformed SDP line {line[:60]!r}")
        current = offer.media[-1] if offer.media else None
        if kind == "m":
            offer.media.append(_media_line(value))
        elif kind == "c":
            address = _connection_address(value)
            if current is None:
                offer.address = address
            else:
                current.address = address
        elif kind == "a":
            _attribute(offer, current, value)
    if not offer.media:
        raise SdpError("SDP has no m= line")
    return offer


def _media_line(value: str) -> MediaLine:
    parts = value.split()
    if len(parts) < 4 or not parts[1].split("/")[0].isdigit():
        raise SdpError(f"malformed m= line {value[:60]!r}")
    port = int(parts[1].split("/")[0])
    if port > 65535:
        raise SdpError(f"bad media port {port}")
    return MediaLine(parts[0], port, parts[2], parts[3:])


def _connection_address(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"malformed c= line {value[:60]!r}")
    address = parts[2].split("/")[0]
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise SdpError(f"c= address {address[:60]!r} is not an IP address") from None
    return address


def _attribute(offer: Offer, media: MediaLine | None, value: str) -> None:
    name, _, rest = value.partition(":")
    if name in DIRECTIONS:
        if media is None:
            offer.direction = name
        else:
            media.direction = name
    elif media is None:
        return
    elif name == "rtpmap":
        pt, _, encoding = rest.partition(" ")
        if pt.isdigit():
            media.rtpmap[int(pt)] = encoding.strip()
    elif name == "ptime" and rest.strip().isdigit():
        media.ptime = int(rest.strip())


def _encoding(media: MediaLine, pt: int) -> tuple[str, int]:
    """(name, clock rate) of a payload type, from rtpmap or the static table."""
    if pt in media.rtpmap:
        name, _, rate = media.rtpmap[pt].partition("/")
        return name, int(rate.split("/")[0]) if rate.split("/")[0].isdigit() else 0
    return STATIC.get(pt, ""), 8000 if pt in STATIC else 0


def negotiate(offer: Offer) -> Negotiated:
    """Pick the first offered G.711 codec on the first audio line; raises `SdpError` (488)."""
    for media in offer.media:
        if media.media != "audio" or media.port == 0 or "RTP/AVP" not in media.proto:
            continue
        codec: tuple[Encoding, int] | None = None
        dtmf: int | None = None
        for fmt in media.formats:
            if not fmt.isdigit():
                continue
            pt = int(fmt)
            name, rate = _encoding(media, pt)
            if codec is None and name.upper() in SUPPORTED and rate == 8000:
                codec = (SUPPORTED[name.upper()], pt)
            elif dtmf is None and name.lower() == "telephone-event" and rate == 8000:
                dtmf = pt
        if codec is None:
            continue
        address = media.address or offer.address
        if address is None:
            raise SdpError("SDP has no c= address for the audio stream")
        direction = media.direction or offer.direction
        if address in ("0.0.0.0", "::"):  # RFC 2543 hold: "do not send to me"
            direction = {"sendrecv": "sendonly", "recvonly": "inactive"}.get(direction, direction)
        return Negotiated(
            address, media.port, codec[0], codec[1], dtmf, _ANSWER_DIRECTION[direction]
        )
    raise SdpError("no common codec (we accept PCMU and PCMA)", 488)


def build_answer(
    offer: Offer,
    agreed: Negotiated,
    *,
    host: str,
    port: int,
    session_id: int,
    version: int,
) -> bytes:
    """The SDP answer: our address and port, the agreed codec, DTMF and direction."""
    family = "IP6" if ":" in host else "IP4"
    lines = [
        "v=0",
        f"o=voicebot {session_id} {version} IN {family} {host}",
        "s=voicebot",
        f"c=IN {family} {host}",
        "t=0 0",
    ]
    answered = False
    for media in offer.media:
        usable = (
            not answered
            and media.media == "audio"
            and media.port == agreed.remote_port
            and agreed.payload_type in [int(f) for f in media.formats if f.isdigit()]
        )
        if not usable:
            lines.append(f"m={media.media} 0 {media.proto} {' '.join(media.formats[:1])}")
            continue
        answered = True
        formats = [agreed.payload_type]
        if agreed.dtmf_payload_type is not None:
            formats.append(agreed.dtmf_payload_type)
        lines.append(f"m=audio {port} RTP/AVP {' '.join(map(str, formats))}")
        lines.append(f"a=rtpmap:{agreed.payload_type} {agreed.encoding}/8000")
        if agreed.dtmf_payload_type is not None:
            lines.append(f"a=rtpmap:{agreed.dtmf_payload_type} telephone-event/8000")
            lines.append(f"a=fmtp:{agreed.dtmf_payload_type} 0-15")
        lines.append("a=ptime:20")
        lines.append(f"a={agreed.direction}")
    return ("\r\n".join(lines) + "\r\n").encode()
