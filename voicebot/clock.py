"""The call brain's clocks: the same types the carrier side uses (see `telephony.clock`)."""

from telephony.clock import Clock, ManualClock, MonotonicClock

__all__ = ["Clock", "ManualClock", "MonotonicClock"]
