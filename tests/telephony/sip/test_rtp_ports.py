"""RTP port allocation over an even port range."""

from __future__ import annotations

import asyncio
import socket

import pytest

from telephony.sip.ports import PortAllocator, PortsExhausted, bind_rtp


def test_allocates_even_ports_until_exhausted() -> None:
    ports = PortAllocator(10001, 10006)
    taken = [ports.allocate(), ports.allocate()]
    assert taken == [10002, 10004]
    assert ports.free == 1
    ports.allocate()
    with pytest.raises(PortsExhausted, match="10001-10006"):
        ports.allocate()


def test_released_port_goes_to_the_back_of_the_line() -> None:
    ports = PortAllocator(20000, 20005)
    first = ports.allocate()
    ports.release(first)
    ports.release(first)  # releasing twice is harmless
    assert [ports.allocate() for _ in range(3)] == [20002, 20004, 20000]
    assert ports.in_use == {20000, 20002, 20004}


@pytest.mark.parametrize(("first", "last"), [(0, 10), (10, 5), (10001, 10001), (5, 70000)])
def test_bad_ranges_are_refused(first: int, last: int) -> None:
    with pytest.raises(ValueError, match="range"):
        PortAllocator(first, last)


def even_port_socket() -> socket.socket:
    """A UDP socket the OS bound to an even port on 127.0.0.1 (RTP ports are even)."""
    while True:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        if sock.getsockname()[1] % 2 == 0:
            return sock
        sock.close()


async def test_bind_skips_a_port_another_socket_holds() -> None:
    busy = even_port_socket()
    try:
        taken = busy.getsockname()[1]
        ports = PortAllocator(taken, taken + 2)
        transport, port = await bind_rtp("127.0.0.1", ports, asyncio.DatagramProtocol)
        transport.close()
        assert port == taken + 2
        assert ports.in_use == {taken + 2} and ports.free == 1
        only_busy = PortAllocator(taken, taken)
        with pytest.raises(OSError):
            await bind_rtp("127.0.0.1", only_busy, asyncio.DatagramProtocol, attempts=1)
        assert only_busy.free == 1  # given back, not leaked
    finally:
        busy.close()
