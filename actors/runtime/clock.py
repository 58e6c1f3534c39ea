"""Clocks handed to constructors: wall-clock time, or market time set by the trades.

With `[control] clock = "market"` the time is the time the market data says: the
controller moves its clock with the `ts` of each pushed trade, and the matcher and the
accountant move theirs with the `ts` of every control message and trade the controller
publishes. Sessions, DAY expiry, T+1, order and fill times then follow the data, not the
wall, so a test or a replay can be days long and take seconds.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int:
        """Nanoseconds since the Unix epoch, UTC."""
        ...

    def advance(self, ts_ns: int) -> None:
        """Market time has reached `ts_ns` (the wall clock ignores it)."""
        ...


class LiveClock:
    """Wall-clock time."""

    def now_ns(self) -> int:
        return time.time_ns()

    def advance(self, ts_ns: int) -> None:
        pass


class MarketClock:
    """The latest market time seen; it never goes back. One writer thread, any readers."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def advance(self, ts_ns: int) -> None:
        if ts_ns > self._now:
            self._now = ts_ns


def clock_for(kind: str, start_ns: int = 0) -> Clock:
    return MarketClock(start_ns) if kind == "market" else LiveClock()
