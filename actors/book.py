"""A plain order book for one symbol: resting orders in price-time priority, no I/O.

Bids are served highest price first, asks lowest first; at one price, earliest first.
The matcher's Router holds one Book per symbol and asks it which orders a trade price
crosses (wait mode) or fills an order at its own limit (instant mode).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sortedcontainers import SortedDict


@dataclass(slots=True)
class Resting:
    order_id: int
    side: str
    price: Decimal
    leaves_qty: Decimal
    cum_qty: Decimal
    seq: int


@dataclass(frozen=True, slots=True)
class Match:
    """A fill the book decided: qty of an order at a price; `cum_qty` includes it."""

    order_id: int
    qty: Decimal
    price: Decimal
    cum_qty: Decimal


class Book:
    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        # price -> {order_id: Resting}; dicts keep insertion order, which is time priority
        self._bids: SortedDict = SortedDict()
        self._asks: SortedDict = SortedDict()
        self._orders: dict[int, Resting] = {}

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id: int) -> bool:
        return order_id in self._orders

    def add(self, order: Resting) -> None:
        side = self._bids if order.side == "buy" else self._asks
        side.setdefault(order.price, {})[order.order_id] = order
        self._orders[order.order_id] = order

    def remove(self, order_id: int) -> Resting | None:
        order = self._orders.pop(order_id, None)
        if order is None:
            return None
        side = self._bids if order.side == "buy" else self._asks
        level = side[order.price]
        del level[order_id]
        if not level:
            del side[order.price]
        return order

    def best_bid(self) -> Decimal | None:
        return self._bids.peekitem(-1)[0] if self._bids else None

    def best_ask(self) -> Decimal | None:
        return self._asks.peekitem(0)[0] if self._asks else None

    def cross(self, last: Decimal) -> list[Match]:
        """Fill every bid at or above `last` and every ask at or below it, at `last`, in full."""
        crossed: list[Resting] = []
        while self._bids and self._bids.peekitem(-1)[0] >= last:
            _, level = self._bids.popitem(-1)
            crossed.extend(level.values())
        while self._asks and self._asks.peekitem(0)[0] <= last:
            _, level = self._asks.popitem(0)
            crossed.extend(level.values())
        return [self._fill_all(order, last) for order in crossed]

    def fill_at_limit(self, order_id: int) -> Match | None:
        """Instant mode: the whole order fills at its own limit price."""
        order = self.remove(order_id)
        return None if order is None else self._fill_all(order, order.price)

    def fill_everything(self) -> list[Match]:
        """Instant mode after trading resumes: every resting order, in priority order."""
        orders = [o for _, level in reversed(self._bids.items()) for o in level.values()]
        orders += [o for _, level in self._asks.items() for o in level.values()]
        for order in orders:
            self.remove(order.order_id)
        return [self._fill_all(o, o.price) for o in orders]

    def _fill_all(self, order: Resting, price: Decimal) -> Match:
        self._orders.pop(order.order_id, None)
        return Match(order.order_id, order.leaves_qty, price, order.cum_qty + order.leaves_qty)

    def orders(self) -> list[Resting]:
        """Every resting order, in no particular order."""
        return list(self._orders.values())
