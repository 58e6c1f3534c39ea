"""The order book of one symbol and the fill model, with no I/O (docs/fill-model.md).

Working orders rest in price-time priority: bids highest price first, asks lowest first,
at one price earliest first. Stop orders wait beside the book until a trade triggers them;
then they join it at the back of their price level. The matcher's Router holds one Book
per symbol and hands it each trade; the book decides which orders it triggers and fills.

A trade (`Trade`) is a price the market printed, with its volume and, when the feed has
them, the best bid and ask. Per trade, the orders of each side may take at most
`participation_rate` x volume between them, in priority order, in multiples of the fill
increment (an order's rest below one increment fills whole). A buy fills at the ask, or
the last price when there is no ask, moved by any slippage, never above its bound; a sell
likewise at the bid or last, never below its bound.

Each order is a maker or a taker as a whole, decided when it starts working: a limit or
triggered stop-limit order that does not reach the latest trade's price then rests and
makes liquidity; market and stop orders, and limits that cross at once, take it. Instant
mode fills every order at once: all its fills are taker fills.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from sortedcontainers import SortedDict

from actors.market.rules import BP, MAKER, TAKER, ZERO, Profile
from protocol.orders import STOP_TYPES

LIMIT_TYPES = frozenset({"limit", "stop_limit"})  # fill at their limit in instant mode


@dataclass(slots=True)
class Resting:
    order_id: int
    side: str
    price: Decimal  # the bound: the least favourable price it may fill at
    leaves_qty: Decimal
    cum_qty: Decimal
    seq: int
    order_type: str = "limit"
    time_in_force: str = "gtc"
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    triggered: bool = False
    extreme: Decimal | None = None  # trailing stops: best price seen since it started
    day: str = ""  # DAY orders: the trading day they are for ("" until it is known)
    maker: bool = False  # it rested before the market reached it; set when it starts working
    # exchange mode (actors/matcher/exchange.py): whose it is, and how it meets its own
    user_id: int = 0
    post_only: bool = False
    stp: str = "cancel_newest"  # or cancel_oldest, cancel_both: the taker's decides

    @property
    def waiting(self) -> bool:
        """A stop order no trade has triggered yet."""
        return self.order_type in STOP_TYPES and not self.triggered


@dataclass(frozen=True, slots=True)
class Match:
    """A fill the book decided: qty of an order at a price; `cum_qty` includes it."""

    order_id: int
    qty: Decimal
    price: Decimal
    cum_qty: Decimal
    liquidity: str = TAKER


@dataclass(frozen=True, slots=True)
class Trigger:
    """A stop order a trade triggered: where its stop stood, and its bound from now on."""

    order_id: int
    stop_price: Decimal
    price: Decimal


@dataclass(frozen=True, slots=True)
class Trade:
    last: Decimal
    volume: Decimal | None = None  # None: the feed gives no volume, fills are not capped
    bid: Decimal | None = None
    ask: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Bar:
    """An OHLCV bar of a replay, seen once it is complete (docs/fill-model.md, Bars)."""

    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True, slots=True)
class FillModel:
    profile: Profile
    participation_rate: Decimal = Decimal("0.25")
    slippage_ticks: int = 0
    slippage_bp: Decimal = ZERO

    def cap(self, volume: Decimal | None) -> Decimal | None:
        return None if volume is None else volume * self.participation_rate

    def fill_price(self, side: str, trade: Trade) -> Decimal:
        """The price a marketable order of `side` gets from `trade`, slippage included."""
        tick = self.profile.tick_size
        base = self.quoted(side, trade)
        if side == "buy":
            slipped = base + self.slippage_ticks * tick + base * self.slippage_bp / BP
            return (slipped / tick).to_integral_value(ROUND_CEILING) * tick
        slipped = base - self.slippage_ticks * tick - base * self.slippage_bp / BP
        return max(tick, (slipped / tick).to_integral_value(ROUND_FLOOR) * tick)

    @staticmethod
    def quoted(side: str, trade: Trade) -> Decimal:
        """The price `trade` offers a side: the ask to buyers, the bid to sellers, else last."""
        if side == "buy":
            return trade.ask if trade.ask is not None else trade.last
        return trade.bid if trade.bid is not None else trade.last

    @classmethod
    def crosses(cls, side: str, bound: Decimal, trade: Trade) -> bool:
        price = cls.quoted(side, trade)
        return bound >= price if side == "buy" else bound <= price


@dataclass
class Book:
    symbol: str
    model: FillModel
    trade: Trade | None = None  # the latest trade; orders arriving later may fill against it
    # price -> {order_id: Resting}; dicts keep insertion order, which is time priority
    _bids: SortedDict = field(default_factory=SortedDict)
    _asks: SortedDict = field(default_factory=SortedDict)
    _stops: dict[int, Resting] = field(default_factory=dict)
    _orders: dict[int, Resting] = field(default_factory=dict)
    _room: dict[str, Decimal | None] = field(default_factory=lambda: {"buy": ZERO, "sell": ZERO})
    # trailing stops whose stop moved since `take_trailed`: the ledger keeps their stop
    _trailed: dict[int, Resting] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id: int) -> bool:
        return order_id in self._orders

    def get(self, order_id: int) -> Resting | None:
        return self._orders.get(order_id)

    def orders(self) -> list[Resting]:
        """Every order, working or waiting, in no particular order."""
        return list(self._orders.values())

    def priority(self) -> tuple[list[Resting], list[Resting], list[Resting]]:
        """Working bids (highest price first) and asks (lowest first), each in time
        priority within a price; and the stops no trade has triggered yet."""
        bids = [o for level in reversed(self._bids.values()) for o in level.values()]
        asks = [o for level in self._asks.values() for o in level.values()]
        return bids, asks, list(self._stops.values())

    def expire(self, trading_day: str) -> list[Resting]:
        """Take out the DAY orders of trading days before `trading_day`; a DAY order whose
        day was not known yet is for this one."""
        expired = []
        for order in list(self._orders.values()):
            if order.time_in_force != "day":
                continue
            if not order.day:
                order.day = trading_day
            elif order.day < trading_day:
                self.remove(order.order_id)
                expired.append(order)
        return expired

    # ORDERS ------------------------------------------------------------------------------

    def add(self, order: Resting) -> None:
        self._orders[order.order_id] = order
        if order.waiting:
            self._stops[order.order_id] = order
        else:
            order.maker = self._rests(order)
            self._side(order.side).setdefault(order.price, {})[order.order_id] = order

    def takes(self, order: Resting) -> bool:
        """Whether `order` would fill against the latest trade at once (post-only)."""
        return not self._rests(order)

    def _rests(self, order: Resting) -> bool:
        """A limit order the latest trade does not reach: it makes liquidity."""
        return order.order_type in LIMIT_TYPES and (
            self.trade is None or not self.model.crosses(order.side, order.price, self.trade)
        )

    def remove(self, order_id: int) -> Resting | None:
        order = self._orders.pop(order_id, None)
        if order is None:
            return None
        if self._stops.pop(order_id, None) is None:
            side = self._side(order.side)
            level = side[order.price]
            del level[order_id]
            if not level:
                del side[order.price]
        return order

    def replace(self, old_id: int, new: Resting) -> bool:
        """Put `new` in the place of `old_id`. It keeps the old one's time priority when it
        works at the same price and for no more qty (returns True); otherwise it goes to
        the back of its level (False). Without `old_id` in the book nothing changes (False)."""
        old = self._orders.get(old_id)
        if old is None:
            return False
        same_place = (
            not old.waiting
            and not new.waiting
            and new.price == old.price
            and new.side == old.side
            and new.leaves_qty <= old.leaves_qty
        )
        if not same_place:
            self.remove(old_id)
            self.add(new)
            return False
        new.maker = old.maker
        side = self._side(old.side)
        side[old.price] = {
            (new.order_id if oid == old_id else oid): (new if oid == old_id else o)
            for oid, o in side[old.price].items()
        }
        del self._orders[old_id]
        self._orders[new.order_id] = new
        return True

    def best_bid(self) -> Decimal | None:
        return self._bids.peekitem(-1)[0] if self._bids else None

    def best_ask(self) -> Decimal | None:
        return self._asks.peekitem(0)[0] if self._asks else None

    # TRADES ------------------------------------------------------------------------------

    def see(self, trade: Trade) -> bool:
        """A new trade: the one orders fill against from now on, with its whole volume.

        A quote of volume 0 repeats a price; it is no trade, and only stands in for one
        while the book has seen none (instant mode fills market orders at it). Returns
        whether it was a trade."""
        if trade.volume == 0:
            if self.trade is None:
                self.trade = trade
                self.exhaust()
            return False
        self.trade = trade
        self._room = {"buy": self.model.cap(trade.volume), "sell": self.model.cap(trade.volume)}
        return True

    def exhaust(self) -> None:
        """Nothing more fills against the latest trade: trading resumed after it."""
        self._room = {"buy": ZERO, "sell": ZERO}

    def match(self) -> list[Match]:
        """Fill working orders against the latest trade, within what its volume has left."""
        trade = self.trade
        if trade is None:
            return []
        matches = []
        for side in ("buy", "sell"):
            price = self.model.fill_price(side, trade)
            matches += self._fill_levels(
                side,
                self._room,
                lambda bound, side=side: self.model.crosses(side, bound, trade),
                lambda order, price=price: _within(order.side, price, order.price),
            )
        return matches

    def fillable(self, order: Resting) -> Decimal:
        """How much of `order` the latest trade could fill now, if it were at the front."""
        trade = self.trade
        if trade is None or order.waiting or not self.model.crosses(order.side, order.price, trade):
            return ZERO
        return self._portion(order.leaves_qty, self._room[order.side], order.side)

    def _fill_levels(
        self,
        side: str,
        room: dict[str, Decimal | None],
        reaches: Callable[[Decimal], bool],
        price_of: Callable[[Resting], Decimal | None],
    ) -> list[Match]:
        """Fill one side in price-time priority within `room`, taking what it uses. Levels
        go best first until one the market does not `reach`; each order fills at
        `price_of(order)`, or not at all when that is None."""
        matches: list[Match] = []
        filled: list[Resting] = []
        levels = reversed(self._bids.items()) if side == "buy" else iter(self._asks.items())
        for bound, level in levels:
            if not reaches(bound):
                break
            for order in level.values():
                price = price_of(order)
                if price is None:
                    continue
                qty = self._portion(order.leaves_qty, room[side], side)
                if not qty:
                    break
                left = room[side]
                if left is not None:
                    room[side] = left - qty
                order.leaves_qty -= qty
                order.cum_qty += qty
                liquidity = MAKER if order.maker else TAKER
                matches.append(Match(order.order_id, qty, price, order.cum_qty, liquidity))
                if not order.leaves_qty:
                    filled.append(order)
            else:
                continue
            break  # the cap ran out inside this level
        for order in filled:
            self.remove(order.order_id)
        return matches

    def _portion(self, leaves: Decimal, room: Decimal | None, side: str) -> Decimal:
        """What of `leaves` fits in `room`: all of it, or whole fill increments."""
        if room is None or leaves <= room:
            return leaves
        increment = self.model.profile.fill_increment(side)
        return (room / increment).to_integral_value(ROUND_FLOOR) * increment

    def trigger(self) -> list[Trigger]:
        """Move trailing stops behind the latest trade, and trigger the stops it reached:
        they join the book, at the back of their price level, in the order they were placed."""
        if self.trade is None:
            return []
        last = self.trade.last
        triggers = []
        for order in sorted(self._stops.values(), key=lambda o: o.seq):
            assert order.stop_price is not None
            if order.order_type == "trailing_stop":
                self._trail(order, last)
            reached = last >= order.stop_price if order.side == "buy" else last <= order.stop_price
            if not reached:
                continue
            self._start_working(order)
            order.maker = self._rests(order)
            triggers.append(Trigger(order.order_id, order.stop_price, order.price))
        return triggers

    def _start_working(self, order: Resting) -> None:
        """A triggered stop joins the book at the back of its level; a stop or trailing
        stop's protection tightens to its stop (a stop-limit keeps its limit)."""
        assert order.stop_price is not None
        if order.order_type != "stop_limit":
            protection = self.model.profile.protection_price(order.side, order.stop_price)
            order.price = _within(order.side, order.price, protection)
        del self._stops[order.order_id]
        order.triggered = True
        self._side(order.side).setdefault(order.price, {})[order.order_id] = order

    def _trail(self, order: Resting, last: Decimal) -> None:
        """Ratchet a trailing stop behind the best price seen; it never moves back."""
        assert order.stop_price is not None
        if order.side == "sell":
            order.extreme = last if order.extreme is None else max(order.extreme, last)
        else:
            order.extreme = last if order.extreme is None else min(order.extreme, last)
        stop = self.model.profile.trailing_stop(
            order.side, order.extreme, order.trail_price, order.trail_percent
        )
        moved = stop > order.stop_price if order.side == "sell" else stop < order.stop_price
        if moved:
            order.stop_price = stop
            self._trailed[order.order_id] = order

    def take_trailed(self) -> list[tuple[int, Decimal]]:
        """Each trailing stop whose stop moved since the last call, with its stop now.

        A trailing stop's stop only ever tightens, so the stop alone is its state: a
        matcher rebuilt with it trails on exactly as this one would."""
        if not self._trailed:
            return []
        moved = [(o.order_id, o.stop_price) for o in self._trailed.values()]
        self._trailed.clear()
        return moved  # type: ignore[return-value]

    # BARS --------------------------------------------------------------------------------

    def see_bar(self, bar: Bar) -> tuple[list[Trigger], list[Match]]:
        """Trigger and fill the working orders on a bar, with no look-ahead: only the bar's
        open, high, low and volume, never its order of prices inside.

        A stop triggers when the bar reaches its stop, at the open if the bar opened beyond
        it, else at the stop. An order fills at its start (the open, or where it triggered)
        if that is within its bound, moved by any slippage but never beyond the bound;
        else, untriggered in this bar, at its bound if the bar's range reaches it. Each
        side takes at most the participation cap of the bar's volume, in priority order.
        Orders that arrive later fill on later bars: this one's room is used up."""
        # a bar without volume (a suspended day) is a price, not a trade: nothing triggers
        triggered = self._trigger_on_bar(bar) if bar.volume else {}
        room: dict[str, Decimal | None] = {
            "buy": self.model.cap(bar.volume),
            "sell": self.model.cap(bar.volume),
        }
        starts = {order_id: at for order_id, (_trigger, at) in triggered.items()}
        matches = []
        for side in ("buy", "sell"):
            matches += self._fill_levels(
                side,
                room,
                # a start beyond a bound the bar's range does not reach is beyond it too
                lambda bound, side=side: bar.low <= bound if side == "buy" else bar.high >= bound,
                lambda order: self._bar_price(order, bar, starts.get(order.order_id)),
            )
        self.trade = Trade(bar.close, bar.volume)
        self.exhaust()
        return [t for t, _ in triggered.values()], matches

    def _trigger_on_bar(self, bar: Bar) -> dict[int, tuple[Trigger, Decimal]]:
        """The stops the bar reaches, each with the price it triggered at. A trailing stop
        is checked where it stood before the bar, and then follows the bar's extreme."""
        triggered = {}
        for order in sorted(self._stops.values(), key=lambda o: o.seq):
            assert order.stop_price is not None
            stop = order.stop_price
            if order.side == "buy":
                reached, at = bar.high >= stop, max(bar.open, stop)
            else:
                reached, at = bar.low <= stop, min(bar.open, stop)
            if not reached:
                if order.order_type == "trailing_stop":
                    self._trail(order, bar.low if order.side == "buy" else bar.high)
                continue
            self._start_working(order)
            # a stop-limit that cannot fill where it triggered rests: it makes liquidity
            order.maker = order.order_type == "stop_limit" and (
                at > order.price if order.side == "buy" else at < order.price
            )
            triggered[order.order_id] = (Trigger(order.order_id, stop, order.price), at)
        return triggered

    def _bar_price(self, order: Resting, bar: Bar, triggered_at: Decimal | None) -> Decimal | None:
        """Where `order` fills on `bar`, or None: see see_bar."""
        start = bar.open if triggered_at is None else triggered_at
        buy = order.side == "buy"
        if (start <= order.price) if buy else (start >= order.price):
            return _within(order.side, self.model.fill_price(order.side, Trade(start)), order.price)
        reaches = bar.low <= order.price if buy else bar.high >= order.price
        return order.price if triggered_at is None and reaches else None

    # INSTANT MODE ------------------------------------------------------------------------

    def fill_instantly(self, order_id: int) -> Match | None:
        """Instant mode: a working order fills whole at once, a limit order at its limit,
        a market order at the price it would trade at (the ask for a buy, the bid for a
        sell, else the last) if that is within its bound."""
        order = self._orders.get(order_id)
        if order is None or order.waiting:
            return None
        if order.order_type in LIMIT_TYPES:
            price = order.price
        elif self.trade is not None and self.model.crosses(order.side, order.price, self.trade):
            price = self.model.quoted(order.side, self.trade)
        else:
            return None
        self.remove(order_id)
        return Match(order.order_id, order.leaves_qty, price, order.cum_qty + order.leaves_qty)

    def fill_everything(self) -> list[Match]:
        """Instant mode after trading resumes: every working order that can, in priority."""
        orders = [o for _, level in reversed(self._bids.items()) for o in level.values()]
        orders += [o for _, level in self._asks.items() for o in level.values()]
        matches = [self.fill_instantly(o.order_id) for o in orders]
        return [m for m in matches if m is not None]

    def _side(self, side: str) -> SortedDict:
        return self._bids if side == "buy" else self._asks


def _within(side: str, price: Decimal, bound: Decimal) -> Decimal:
    """`price`, or `bound` if it is beyond: a buy pays at most, a sell gets at least."""
    return min(price, bound) if side == "buy" else max(price, bound)
