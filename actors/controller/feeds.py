"""Market data sources for the controller. Today: the built-in synthetic feed.

The synthetic feed is a seeded random walk per symbol, kept in whole ticks of the symbol
so every published price is an exact multiple of its tick: each step moves the price by a
normal draw with `volatility_bp` basis points of standard deviation, never below one tick.
Each trade's volume is 1 to 50 volume units: a lot for cn_a, 100 shares for us_equity, and
for crypto the smallest power-of-ten multiple of the step worth 100 or more at the
previous close.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from actors.market.rules import Market, Profile
from protocol.settings import Settings


@dataclass(slots=True)
class _Walk:
    symbol: str
    ticks: int
    rng: random.Random
    tick_size: Decimal
    volume_unit: Decimal


@dataclass(frozen=True, slots=True)
class Tick:
    symbol: str
    last: Decimal
    volume: Decimal


def volume_unit(rules: Profile, prev_close: Decimal) -> Decimal:
    if rules.name == "cn_a":
        return rules.lot_size
    if rules.name == "us_equity":
        return Decimal(100)
    unit = rules.lot_size
    while unit * prev_close < 100:
        unit *= 10
    return unit


class SyntheticFeed:
    """Deterministic for a given seed: the same Settings give the same price paths."""

    def __init__(self, settings: Settings) -> None:
        market = Market.from_settings(settings)
        self.sigma = settings.market.volatility_bp / 10_000
        self._walks = []
        for s in settings.market.symbols:
            rules = market.rules(s.symbol)
            self._walks.append(
                _Walk(
                    s.symbol,
                    int(s.prev_close / rules.tick_size),
                    random.Random(f"{settings.market.seed}:{s.symbol}"),
                    rules.tick_size,
                    volume_unit(rules, s.prev_close),
                )
            )

    def prices(self) -> dict[str, str]:
        """Where each walk stands, to resume from after a restart."""
        return {w.symbol: str(w.ticks * w.tick_size) for w in self._walks}

    def resume(self, prices: dict[str, str]) -> None:
        for walk in self._walks:
            if walk.symbol in prices:
                walk.ticks = max(1, int(Decimal(prices[walk.symbol]) / walk.tick_size))

    def step(self, bands: dict[str, tuple[Decimal, Decimal]] | None = None) -> list[Tick]:
        """Advance the symbols of `bands` (default: all) by one step and return the new
        trades; a walk that would leave its symbol's band (the day's price limits) stops
        at the edge. A symbol whose market is closed is left out, and waits unchanged."""
        ticks = []
        for walk in self._walks:
            if bands is not None and walk.symbol not in bands:
                continue
            move = round(walk.ticks * walk.rng.gauss(0.0, self.sigma))
            walk.ticks = max(1, walk.ticks + move)
            if bands and walk.symbol in bands:
                low, high = bands[walk.symbol]
                walk.ticks = min(
                    max(walk.ticks, int(low / walk.tick_size)), int(high / walk.tick_size)
                )
            volume = walk.rng.randint(1, 50) * walk.volume_unit
            ticks.append(Tick(walk.symbol, walk.ticks * walk.tick_size, volume))
        return ticks
