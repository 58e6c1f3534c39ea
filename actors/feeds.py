"""Market data sources for the controller. Today: the built-in synthetic feed.

The synthetic feed is a seeded random walk per symbol, kept in whole ticks so every
published price is an exact multiple of the tick: each step moves the price by a normal
draw with `volatility_bp` basis points of standard deviation, never below one tick.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from protocol.settings import Settings


@dataclass(slots=True)
class _Walk:
    symbol: str
    ticks: int
    rng: random.Random


@dataclass(frozen=True, slots=True)
class Tick:
    symbol: str
    last: Decimal
    volume: int


class SyntheticFeed:
    """Deterministic for a given seed: the same Settings give the same price paths."""

    def __init__(self, settings: Settings) -> None:
        self.tick_size = settings.trading.tick_size
        self.lot = settings.trading.lot_size
        self.sigma = settings.market.volatility_bp / 10_000
        self._walks = [
            _Walk(
                s.symbol,
                int(s.prev_close / self.tick_size),
                random.Random(f"{settings.market.seed}:{s.symbol}"),
            )
            for s in settings.market.symbols
        ]

    def prices(self) -> dict[str, str]:
        """Where each walk stands, to resume from after a restart."""
        return {w.symbol: str(w.ticks * self.tick_size) for w in self._walks}

    def resume(self, prices: dict[str, str]) -> None:
        for walk in self._walks:
            if walk.symbol in prices:
                walk.ticks = max(1, int(Decimal(prices[walk.symbol]) / self.tick_size))

    def step(self, bands: dict[str, tuple[Decimal, Decimal]] | None = None) -> list[Tick]:
        """Advance every symbol by one step and return the new trades; a walk that would
        leave its symbol's band (the day's price limits) stops at the edge."""
        ticks = []
        for walk in self._walks:
            move = round(walk.ticks * walk.rng.gauss(0.0, self.sigma))
            walk.ticks = max(1, walk.ticks + move)
            if bands and walk.symbol in bands:
                low, high = bands[walk.symbol]
                walk.ticks = min(
                    max(walk.ticks, int(low / self.tick_size)), int(high / self.tick_size)
                )
            volume = walk.rng.randint(1, 50) * self.lot
            ticks.append(Tick(walk.symbol, walk.ticks * self.tick_size, volume))
        return ticks
