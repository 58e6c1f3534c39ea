"""The order book of one symbol in exchange mode: users' orders trade with each other.

No feed fills anything here (docs/fill-model.md, Exchange mode). An incoming order takes
liquidity from the opposite side, best price first and, at one price, earliest first, at
the resting orders' prices; what it leaves rests (a limit order) or is canceled (market,
IOC). Each fill is a `Print` between a taker and a maker. Stops wait beside the book until
a print reaches them and then come in as takers, in the order they were placed.

Self-trade prevention: when the next resting order is the taker's user's own, the taker's
`stp` decides: `cancel_newest` cancels the taker, `cancel_oldest` the resting order (and
matching goes on), `cancel_both` both.

The book has no I/O: the matcher's Router hands it orders and sends on what comes out,
in the order it happened (`Outcome.events`). It also keeps the depth: each price level's
total, and which levels changed since it was last asked (`take_depth_changes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from itertools import islice

from actors.market.rules import MAKER, TAKER, ZERO
from actors.matcher.book import Book, Match, Resting, Trigger

CANCEL_NEWEST, CANCEL_OLDEST, CANCEL_BOTH = "cancel_newest", "cancel_oldest", "cancel_both"
Level = tuple[Decimal, Decimal]  # price, the qty resting there in all


@dataclass(frozen=True, slots=True)
class Print:
    """A trade between two orders, at the maker's price."""

    price: Decimal
    qty: Decimal
    taker_side: str
    taker_id: int
    maker_id: int


@dataclass(frozen=True, slots=True)
class Closed:
    """An order the book took out before it filled whole. Canceled (`killed` False):
    "self_trade", "ioc", "no_liquidity" (a market order's rest), "market_closed". Killed,
    refused whole with nothing filled: "fok", "post_only", "self_trade", "market_closed"."""

    order_id: int
    reason: str
    killed: bool = False


@dataclass(frozen=True, slots=True)
class Rested:
    """A post-only order now rests in the book (it is answered only then)."""

    order_id: int


Event = Match | Trigger | Closed | Rested


@dataclass
class Outcome:
    events: list[Event] = field(default_factory=list)  # in the order they happened
    prints: list[Print] = field(default_factory=list)
    stops_saw: int = 0  # the prints the waiting stops have been shown

    @property
    def matches(self) -> list[Match]:
        return [e for e in self.events if isinstance(e, Match)]

    @property
    def triggers(self) -> list[Trigger]:
        return [e for e in self.events if isinstance(e, Trigger)]

    @property
    def canceled(self) -> list[tuple[int, str]]:
        closed = (e for e in self.events if isinstance(e, Closed))
        return [(e.order_id, e.reason) for e in closed if not e.killed]

    @property
    def killed(self) -> list[tuple[int, str]]:
        closed = (e for e in self.events if isinstance(e, Closed))
        return [(e.order_id, e.reason) for e in closed if e.killed]

    @property
    def rested(self) -> list[int]:
        return [e.order_id for e in self.events if isinstance(e, Rested)]

    def close(self, order: Resting, reason: str, killed: bool = False) -> None:
        self.events.append(Closed(order.order_id, reason, killed))


