"""RTP port allocation over an even port range."""

from __future__ import annotations

import pytest

from telephony.sip.ports import PortAllocator, PortsExhausted


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
