"""RTP port allocation over a configured range (what the firewall opens for media).

RTP uses an even port, with RTCP on the odd port above it (RFC 3550 11), so only
even ports are handed out. A released port goes to the back of the line rather
than being reused at once: late packets of the call that just ended must not land
in the next call's stream.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class PortsExhausted(RuntimeError):
    """Every RTP port in the range is in use: the bridge is at capacity."""


class PortAllocator:
    """Hands out even ports in [first, last]; not thread-safe (one event loop owns it)."""

    def __init__(self, first: int = 10000, last: int = 10999) -> None:
        if not 0 < first <= last < 65536:
            raise ValueError(f"bad RTP port range {first}-{last}")
        start = first + (first % 2)
        self.first = first
        self.last = last
        self._free: deque[int] = deque(range(start, last + 1, 2))
        self._used: set[int] = set()
        if not self._free:
            raise ValueError(f"RTP port range {first}-{last} has no even port")

    @property
    def free(self) -> int:
        """Ports still available."""
        return len(self._free)

    @property
    def in_use(self) -> frozenset[int]:
        """Ports currently allocated."""
        return frozenset(self._used)

    def allocate(self) -> int:
        """Take the least recently used free port; raises `PortsExhausted`."""
        if not self._free:
            raise PortsExhausted(
                f"all {len(self._used)} RTP ports in {self.first}-{self.last} are in use"
            )
        port = self._free.popleft()
        self._used.add(port)
        return port

    def release(self, port: int) -> None:
        """Give a port back (releasing one that is not in use is a no-op)."""
        if port in self._used:
            self._used.remove(port)
            self._free.append(port)


async def bind_rtp(
    host: str,
    ports: PortAllocator,
    protocol: Callable[[], asyncio.DatagramProtocol],
    *,
    attempts: int = 8,
) -> tuple[asyncio.DatagramTransport, int]:
    """Bind a UDP endpoint on `host` at a port from `ports`; returns it and the port.

    A port another process holds is skipped (it goes back to the pool, to the back of
    the line); raises `PortsExhausted`, or the last `OSError` after `attempts` tries.
    """
    loop = asyncio.get_running_loop()
    for attempt in range(1, attempts + 1):
        port = ports.allocate()
        try:
            transport, _ = await loop.create_datagram_endpoint(protocol, local_addr=(host, port))
        except OSError:
            ports.release(port)
            if attempt == attempts:
                raise
            continue
        return transport, port
    raise ValueError(f"attempts must be at least 1, got {attempts}")