@dataclass
class ExchangeBook(Book):
    last: Decimal | None = None  # the price of the latest print
    _touched: set[tuple[str, Decimal]] = field(default_factory=set)
    _shown: dict[str, dict[Decimal, Decimal]] = field(
        default_factory=lambda: {"buy": {}, "sell": {}}
    )

    # ORDERS IN AND OUT -------------------------------------------------------------------

    def submit(self, order: Resting, trading: bool = True) -> Outcome:
        """An order comes in: it takes what it can, then rests or ends (module docstring)."""
        out = Outcome()
        if order.waiting:
            self.add(order)
        else:
            self._enter(order, trading, out)
            self._trigger_stops(out)
        return out

    def rest(self, order: Resting) -> None:
        """An order of a book being rebuilt from a snapshot: it rests, matching nothing."""
        self.add(order)

    def cancel(self, order_id: int) -> Resting | None:
        return self.remove(order_id)

    def replace_order(
        self, old_id: int, new: Resting, trading: bool = True
    ) -> tuple[bool, Outcome]:
        """Put `new` in the place of `old_id`: it keeps the old one's time priority when it
        works at the same price for no more qty (True); otherwise it comes in as a new
        order at the back, and may take (False). A post-only replacement that would take
        is killed, and the old order stays where it was. Without `old_id` nothing changes."""
        old = self._orders.get(old_id)
        out = Outcome()
        if old is None:
            return False, out
        moves = old.waiting or new.waiting or (new.side, new.price) != (old.side, old.price)
        losing_place = moves or new.leaves_qty > old.leaves_qty
        if new.post_only and trading and losing_place and self._would_take(new):
            out.close(new, "post_only", killed=True)
            return False, out
        if self.replace(old_id, new):
            return True, out
        # Book.replace took the old one out and put `new` in: it comes in as a taker instead
        self.remove(new.order_id)
        return False, self.submit(new, trading)

    def uncross(self) -> Outcome:
        """Trade what crosses after a time the book could not match (trading was off, or it
        was rebuilt): the newer of the two front orders takes from the older, until the
        best bid is below the best ask."""
        out = Outcome()
        while self._bids and self._asks:
            bid_price, bids = self._bids.peekitem(-1)
            ask_price, asks = self._asks.peekitem(0)
            if bid_price < ask_price:
                break
            bid, ask = next(iter(bids.values())), next(iter(asks.values()))
            newer = bid if bid.seq > ask.seq else ask
            self.remove(newer.order_id)
            if newer.post_only:  # it was promised never to take
                out.close(newer, "post_only")
                continue
            self._enter(newer, True, out)
            self._trigger_stops(out)
        return out

    def _enter(self, order: Resting, trading: bool, out: Outcome) -> None:
        """A working order arrives: take, then rest or end."""
        tif = order.time_in_force
        if not trading:
            if order.order_type == "market" or tif == "ioc":
                out.close(order, "market_closed")
            elif tif == "fok":
                out.close(order, "market_closed", killed=True)
            else:
                self.add(order)
                if order.post_only:
                    out.events.append(Rested(order.order_id))
            return
        if order.post_only:
            if self._would_take(order):
                out.close(order, "post_only", killed=True)
            else:
                self.add(order)
                out.events.append(Rested(order.order_id))
            return
        if tif == "fok":
            available, stopped = self._available(order)
            if available < order.leaves_qty:
                out.close(order, "self_trade" if stopped else "fok", killed=True)
                return
        if self._take(order, out) or not order.leaves_qty:
            return
        if order.order_type == "market" or (order.triggered and order.order_type != "stop_limit"):
            out.close(order, "no_liquidity")
        elif tif in ("ioc", "fok"):
            out.close(order, "ioc")
        else:
            self.add(order)

    def _would_take(self, order: Resting) -> bool:
        best = self.best_ask() if order.side == "buy" else self.best_bid()
        return best is not None and _reaches(order, best)

    def _take(self, taker: Resting, out: Outcome) -> bool:
        """Fill `taker` against the opposite side; returns whether self-trade prevention
        canceled it."""
        buy = taker.side == "buy"
        opposite = self._asks if buy else self._bids
        while taker.leaves_qty and opposite:
            price, level = opposite.peekitem(0 if buy else -1)
            if not _reaches(taker, price):
                break
            maker: Resting = next(iter(level.values()))
            if maker.user_id == taker.user_id:
                if self._prevent_self_trade(taker, maker, out):
                    return True
                continue
            self._trade(taker, maker, price, out)
        return False

    def _prevent_self_trade(self, taker: Resting, maker: Resting, out: Outcome) -> bool:
        """Cancel what the taker's `stp` says instead of a trade between two orders of one
        user; returns whether the taker was canceled."""
        if taker.stp in (CANCEL_OLDEST, CANCEL_BOTH):
            self.remove(maker.order_id)
            out.close(maker, "self_trade")
        if taker.stp in (CANCEL_NEWEST, CANCEL_BOTH):
            self.remove(taker.order_id)  # in the book in an auction; else nothing to do
            out.close(taker, "self_trade")
            return True
        return False

    def _trade(self, taker: Resting, maker: Resting, price: Decimal, out: Outcome) -> None:
        """A print of the smaller of the two orders' leaves at `price`: the taker's match,
        then the maker's; an order in the book leaves it once filled."""
        qty = min(taker.leaves_qty, maker.leaves_qty)
        for order, liquidity in ((taker, TAKER), (maker, MAKER)):
            order.leaves_qty -= qty
            order.cum_qty += qty
            out.events.append(Match(order.order_id, qty, price, order.cum_qty, liquidity))
        out.prints.append(Print(price, qty, taker.side, taker.order_id, maker.order_id))
        self.last = price
        for order in (taker, maker):
            if order.order_id not in self._orders:
                continue  # an incoming taker
            if order.leaves_qty:
                self._touched.add((order.side, order.price))
            else:
                self.remove(order.order_id)

    def _available(self, taker: Resting) -> tuple[Decimal, bool]:
        """What a FOK could fill now, and whether self-trade prevention would stop it."""
        total = ZERO
        levels = self._asks.items() if taker.side == "buy" else reversed(self._bids.items())
        for price, level in levels:
            if not _reaches(taker, price):
                break
            for maker in level.values():
                if maker.user_id == taker.user_id:
                    if taker.stp == CANCEL_OLDEST:
                        continue
                    return total, True
                total += maker.leaves_qty
                if total >= taker.leaves_qty:
                    return total, False
        return total, False

    # CALL AUCTIONS -----------------------------------------------------------------------

    def auction(self, prev_close: Decimal | None, shanghai: bool) -> Outcome:
        """A call auction (docs/market-rules.md 1.9): every order that crosses at the one price
        auction_price chooses trades there, in price-time priority on each side. The newer
        order of each pair is its taker; self-trade prevention applies as in continuous
        trading (the newer's `stp`). Stops wait for the next continuous trade."""
        out = Outcome()
        price = self.auction_price(prev_close, shanghai)
        if price is None:
            return out
        while self._bids and self._asks:
            bid_price, bids = self._bids.peekitem(-1)
            ask_price, asks = self._asks.peekitem(0)
            if bid_price < price or ask_price > price:
                break
            bid: Resting = next(iter(bids.values()))
            ask: Resting = next(iter(asks.values()))
            taker, maker = (bid, ask) if bid.seq > ask.seq else (ask, bid)
            if taker.user_id == maker.user_id:
                self._prevent_self_trade(taker, maker, out)
            else:
                self._trade(taker, maker, price, out)
        return out

    def auction_price(self, prev_close: Decimal | None, shanghai: bool) -> Decimal | None:
        """The price of a call auction, or None when nothing crosses. Of the prices where
        (1) the most shares trade, (2) every bid above it and every ask below it trades
        whole and (3) one side at it trades whole: on the Shanghai exchange the declared
        price that leaves the fewest shares unmatched, and the midpoint (half up, to the
        tick) of those if several; on Shenzhen the price nearest the previous close."""
        bids = [(p, _total(lv)) for p, lv in self._bids.items()]
        asks = [(p, _total(lv)) for p, lv in self._asks.items()]
        if not bids or not asks or bids[-1][0] < asks[0][0]:
            return None

        def volumes(price: Decimal) -> tuple[Decimal, Decimal, bool]:
            """Shares that trade at `price`, those left unmatched, and whether it is valid."""
            buy = sum((q for p, q in bids if p >= price), ZERO)
            sell = sum((q for p, q in asks if p <= price), ZERO)
            above = sum((q for p, q in bids if p > price), ZERO)
            below = sum((q for p, q in asks if p < price), ZERO)
            traded = min(buy, sell)
            return traded, abs(buy - sell), bool(traded) and above <= traded >= below

        scored = {p: volumes(p) for p in sorted({p for p, _ in bids} | {p for p, _ in asks})}
        valid = {p: v for p, v in scored.items() if v[2]}
        if not valid:
            return None
        most = max(v[0] for v in valid.values())
        best = sorted(p for p, v in valid.items() if v[0] == most)
        tick = self.model.profile.tick_size
        if shanghai:
            fewest = min(valid[p][1] for p in best)
            best = [p for p in best if valid[p][1] == fewest]
            middle = (best[0] + best[-1]) / 2
            return (middle / tick).to_integral_value(ROUND_HALF_UP) * tick
        if prev_close is not None:
            nearest = min(max(prev_close, best[0]), best[-1])
            traded, _, ok = volumes(nearest)
            if ok and traded == most:
                return nearest
        return min(best, key=lambda p: (abs(p - (prev_close or p)), p))

    # STOPS -------------------------------------------------------------------------------

    def _trigger_stops(self, out: Outcome) -> None:
        """Trail and trigger the waiting stops on each print they have not been shown yet,
        print by print; what triggers comes in as a taker, whose prints are shown in turn."""
        while out.stops_saw < len(out.prints) and self._stops:
            prints, out.stops_saw = out.prints[out.stops_saw :], len(out.prints)
            triggered: list[Resting] = []
            for done in prints:
                for order in sorted(self._stops.values(), key=lambda o: o.seq):
                    if order.order_type == "trailing_stop":
                        self._trail(order, done.price)
                    assert order.stop_price is not None
                    buy = order.side == "buy"
                    if done.price >= order.stop_price if buy else done.price <= order.stop_price:
                        del self._stops[order.order_id]
                        del self._orders[order.order_id]
                        triggered.append(order)
            for order in triggered:
                assert order.stop_price is not None
                order.triggered = True
                if order.order_type != "stop_limit":
                    protection = self.model.profile.protection_price(order.side, order.stop_price)
                    order.price = (
                        min(order.price, protection)
                        if order.side == "buy"
                        else max(order.price, protection)
                    )
                out.events.append(Trigger(order.order_id, order.stop_price, order.price))
                self._enter(order, True, out)

    # DEPTH -------------------------------------------------------------------------------

    def add(self, order: Resting) -> None:
        super().add(order)
        if not order.waiting:
            self._touched.add((order.side, order.price))

    def remove(self, order_id: int) -> Resting | None:
        order = super().remove(order_id)
        if order is not None and not order.waiting:
            self._touched.add((order.side, order.price))
        return order

    def replace(self, old_id: int, new: Resting) -> bool:
        old = self._orders.get(old_id)
        kept = super().replace(old_id, new)
        if kept and old is not None:
            self._touched.add((old.side, old.price))
        return kept

    @property
    def depth_changed(self) -> bool:
        return bool(self._touched)

    def depth(self, levels: int) -> tuple[list[Level], list[Level]]:
        """Up to `levels` price levels a side with the qty at each: bids highest first."""
        bids = [(p, _total(lv)) for p, lv in islice(reversed(self._bids.items()), levels)]
        asks = [(p, _total(lv)) for p, lv in islice(self._asks.items(), levels)]
        return bids, asks

    def take_depth_changes(self) -> tuple[list[Level], list[Level]]:
        """Each level whose qty changed since the last call, with its qty now (0: gone)."""
        changed: dict[str, list[Level]] = {"buy": [], "sell": []}
        for side, price in self._touched:
            level = self._side(side).get(price)
            qty = _total(level) if level else ZERO
            shown = self._shown[side]
            if shown.get(price, ZERO) == qty:
                continue
            if qty:
                shown[price] = qty
            else:
                del shown[price]
            changed[side].append((price, qty))
        self._touched.clear()
        changed["buy"].sort(reverse=True)
        changed["sell"].sort()
        return changed["buy"], changed["sell"]

    def forget_shown(self) -> None:
        """The next depth goes out whole (a reset): nothing counts as shown any more."""
        self._touched.clear()
        self._shown = {"buy": {}, "sell": {}}
        for side in ("buy", "sell"):
            shown = self._shown[side]
            for price, level in self._side(side).items():
                shown[price] = _total(level)


def _reaches(order: Resting, price: Decimal) -> bool:
    """Whether `order` may trade at `price`: a buy up to its bound, a sell down to it."""
    return price <= order.price if order.side == "buy" else price >= order.price


def _total(level: dict[int, Resting]) -> Decimal:
    return sum((o.leaves_qty for o in level.values()), ZERO)
