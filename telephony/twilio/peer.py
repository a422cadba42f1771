"""The Twilio end of a media stream, sans-I/O: what a simulated caller needs to act as Twilio.

`voicebot dial` and the tests use it to speak exactly the messages Twilio sends
(`connected`, `start`, `media`, `dtmf`, `mark` echoes, `stop`) and to read what our
server sends back (`media`, `mark`, `clear`), so both ends of the protocol are tested
against each other with no sockets, as h11 tests its client and server pair.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

from telephony.twilio.codec import TWILIO_ENCODING, TWILIO_RATE


@dataclass(frozen=True, slots=True)
class BotMedia:
    """Audio the bot wants played (mu-law 8 kHz bytes)."""

    ulaw: bytes


@dataclass(frozen=True, slots=True)
class BotMark:
    """The bot wants to know when the audio before this point has been played."""

    name: str


@dataclass(frozen=True, slots=True)
class BotClear:
    """The bot wants all queued audio dropped."""


@dataclass(frozen=True, slots=True)
class BotProtocolError:
    """The bot sent something Twilio would reject."""

    message: str


BotMessage = BotMedia | BotMark | BotClear | BotProtocolError


class TwilioPeer:
    """Builds Twilio's messages for one stream and parses the bot's replies."""

    def __init__(
        self,
        call_sid: str,
        stream_sid: str,
        account_sid: str,
        custom_parameters: Mapping[str, str] | None = None,
    ) -> None:
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self.account_sid = account_sid
        self.custom_parameters = dict(custom_parameters or {})
        self._sequence = 0
        self._chunk = 0

    def _next(self) -> str:
        self._sequence += 1
        return str(self._sequence)

    def _dump(self, message: dict[str, object]) -> str:
        return json.dumps(message)

    def connected(self) -> str:
        """First message on a new stream."""
        return self._dump({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    def start(self) -> str:
        """Stream metadata, sent once after `connected`."""
        return self._dump(
            {
                "event": "start",
                "sequenceNumber": self._next(),
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": self.custom_parameters,
                    "mediaFormat": {
                        "encoding": TWILIO_ENCODING,
                        "sampleRate": TWILIO_RATE,
                        "channels": 1,
                    },
                },
                "streamSid": self.stream_sid,
            }
        )

    def media(self, ulaw: bytes, timestamp_ms: int) -> str:
        """One chunk of caller audio (Twilio sends 160 bytes, 20 ms)."""
        self._chunk += 1
        return self._dump(
            {
                "event": "media",
                "sequenceNumber": self._next(),
                "media": {
                    "track": "inbound",
                    "chunk": str(self._chunk),
                    "timestamp": str(timestamp_ms),
                    "payload": base64.b64encode(ulaw).decode("ascii"),
                },
                "streamSid": self.stream_sid,
            }
        )

    def dtmf(self, digit: str) -> str:
        """The caller pressed a key."""
        return self._dump(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "sequenceNumber": self._next(),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    def mark(self, name: str) -> str:
        """Echo of a bot mark, once the audio before it has been played (or cleared)."""
        return self._dump(
            {
                "event": "mark",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            }
        )

    def stop(self) -> str:
        """Last message: the call is over."""
        return self._dump(
            {
                "event": "stop",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
            }
        )

    def receive(self, message: str | bytes) -> BotMessage:
        """Parse one message from the bot."""
        if isinstance(message, bytes):
            return BotProtocolError("binary frame; Twilio accepts JSON text only")
        try:
            data = json.loads(message)
        except json.JSONDecodeError as exc:
            return BotProtocolError(f"invalid JSON: {exc.msg}")
        if not isinstance(data, dict):
            return BotProtocolError("not a JSON object")
        if data.get("streamSid") != self.stream_sid:
            return BotProtocolError(f"wrong or missing streamSid {data.get('streamSid')!r}")
        event = data.get("event")
        if event == "media":
            media = data.get("media")
            payload = media.get("payload") if isinstance(media, dict) else None
            if not isinstance(payload, str):
                return BotProtocolError("media without payload")
            try:
                return BotMedia(base64.b64decode(payload, validate=True))
            except (binascii.Error, ValueError):
                return BotProtocolError("media payload is not base64")
        if event == "mark":
            mark = data.get("mark")
            name = mark.get("name") if isinstance(mark, dict) else None
            if not isinstance(name, str):
                return BotProtocolError("mark without name")
            return BotMark(name)
        if event == "clear":
            return BotClear()
        return BotProtocolError(f"unknown event {event!r}")
