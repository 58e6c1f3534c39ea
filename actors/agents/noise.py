"""The noise trader: at random times (exponential gaps, `noise_interval` s on average) a
small market order, or an IOC limit order through the reference, of a random side and
size, leaning to the side that brings its inventory back. `pick_side` is the arithmetic."""

from __future__ import annotations

from decimal import Decimal

from actors.agents.base import TimedAgent
from actors.agents.pricing import wire


def pick_side(draw: float, inventory: Decimal, limit: int) -> str:
    """Buy when `draw` (uniform in [0, 1)) falls under 1/2 less half the inventory's share
    of `limit`: even odds when flat, only sells at `limit` lots long, only buys short."""
    lean = max(-1.0, min(1.0, float(inventory) / limit))
    return "buy" if draw < 0.5 - 0.5 * lean else "sell"


class NoiseTrader(TimedAgent):
    kind = "noise"

    def gap(self) -> float:
        return self.rng.expovariate(1.0 / self.params.noise_interval)

    async def trade(self) -> None:
        assert self.reference is not None
        p = self.params
        side = pick_side(self.rng.random(), self.inventory, p.inventory_limit)
        qty = wire(self.rng.randint(1, p.noise_size) * self.lot)
        at_market = self.rng.random() < 0.5
        if not self.side_ok(side):
            return
        if at_market:
            await self.send(
                "order.new", symbol=self.symbol, side=side, qty=qty, order_type="market"
            )
            return
        through = p.noise_cross_ticks * self.info.step(self.reference, p.tick_bp)
        price = self.reference + through if side == "buy" else self.reference - through
        await self.send(
            "order.new",
            symbol=self.symbol,
            side=side,
            qty=qty,
            order_type="limit",
            limit_price=wire(self.info.clamp(price)),
            time_in_force="ioc",
        )
