"""The momentum trader: every `momentum_interval` s it looks at the trades of the last
`momentum_lookback` s and buys at market when they rose by `momentum_ticks` or more, sells
when they fell as much, within `momentum_limit` lots of its deposit either way.
`momentum_signal` is the arithmetic."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from actors.agents.base import TimedAgent
from actors.agents.pricing import wire

NS = 1_000_000_000


def momentum_signal(
    trades: Iterable[tuple[int, Decimal]], now_ns: int, lookback_ns: int, threshold: Decimal
) -> int:
    """1 when the trades (ts ns, price; oldest first) of the `lookback_ns` before `now_ns`
    went up by `threshold` or more from the first to the last, -1 when down as much, else 0
    (also with fewer than two trades)."""
    window = [price for ts, price in trades if ts >= now_ns - lookback_ns]
    if len(window) < 2:
        return 0
    move = window[-1] - window[0]
    if move >= threshold:
        return 1
    return -1 if move <= -threshold else 0


class MomentumTrader(TimedAgent):
    kind = "momentum"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trades: deque[tuple[int, Decimal]] = deque(maxlen=10_000)

    def gap(self) -> float:
        return self.params.momentum_interval

    def on_trade(self, price: Decimal, qty: Decimal, ts: int) -> None:
        super().on_trade(price, qty, ts)
        self.trades.append((ts, price))
        horizon = ts - int(self.params.momentum_lookback * NS)
        while self.trades and self.trades[0][0] < horizon:
            self.trades.popleft()

    async def trade(self) -> None:
        assert self.reference is not None
        p = self.params
        threshold = p.momentum_ticks * self.info.step(self.reference, p.tick_bp)
        lookback = int(p.momentum_lookback * NS)
        signal = momentum_signal(self.trades, self.now_ns, lookback, threshold)
        if signal > 0 and self.inventory + p.momentum_size <= p.momentum_limit:
            side = "buy"
        elif signal < 0 and self.inventory - p.momentum_size >= -p.momentum_limit:
            side = "sell"
        else:
            return
        if self.side_ok(side):
            qty = wire(p.momentum_size * self.lot)
            await self.send(
                "order.new", symbol=self.symbol, side=side, qty=qty, order_type="market"
            )
