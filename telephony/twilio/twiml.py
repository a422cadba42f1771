"""TwiML for the voice webhook: connect the call to our media websocket.

`<Connect><Stream>` makes the stream bidirectional (we can send audio, marks and
clear); `<Parameter>`s travel to the websocket in the `start` message's
`customParameters`, which is how the call's context (caller number, our own call
reference) reaches the media server without a shared database.
"""

from __future__ import annotations

from collections.abc import Mapping
from xml.sax.saxutils import quoteattr

MAX_PARAMETERS = 16


def connect_stream(stream_url: str, parameters: Mapping[str, str] | None = None) -> str:
    """TwiML that connects the call to `stream_url` with the given custom parameters."""
    if not stream_url.startswith(("wss://", "ws://")):
        raise ValueError(f"stream URL must be a websocket URL, got {stream_url!r}")
    items = list((parameters or {}).items())[:MAX_PARAMETERS]
    params = "".join(
        f"<Parameter name={quoteattr(str(k))} value={quoteattr(str(v))}/>" for k, v in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Connect><Stream url={quoteattr(stream_url)}>{params}</Stream></Connect>"
        "</Response>"
    )


def say_and_hangup(message: str) -> str:
    """TwiML that speaks a short message and ends the call (used when we cannot take it)."""
    text = message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Say>{text}</Say><Hangup/></Response>'
