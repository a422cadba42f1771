"""SIP trunk bridge: a user agent server (signalling) and RTP media, sans-I/O at the core.

`message`, `fields`, `sdp`, `dialog` and `uas` are plain objects with no sockets;
`server` runs them on asyncio UDP endpoints and turns each answered call into the
same carrier-neutral `CallConnection` the websocket carriers produce.
"""
