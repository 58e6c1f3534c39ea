"""Scenarios of the exchange-mode book (actors/matcher/exchange.py): orders in, prints and
the book out.

Each scenario is a list of steps (orders submitted while trading or halted, cancels,
replaces, rebuilds, uncrosses) and what must come out: the prints in order, the book's
orders in priority (order_id, leaves_qty), the waiting stops, and each order the book
closed. Every step is also checked for what holds whatever the scenario: a print is one
taker Match then one maker Match at the maker's price, cum_qty adds up, depth() is the
book's levels, and a client that applies take_depth_changes() to a snapshot has depth().

Every expected value is worked out by hand from the contract of issue 16 with the AAPL
rules (us_equity: tick 0.01, whole shares, market protection 500 bp). Order ids are the
arrival order (seq); an order's user is its own id unless a scenario names one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal as D

import pytest

from actors.market.rules import MAKER, TAKER, Market
from actors.matcher.book import FillModel, Match, Resting, Trigger
from actors.matcher.exchange import Closed, ExchangeBook, Outcome, Print, Rested
from protocol.settings import build_settings

PROFILE = Market.from_settings(build_settings(None)).rules("AAPL")
WIDE_BUY, WIDE_SELL = "999.99", "0.01"  # a market or stop order's own bound, looser than any


def new_book() -> ExchangeBook:
    return ExchangeBook("AAPL", FillModel(PROFILE))


# ORDERS ------------------------------------------------------------------------------------


def order(
    oid: int, side: str, price: str, qty: int, user: int | None = None, **fields: object
) -> Resting:
    """An order with nothing filled, seq = its id, its user its id unless named."""
    return Resting(
        oid,
        side,
        D(price),
        D(qty),
        D(0),
        oid,
        user_id=oid if user is None else user,
        **fields,  # type: ignore[arg-type]
    )


def buy(oid: int, price: str, qty: int, user: int | None = None, **fields: object) -> Resting:
    return order(oid, "buy", price, qty, user, **fields)


def sell(oid: int, price: str, qty: int, user: int | None = None, **fields: object) -> Resting:
    return order(oid, "sell", price, qty, user, **fields)


def market(oid: int, side: str, qty: int, bound: str | None = None, **fields: object) -> Resting:
    bound = bound or (WIDE_BUY if side == "buy" else WIDE_SELL)
    return order(oid, side, bound, qty, order_type="market", **fields)


def stop(
    oid: int, side: str, stop_price: str, qty: int, bound: str | None = None, **fields: object
) -> Resting:
    bound = bound or (WIDE_BUY if side == "buy" else WIDE_SELL)
    return order(oid, side, bound, qty, order_type="stop", stop_price=D(stop_price), **fields)


def stop_limit(oid: int, side: str, stop_price: str, limit: str, qty: int) -> Resting:
    return order(oid, side, limit, qty, order_type="stop_limit", stop_price=D(stop_price))


def trailing(oid: int, side: str, stop_price: str, qty: int, trail: str) -> Resting:
    bound = WIDE_BUY if side == "buy" else WIDE_SELL
    return order(
        oid,
        side,
        bound,
        qty,
        order_type="trailing_stop",
        stop_price=D(stop_price),
        trail_price=D(trail),
    )


# STEPS -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Halted:
    """Submit while the market does not trade."""

    order: Resting


@dataclass(frozen=True)
class Cancel:
    order_id: int
    returns: tuple[int, int] | None = None  # (cum_qty, leaves_qty) of the order taken out


@dataclass(frozen=True)
class Replace:
    old_id: int
    new: Resting
    kept: bool  # kept_place expected


@dataclass(frozen=True)
class Rebuild:
    """rest(): put an order back from a snapshot, no matching."""

    order: Resting


@dataclass(frozen=True)
class Uncross:
    pass


@dataclass(frozen=True)
class Expect:
    """The book at this point, mid-scenario."""

    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]


Step = Resting | Halted | Cancel | Replace | Rebuild | Uncross | Expect
Book = list[tuple[int, int]]  # (order_id, leaves_qty) in priority


@dataclass
class Scenario:
    name: str
    steps: list[Step]
    prints: list[tuple[str, int, int, int]]  # (price, qty, taker_id, maker_id) in order
    bids: Book = field(default_factory=list)
    asks: Book = field(default_factory=list)
    stops: list[int] = field(default_factory=list)
    canceled: list[tuple[int, str]] = field(default_factory=list)  # any order
    killed: list[tuple[int, str]] = field(default_factory=list)
    rested: list[int] = field(default_factory=list)  # post_only orders answered Rested
    triggers: list[tuple[int, str, str]] = field(default_factory=list)  # (id, stop, bound)

    def __str__(self) -> str:
        return self.name


# THE RUNNER ----------------------------------------------------------------------------------


@dataclass
class Run:
    """A book driven through steps, with everything that came out and a depth client."""

    book: ExchangeBook = field(default_factory=new_book)
    sides: dict[int, str] = field(default_factory=dict)
    cum: dict[int, D] = field(default_factory=dict)
    prints: list[Print] = field(default_factory=list)
    events: list[object] = field(default_factory=list)
    client: tuple[dict[D, D], dict[D, D]] = field(default_factory=lambda: ({}, {}))

    def step(self, step: Step) -> Outcome | None:
        book = self.book
        out: Outcome | None = None
        if isinstance(step, Resting):
            out = book.submit(self._known(step))
        elif isinstance(step, Halted):
            out = book.submit(self._known(step.order), trading=False)
        elif isinstance(step, Cancel):
            taken = book.cancel(step.order_id)
            if step.returns is None:
                assert taken is None or taken.order_id == step.order_id
            else:
                assert taken is not None and taken.order_id == step.order_id
                assert (taken.cum_qty, taken.leaves_qty) == tuple(map(D, step.returns))
        elif isinstance(step, Replace):
            kept, out = book.replace_order(step.old_id, self._known(step.new))
            assert kept is step.kept, f"replace {step.old_id} -> {step.new.order_id}"
        elif isinstance(step, Rebuild):
            book.rest(self._known(step.order))
        elif isinstance(step, Uncross):
            out = book.uncross()
        else:
            assert isinstance(step, Expect)
            assert (leaves(book)[0], leaves(book)[1]) == (step.bids, step.asks)
        if out is not None:
            self._check_outcome(out)
        self._check_depth()
        return out

    def _known(self, order: Resting) -> Resting:
        """A fresh copy (the book owns what it gets), its side and cum noted."""
        self.sides[order.order_id] = order.side
        self.cum[order.order_id] = order.cum_qty
        return replace(order)

    def _check_outcome(self, out: Outcome) -> None:
        matches = [e for e in out.events if isinstance(e, Match)]
        assert len(matches) == 2 * len(out.prints), (matches, out.prints)
        for n, p in enumerate(out.prints):
            taker, maker = matches[2 * n], matches[2 * n + 1]
            assert (taker.order_id, taker.liquidity) == (p.taker_id, TAKER)
            assert (maker.order_id, maker.liquidity) == (p.maker_id, MAKER)
            assert taker.qty == maker.qty == p.qty > 0
            assert taker.price == maker.price == p.price
            assert p.taker_side == self.sides[p.taker_id]
            assert self.sides[p.maker_id] != p.taker_side
        for m in matches:
            self.cum[m.order_id] += m.qty
            assert m.cum_qty == self.cum[m.order_id], m
        if out.prints:
            assert self.book.last == out.prints[-1].price
        self.prints += out.prints
        self.events += out.events

    def _check_depth(self) -> None:
        book = self.book
        bids, asks, stops = book.priority()
        assert all(not o.waiting for o in bids + asks)
        assert all(o.waiting for o in stops)
        levels = (_levels(bids), _levels(asks))
        assert book.depth(1000) == levels
        changes = book.take_depth_changes()
        for side, changed, key in zip(
            self.client, changes, (lambda p: -p, lambda p: p), strict=True
        ):
            prices = [price for price, _ in changed]
            assert prices == sorted(prices, key=key), changed
            assert len(set(prices)) == len(prices), changed
            for price, qty in changed:
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
        assert (_sorted(self.client[0], True), _sorted(self.client[1], False)) == levels


def _levels(orders: list[Resting]) -> list[tuple[D, D]]:
    """Aggregate orders already in priority into (price, total) levels."""
    levels: list[tuple[D, D]] = []
    for o in orders:
        if levels and levels[-1][0] == o.price:
            levels[-1] = (o.price, levels[-1][1] + o.leaves_qty)
        else:
            levels.append((o.price, o.leaves_qty))
    return levels


def _sorted(side: dict[D, D], descending: bool) -> list[tuple[D, D]]:
    return sorted(side.items(), reverse=descending)


def leaves(book: ExchangeBook) -> tuple[Book, Book, list[int]]:
    bids, asks, stops = book.priority()
    return (
        [(o.order_id, int(o.leaves_qty)) for o in bids],
        [(o.order_id, int(o.leaves_qty)) for o in asks],
        [o.order_id for o in stops],
    )


def run(steps: list[Step]) -> Run:
    r = Run()
    for step in steps:
        r.step(step)
    return r


def prints_of(r: Run) -> list[tuple[D, D, int, int]]:
    return [(p.price, p.qty, p.taker_id, p.maker_id) for p in r.prints]


def closed(r: Run, killed: bool) -> list[tuple[int, str]]:
    return sorted(
        (e.order_id, e.reason) for e in r.events if isinstance(e, Closed) and e.killed is killed
    )


# THE SCENARIOS -------------------------------------------------------------------------------

SELF = {"user": 1}  # an order of user 1, whose other orders it must not trade with

SCENARIOS = [
    # price-time priority
    Scenario(
        "time priority at one level: earliest first",
        [sell(1, "10.00", 5), sell(2, "10.00", 5), sell(3, "10.00", 5), buy(4, "10.00", 7)],
        [("10.00", 5, 4, 1), ("10.00", 2, 4, 2)],
        asks=[(2, 3), (3, 5)],
    ),
    Scenario(
        "price priority across levels for a buy: lowest ask first, then time",
        [sell(1, "10.02", 5), sell(2, "10.01", 5), sell(3, "10.01", 5), buy(4, "10.02", 12)],
        [("10.01", 5, 4, 2), ("10.01", 5, 4, 3), ("10.02", 2, 4, 1)],
        asks=[(1, 3)],
    ),
    Scenario(
        "price priority across levels for a sell: highest bid first, then time",
        [buy(1, "9.98", 5), buy(2, "9.99", 5), buy(3, "9.99", 5), sell(4, "9.98", 12)],
        [("9.99", 5, 4, 2), ("9.99", 5, 4, 3), ("9.98", 2, 4, 1)],
        bids=[(1, 3)],
    ),
    Scenario(
        "the taker gets the maker's price",
        [sell(1, "10.00", 5), buy(2, "10.05", 5), buy(3, "9.90", 2), sell(4, "9.50", 2)],
        [("10.00", 5, 2, 1), ("9.90", 2, 4, 3)],
    ),
    Scenario(
        "orders that do not cross rest, bids highest first and asks lowest first",
        [buy(1, "9.98", 1), buy(2, "9.99", 2), sell(3, "10.01", 3), sell(4, "10.00", 4)],
        [],
        bids=[(2, 2), (1, 1)],
        asks=[(4, 4), (3, 3)],
    ),
    # partial fills
    Scenario(
        "a partly filled taker rests at its price and then makes",
        [sell(1, "10.00", 3), buy(2, "10.01", 5), Expect([(2, 2)], []), sell(3, "10.01", 1)],
        [("10.00", 3, 2, 1), ("10.01", 1, 3, 2)],
        bids=[(2, 1)],
    ),
    Scenario(
        "a partly filled maker keeps its place",
        [sell(1, "10.00", 10), sell(2, "10.00", 1), buy(3, "10.00", 4), buy(4, "10.00", 7)],
        [("10.00", 4, 3, 1), ("10.00", 6, 4, 1), ("10.00", 1, 4, 2)],
    ),
    Scenario(
        "a sweep through several levels stops at the taker's limit and rests the rest",
        [
            sell(1, "10.00", 2),
            sell(2, "10.01", 2),
            sell(3, "10.02", 2),
            sell(4, "10.03", 2),
            buy(5, "10.02", 10),
        ],
        [("10.00", 2, 5, 1), ("10.01", 2, 5, 2), ("10.02", 2, 5, 3)],
        bids=[(5, 4)],
        asks=[(4, 2)],
    ),
    # market orders
    Scenario(
        "a market buy against a thin side takes all of it; the rest is canceled",
        [sell(1, "10.00", 3), sell(2, "10.01", 2), market(3, "buy", 10)],
        [("10.00", 3, 3, 1), ("10.01", 2, 3, 2)],
        canceled=[(3, "no_liquidity")],
    ),
    Scenario(
        "a market order against an empty side is canceled, never rests",
        [buy(1, "9.00", 1), market(2, "buy", 5), market(3, "sell", 5)],
        [("9.00", 1, 3, 1)],
        canceled=[(2, "no_liquidity"), (3, "no_liquidity")],
    ),
    Scenario(
        "a market order stops at its protection bound",
        [sell(1, "10.00", 2), sell(2, "10.60", 2), market(3, "buy", 5, "10.50")],
        [("10.00", 2, 3, 1)],
        asks=[(2, 2)],
        canceled=[(3, "no_liquidity")],
    ),
    Scenario(
        "a market sell walks the bids down; filled whole, nothing is canceled",
        [buy(1, "10.00", 2), buy(2, "9.99", 2), market(3, "sell", 3)],
        [("10.00", 2, 3, 1), ("9.99", 1, 3, 2)],
        bids=[(2, 1)],
    ),
    # cancels
    Scenario(
        "cancel of a partly filled order takes its rest out",
        [sell(1, "10.00", 10), buy(2, "10.00", 4), Cancel(1, (4, 6)), buy(3, "10.00", 1)],
        [("10.00", 4, 2, 1)],
        bids=[(3, 1)],
    ),
    Scenario(
        "cancel of one order in a level keeps the others' order; unknown ids are no-ops",
        [buy(1, "10.00", 1), buy(2, "10.00", 2), buy(3, "10.00", 3), Cancel(2, (0, 2)), Cancel(9)],
        [],
        bids=[(1, 1), (3, 3)],
    ),
    Scenario(
        "cancel of a waiting stop",
        [stop(1, "sell", "9.00", 1), Expect([], []), Cancel(1, (0, 1))],
        [],
    ),
    # IOC
    Scenario(
        "IOC: the rest after matching is canceled",
        [sell(1, "10.00", 3), sell(2, "10.02", 3), buy(3, "10.01", 5, time_in_force="ioc")],
        [("10.00", 3, 3, 1)],
        asks=[(2, 3)],
        canceled=[(3, "ioc")],
    ),
    Scenario(
        "IOC with nothing to take is canceled; filled whole it is not",
        [
            buy(1, "10.00", 1, time_in_force="ioc"),
            sell(2, "10.00", 2),
            buy(3, "10.00", 2, time_in_force="ioc"),
        ],
        [("10.00", 2, 3, 2)],
        canceled=[(1, "ioc")],
    ),
    # FOK
    Scenario(
        "FOK that cannot fill within its limit is killed and changes nothing",
        [
            sell(1, "10.00", 3),
            sell(2, "10.01", 3),
            sell(3, "10.02", 3),
            buy(4, "10.01", 7, time_in_force="fok"),
        ],
        [],
        asks=[(1, 3), (2, 3), (3, 3)],
        killed=[(4, "fok")],
    ),
    Scenario(
        "FOK that can fill fills whole through levels",
        [
            sell(1, "10.00", 3),
            sell(2, "10.01", 3),
            sell(3, "10.02", 3),
            buy(4, "10.02", 7, time_in_force="fok"),
        ],
        [("10.00", 3, 4, 1), ("10.01", 3, 4, 2), ("10.02", 1, 4, 3)],
        asks=[(3, 2)],
    ),
    Scenario(
        "FOK for exactly what there is fills",
        [buy(1, "10.00", 3), buy(2, "9.99", 3), sell(3, "9.99", 6, time_in_force="fok")],
        [("10.00", 3, 3, 1), ("9.99", 3, 3, 2)],
    ),
    Scenario(
        "FOK against an empty side is killed",
        [sell(1, "10.00", 1, time_in_force="fok")],
        [],
        killed=[(1, "fok")],
    ),
    # post only
    Scenario(
        "post_only that would take is killed, nothing changes",
        [
            sell(1, "10.00", 2),
            buy(2, "9.99", 2),
            buy(3, "10.00", 1, post_only=True),
            sell(4, "9.99", 1, post_only=True),
            buy(5, "10.05", 1, post_only=True),
        ],
        [],
        bids=[(2, 2)],
        asks=[(1, 2)],
        killed=[(3, "post_only"), (4, "post_only"), (5, "post_only")],
    ),
    Scenario(
        "post_only that does not cross rests and is answered Rested",
        [
            sell(1, "10.00", 2),
            buy(2, "9.99", 2),
            buy(3, "9.99", 1, post_only=True),
            sell(4, "10.00", 1, post_only=True),
            sell(5, "10.05", 1, post_only=True),
            buy(6, "9.00", 1, post_only=True),
            buy(7, "10.00", 4),
        ],
        [("10.00", 2, 7, 1), ("10.00", 1, 7, 4)],
        bids=[(7, 1), (2, 2), (3, 1), (6, 1)],
        asks=[(5, 1)],
        rested=[3, 4, 5, 6],
    ),
    Scenario(
        "post_only into an empty book rests",
        [buy(1, "10.00", 1, post_only=True), sell(2, "10.01", 1, post_only=True)],
        [],
        bids=[(1, 1)],
        asks=[(2, 1)],
        rested=[1, 2],
    ),
    # replace
    Scenario(
        "replace with less qty at the same price keeps the place",
        [
            buy(1, "10.00", 5),
            buy(2, "10.00", 5),
            Replace(1, buy(3, "10.00", 3), kept=True),
            Expect([(3, 3), (2, 5)], []),
            sell(4, "10.00", 4),
        ],
        [("10.00", 3, 4, 3), ("10.00", 1, 4, 2)],
        bids=[(2, 4)],
    ),
    Scenario(
        "replace with the same qty and price keeps the place",
        [buy(1, "10.00", 5), buy(2, "10.00", 5), Replace(1, buy(3, "10.00", 5), kept=True)],
        [],
        bids=[(3, 5), (2, 5)],
    ),
    Scenario(
        "replace of a partly filled order keeps the place up to its leaves, not its qty",
        [
            sell(1, "10.00", 10),
            buy(2, "10.00", 4),
            sell(3, "10.00", 5),
            Replace(1, sell(4, "10.00", 6), kept=True),
            Expect([], [(4, 6), (3, 5)]),
            Replace(4, sell(5, "10.00", 7), kept=False),
            buy(6, "10.00", 6),
        ],
        [("10.00", 4, 2, 1), ("10.00", 5, 6, 3), ("10.00", 1, 6, 5)],
        asks=[(5, 6)],
    ),
    Scenario(
        "replace at another price goes to the back of that level",
        [
            buy(1, "10.00", 5),
            buy(2, "9.99", 5),
            buy(3, "10.00", 5),
            Replace(1, buy(4, "9.99", 5), kept=False),
        ],
        [],
        bids=[(3, 5), (2, 5), (4, 5)],
    ),
    Scenario(
        "replace with more qty goes to the back of its level",
        [buy(1, "10.00", 5), buy(2, "10.00", 5), Replace(1, buy(3, "10.00", 6), kept=False)],
        [],
        bids=[(2, 5), (3, 6)],
    ),
    Scenario(
        "replace to the other side is a new order",
        [buy(1, "10.00", 5), sell(2, "10.05", 1), Replace(1, sell(3, "10.05", 5), kept=False)],
        [],
        asks=[(2, 1), (3, 5)],
    ),
    Scenario(
        "replace to a crossing price matches as a fresh taker",
        [buy(1, "9.99", 5), sell(2, "10.01", 3), Replace(1, buy(3, "10.01", 5), kept=False)],
        [("10.01", 3, 3, 2)],
        bids=[(3, 2)],
    ),
    Scenario(
        "replace of a waiting stop never keeps a place",
        [stop(1, "buy", "11.00", 1), Replace(1, stop(2, "buy", "11.00", 1), kept=False)],
        [],
        stops=[2],
    ),
    # self-trade prevention: the taker's stp decides
    Scenario(
        "STP cancel_newest: the taker is canceled at its own order; earlier fills stay",
        [
            sell(1, "10.00", 2, user=2),
            sell(2, "10.00", 2, **SELF),
            sell(3, "10.00", 2, user=3),
            buy(4, "10.00", 5, **SELF, stp="cancel_newest"),
        ],
        [("10.00", 2, 4, 1)],
        asks=[(2, 2), (3, 2)],
        canceled=[(4, "self_trade")],
    ),
    Scenario(
        "STP cancel_oldest: the resting order is canceled and matching goes on",
        [
            sell(1, "10.00", 2, user=2),
            sell(2, "10.00", 2, **SELF),
            sell(3, "10.00", 2, user=3),
            buy(4, "10.00", 5, **SELF, stp="cancel_oldest"),
        ],
        [("10.00", 2, 4, 1), ("10.00", 2, 4, 3)],
        bids=[(4, 1)],
        canceled=[(2, "self_trade")],
    ),
    Scenario(
        "STP cancel_both: both are canceled; earlier fills stay",
        [
            sell(1, "10.00", 2, user=2),
            sell(2, "10.00", 2, **SELF),
            sell(3, "10.00", 2, user=3),
            buy(4, "10.00", 5, **SELF, stp="cancel_both"),
        ],
        [("10.00", 2, 4, 1)],
        asks=[(3, 2)],
        canceled=[(2, "self_trade"), (4, "self_trade")],
    ),
    Scenario(
        "STP is the taker's choice, not the maker's (cancel_newest taker)",
        [sell(1, "10.00", 2, **SELF, stp="cancel_oldest"), buy(2, "10.00", 2, **SELF)],
        [],
        asks=[(1, 2)],
        canceled=[(2, "self_trade")],
    ),
    Scenario(
        "STP is the taker's choice, not the maker's (cancel_oldest taker)",
        [
            sell(1, "10.00", 2, **SELF, stp="cancel_newest"),
            buy(2, "10.00", 2, **SELF, stp="cancel_oldest"),
        ],
        [],
        bids=[(2, 2)],
        canceled=[(1, "self_trade")],
    ),
    Scenario(
        "STP: an own order beyond the taker's limit is never reached",
        [sell(1, "10.00", 2, user=2), sell(2, "10.01", 2, **SELF), buy(3, "10.00", 5, **SELF)],
        [("10.00", 2, 3, 1)],
        bids=[(3, 3)],
        asks=[(2, 2)],
    ),
    Scenario(
        "STP cancel_newest stops a market order: canceled once, for self_trade",
        [sell(1, "10.00", 2, user=2), sell(2, "10.01", 2, **SELF), market(3, "buy", 5, **SELF)],
        [("10.00", 2, 3, 1)],
        asks=[(2, 2)],
        canceled=[(3, "self_trade")],
    ),
    Scenario(
        "STP cancel_oldest on a market order: own orders canceled, the rest no_liquidity",
        [
            sell(1, "10.00", 2, **SELF),
            sell(2, "10.01", 2, user=2),
            market(3, "buy", 5, **SELF, stp="cancel_oldest"),
        ],
        [("10.01", 2, 3, 2)],
        canceled=[(1, "self_trade"), (3, "no_liquidity")],
    ),
    Scenario(
        "STP on a sell taker",
        [
            buy(1, "10.01", 1, user=2),
            buy(2, "10.00", 2, **SELF),
            sell(3, "9.99", 3, **SELF, stp="cancel_newest"),
        ],
        [("10.01", 1, 3, 1)],
        bids=[(2, 2)],
        canceled=[(3, "self_trade")],
    ),
    # FOK and STP
    Scenario(
        "FOK cancel_newest stopped by its own order before enough is killed self_trade",
        [
            sell(1, "10.00", 2, user=2),
            sell(2, "10.00", 2, **SELF),
            sell(3, "10.00", 2, user=3),
            buy(4, "10.00", 4, **SELF, time_in_force="fok", stp="cancel_newest"),
        ],
        [],
        asks=[(1, 2), (2, 2), (3, 2)],
        killed=[(4, "self_trade")],
    ),
    Scenario(
        "FOK cancel_both stopped by its own order is killed self_trade, nothing canceled",
        [
            sell(1, "10.00", 2, user=2),
            sell(2, "10.00", 2, **SELF),
            sell(3, "10.00", 2, user=3),
            buy(4, "10.00", 4, **SELF, time_in_force="fok", stp="cancel_both"),
        ],
        [],
        asks=[(1, 2), (2, 2), (3, 2)],
        killed=[(4, "self_trade")],
    ),
    Scenario(
        "FOK cancel_oldest skips its own order in the count and cancels it on the way",
        [
            sell(1, "10.00", 2, user=2),
            sell(2, "10.00", 2, **SELF),
            sell(3, "10.00", 2, user=3),
            buy(4, "10.00", 4, **SELF, time_in_force="fok", stp="cancel_oldest"),
        ],
        [("10.00", 2, 4, 1), ("10.00", 2, 4, 3)],
        canceled=[(2, "self_trade")],
    ),
    Scenario(
        "FOK cancel_oldest not counting its own order is killed fok",
        [
            sell(1, "10.00", 2, user=2),
            sell(2, "10.00", 2, **SELF),
            sell(3, "10.00", 2, user=3),
            buy(4, "10.00", 5, **SELF, time_in_force="fok", stp="cancel_oldest"),
        ],
        [],
        asks=[(1, 2), (2, 2), (3, 2)],
        killed=[(4, "fok")],
    ),
    Scenario(
        "FOK cancel_newest that has enough before its own order fills",
        [
            sell(1, "10.00", 2, user=2),
            sell(2, "10.00", 2, **SELF),
            buy(3, "10.00", 2, **SELF, time_in_force="fok"),
        ],
        [("10.00", 2, 3, 1)],
        asks=[(2, 2)],
    ),
    Scenario(
        "FOK stopped by its limit before its own order is killed fok, not self_trade",
        [
            sell(1, "10.00", 2, user=2),
            sell(2, "10.01", 2, **SELF),
            buy(3, "10.00", 3, **SELF, time_in_force="fok"),
        ],
        [],
        asks=[(1, 2), (2, 2)],
        killed=[(3, "fok")],
    ),
    # stops
    Scenario(
        "a buy stop waits beside the book, then a print at its stop triggers a market buy",
        [
            sell(1, "10.00", 1),
            sell(2, "10.05", 5),
            stop(3, "buy", "10.00", 2),
            Expect([], [(1, 1), (2, 5)]),
            buy(4, "10.00", 1),
        ],
        [("10.00", 1, 4, 1), ("10.05", 2, 3, 2)],
        asks=[(2, 3)],
        triggers=[(3, "10.00", "10.50")],  # bound: protection 500 bp above the stop
    ),
    Scenario(
        "a stop's own price bounds it when tighter than the protection",
        [
            sell(1, "10.00", 1),
            sell(2, "10.05", 1),
            sell(3, "10.10", 1),
            stop(4, "buy", "10.00", 3, "10.05"),
            buy(5, "10.00", 1),
        ],
        [("10.00", 1, 5, 1), ("10.05", 1, 4, 2)],
        asks=[(3, 1)],
        canceled=[(4, "no_liquidity")],
        triggers=[(4, "10.00", "10.05")],
    ),
    Scenario(
        "a print above a sell stop does not trigger it",
        [buy(1, "10.01", 1), stop(2, "sell", "10.00", 1), sell(3, "10.01", 1)],
        [("10.01", 1, 3, 1)],
        stops=[2],
    ),
    Scenario(
        "a sell stop-limit triggers and rests at its limit when it cannot take",
        [
            buy(1, "10.00", 1),
            buy(2, "9.95", 5),
            stop_limit(3, "sell", "10.00", "9.97", 3),
            sell(4, "10.00", 1),
        ],
        [("10.00", 1, 4, 1)],
        bids=[(2, 5)],
        asks=[(3, 3)],
        triggers=[(3, "10.00", "9.97")],
    ),
    Scenario(
        "stops triggered by one print come in in the order they were placed",
        [
            buy(1, "10.00", 1),
            buy(2, "9.50", 10),
            stop(3, "sell", "10.00", 1),
            stop(4, "sell", "10.00", 2),
            sell(5, "10.00", 1),
        ],
        [("10.00", 1, 5, 1), ("9.50", 1, 3, 2), ("9.50", 2, 4, 2)],
        bids=[(2, 7)],
        triggers=[(3, "10.00", "9.50"), (4, "10.00", "9.50")],
    ),
    Scenario(
        "a cascade: stop, then trailing stop, then stop-limit, each triggered by the last",
        [
            buy(1, "10.00", 1),
            buy(2, "9.90", 1),
            buy(3, "9.80", 1),
            buy(4, "9.70", 5),
            stop(10, "sell", "9.90", 1),
            trailing(11, "sell", "9.70", 1, trail="0.20"),
            stop_limit(12, "sell", "9.70", "9.65", 3),
            sell(19, "10.00", 1),  # print 10.00: the trailing stop moves up to 9.80
            sell(20, "9.90", 1),  # print 9.90: stop 10 at 9.90
        ],
        [
            ("10.00", 1, 19, 1),
            ("9.90", 1, 20, 2),
            ("9.80", 1, 10, 3),  # 9.80 <= 9.80: trailing stop 11
            ("9.70", 1, 11, 4),  # 9.70 <= 9.70: stop-limit 12
            ("9.70", 3, 12, 4),
        ],
        bids=[(4, 1)],
        triggers=[(10, "9.90", "9.40"), (11, "9.80", "9.31"), (12, "9.70", "9.65")],
    ),
    Scenario(
        "a stop is triggered by any print of a sweep, not only the last",
        [
            sell(1, "10.00", 1),
            sell(2, "10.01", 1),
            buy(3, "9.50", 5),
            stop(4, "sell", "10.00", 1),
            buy(5, "10.01", 2),
        ],
        [("10.00", 1, 5, 1), ("10.01", 1, 5, 2), ("9.50", 1, 4, 3)],
        bids=[(3, 4)],
        triggers=[(4, "10.00", "9.50")],
    ),
    Scenario(
        "a triggered stop with nothing to take is canceled no_liquidity",
        [buy(1, "10.00", 1), stop(2, "sell", "10.00", 3), sell(3, "10.00", 1)],
        [("10.00", 1, 3, 1)],
        canceled=[(2, "no_liquidity")],
        triggers=[(2, "10.00", "9.50")],
    ),
    # trading=False, then uncross
    Scenario(
        "halted: limits rest crossed, market and IOC canceled, FOK killed, stops wait; "
        "uncross trades the newer front order at the older one's price",
        [
            Halted(buy(1, "10.00", 5)),
            Halted(sell(2, "9.98", 3)),
            Halted(market(3, "buy", 2)),
            Halted(buy(4, "10.50", 1, time_in_force="ioc")),
            Halted(buy(5, "10.50", 1, time_in_force="fok")),
            Halted(sell(6, "10.05", 2, post_only=True)),
            Halted(stop(7, "buy", "11.00", 1)),
            Halted(buy(8, "9.00", 1, time_in_force="day")),
            Expect([(1, 5), (8, 1)], [(2, 3), (6, 2)]),
            Uncross(),
        ],
        [("10.00", 3, 2, 1)],
        bids=[(1, 2), (8, 1)],
        asks=[(6, 2)],
        stops=[7],
        canceled=[(3, "market_closed"), (4, "market_closed")],
        killed=[(5, "market_closed")],
        rested=[6],
    ),
    Scenario(
        "uncross in several rounds: a taken-out order that is left rests at the back",
        [
            Halted(buy(1, "10.00", 2)),
            Halted(sell(2, "9.99", 5)),
            Halted(buy(3, "10.01", 2)),
            Halted(sell(4, "9.99", 1)),
            Uncross(),
        ],
        # front bid 3 (10.01) is newer than front ask 2: 3 takes 2 at 9.99; then front
        # ask 2 is newer than front bid 1: 2 takes 1 at 10.00 and rests behind 4 at 9.99
        [("9.99", 2, 3, 2), ("10.00", 2, 2, 1)],
        asks=[(4, 1), (2, 1)],
    ),
    Scenario(
        "uncross after a rebuild from a snapshot",
        [
            Rebuild(sell(1, "9.99", 2)),
            Rebuild(buy(2, "10.01", 3)),
            Rebuild(stop(3, "buy", "11.00", 1)),
            Expect([(2, 3)], [(1, 2)]),
            Uncross(),
        ],
        [("9.99", 2, 2, 1)],
        bids=[(2, 1)],
        stops=[3],
    ),
    Scenario(
        "uncross when the book is not crossed does nothing",
        [buy(1, "9.99", 1), sell(2, "10.00", 1), Uncross()],
        [],
        bids=[(1, 1)],
        asks=[(2, 1)],
    ),
    Scenario(
        "uncross prints trigger stops",
        [
            Halted(buy(1, "10.00", 1)),
            Halted(sell(2, "10.00", 1)),
            sell(3, "10.20", 5),
            stop(4, "buy", "10.00", 2),
            Uncross(),
        ],
        [("10.00", 1, 2, 1), ("10.20", 2, 4, 3)],
        asks=[(3, 3)],
        triggers=[(4, "10.00", "10.50")],
    ),
    Scenario(
        "uncross in several rounds: a trailing stop sees each print once, in order",
        [
            Halted(sell(1, "10.00", 1)),
            Halted(sell(2, "10.40", 1)),
            Halted(buy(3, "10.50", 1)),
            Halted(buy(4, "10.45", 1)),
            Halted(sell(5, "10.41", 1)),
            Halted(buy(6, "10.42", 1)),
            Halted(buy(7, "9.00", 1)),
            Halted(trailing(8, "sell", "9.00", 1, trail="0.30")),
            Uncross(),
        ],
        # three rounds, each the newer bid taking the front ask: 3 takes 1 at 10.00 (the
        # stop trails up to 9.70), 4 takes 2 at 10.40 (10.10), 6 takes 5 at 10.41 (10.11);
        # no print was ever at or below the stop where it stood then
        [("10.00", 1, 3, 1), ("10.40", 1, 4, 2), ("10.41", 1, 6, 5)],
        bids=[(7, 1)],
        stops=[8],
    ),
    Scenario(
        "uncross applies the taken-out order's STP",
        [Halted(buy(1, "10.00", 1, **SELF)), Halted(sell(2, "10.00", 1, **SELF)), Uncross()],
        [],
        bids=[(1, 1)],
        canceled=[(2, "self_trade")],
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_scenario(scenario: Scenario) -> None:
    r = run(scenario.steps)
    expected = [(D(p), D(q), t, m) for p, q, t, m in scenario.prints]
    assert prints_of(r) == expected
    bids, asks, stops = leaves(r.book)
    assert (bids, asks, stops) == (scenario.bids, scenario.asks, scenario.stops)
    assert closed(r, killed=False) == sorted(scenario.canceled)
    assert closed(r, killed=True) == sorted(scenario.killed)
    assert [e.order_id for e in r.events if isinstance(e, Rested)] == scenario.rested
    triggers = [(t.order_id, t.stop_price, t.price) for t in r.events if isinstance(t, Trigger)]
    assert triggers == [(i, D(s), D(p)) for i, s, p in scenario.triggers]
    live = {o.order_id for o in r.book.orders()}
    assert live == {i for i, _ in bids + asks} | set(stops)
    assert len(r.book) == len(live)


# ONE BEHAVIOUR EACH --------------------------------------------------------------------------


def _submit_all(book: ExchangeBook, *orders: Resting) -> None:
    for o in orders:
        book.submit(o)


def test_each_fill_is_a_taker_match_then_a_maker_match() -> None:
    book = new_book()
    _submit_all(book, sell(1, "10.00", 2), sell(2, "10.01", 2))
    out = book.submit(buy(3, "10.01", 3))
    assert out.events == [
        Match(3, D(2), D("10.00"), D(2), TAKER),
        Match(1, D(2), D("10.00"), D(2), MAKER),
        Match(3, D(1), D("10.01"), D(3), TAKER),
        Match(2, D(1), D("10.01"), D(1), MAKER),
    ]
    assert out.prints == [
        Print(D("10.00"), D(2), "buy", 3, 1),
        Print(D("10.01"), D(1), "buy", 3, 2),
    ]
    assert out.matches == out.events
    assert book.last == D("10.01")


def test_a_resting_order_is_answered_with_no_events() -> None:
    book = new_book()
    out = book.submit(buy(1, "10.00", 1))
    assert (out.events, out.prints) == ([], [])
    assert book.last is None
    assert 1 in book and book.best_bid() == D("10.00") and book.best_ask() is None


def test_stp_cancel_oldest_events_come_in_causal_order() -> None:
    book = new_book()
    _submit_all(book, sell(1, "10.00", 1, user=2), sell(2, "10.00", 1, **SELF))
    _submit_all(book, sell(3, "10.00", 1, user=3))
    out = book.submit(buy(4, "10.00", 3, **SELF, stp="cancel_oldest"))
    assert out.events == [
        Match(4, D(1), D("10.00"), D(1), TAKER),
        Match(1, D(1), D("10.00"), D(1), MAKER),
        Closed(2, "self_trade"),
        Match(4, D(1), D("10.00"), D(2), TAKER),
        Match(3, D(1), D("10.00"), D(1), MAKER),
    ]
    assert out.canceled == [(2, "self_trade")]
    assert out.killed == []


def test_stp_cancel_newest_closes_the_taker_after_its_fills() -> None:
    book = new_book()
    _submit_all(book, sell(1, "10.00", 1, user=2), sell(2, "10.00", 1, **SELF))
    out = book.submit(buy(3, "10.00", 3, **SELF))
    assert out.events == [
        Match(3, D(1), D("10.00"), D(1), TAKER),
        Match(1, D(1), D("10.00"), D(1), MAKER),
        Closed(3, "self_trade"),
    ]
    assert 3 not in book


def test_fok_that_cannot_fill_has_no_side_effects() -> None:
    book = new_book()
    _submit_all(book, buy(1, "9.00", 1), sell(2, "9.00", 1))  # a print: last is 9.00
    _submit_all(book, sell(3, "10.00", 3, user=7), sell(4, "10.01", 3, user=8))
    _submit_all(book, stop(5, "buy", "10.00", 1))
    book.take_depth_changes()
    before = leaves(book), book.depth(10), book.last
    for fok in (
        buy(6, "10.01", 7, time_in_force="fok"),  # too little within its limit
        buy(7, "10.01", 4, user=8, time_in_force="fok"),  # its own order in the way
        buy(8, "10.01", 4, user=8, time_in_force="fok", stp="cancel_both"),
    ):
        out = book.submit(fok)
        assert out.prints == [] and out.matches == [] and out.triggers == []
        assert len(out.killed) == 1 and out.canceled == []
        assert (leaves(book), book.depth(10), book.last) == before
        assert book.take_depth_changes() == ([], [])
        assert fok.order_id not in book
    assert book.get(3).leaves_qty == D(3)  # type: ignore[union-attr]


def test_post_only_refused_has_no_side_effects() -> None:
    book = new_book()
    _submit_all(book, sell(1, "10.00", 3), buy(2, "9.99", 3))
    book.take_depth_changes()
    out = book.submit(buy(3, "10.00", 1, post_only=True))
    assert out.events == [Closed(3, "post_only", killed=True)]
    assert out.killed == [(3, "post_only")] and out.rested == []
    assert book.take_depth_changes() == ([], [])
    assert 3 not in book


def test_post_only_resting_is_answered_rested() -> None:
    book = new_book()
    book.submit(sell(1, "10.00", 3))
    out = book.submit(buy(2, "9.99", 1, post_only=True))
    assert out.events == [Rested(2)]
    assert out.rested == [2]
    assert book.take_depth_changes() == ([(D("9.99"), D(1))], [(D("10.00"), D(3))])


def test_cancel_returns_the_order_with_what_it_filled() -> None:
    book = new_book()
    _submit_all(book, sell(1, "10.00", 10), buy(2, "10.00", 4))
    taken = book.cancel(1)
    assert taken is not None
    assert (taken.order_id, taken.cum_qty, taken.leaves_qty) == (1, D(4), D(6))
    assert book.cancel(1) is None
    assert book.cancel(99) is None
    assert book.depth(5) == ([], [])


def test_replace_of_an_unknown_order_changes_nothing() -> None:
    book = new_book()
    _submit_all(book, sell(1, "10.00", 2))
    book.take_depth_changes()
    kept, out = book.replace_order(9, buy(10, "10.00", 2))
    assert kept is False
    assert (out.events, out.prints) == ([], [])
    assert 10 not in book
    assert leaves(book) == ([], [(1, 2)], [])
    assert book.take_depth_changes() == ([], [])


def test_replace_keeping_place_has_no_events() -> None:
    book = new_book()
    _submit_all(book, buy(1, "10.00", 5), buy(2, "10.00", 5))
    kept, out = book.replace_order(1, buy(3, "10.00", 2))
    assert kept is True
    assert (out.events, out.prints) == ([], [])
    assert 1 not in book and 3 in book
    assert book.take_depth_changes() == ([(D("10.00"), D(7))], [])


def test_halted_replace_rests_without_matching() -> None:
    book = new_book()
    _submit_all(book, buy(1, "9.99", 5), sell(2, "10.01", 3))
    kept, out = book.replace_order(1, buy(3, "10.01", 5), trading=False)
    assert kept is False and out.prints == []
    assert leaves(book) == ([(3, 5)], [(2, 3)], [])
    out = book.uncross()
    assert [(p.price, p.qty, p.taker_id, p.maker_id) for p in out.prints] == [
        (D("10.01"), D(3), 3, 2)
    ]


def test_a_trailing_sell_stop_follows_the_highest_print_and_never_loosens() -> None:
    book = new_book()
    book.submit(trailing(1, "sell", "9.50", 2, trail="0.50"))

    def trade_at(oid: int, price: str) -> None:
        book.submit(buy(oid, price, 1))
        book.submit(sell(oid + 1, price, 1))

    def stop_now() -> D:
        return book.priority()[2][0].stop_price  # type: ignore[return-value]

    trade_at(10, "10.20")
    assert stop_now() == D("9.70")
    trade_at(12, "10.00")
    assert stop_now() == D("9.70")  # a lower print does not loosen it
    trade_at(14, "10.30")
    assert stop_now() == D("9.80")
    _submit_all(book, buy(20, "9.80", 1), buy(21, "9.60", 5))
    out = book.submit(sell(22, "9.80", 1))
    assert [(t.order_id, t.stop_price, t.price) for t in out.triggers] == [
        (1, D("9.80"), D("9.31"))  # 9.80 less 500 bp, down to the tick
    ]
    assert [(p.price, p.qty, p.taker_id, p.maker_id) for p in out.prints] == [
        (D("9.80"), D(1), 22, 20),
        (D("9.60"), D(2), 1, 21),
    ]
    assert 1 not in book


def test_a_trailing_buy_stop_follows_the_lowest_print() -> None:
    book = new_book()
    book.submit(trailing(1, "buy", "10.30", 1, trail="0.30"))
    _submit_all(book, buy(10, "9.90", 1), sell(11, "9.90", 1))
    assert book.priority()[2][0].stop_price == D("10.20")
    _submit_all(book, buy(12, "10.10", 1), sell(13, "10.10", 1))
    assert book.priority()[2][0].stop_price == D("10.20")
    assert book.priority()[2][0].triggered is False
    _submit_all(book, sell(14, "10.20", 1), sell(15, "10.25", 1))
    out = book.submit(buy(16, "10.20", 1))
    assert [t.order_id for t in out.triggers] == [1]
    assert [(p.price, p.taker_id, p.maker_id) for p in out.prints] == [
        (D("10.20"), 16, 14),
        (D("10.25"), 1, 15),
    ]


# DEPTH ---------------------------------------------------------------------------------------

P = D  # a price in the depth tables below


def test_depth_aggregates_levels_and_caps_their_number() -> None:
    book = new_book()
    _submit_all(book, buy(1, "10.00", 1), buy(2, "10.00", 2), buy(3, "9.98", 4))
    _submit_all(book, buy(4, "9.99", 8), sell(5, "10.02", 3), sell(6, "10.01", 5))
    _submit_all(book, sell(7, "10.03", 1), stop(8, "buy", "10.50", 100))
    assert book.depth(2) == (
        [(P("10.00"), D(3)), (P("9.99"), D(8))],
        [(P("10.01"), D(5)), (P("10.02"), D(3))],
    )
    assert book.depth(10) == (
        [(P("10.00"), D(3)), (P("9.99"), D(8)), (P("9.98"), D(4))],
        [(P("10.01"), D(5)), (P("10.02"), D(3)), (P("10.03"), D(1))],
    )
    assert book.depth(0) == ([], [])


def test_take_depth_changes_after_each_kind_of_change() -> None:
    book = new_book()
    take = book.take_depth_changes
    assert take() == ([], [])

    book.submit(buy(1, "10.00", 5))  # a new level
    assert take() == ([(P("10.00"), D(5))], [])
    assert take() == ([], [])  # forgotten once taken

    _submit_all(book, buy(2, "10.00", 3), buy(3, "9.99", 2), sell(4, "10.02", 4))
    assert take() == ([(P("10.00"), D(8)), (P("9.99"), D(2))], [(P("10.02"), D(4))])

    book.submit(sell(5, "10.00", 6))  # a taker filled whole: bids shrink, no ask level
    assert take() == ([(P("10.00"), D(2))], [])

    book.submit(sell(6, "9.99", 4))  # two bid levels emptied
    assert take() == ([(P("10.00"), D(0)), (P("9.99"), D(0))], [])

    book.submit(sell(7, "9.99", 3, time_in_force="day"))  # a limit left after nothing to take
    assert take() == ([], [(P("9.99"), D(3))])

    book.cancel(4)  # a cancel
    assert take() == ([], [(P("10.02"), D(0))])

    book.submit(stop(8, "buy", "10.50", 5))  # a waiting stop is no depth
    assert take() == ([], [])

    kept, _ = book.replace_order(7, sell(9, "9.99", 1))  # replace in place, less qty
    assert kept and take() == ([], [(P("9.99"), D(1))])

    kept, _ = book.replace_order(9, sell(10, "10.05", 2))  # replace to another price
    assert not kept and take() == ([], [(P("9.99"), D(0)), (P("10.05"), D(2))])

    book.submit(buy(11, "10.05", 1))  # partly fills a maker: its level shrinks
    assert take() == ([], [(P("10.05"), D(1))])

    book.submit(buy(12, "10.05", 1, time_in_force="ioc"))
    assert take() == ([], [(P("10.05"), D(0))])

    book.submit(buy(13, "9.00", 2, post_only=True))
    assert take() == ([(P("9.00"), D(2))], [])


def test_depth_changes_of_a_triggered_stop_limit_that_rests() -> None:
    book = new_book()
    _submit_all(book, buy(1, "10.00", 1), stop_limit(2, "sell", "10.00", "10.10", 4))
    book.take_depth_changes()
    book.submit(sell(3, "10.00", 1))
    assert book.take_depth_changes() == ([(P("10.00"), D(0))], [(P("10.10"), D(4))])
    assert book.depth(5) == ([], [(P("10.10"), D(4))])


def test_depth_changes_of_a_halt_and_uncross() -> None:
    book = new_book()
    book.submit(buy(1, "10.00", 5), trading=False)
    book.submit(sell(2, "9.98", 3), trading=False)
    assert book.take_depth_changes() == ([(P("10.00"), D(5))], [(P("9.98"), D(3))])
    assert book.depth(5) == ([(P("10.00"), D(5))], [(P("9.98"), D(3))])  # crossed
    book.uncross()
    assert book.take_depth_changes() == ([(P("10.00"), D(2))], [(P("9.98"), D(0))])


def test_depth_changes_of_a_rebuild() -> None:
    book = new_book()
    book.rest(buy(1, "10.00", 5))
    book.rest(sell(2, "10.01", 3))
    assert book.depth(5) == ([(P("10.00"), D(5))], [(P("10.01"), D(3))])
    book.take_depth_changes()
    book.submit(sell(3, "10.00", 1))
    assert book.take_depth_changes() == ([(P("10.00"), D(4))], [])
