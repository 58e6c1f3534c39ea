"""Property-based tests of the plain trading classes: Profile, Accounts and Book together.

A hypothesis state machine plays the accountant and the matcher over the plain classes:
orders are checked by `Profile.check_order`, reserved by `Accounts.place` and rested in
one `Book` per symbol; cancels take them out of the book and release them; market trades
(`Book.cross`) and instant fills (`Book.fill_at_limit`, `Book.fill_everything`) settle
through `Accounts.fill`. After every step the money, share and reservation invariants of
actors/accounts.py must hold exactly, checked against an independent record of the fills.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from actors.accounts import Account, Accounts, Fill, Order, Rejection, User
from actors.book import Book, Match, Resting
from actors.rules import Profile, symbol_table
from protocol.errors import ErrorCode, RejectError
from protocol.settings import Settings

SETTINGS = Settings()
PROFILE = Profile.from_settings(SETTINGS)
SYMBOLS = symbol_table(SETTINGS)
TRADED = ("600000", "000001", "000725")
ZERO = Decimal(0)
CENT = Decimal("0.01")

# Prices in cents: mostly cheap (so tiny sells whose fees exceed proceeds appear), some dear.
price_cents = st.one_of(st.integers(1, 600), st.integers(1, 6000))
cash_cents = st.one_of(
    st.integers(1, 500_000),
    st.integers(5_000_000, 100_000_000),
    st.integers(10_000_000, 50_000_000),
)
picks = st.integers(0, 1_000_000)  # an index into whatever exists, taken modulo its size

PROPERTY_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def price_text(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def half_up_cents(amount: Fraction) -> Fraction:
    """An oracle for rounding half-up to the cent, in exact rational arithmetic."""
    assert amount >= 0
    return Fraction(math.floor(amount * 100 + Fraction(1, 2)), 100)


def decimal(amount: Fraction) -> Decimal:
    """A Fraction of whole cents as an exact Decimal."""
    return Decimal(amount.numerator) / Decimal(amount.denominator)


def expected_commission(value: Decimal) -> Decimal:
    rate = Fraction(PROFILE.commission_rate)
    return decimal(max(half_up_cents(Fraction(value) * rate), Fraction(PROFILE.min_commission)))


def expected_tax(side: str, value: Decimal) -> Decimal:
    if side == "buy":
        return ZERO
    return decimal(half_up_cents(Fraction(value) * Fraction(PROFILE.stamp_tax_rate)))


# PROFILE -------------------------------------------------------------------------------


@given(qty=st.integers(1, 1_000_000), cents=st.integers(1, 10_000_000))
@PROPERTY_SETTINGS
def test_commission_is_whole_cents_at_least_the_minimum_and_rate_rounded_half_up(
    qty: int, cents: int
) -> None:
    value = qty * money(cents)
    commission = PROFILE.commission(value)
    assert commission >= PROFILE.min_commission
    assert commission == commission.quantize(CENT)
    assert commission == expected_commission(value)


@given(qty=st.integers(1, 1_000_000), cents=st.integers(1, 10_000_000))
@PROPERTY_SETTINGS
def test_stamp_tax_is_zero_on_buys_and_rate_rounded_half_up_on_sells(qty: int, cents: int) -> None:
    value = qty * money(cents)
    assert PROFILE.tax("buy", value) == 0
    tax = PROFILE.tax("sell", value)
    assert tax == tax.quantize(CENT)
    assert tax == expected_tax("sell", value)
    assert PROFILE.fees("sell", value) == (expected_commission(value), tax)


@given(
    lots=st.integers(1, 10_000),
    limit=st.integers(1, 1_000_000),
    below=st.integers(0, 1_000_000),
)
@PROPERTY_SETTINGS
def test_a_buy_reserves_at_least_what_filling_at_any_price_up_to_its_limit_costs(
    lots: int, limit: int, below: int
) -> None:
    qty = Decimal(lots * PROFILE.lot_size)
    reserved = PROFILE.cash_to_reserve("buy", qty, money(limit))
    fill_price = money(max(1, limit - below))
    value = qty * fill_price
    assert reserved >= value + PROFILE.commission(value)
    assert reserved == qty * money(limit) + PROFILE.commission(qty * money(limit))


@given(
    qty=st.one_of(st.integers(1, 20), st.integers(1, 1_000_000)),
    limit=st.one_of(st.integers(1, 600), st.integers(1, 1_000_000)),
    above=st.one_of(st.integers(0, 600), st.integers(0, 1_000_000)),
)
@PROPERTY_SETTINGS
def test_a_sell_reserves_at_least_what_its_fees_exceed_its_proceeds_at_any_price_from_its_limit(
    qty: int, limit: int, above: int
) -> None:
    reserved = PROFILE.cash_to_reserve("sell", Decimal(qty), money(limit))
    assert reserved >= 0
    value = qty * money(limit + above)
    commission, tax = PROFILE.fees("sell", value)
    assert reserved >= commission + tax - value


@given(
    qty=st.integers(-5, 1_000),
    cents=st.integers(-5, 100_000),
    thousandths=st.integers(0, 9),
    side=st.sampled_from(["buy", "sell"]),
)
@PROPERTY_SETTINGS
def test_check_order_accepts_exactly_whole_lots_on_the_tick_and_returns_exact_decimals(
    qty: int, cents: int, thousandths: int, side: str
) -> None:
    price = f"{price_text(abs(cents))}{thousandths}"
    if cents < 0:
        price = "-" + price
    valid = (
        qty > 0
        and (side == "sell" or qty % PROFILE.lot_size == 0)
        and cents > 0
        and thousandths == 0
    )
    try:
        q, p = PROFILE.check_order(SYMBOLS, "600000", side, str(qty), price)
    except RejectError as rej:
        assert not valid, rej
        assert rej.code in {
            ErrorCode.REQUEST_INVALID_QTY,
            ErrorCode.REQUEST_LOT_SIZE,
            ErrorCode.REQUEST_INVALID_PRICE,
            ErrorCode.REQUEST_PRICE_TICK,
        }
    else:
        assert valid
        assert (q, p) == (Decimal(qty), money(cents))
        assert p.as_tuple().exponent == -2


# BOOK ----------------------------------------------------------------------------------


orders_to_rest = st.lists(
    st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 30), st.integers(1, 5)),
    max_size=40,
)


@given(orders=orders_to_rest, last=st.integers(1, 30))
@PROPERTY_SETTINGS
def test_a_trade_fills_crossed_bids_best_price_then_earliest_first_and_leaves_the_rest(
    orders: list[tuple[str, int, int]], last: int
) -> None:
    book = Book("600000")
    for seq, (side, cents, lots) in enumerate(orders, start=1):
        book.add(Resting(seq, side, money(cents), Decimal(lots * 100), ZERO, seq))
    matches = book.cross(money(last))

    rested = list(enumerate(orders, start=1))
    bids = [(seq, o) for seq, o in rested if o[0] == "buy" and o[1] >= last]
    asks = [(seq, o) for seq, o in rested if o[0] == "sell" and o[1] <= last]
    bids.sort(key=lambda item: (-item[1][1], item[0]))
    asks.sort(key=lambda item: (item[1][1], item[0]))
    expected = [
        Match(seq, Decimal(lots * 100), money(last), Decimal(lots * 100))
        for seq, (_side, _cents, lots) in bids + asks
    ]
    assert matches == expected
    crossed = {m.order_id for m in matches}
    assert {o.order_id for o in book.orders()} == {seq for seq, _ in rested} - crossed
    assert len(book) == len(orders) - len(crossed)
    best_bid = max((c for s, c, _ in orders if s == "buy" and c < last), default=None)
    best_ask = min((c for s, c, _ in orders if s == "sell" and c > last), default=None)
    assert book.best_bid() == (None if best_bid is None else money(best_bid))
    assert book.best_ask() == (None if best_ask is None else money(best_ask))


@given(orders=orders_to_rest)
@PROPERTY_SETTINGS
def test_filling_everything_serves_bids_then_asks_in_priority_at_their_own_limits(
    orders: list[tuple[str, int, int]],
) -> None:
    book = Book("600000")
    for seq, (side, cents, lots) in enumerate(orders, start=1):
        book.add(Resting(seq, side, money(cents), Decimal(lots * 100), ZERO, seq))
    rested = list(enumerate(orders, start=1))
    bids = sorted((x for x in rested if x[1][0] == "buy"), key=lambda x: (-x[1][1], x[0]))
    asks = sorted((x for x in rested if x[1][0] == "sell"), key=lambda x: (x[1][1], x[0]))
    assert book.fill_everything() == [
        Match(seq, Decimal(lots * 100), money(cents), Decimal(lots * 100))
        for seq, (_side, cents, lots) in bids + asks
    ]
    assert len(book) == 0
    assert book.best_bid() is None and book.best_ask() is None


# THE SYSTEM AS A STATE MACHINE -----------------------------------------------------------


@dataclass(slots=True)
class ModelOrder:
    """What the test itself remembers of an open order, apart from Accounts and Book."""

    user_id: int
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    filled: Decimal = ZERO

    @property
    def leaves(self) -> Decimal:
        return self.qty - self.filled


class TradingSystem(RuleBasedStateMachine):
    """Several users trading a few symbols through Profile, Accounts and one Book each."""

    def __init__(self) -> None:
        super().__init__()
        self.accounts = Accounts(PROFILE)
        self.books = {symbol: Book(symbol) for symbol in TRADED}
        self.initial_cash: dict[int, Decimal] = {}
        self.orders: dict[int, ModelOrder] = {}
        self.fills: dict[tuple[int, str], list[Fill]] = defaultdict(list)
        self.clock = itertools.count(1_000)

    # SET-UP --------------------------------------------------------------------------

    @initialize(cash=st.lists(cash_cents, min_size=1, max_size=4))
    def open_accounts(self, cash: list[int]) -> None:
        for user_id, cents in enumerate(cash, start=1):
            amount = money(cents)
            user = User(user_id, f"user{user_id}", f"hash{user_id}", False)
            self.accounts.add_user(user, Account(user_id, amount, amount))
            self.initial_cash[user_id] = amount

    def user(self, pick: int) -> int:
        return sorted(self.initial_cash)[pick % len(self.initial_cash)]

    # ORDERS --------------------------------------------------------------------------

    def place(self, user_id: int, symbol: str, side: str, qty: str, price: str) -> None:
        q, p = PROFILE.check_order(SYMBOLS, symbol, side, qty, price)
        account = self.accounts.accounts[user_id]
        needed = PROFILE.cash_to_reserve(side, q, p)
        held = self.accounts.positions.get(user_id, {}).get(symbol)
        shares = held.available_qty if held else ZERO
        available_cash = account.available_cash
        before = (account.cash, account.reserved_cash, shares, len(self.accounts.open_orders))
        placed = self.accounts.place(user_id, symbol, side, q, p, None, next(self.clock))
        note(f"place user={user_id} {side} {q} {symbol} @ {p} -> {placed!r:.80}")
        if needed > available_cash:
            assert isinstance(placed, Rejection)
            assert placed.code == ErrorCode.RISK_INSUFFICIENT_CASH
        elif side == "sell" and q > shares:
            assert isinstance(placed, Rejection)
            assert placed.code == ErrorCode.RISK_INSUFFICIENT_SHARES
        else:
            assert isinstance(placed, Order), placed
        if isinstance(placed, Rejection):
            held = self.accounts.positions.get(user_id, {}).get(symbol)
            after_shares = held.available_qty if held else ZERO
            after = (
                account.cash,
                account.reserved_cash,
                after_shares,
                len(self.accounts.open_orders),
            )
            assert after == before, "a rejected order changed the account"
            return
        assert placed.reserved_cash == needed
        self.orders[placed.id] = ModelOrder(user_id, symbol, side, q, p)
        self.books[symbol].add(Resting(placed.id, side, p, q, ZERO, placed.id))

    @rule(
        user=picks,
        symbol=st.sampled_from(TRADED),
        lots=st.one_of(st.integers(1, 5), st.integers(1, 50)),
        cents=price_cents,
    )
    def place_buy(self, user: int, symbol: str, lots: int, cents: int) -> None:
        self.place(self.user(user), symbol, "buy", str(lots * 100), price_text(cents))

    @rule(
        user=picks,
        symbol=st.sampled_from(TRADED),
        lots=st.integers(1, 20),
        cents=price_cents,
    )
    def place_affordable_buy(self, user: int, symbol: str, lots: int, cents: int) -> None:
        """Most random buys are refused for cash; this one shrinks until it fits, if it can."""
        user_id = self.user(user)
        available = self.accounts.accounts[user_id].available_cash
        while (
            lots and PROFILE.cash_to_reserve("buy", Decimal(lots * 100), money(cents)) > available
        ):
            lots //= 2
        if lots:
            self.place(user_id, symbol, "buy", str(lots * 100), price_text(cents))

    @rule(
        user=picks,
        symbol=st.sampled_from(TRADED),
        qty=st.one_of(st.integers(1, 5), st.integers(1, 10_000)),
        amount=st.sampled_from(["all", "some", "few", "any"]),
        cents=price_cents,
    )
    def place_sell(self, user: int, symbol: str, qty: int, amount: str, cents: int) -> None:
        holdings = sorted(
            (user_id, sym, int(pos.available_qty))
            for user_id, held in self.accounts.positions.items()
            for sym, pos in held.items()
            if pos.available_qty > 0
        )
        if amount != "any" and holdings:
            user_id, symbol, available = holdings[user % len(holdings)]
            if amount == "all":
                qty = available
            else:  # a few shares of a cheap stock cost more in fees than they bring in
                qty = 1 + (qty - 1) % (min(available, 5) if amount == "few" else available)
        else:
            user_id = self.user(user)
        self.place(user_id, symbol, "sell", str(qty), price_text(cents))

    @rule(
        user=picks,
        side=st.sampled_from(["buy", "sell"]),
        qty=st.integers(-100, 1_000),
        price=st.sampled_from(["0", "-1.00", "8.505", "0.001", "1000000.01", "-0.01"]),
    )
    def invalid_order_is_rejected_before_it_touches_the_account(
        self, user: int, side: str, qty: int, price: str
    ) -> None:
        with pytest.raises(RejectError):
            PROFILE.check_order(SYMBOLS, TRADED[0], side, str(qty), price)
        with pytest.raises(RejectError) as rejected:
            PROFILE.check_order(SYMBOLS, "999999", side, "100", "1.00")
        assert rejected.value.code == ErrorCode.REQUEST_UNKNOWN_SYMBOL

    @precondition(lambda self: bool(self.orders))
    @rule(pick=picks)
    def cancel(self, pick: int) -> None:
        order_id = sorted(self.orders)[pick % len(self.orders)]
        model = self.orders.pop(order_id)
        resting = self.books[model.symbol].remove(order_id)
        assert resting is not None, f"open order {order_id} is not in its book"
        order = self.accounts.open_orders[order_id]
        note(f"cancel order={order_id}")
        self.accounts.cancel(order, next(self.clock))
        assert order.status == "canceled" and order.reserved_cash == 0
        assert self.books[model.symbol].remove(order_id) is None

    # FILLS ---------------------------------------------------------------------------

    def settle(self, match: Match) -> None:
        """What the accountant does with one exec from the matcher."""
        model = self.orders[match.order_id]
        order = self.accounts.open_orders[match.order_id]
        assert match.cum_qty == order.filled_qty + match.qty
        assert match.qty == model.leaves  # the book fills what is left, in full
        if model.side == "buy":
            assert match.price <= model.price
        else:
            assert match.price >= model.price
        pos = self.accounts.position(model.user_id, model.symbol)
        qty_before, basis_before = pos.qty, pos.cost_basis
        fill = self.accounts.fill(order, match.qty, match.price, next(self.clock))
        note(f"fill order={order.id} {fill.side} {fill.qty} @ {fill.price}")
        assert fill.value == match.qty * match.price
        assert fill.commission == expected_commission(fill.value)
        assert fill.tax == expected_tax(fill.side, fill.value)
        if fill.side == "sell":  # shares leave at their average cost, to the cent
            if match.qty == qty_before:
                removed = basis_before
            else:
                share = Fraction(basis_before) * Fraction(match.qty) / Fraction(qty_before)
                removed = decimal(half_up_cents(share))
            assert fill.realized_pnl == fill.value - fill.commission - fill.tax - removed
            assert pos.cost_basis == basis_before - removed
        else:
            assert pos.cost_basis == basis_before + fill.value + fill.commission
        self.fills[(model.user_id, model.symbol)].append(fill)
        model.filled += match.qty
        if model.leaves == 0:
            assert order.status == "filled"
            del self.orders[match.order_id]
        else:
            assert order.status == "partially_filled"

    @rule(symbol=st.sampled_from(TRADED), cents=price_cents)
    def market_trade(self, symbol: str, cents: int) -> None:
        note(f"trade {symbol} @ {price_text(cents)}")
        for match in self.books[symbol].cross(money(cents)):
            assert match.price == money(cents)
            self.settle(match)

    @precondition(lambda self: bool(self.orders))
    @rule(pick=picks)
    def instant_fill(self, pick: int) -> None:
        order_id = sorted(self.orders)[pick % len(self.orders)]
        match = self.books[self.orders[order_id].symbol].fill_at_limit(order_id)
        assert match is not None
        assert match.price == self.orders[order_id].price
        self.settle(match)

    @rule(symbol=st.sampled_from(TRADED))
    def trading_resumes_in_instant_mode(self, symbol: str) -> None:
        for match in self.books[symbol].fill_everything():
            assert match.price == self.orders[match.order_id].price
            self.settle(match)

    # INVARIANTS ----------------------------------------------------------------------

    def user_fills(self, user_id: int) -> list[Fill]:
        return [f for (uid, _), fills in self.fills.items() if uid == user_id for f in fills]

    @invariant()
    def money_is_conserved_in_every_account_and_in_total(self) -> None:
        total = ZERO
        for user_id, account in self.accounts.accounts.items():
            fills = self.user_fills(user_id)
            bought = sum((f.value for f in fills if f.side == "buy"), ZERO)
            sold = sum((f.value for f in fills if f.side == "sell"), ZERO)
            assert account.bought_value == bought
            assert account.sold_value == sold
            assert account.commission_paid == sum((f.commission for f in fills), ZERO)
            assert account.tax_paid == sum((f.tax for f in fills), ZERO)
            books = account.cash + account.commission_paid + account.tax_paid + bought - sold
            assert books == self.initial_cash[user_id] == account.initial_cash
            total += books
        assert total == sum(self.initial_cash.values(), ZERO)

    @invariant()
    def no_cash_or_shares_go_negative_even_after_reservations(self) -> None:
        for account in self.accounts.accounts.values():
            assert account.cash >= 0
            assert account.reserved_cash >= 0
            assert account.cash - account.reserved_cash >= 0
        for held in self.accounts.positions.values():
            for pos in held.values():
                assert pos.qty >= 0
                assert pos.reserved_qty >= 0
                assert pos.qty - pos.reserved_qty >= 0

    @invariant()
    def reserved_cash_is_what_the_open_orders_can_still_cost(self) -> None:
        for user_id, account in self.accounts.accounts.items():
            mine = [o for o in self.accounts.open_orders.values() if o.user_id == user_id]
            assert account.reserved_cash == sum((o.reserved_cash for o in mine), ZERO)
            needed = sum(
                (PROFILE.cash_to_reserve(o.side, o.leaves_qty, o.price) for o in mine), ZERO
            )
            assert account.reserved_cash == needed

    @invariant()
    def positions_hold_the_net_filled_shares_and_reserve_the_open_sells(self) -> None:
        for (user_id, symbol), fills in self.fills.items():
            net = sum((f.qty if f.side == "buy" else -f.qty for f in fills), ZERO)
            assert self.accounts.position(user_id, symbol).qty == net
        for user_id, held in self.accounts.positions.items():
            for symbol, pos in held.items():
                if not self.fills.get((user_id, symbol)):
                    assert pos.qty == 0
                selling = sum(
                    (
                        o.leaves
                        for o in self.orders.values()
                        if (o.user_id, o.symbol, o.side) == (user_id, symbol, "sell")
                    ),
                    ZERO,
                )
                assert pos.reserved_qty == selling

    @invariant()
    def accounts_and_books_hold_the_same_open_orders(self) -> None:
        resting = {r.order_id: r for book in self.books.values() for r in book.orders()}
        assert set(self.accounts.open_orders) == set(resting) == set(self.orders)
        for order_id, order in self.accounts.open_orders.items():
            model = self.orders[order_id]
            assert order.is_open
            assert (order.user_id, order.symbol, order.side) == (
                model.user_id,
                model.symbol,
                model.side,
            )
            assert order.leaves_qty == model.leaves == resting[order_id].leaves_qty
            assert order.filled_qty == resting[order_id].cum_qty
            assert order_id in self.books[order.symbol]

    @invariant()
    def a_flat_position_has_realized_exactly_its_net_proceeds_less_its_costs(self) -> None:
        for user_id, held in self.accounts.positions.items():
            for symbol, pos in held.items():
                fills = self.fills.get((user_id, symbol), [])
                if pos.qty != 0:
                    continue
                proceeds = sum(
                    (f.value - f.commission - f.tax for f in fills if f.side == "sell"), ZERO
                )
                costs = sum((f.value + f.commission for f in fills if f.side == "buy"), ZERO)
                assert pos.cost_basis == 0
                assert pos.realized_pnl == proceeds - costs
                assert sum((f.realized_pnl for f in fills), ZERO) == pos.realized_pnl

    @invariant()
    def every_position_splits_its_costs_between_realized_pnl_and_cost_basis(self) -> None:
        """realized + what was paid for the shares == what sells brought in + what is held."""
        for user_id, held in self.accounts.positions.items():
            for symbol, pos in held.items():
                fills = self.fills.get((user_id, symbol), [])
                proceeds = sum(
                    (f.value - f.commission - f.tax for f in fills if f.side == "sell"), ZERO
                )
                costs = sum((f.value + f.commission for f in fills if f.side == "buy"), ZERO)
                assert pos.realized_pnl + costs == proceeds + pos.cost_basis
                assert pos.cost_basis >= 0

    @invariant()
    def account_realized_pnl_is_the_sum_over_its_positions(self) -> None:
        for user_id, account in self.accounts.accounts.items():
            held = self.accounts.positions.get(user_id, {}).values()
            assert account.realized_pnl == sum((p.realized_pnl for p in held), ZERO)


TradingSystem.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_trading_keeps_money_shares_and_reservations_consistent = TradingSystem.TestCase
