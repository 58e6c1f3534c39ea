"""What an agent knows of a symbol from the public `symbols` reply, and the price and size
arithmetic every agent kind shares: round lots, agent ticks, prices on the tick and inside
the day's band. Plain functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

BP = Decimal(10_000)


@dataclass(frozen=True)
class SymbolInfo:
    """One row of the `symbols` reply (protocol.md 3.17), as numbers."""

    symbol: str
    profile: str
    prev_close: Decimal
    tick: Decimal
    lot: Decimal
    qty_step: Decimal
    min_notional: Decimal
    limit_down: Decimal | None
    limit_up: Decimal | None
    mode: str = ""  # paper or exchange ("": a server that does not say)

    @classmethod
    def from_reply(cls, row: dict[str, Any]) -> SymbolInfo:
        def opt(key: str) -> Decimal | None:
            return None if row.get(key) is None else Decimal(str(row[key]))

        return cls(
            symbol=row["symbol"],
            profile=row["profile"],
            prev_close=Decimal(str(row["prev_close"])),
            tick=Decimal(str(row["tick_size"])),
            lot=Decimal(str(row["lot_size"])),
            qty_step=Decimal(str(row["qty_step"])),
            min_notional=Decimal(str(row["min_notional"])),
            limit_down=opt("limit_down"),
            limit_up=opt("limit_up"),
            mode=str(row.get("mode", "")),
        )

    @property
    def round_lot(self) -> Decimal:
        """The agents' unit of size: a lot of 100 shares for cn_a and us_equity; else the
        smallest power-of-ten multiple of the lot worth 100 or more at the previous close,
        and at least the minimum order value (the synthetic feed's volume unit)."""
        if self.profile == "cn_a":
            unit = self.lot
        elif self.profile == "us_equity":
            unit = Decimal(100)
        else:
            unit = self.lot
            while unit * self.prev_close < 100:
                unit *= 10
        while unit * self.prev_close < self.min_notional:
            unit *= 10
        return unit

    def step(self, reference: Decimal, tick_bp: Decimal) -> Decimal:
        """An agent tick at `reference`: the symbol's tick, or `tick_bp` basis points of
        the price rounded to the tick where that is more."""
        wide = (reference * tick_bp / BP / self.tick).to_integral_value(ROUND_HALF_UP)
        return self.tick * max(Decimal(1), wide)

    def floor(self, price: Decimal) -> Decimal:
        """`price` on the tick, rounded down (a bid's)."""
        return (price / self.tick).to_integral_value(ROUND_FLOOR) * self.tick

    def ceil(self, price: Decimal) -> Decimal:
        """`price` on the tick, rounded up (an ask's)."""
        return (price / self.tick).to_integral_value(ROUND_CEILING) * self.tick

    def in_band(self, price: Decimal) -> bool:
        """Above 0 and inside today's price limits, where the symbol has them."""
        if price <= 0:
            return False
        if self.limit_down is not None and price < self.limit_down:
            return False
        return self.limit_up is None or price <= self.limit_up

    def clamp(self, price: Decimal) -> Decimal:
        """`price` moved inside today's price limits (and above 0)."""
        if self.limit_down is not None:
            price = max(price, self.limit_down)
        if self.limit_up is not None:
            price = min(price, self.limit_up)
        return max(price, self.tick)


def wire(value: Decimal) -> str:
    """A price or quantity as a plain decimal string, never in exponent form."""
    return format(value, "f")
