"""A hypothesis model of the exchange-mode book (actors/matcher/exchange.py).

A state machine sends the same orders to the ExchangeBook and to `Model`, a plain
price-time book written from the contract of issue 16: two lists of orders, each kept
sorted by (price, time entered), an incoming order walking the opposite list from the
front. Orders are limit (day, gtc, ioc, fok, post_only) and market (to a bound, or fok) of
three users with random self-trade prevention, plus cancels and replaces, a rebuild from
a snapshot (`rest`) and halts (trading=False) with `uncross` on resuming.

After every step the book and the model must agree on what came out (events, prints) and
on the book (priority, depth), and invariants hold: never crossed while trading, qty
conserved, no print between one user's orders, and a client that applies
take_depth_changes() to a snapshot sees depth().
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from itertools import count

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from actors.market.rules import MAKER, TAKER, Market
from actors.matcher.book import FillModel, Match, Resting
from actors.matcher.exchange import Closed, ExchangeBook, Outcome, Print, Rested
from protocol.settings import build_settings

PROFILE = Market.from_settings(build_settings(None)).rules("AAPL")
TICK = Decimal("0.01")
BASE = Decimal("10.00")
STP = ("cancel_newest", "cancel_oldest", "cancel_both")

prices = st.integers(0, 5).map(lambda k: BASE + k * TICK)  # six levels: many crosses
qtys = st.integers(1, 5).map(Decimal)
users = st.integers(1, 3)
sides = st.sampled_from(("buy", "sell"))
stps = st.sampled_from(STP)
KINDS = ("gtc", "day", "ioc", "fok", "post_only", "market", "market_fok")


# THE MODEL -----------------------------------------------------------------------------------


@dataclass
class Order:
    order_id: int
    side: str
    price: Decimal
    qty: Decimal
    user: int
    stp: str
    kind: str  # one of KINDS
    leaves: Decimal
    cum: Decimal = Decimal(0)
    time: int = 0  # when it entered the book: time priority within a price

    @property
    def market(self) -> bool:
        return self.kind.startswith("market")

    @property
    def tif(self) -> str:
        return {"post_only": "gtc", "market": "gtc", "market_fok": "fok"}.get(self.kind, self.kind)

    def resting(self) -> Resting:
        return Resting(
            self.order_id,
            self.side,
            self.price,
            self.leaves,
            self.cum,
            self.order_id,
            order_type="market" if self.market else "limit",
            time_in_force=self.tif,
            user_id=self.user,
            post_only=self.kind == "post_only",
            stp=self.stp,
        )

    def within(self, price: Decimal) -> bool:
        return price <= self.price if self.side == "buy" else price >= self.price


class Model:
    """Price-time priority, spelled out: each side a list sorted by (price, time)."""

    def __init__(self) -> None:
        self.bids: list[Order] = []
        self.asks: list[Order] = []
        self.clock = count(1)
        self.last: Decimal | None = None

    def side(self, side: str) -> list[Order]:
        return self.bids if side == "buy" else self.asks

    def opposite(self, side: str) -> list[Order]:
        return self.asks if side == "buy" else self.bids

    def find(self, order_id: int) -> Order | None:
        return next((o for o in self.bids + self.asks if o.order_id == order_id), None)

    def rest(self, o: Order, time: int | None = None) -> None:
        o.time = next(self.clock) if time is None else time
        book = self.side(o.side)
        book.append(o)
        book.sort(key=lambda r: (-r.price if r.side == "buy" else r.price, r.time))

    def remove(self, o: Order) -> None:
        self.side(o.side).remove(o)

    def crossed(self) -> bool:
        return bool(self.bids and self.asks and self.bids[0].price >= self.asks[0].price)

    def submit(self, o: Order, trading: bool, out: Outcome) -> None:
        if not trading:
            if o.market or o.tif == "ioc":
                out.events.append(Closed(o.order_id, "market_closed"))
            elif o.tif == "fok":
                out.events.append(Closed(o.order_id, "market_closed", killed=True))
            else:
                self.rest(o)
                if o.kind == "post_only":
                    out.events.append(Rested(o.order_id))
            return
        if o.kind == "post_only":
            opposite = self.opposite(o.side)
            if opposite and o.within(opposite[0].price):
                out.events.append(Closed(o.order_id, "post_only", killed=True))
            else:
                self.rest(o)
                out.events.append(Rested(o.order_id))
            return
        if o.tif == "fok":
            got, self_stop = Decimal(0), False
            for m in self.opposite(o.side):
                if got >= o.leaves or not o.within(m.price):
                    break
                if m.user == o.user:
                    if o.stp == "cancel_oldest":
                        continue
                    self_stop = True
                    break
                got += m.leaves
            if got < o.leaves:
                reason = "self_trade" if self_stop else "fok"
                out.events.append(Closed(o.order_id, reason, killed=True))
                return
        self.take(o, out)

    def take(self, o: Order, out: Outcome) -> None:
        opposite = self.opposite(o.side)
        while o.leaves and opposite and o.within(opposite[0].price):
            m = opposite[0]
            if m.user == o.user:
                if o.stp in ("cancel_oldest", "cancel_both"):
                    opposite.pop(0)
                    out.events.append(Closed(m.order_id, "self_trade"))
                if o.stp in ("cancel_newest", "cancel_both"):
                    out.events.append(Closed(o.order_id, "self_trade"))
                    return
                continue
            qty = min(o.leaves, m.leaves)
            for order in (o, m):
                order.leaves -= qty
                order.cum += qty
            out.prints.append(Print(m.price, qty, o.side, o.order_id, m.order_id))
            out.events.append(Match(o.order_id, qty, m.price, o.cum, TAKER))
            out.events.append(Match(m.order_id, qty, m.price, m.cum, MAKER))
            self.last = m.price
            if not m.leaves:
                opposite.pop(0)
        if not o.leaves:
            return
        if o.market:
            out.events.append(Closed(o.order_id, "no_liquidity"))
        elif o.tif == "ioc":
            out.events.append(Closed(o.order_id, "ioc"))
        else:
            self.rest(o)

    def replace(self, old_id: int, new: Order, trading: bool, out: Outcome) -> bool:
        old = self.find(old_id)
        if old is None:
            return False
        self.remove(old)
        if old.side == new.side and old.price == new.price and new.leaves <= old.leaves:
            self.rest(new, time=old.time)
            return True
        self.submit(new, trading, out)
        return False

    def uncross(self, out: Outcome) -> None:
        while self.crossed():
            bid, ask = self.bids[0], self.asks[0]
            newer = bid if bid.order_id > ask.order_id else ask  # seq is the order id
            self.remove(newer)
            self.take(newer, out)

    def depth(self) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        def levels(orders: list[Order]) -> list[tuple[Decimal, Decimal]]:
            totals: dict[Decimal, Decimal] = {}
            for o in orders:
                totals[o.price] = totals.get(o.price, Decimal(0)) + o.leaves
            return list(totals.items())  # the list is in price order already

        return levels(self.bids), levels(self.asks)


def canonical(events: list[object]) -> list[object]:
    """Events with each run of Closed sorted by id: cancel_both closes two orders at once,
    and the contract does not say which first."""
    result: list[object] = []
    run: list[Closed] = []
    for e in [*events, None]:
        if isinstance(e, Closed):
            run.append(e)
            continue
        result += sorted(run, key=lambda c: (c.order_id, c.reason))
        run = []
        if e is not None:
            result.append(e)
    return result


# THE MACHINE ---------------------------------------------------------------------------------


class ExchangeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.book = ExchangeBook("AAPL", FillModel(PROFILE))
        self.model = Model()
        self.ids = count(1)
        self.known: list[int] = []  # every id submitted, live or not
        self.qty: dict[int, Decimal] = {}  # each order's qty at submission (cum + leaves)
        self.user: dict[int, int] = {}
        self.trading = True
        self.client: tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]] = ({}, {})

    def new_order(
        self, side: str, price: Decimal, qty: Decimal, user: int, stp: str, kind: str
    ) -> Order:
        order_id = next(self.ids)
        self.known.append(order_id)
        self.qty[order_id] = qty
        self.user[order_id] = user
        return Order(order_id, side, price, qty, user, stp, kind, leaves=qty)

    def compare(self, got: Outcome, expected: Outcome) -> None:
        assert got.prints == expected.prints
        assert canonical(got.events) == canonical(expected.events)
        assert self.book.last == self.model.last
        for p in got.prints:
            assert self.user[p.taker_id] != self.user[p.maker_id], p
        takers = sum((m.qty for m in got.matches if m.liquidity == TAKER), Decimal(0))
        makers = sum((m.qty for m in got.matches if m.liquidity == MAKER), Decimal(0))
        assert takers == makers == sum((p.qty for p in got.prints), Decimal(0))

    # RULES -------------------------------------------------------------------------------

    @rule()
    def rebuild(self) -> None:
        """A matcher restarts: a new book rests the orders of a snapshot, side by side in
        priority, matching nothing (crossed if halted); the client takes a new snapshot."""
        bids, asks, _ = self.book.priority()
        last = self.book.last
        self.book = ExchangeBook("AAPL", FillModel(PROFILE))
        for o in bids + asks:
            self.book.rest(replace(o))
        self.book.last = last
        self.book.take_depth_changes()
        bids_, asks_ = self.book.depth(1000)
        self.client = (dict(bids_), dict(asks_))

    @rule(
        side=sides,
        price=prices,
        qty=qtys,
        user=users,
        stp=stps,
        kind=st.sampled_from(KINDS),
    )
    def submit(
        self, side: str, price: Decimal, qty: Decimal, user: int, stp: str, kind: str
    ) -> None:
        """A new order; `price` is a limit's limit or a market order's bound."""
        if kind == "post_only" and not self.trading:
            opposite = self.model.opposite(side)
            if opposite and (
                price >= opposite[0].price if side == "buy" else price <= opposite[0].price
            ):
                kind = "gtc"  # halted, the contract does not say if a crossing one is refused
        o = self.new_order(side, price, qty, user, stp, kind)
        got = self.book.submit(o.resting(), trading=self.trading)
        expected = Outcome()
        self.model.submit(o, self.trading, expected)
        self.compare(got, expected)

    @rule(pick=st.integers(0, 63))
    def cancel(self, pick: int) -> None:
        order_id = self.known[pick % len(self.known)] if self.known else 0
        o = self.model.find(order_id)
        taken = self.book.cancel(order_id)
        if o is None:
            assert taken is None
            return
        self.model.remove(o)
        assert taken is not None
        assert (taken.order_id, taken.cum_qty, taken.leaves_qty) == (o.order_id, o.cum, o.leaves)

    @rule(
        pick=st.integers(0, 63),
        same_side=st.booleans(),
        same_price=st.booleans(),
        price=prices,
        qty=qtys,
        stp=stps,
        tif=st.sampled_from(("gtc", "day")),
    )
    def replace(
        self,
        pick: int,
        same_side: bool,
        same_price: bool,
        price: Decimal,
        qty: Decimal,
        stp: str,
        tif: str,
    ) -> None:
        old_id = self.known[pick % len(self.known)] if self.known else 0
        old = self.model.find(old_id)
        if old is None:  # gone: any new order; nothing may change
            new = self.new_order("buy", price, qty, 1, stp, tif)
            kept, got = self.book.replace_order(old_id, new.resting(), trading=self.trading)
            assert (kept, got.events, got.prints) == (False, [], [])
            return
        side = old.side if same_side else ("sell" if old.side == "buy" else "buy")
        new = self.new_order(side, old.price if same_price else price, qty, old.user, stp, tif)
        kept, got = self.book.replace_order(old_id, new.resting(), trading=self.trading)
        expected = Outcome()
        assert kept is self.model.replace(old_id, new, self.trading, expected)
        self.compare(got, expected)
        assert old_id not in self.book

    @rule(on=st.booleans())
    def trade(self, on: bool) -> None:
        """Halt, or resume and uncross; either is a no-op if already so (no precondition:
        a halt and a resume shrink away one at a time)."""
        if not on:
            self.trading = False
            return
        if self.trading:
            return
        self.trading = True
        got = self.book.uncross()
        expected = Outcome()
        self.model.uncross(expected)
        self.compare(got, expected)

    # INVARIANTS ----------------------------------------------------------------------------

    @invariant()
    def book_is_the_model(self) -> None:
        bids, asks, stops = self.book.priority()
        assert stops == []

        def rows(orders: list[Resting] | list[Order]) -> list[tuple[int, Decimal, Decimal]]:
            return [
                (o.order_id, o.price, o.leaves_qty if isinstance(o, Resting) else o.leaves)
                for o in orders
            ]

        assert rows(bids) == rows(self.model.bids)
        assert rows(asks) == rows(self.model.asks)
        assert self.book.depth(1000) == self.model.depth()
        top = self.model.depth()
        assert self.book.depth(2) == (top[0][:2], top[1][:2])
        assert len(self.book) == len(self.model.bids) + len(self.model.asks)

    @invariant()
    def not_crossed_while_trading(self) -> None:
        if self.trading:
            bid, ask = self.book.best_bid(), self.book.best_ask()
            assert bid is None or ask is None or bid < ask

    @invariant()
    def qty_is_conserved(self) -> None:
        for o in self.book.orders():
            assert o.cum_qty + o.leaves_qty == self.qty[o.order_id]
            assert o.leaves_qty > 0

    @invariant()
    def depth_changes_rebuild_the_book(self) -> None:
        changes = self.book.take_depth_changes()
        for side, changed, descending in zip(self.client, changes, (True, False), strict=True):
            prices_ = [price for price, _ in changed]
            assert prices_ == sorted(prices_, reverse=descending)
            assert len(set(prices_)) == len(prices_)
            for price, qty in changed:
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
        bids = sorted(self.client[0].items(), reverse=True)
        asks = sorted(self.client[1].items())
        assert (bids, asks) == self.book.depth(1000)


ExchangeMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    database=None,
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow],
)
test_exchange_book_matches_the_model = ExchangeMachine.TestCase
