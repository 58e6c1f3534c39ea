"""Clocks handed to constructors: the live wall clock now, a simulated clock for replays later."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int:
        """Nanoseconds since the Unix epoch, UTC."""
        ...


class LiveClock:
    """Wall-clock time."""

    def now_ns(self) -> int:
        return time.time_ns()


class FixedClock:
    """A clock that moves only when told to; for unit tests of time-dependent rules."""

    def __init__(self, start_ns: int) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def advance(self, ns: int) -> None:
        self._now += ns
