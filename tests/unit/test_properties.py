"""Property-based tests of the plain trading classes: Profile, Accounts and Book together.

A hypothesis state machine plays the accountant and the matcher, in wait or instant fill
mode, over the plain classes: orders of every type (GTC and DAY) are checked by
`Market.check_order`, reserved by `Accounts.place` and rested in one `Book` per symbol,
each with its own fill model; cancels and replacements go through Book and Accounts
together; trades (`Book.see`, `Book.trigger`, then `Book.match` or `Book.fill_everything`)
trigger stops and fill orders, in part in wait mode; every fill settles through
`Accounts.fill`; trading days pass (T+1, DAY expiry). The test keeps its own record of
every order and fill and an independent statement of the fill model and the fees, and
after every step the money, share and reservation invariants of actors/accountant/accounts.py must
hold exactly.

The machine runs without daily price limits, so that prices roam from one cent upward
(tiny sells whose fees exceed their proceeds need cash reserved), and with a transfer fee,
so that buys pay `tax` too; the price band has a property test of its own.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from actors.accountant.accounts import Account, Accounts, Fill, Order, Rejection, User
from actors.market.rules import MAKER, TAKER, Market, OrderSpec
from actors.matcher.book import Book, FillModel, Match, Resting, Trade, Trigger
from protocol.errors import ErrorCode, RejectError
from protocol.settings import Settings

SETTINGS = Settings(
    profiles={
        "cn_a": {
            "price_limits": False,
            "transfer_fee_rate": "0.00002",
            "t_plus_one": True,
            "odd_lots": "sell_all",
        }
    }
)
CN_A = SETTINGS.profiles.cn_a  # the rates the oracles below restate
MARKET = Market.from_settings(SETTINGS)
PROFILE = MARKET.rules("600000")  # every symbol here has the same cn_a rules
LIMITED = Market.from_settings(Settings())  # the defaults: daily price limits on
SYMBOLS = MARKET.symbols
TRADED = ("600000", "000001", "000725")
ZERO = Decimal(0)
CENT = Decimal("0.01")
TICK = Fraction(CN_A.tick_size)
LOT = CN_A.lot_size
PROTECTION = Fraction(SETTINGS.trading.market_protection_bp) / 10_000
# one fill model per symbol: the default, a half-participation one with slippage in ticks
# and basis points, and a whole-volume one with basis-point slippage only
MODELS = {
    "600000": FillModel(PROFILE),
    "000001": FillModel(PROFILE, Decimal("0.5"), 1, Decimal(10)),
    "000725": FillModel(PROFILE, Decimal(1), 0, Decimal(25)),
}
STOP_TYPES = ("stop", "stop_limit", "trailing_stop")
LIMIT_TYPES = ("limit", "stop_limit")

# Prices in cents: mostly cheap (so tiny sells whose fees exceed proceeds appear), some dear.
price_cents = st.one_of(st.integers(1, 600), st.integers(1, 6000))
cash_cents = st.one_of(
    st.integers(1, 500_000),
    st.integers(5_000_000, 100_000_000),
    st.integers(10_000_000, 50_000_000),
)
picks = st.integers(0, 1_000_000)  # an index into whatever exists, taken modulo its size
# a price in the state machine: ticks away from the symbol's last price, or anywhere
prices = st.one_of(
    st.integers(-20, 20).map(lambda ticks: ("near", ticks)),
    price_cents.map(lambda cents: ("at", cents)),
)
order_types = st.sampled_from(
    ["limit", "limit", "limit", "market", "stop", "stop_limit", "trailing_stop"]
)
tifs = st.sampled_from(["gtc", "gtc", "day"])
trails = st.one_of(
    st.one_of(st.integers(1, 30), st.integers(1, 600)).map(
        lambda cents: ("trail_price", price_text(cents))
    ),
    st.sampled_from(["0.5", "1", "2.5", "5", "40"]).map(lambda p: ("trail_percent", p)),
)
volumes = st.one_of(st.none(), st.integers(0, 1_000), st.integers(0, 40_000))
# a quote with a trade: the bid some ticks from the last, the ask some ticks above the bid;
# mostly around the last, sometimes moved on since the trade (the last outside the quote)
quotes = st.one_of(st.none(), st.tuples(st.integers(-4, 2), st.integers(0, 4)))


def quote_prices(last: Decimal, quote: tuple[int, int] | None) -> tuple[Decimal | None, ...]:
    if quote is None:
        return None, None
    bid = max(CENT, last + quote[0] * CENT)
    return bid, bid + quote[1] * CENT


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


def limit_order(side: str, qty: Decimal, price: Decimal, symbol: str = "600000") -> dict[str, str]:
    return {
        "symbol": symbol,
        "side": side,
        "order_type": "limit",
        "time_in_force": "gtc",
        "qty": str(qty),
        "limit_price": str(price),
    }


# ORACLES: the rules restated in exact rational arithmetic ---------------------------------


def half_up_cents(amount: Fraction) -> Fraction:
    """An oracle for rounding half-up to the cent, in exact rational arithmetic."""
    assert amount >= 0
    return Fraction(math.floor(amount * 100 + Fraction(1, 2)), 100)


def decimal(amount: Fraction) -> Decimal:
    """A Fraction of whole cents as an exact Decimal."""
    return Decimal(amount.numerator) / Decimal(amount.denominator)


def on_tick(price: Fraction, up: bool) -> Decimal:
    ticks = math.ceil(price / TICK) if up else math.floor(price / TICK)
    return decimal(ticks * TICK)


def expected_commission(value: Decimal) -> Decimal:
    """What an order that filled `value` in all owes in commission (nothing if nothing)."""
    if not value:
        return ZERO
    rate = Fraction(CN_A.commission_rate)
    return decimal(max(half_up_cents(Fraction(value) * rate), Fraction(CN_A.min_commission)))


def expected_tax(side: str, value: Decimal) -> Decimal:
    """Stamp tax on sells plus the transfer fee on both sides, each half-up to the cent."""
    transfer = half_up_cents(Fraction(value) * Fraction(CN_A.transfer_fee_rate))
    if side == "buy":
        return decimal(transfer)
    return decimal(half_up_cents(Fraction(value) * Fraction(CN_A.stamp_tax_rate)) + transfer)


def expected_reserve(
    side: str, leaves: Decimal, bound: Decimal, filled_value: Decimal, paid: Decimal
) -> Decimal:
    """What an order must still hold: the worst its rest can cost, its fees being owed on
    its whole filled value and `paid` (commission + tax) already taken."""
    value = leaves * bound
    total = filled_value + value
    fees = expected_commission(total) + expected_tax(side, total) - paid
    if side == "buy":
        return value + fees
    # a sell's smallest next fill (a lot, or the rest) may pay the whole minimum commission
    first = min(leaves, Decimal(LOT)) * bound
    first_fees = expected_commission(filled_value + first) + expected_tax(
        side, filled_value + first
    )
    return max(ZERO, fees - value, first_fees - paid - first)


def expected_protection(side: str, start: Decimal) -> Decimal:
    if side == "buy":
        price = on_tick(Fraction(start) * (1 + PROTECTION), up=True)
    else:
        price = on_tick(Fraction(start) * (1 - PROTECTION), up=False)
    return min(max(price, decimal(TICK)), PROFILE.max_price)


def expected_trailing_stop(
    side: str, reference: Decimal, amount: Decimal | None, percent: Decimal | None
) -> Decimal:
    ref = Fraction(reference)
    offset = Fraction(amount) if amount is not None else ref * Fraction(percent or 0) / 100
    return on_tick(ref + offset, up=True) if side == "buy" else on_tick(ref - offset, up=False)


def crosses(side: str, bound: Decimal, trade: Trade) -> bool:
    """A buy crosses a trade it could buy from at its bound: the ask, else the last."""
    if side == "buy":
        return bound >= (trade.ask if trade.ask is not None else trade.last)
    return bound <= (trade.bid if trade.bid is not None else trade.last)


def expected_fill_price(model: FillModel, side: str, trade: Trade, bound: Decimal) -> Decimal:
    """The quote on the order's side, slipped against it, rounded outward, within the bound."""
    slip_bp = Fraction(model.slippage_bp) / 10_000
    if side == "buy":
        base = Fraction(trade.ask if trade.ask is not None else trade.last)
        price = on_tick(base * (1 + slip_bp) + model.slippage_ticks * TICK, up=True)
        return min(price, bound)
    base = Fraction(trade.bid if trade.bid is not None else trade.last)
    price = on_tick(base * (1 - slip_bp) - model.slippage_ticks * TICK, up=False)
    return max(price, decimal(TICK), bound)


def portion(leaves: Decimal, room: Decimal | None) -> Decimal:
    """What of `leaves` a side with `room` left can take: all of it if it fits, else lots."""
    if room is None or leaves <= room:
        return leaves
    return Decimal(math.floor(room / LOT) * LOT)


# PROFILE -------------------------------------------------------------------------------


@given(qty=st.integers(1, 1_000_000), cents=st.integers(1, 10_000_000))
@PROPERTY_SETTINGS
def test_commission_is_whole_cents_at_least_the_minimum_and_rate_rounded_half_up(
    qty: int, cents: int
) -> None:
    value = qty * money(cents)
    commission = PROFILE.fees("buy", Decimal(qty), value)[0]
    assert commission >= CN_A.min_commission
    assert commission == commission.quantize(CENT)
    assert commission == expected_commission(value)
    assert PROFILE.fees("sell", Decimal(qty), value)[0] == commission


@given(qty=st.integers(1, 1_000_000), cents=st.integers(1, 10_000_000))
@PROPERTY_SETTINGS
def test_taxes_are_the_transfer_fee_on_buys_and_the_stamp_tax_with_it_on_sells(
    qty: int, cents: int
) -> None:
    value = qty * money(cents)
    transfer = (value * CN_A.transfer_fee_rate).quantize(CENT, rounding=ROUND_HALF_UP)
    assert PROFILE.fees("buy", Decimal(qty), value)[1] == transfer == expected_tax("buy", value)
    commission, tax = PROFILE.fees("sell", Decimal(qty), value)
    assert tax == tax.quantize(CENT)
    assert tax == expected_tax("sell", value) >= transfer
    assert commission == expected_commission(value)


@given(
    side=st.sampled_from(["buy", "sell"]),
    parts=st.lists(st.tuples(st.integers(1, 5_000), st.integers(1, 6_000)), min_size=1),
)
@PROPERTY_SETTINGS
def test_an_order_filled_in_parts_pays_exactly_the_fees_of_its_whole_filled_value(
    side: str, parts: list[tuple[int, int]]
) -> None:
    filled_qty, filled, paid_commission, paid_tax = ZERO, ZERO, ZERO, ZERO
    for qty, cents in parts:
        value = qty * money(cents)
        commission, tax = PROFILE.fill_fees(
            side, (filled_qty, filled), (Decimal(qty), value), (paid_commission, paid_tax)
        )
        assert commission >= 0 and tax >= 0
        filled_qty += qty
        filled += value
        paid_commission += commission
        paid_tax += tax
    assert (paid_commission, paid_tax) == (expected_commission(filled), expected_tax(side, filled))


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
    assert reserved >= value + sum(PROFILE.fees("buy", qty, value))
    at_limit = qty * money(limit)
    assert reserved == at_limit + expected_commission(at_limit) + expected_tax("buy", at_limit)


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
    commission, tax = PROFILE.fees("sell", Decimal(qty), value)
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
    command = {
        "symbol": "600000",
        "side": side,
        "order_type": "limit",
        "time_in_force": "gtc",
        "qty": str(qty),
        "limit_price": price,
    }
    try:
        spec = MARKET.check_order(command, Decimal("8.50"))
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
        assert (spec.qty, spec.price, spec.limit_price) == (
            Decimal(qty),
            money(cents),
            money(cents),
        )
        assert spec.price.as_tuple().exponent == -2


@given(
    prev=st.integers(1, 100_000),
    bp=st.integers(-1_500, 1_500),
    jitter=st.integers(-2, 2),
    reference=st.integers(1, 200_000),
    side=st.sampled_from(["buy", "sell"]),
    order_type=st.sampled_from(["limit", "stop", "market"]),
)
@PROPERTY_SETTINGS
def test_daily_limits_refuse_prices_outside_the_band_and_keep_every_bound_inside_it(
    prev: int, bp: int, jitter: int, reference: int, side: str, order_type: str
) -> None:
    """Main board: prev_close -/+ 10%, each half-up to the tick (and at least one tick)."""
    prev_close = money(prev)
    low = max(decimal(TICK), on_tick(Fraction(prev_close) * Fraction(9, 10) + TICK / 2, False))
    high = on_tick(Fraction(prev_close) * Fraction(11, 10) + TICK / 2, up=False)
    price = money(max(1, prev * (10_000 + bp) // 10_000 + jitter))
    command = {
        "symbol": "600000",
        "side": side,
        "order_type": order_type,
        "time_in_force": "gtc",
        "qty": "100",
    }
    if order_type != "market":
        command["limit_price" if order_type == "limit" else "stop_price"] = str(price)
    try:
        spec = LIMITED.check_order(command, money(reference), prev_close)
    except RejectError as rej:
        assert rej.code == ErrorCode.REQUEST_PRICE_LIMIT, rej
        assert order_type != "market" and not low <= price <= high
        return
    start = money(reference) if order_type == "market" else price
    assert order_type == "market" or low <= price <= high
    if order_type == "limit":
        assert low <= price <= high
        assert spec.price == price
    elif side == "buy":
        assert spec.price == min(expected_protection(side, start), high)
    else:
        assert spec.price == max(expected_protection(side, start), low)


# BOOK ----------------------------------------------------------------------------------


orders_to_rest = st.lists(
    st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 30), st.integers(1, 5)),
    max_size=40,
)


@given(orders=orders_to_rest, last=st.integers(1, 30))
@PROPERTY_SETTINGS
def test_an_uncapped_trade_fills_crossed_orders_best_price_then_earliest_first_at_the_last(
    orders: list[tuple[str, int, int]], last: int
) -> None:
    book = Book("600000", FillModel(PROFILE))
    for seq, (side, cents, lots) in enumerate(orders, start=1):
        book.add(Resting(seq, side, money(cents), Decimal(lots * 100), ZERO, seq))
    book.see(Trade(money(last)))
    matches = book.match()

    rested = list(enumerate(orders, start=1))
    bids = [(seq, o) for seq, o in rested if o[0] == "buy" and o[1] >= last]
    asks = [(seq, o) for seq, o in rested if o[0] == "sell" and o[1] <= last]
    bids.sort(key=lambda item: (-item[1][1], item[0]))
    asks.sort(key=lambda item: (item[1][1], item[0]))
    expected = [  # every order rested before the trade: each made liquidity
        Match(seq, Decimal(lots * 100), money(last), Decimal(lots * 100), MAKER)
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


@given(
    orders=st.lists(
        st.tuples(
            st.sampled_from(["buy", "sell"]),
            st.integers(995, 1005),
            st.one_of(st.integers(1, 99), st.integers(1, 20).map(lambda lots: lots * 100)),
        ),
        max_size=30,
    ),
    symbol=st.sampled_from(TRADED),
    volume=volumes,
    quote=quotes,
)
@PROPERTY_SETTINGS
def test_a_capped_trade_fills_in_priority_within_the_volume_share_of_each_side(
    orders: list[tuple[str, int, int]],
    symbol: str,
    volume: int | None,
    quote: tuple[int, int] | None,
) -> None:
    model = MODELS[symbol]
    book = Book(symbol, model)
    for seq, (side, cents, qty) in enumerate(orders, start=1):
        book.add(Resting(seq, side, money(cents), Decimal(qty), ZERO, seq))
    last = money(1000)
    bid, ask = quote_prices(last, quote)
    trade = Trade(last, None if volume is None else Decimal(volume), bid, ask)
    book.see(trade)
    matches = book.match()

    expected = []
    for side in ("buy", "sell"):
        room = None if volume is None else volume * model.participation_rate
        mine = [(seq, o) for seq, o in enumerate(orders, start=1) if o[0] == side]
        mine.sort(key=lambda item: ((-1 if side == "buy" else 1) * item[1][1], item[0]))
        for seq, (_side, cents, qty) in mine:
            bound = money(cents)
            take = portion(Decimal(qty), room) if crosses(side, bound, trade) else ZERO
            if not take:
                break
            room = None if room is None else room - take
            price = expected_fill_price(model, side, trade, bound)
            expected.append(Match(seq, take, price, take, MAKER))  # rested before the trade
    assert matches == expected
    for side in ("buy", "sell"):
        taken = sum((m.qty for m in matches if orders[m.order_id - 1][0] == side), ZERO)
        assert volume is None or taken <= volume * model.participation_rate


@given(orders=orders_to_rest)
@PROPERTY_SETTINGS
def test_filling_everything_serves_bids_then_asks_in_priority_at_their_own_limits(
    orders: list[tuple[str, int, int]],
) -> None:
    book = Book("600000", FillModel(PROFILE))
    for seq, (side, cents, lots) in enumerate(orders, start=1):
        book.add(Resting(seq, side, money(cents), Decimal(lots * 100), ZERO, seq))
    rested = list(enumerate(orders, start=1))
    bids = sorted((x for x in rested if x[1][0] == "buy"), key=lambda x: (-x[1][1], x[0]))
    asks = sorted((x for x in rested if x[1][0] == "sell"), key=lambda x: (x[1][1], x[0]))
    assert book.fill_everything() == [  # instant fills take liquidity
        Match(seq, Decimal(lots * 100), money(cents), Decimal(lots * 100), TAKER)
        for seq, (_side, cents, lots) in bids + asks
    ]
    assert len(book) == 0
    assert book.best_bid() is None and book.best_ask() is None


# ACCOUNTS ------------------------------------------------------------------------------


@example(lots=2, cents=1, cuts=[1])
@given(
    lots=st.integers(1, 20),
    cents=st.integers(1, 10),
    cuts=st.lists(st.integers(1, 19), max_size=4, unique=True),
)
@PROPERTY_SETTINGS
def test_a_tiny_sell_filled_in_parts_never_overdraws_the_cash_it_holds(
    lots: int, cents: int, cuts: list[int]
) -> None:
    """A user whose free cash is exactly what a sell of a penny stock reserves (its fees
    exceed its proceeds) sells it in parts, each at the bound: cash never goes below what
    is reserved."""
    qty, bound = Decimal(lots * LOT), money(cents)
    bought = qty * bound + expected_commission(qty * bound) + expected_tax("buy", qty * bound)
    cash = bought + expected_reserve("sell", qty, bound, ZERO, ZERO)
    accounts = Accounts(MARKET)
    accounts.add_user(User(1, "penny", "h", False), Account(1, cash, cash))
    spec = MARKET.check_order(limit_order("sell", qty, bound), bound)
    buy = accounts.place(1, dataclasses.replace(spec, side="buy"), None, 0)
    assert isinstance(buy, Order)
    accounts.fill(buy, qty, bound, 1)
    accounts.trading_days = {"cn_a": "2024-00002"}  # the shares bought before may be sold
    sell = accounts.place(1, spec, None, 2)
    assert isinstance(sell, Order), sell
    account = accounts.accounts[1]
    assert account.available_cash == 0
    parts = [Decimal(c * LOT) for c in sorted(c for c in cuts if c < lots)]
    for filled, upto in zip([ZERO, *parts], [*parts, qty], strict=True):
        accounts.fill(sell, upto - filled, bound, 3)
        assert account.cash - account.reserved_cash >= 0, (filled, upto, account)
    value = qty * bound
    sell_fees = expected_commission(value) + expected_tax("sell", value)
    assert account.cash == cash - bought + value - sell_fees >= 0
    assert account.reserved_cash == 0 and sell.status == "filled"


# THE SYSTEM AS A STATE MACHINE -----------------------------------------------------------


@dataclass(slots=True)
class ModelOrder:
    """What the test itself remembers of an open order, apart from Accounts and Book."""

    user_id: int
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal  # the bound
    stop_price: Decimal | None
    trail_price: Decimal | None
    trail_percent: Decimal | None
    seq: int
    waiting: bool  # a stop no trade has triggered yet
    tif: str = "gtc"
    day: str = ""  # the trading day a DAY order is for ("" while none is known)
    arrival: int = 0  # when it joined its price level: time priority among equal bounds
    extreme: Decimal | None = None  # trailing stops: the best last seen since placed
    maker: bool = False  # it rested when it started working: its fills make liquidity
    filled: Decimal = ZERO
    filled_value: Decimal = ZERO
    commission: Decimal = ZERO
    tax: Decimal = ZERO

    @property
    def leaves(self) -> Decimal:
        return self.qty - self.filled

    def priority(self) -> tuple[Decimal, int]:
        return (-self.price if self.side == "buy" else self.price, self.arrival)


class TradingSystem(RuleBasedStateMachine):
    """Several users trading a few symbols through Market, Accounts and one Book each."""

    def __init__(self) -> None:
        super().__init__()
        self.accounts = Accounts(MARKET)
        self.books = {symbol: Book(symbol, MODELS[symbol]) for symbol in TRADED}
        self.initial_cash: dict[int, Decimal] = {}
        self.orders: dict[int, ModelOrder] = {}
        self.fills: dict[tuple[int, str], list[Fill]] = defaultdict(list)
        self.clock = itertools.count(1_000)
        self.arrivals = itertools.count(1)
        # what the market did, as the accountant and the matcher know it
        self.last = {symbol: SYMBOLS[symbol].prev_close for symbol in TRADED}
        self.trades: dict[str, Trade | None] = dict.fromkeys(TRADED)
        self.room: dict[str, dict[str, Decimal | None]] = {
            symbol: {"buy": ZERO, "sell": ZERO} for symbol in TRADED
        }
        self.taken: dict[str, dict[str, Decimal]] = {
            symbol: {"buy": ZERO, "sell": ZERO} for symbol in TRADED
        }
        self.instant = False  # the matcher's fill mode: wait, or instant
        self.day = 0  # trading days the controller has announced; 0: none yet
        self.bought_today: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
        # over each account's life, across resets: the capital put in (the sum of its
        # capital entries), the fills of its past epochs, and the shares written off
        self.capital: dict[int, Decimal] = {}
        self.past_fills: dict[int, list[Fill]] = defaultdict(list)
        self.written_off: dict[tuple[int, str], Decimal] = defaultdict(Decimal)

    # SET-UP --------------------------------------------------------------------------

    @initialize(
        cash=st.lists(cash_cents, min_size=1, max_size=4),
        lots=st.lists(st.integers(0, 30), min_size=len(TRADED), max_size=len(TRADED)),
        day_known=st.sampled_from([True, True, True, False]),
        instant=st.sampled_from([False, False, True]),
    )
    def open_accounts(
        self, cash: list[int], lots: list[int], day_known: bool, instant: bool
    ) -> None:
        """Open the accounts, and let each buy `lots` of each symbol at its previous close,
        filled at once (instantly, whatever the fill mode), or half as many until it can
        pay; then, mostly, a trading day begins, so that sells have shares to sell (T+1).
        The matcher then works in one fill mode: wait (mostly) or instant."""
        self.instant = instant
        for user_id, cents in enumerate(cash, start=1):
            amount = money(cents)
            user = User(user_id, f"user{user_id}", f"hash{user_id}", False)
            self.accounts.add_user(user, Account(user_id, amount, amount))
            self.initial_cash[user_id] = amount
            self.capital[user_id] = amount
        for user_id in self.initial_cash:
            for symbol, n in zip(TRADED, lots, strict=True):
                n = self.affordable_lots(user_id, n, self.last[symbol])
                if n:
                    command = self.command(
                        symbol, "buy", "limit", n * LOT, ("near", 0), ("near", 0), ("", "")
                    )
                    placed = self.place(user_id, command, seeding=True)
                    assert placed is not None
                    match = self.books[symbol].fill_instantly(placed)
                    assert match is not None
                    self.settle(match, capped=False)
        if day_known:
            self.next_trading_day()

    def next_trading_day(self) -> None:
        """The controller announces a new trading day: yesterday's buys may be sold, and
        the matcher takes out the DAY orders of the days before (a DAY order placed while
        no day was known is for this one), which the accountant closes `expired`."""
        self.day += 1
        today = f"2024-{self.day:05d}"  # ordered as text, like ISO dates
        self.accounts.trading_days = {"cn_a": today}
        self.bought_today.clear()
        note(f"trading day {today}")
        expiring = set()
        for order_id, o in self.orders.items():
            if o.tif == "day" and not o.day:
                o.day = today
            elif o.tif == "day" and o.day < today:
                expiring.add(order_id)
        expired = [r.order_id for book in self.books.values() for r in book.expire(today)]
        assert sorted(expired) == sorted(expiring)
        for order_id in expired:
            order = self.accounts.open_orders[order_id]
            self.accounts.close(order, "expired", next(self.clock))
            assert order.status == "expired" and order.reserved_cash == 0
            assert order_id not in self.accounts.open_orders
            del self.orders[order_id]

    def shares(self, user_id: int, symbol: str) -> tuple[Decimal, Decimal]:
        """What the user may sell now and what T+1 locks, from the test's own records:
        held (net fills) less open sells' rests less the shares bought today (while no
        trading day is known, every share bought so far), at most all that is held."""
        held = sum(
            (f.qty if f.side == "buy" else -f.qty for f in self.fills.get((user_id, symbol), [])),
            ZERO,
        )
        selling = sum(
            (
                o.leaves
                for o in self.orders.values()
                if (o.user_id, o.symbol, o.side) == (user_id, symbol, "sell")
            ),
            ZERO,
        )
        locked = min(self.bought_today[(user_id, symbol)], held)
        return held - selling - locked, locked

    def refusal(
        self, user_id: int, spec: OrderSpec, own_cash: Decimal, own_qty: Decimal
    ) -> ErrorCode | None:
        """Why Accounts must refuse `spec` (None: it must accept), counting the cash and
        shares an order it replaces holds: cash first, then shares, then the odd lot."""
        needed = expected_reserve(spec.side, spec.qty, spec.price, ZERO, ZERO)
        if needed - own_cash > self.accounts.accounts[user_id].available_cash:
            return ErrorCode.RISK_INSUFFICIENT_CASH
        if spec.side == "buy":
            return None
        sellable, locked = self.shares(user_id, spec.symbol)
        sellable += own_qty
        if spec.qty > sellable + locked:
            return ErrorCode.RISK_INSUFFICIENT_SHARES
        if spec.qty > sellable:
            return ErrorCode.RISK_T_PLUS_ONE
        if spec.qty % LOT and spec.qty != sellable:  # an odd lot sells all that may be sold
            return ErrorCode.REQUEST_LOT_SIZE
        return None

    def user(self, pick: int) -> int:
        return sorted(self.initial_cash)[pick % len(self.initial_cash)]

    def affordable_lots(self, user_id: int, lots: int, bound: Decimal) -> int:
        """`lots`, halved until a buy of them at `bound` fits the free cash (maybe 0)."""
        available = self.accounts.accounts[user_id].available_cash
        while lots and expected_reserve("buy", Decimal(lots * LOT), bound, ZERO, ZERO) > available:
            lots //= 2
        return lots

    def snapshot(self, user_id: int, symbol: str) -> tuple[Any, ...]:
        account = self.accounts.accounts[user_id]
        held = self.accounts.positions.get(user_id, {}).get(symbol)
        return (
            account.cash,
            account.reserved_cash,
            held.available_qty if held else ZERO,
            sorted(self.accounts.open_orders),
        )

    # ORDERS --------------------------------------------------------------------------

    def cents(self, symbol: str, price: tuple[str, int]) -> int:
        """A price drawn from `prices`, in cents: ticks from the last, or as drawn."""
        how, amount = price
        return max(1, int(self.last[symbol] / CENT) + amount) if how == "near" else amount

    def command(
        self,
        symbol: str,
        side: str,
        order_type: str,
        qty: int,
        price: tuple[str, int],
        stop: tuple[str, int],
        trail: tuple[str, str],
        tif: str = "gtc",
    ) -> dict[str, str]:
        command = {
            "symbol": symbol,
            "side": side,
            "order_type": order_type,
            "time_in_force": tif,
            "qty": str(qty),
        }
        if order_type in LIMIT_TYPES:
            command["limit_price"] = price_text(self.cents(symbol, price))
        if order_type in ("stop", "stop_limit"):
            command["stop_price"] = price_text(self.cents(symbol, stop))
        if order_type == "trailing_stop":
            command[trail[0]] = trail[1]
        return command

    def check(self, command: dict[str, str]) -> OrderSpec | None:
        """check_order, and what the spec must say; None for a trail too wide to place."""
        side, order_type = command["side"], command["order_type"]
        reference = self.last[command["symbol"]]
        trail = command.get("trail_price")
        percent = command.get("trail_percent")
        start = None
        if order_type == "trailing_stop":
            start = expected_trailing_stop(
                side,
                reference,
                None if trail is None else Decimal(trail),
                None if percent is None else Decimal(percent),
            )
        try:
            spec = MARKET.check_order(command, reference)
        except RejectError as rej:
            assert rej.code == ErrorCode.REQUEST_INVALID_TRAIL, rej
            assert start is not None and not money(1) <= start <= PROFILE.max_price
            return None
        if order_type in LIMIT_TYPES:
            assert spec.price == spec.limit_price == Decimal(command["limit_price"])
        elif order_type == "stop":
            assert spec.price == expected_protection(side, Decimal(command["stop_price"]))
        elif order_type == "market":
            assert spec.price == expected_protection(side, reference)
        else:
            assert spec.stop_price == start
            assert spec.price == expected_protection(side, start)  # type: ignore[arg-type]
        assert (spec.qty, spec.time_in_force) == (Decimal(command["qty"]), command["time_in_force"])
        return spec

    def place(self, user_id: int, command: dict[str, str], seeding: bool = False) -> int | None:
        """Place an order as the accountant and the matcher would; its id if it opened.
        A `seeding` order is only placed: the caller fills it."""
        spec = self.check(command)
        if spec is None:
            return None
        symbol, side, q, p = spec.symbol, spec.side, spec.qty, spec.price
        refusal = self.refusal(user_id, spec, ZERO, ZERO)
        before = self.snapshot(user_id, symbol)
        placed = self.accounts.place(user_id, spec, None, next(self.clock))
        note(f"place user={user_id} {spec.order_type} {side} {q} {symbol} @ {p} -> {placed!r:.60}")
        if refusal is not None:
            assert isinstance(placed, Rejection), refusal
            assert placed.code == refusal, placed
            assert self.snapshot(user_id, symbol) == before, "a rejected order changed the account"
            return None
        assert isinstance(placed, Order), placed
        assert placed.reserved_cash == expected_reserve(side, q, p, ZERO, ZERO)
        assert placed.status == "new"
        model = ModelOrder(
            user_id,
            symbol,
            side,
            spec.order_type,
            q,
            p,
            spec.stop_price,
            spec.trail_price,
            spec.trail_percent,
            seq=placed.id,
            waiting=spec.order_type in STOP_TYPES,
            tif=spec.time_in_force,
            day=placed.trading_day,
        )
        assert placed.trading_day == self.accounts.day(placed.symbol)
        if not model.waiting:
            model.arrival = next(self.arrivals)
            model.maker = self.rests(model)
        self.orders[placed.id] = model
        resting = self.resting(placed.id, model)
        book = self.books[symbol]
        book.add(resting)
        trade = self.trades[symbol]
        if trade is not None and not model.waiting:  # what a FOK would be told
            fits = portion(q, self.room[symbol][side]) if crosses(side, p, trade) else ZERO
            assert book.fillable(resting) == fits
        if not seeding:
            self.fill_new(placed.id)
        return placed.id

    def rests(self, o: ModelOrder) -> bool:
        """An order starting to work makes liquidity when it is a limit (or a triggered
        stop limit) that the latest trade does not reach; others take it."""
        trade = self.trades[o.symbol]
        return o.order_type in LIMIT_TYPES and (
            trade is None or not crosses(o.side, o.price, trade)
        )

    @staticmethod
    def resting(order_id: int, model: ModelOrder) -> Resting:
        return Resting(
            order_id,
            model.side,
            model.price,
            model.leaves,
            model.filled,
            model.seq,
            order_type=model.order_type,
            time_in_force=model.tif,
            stop_price=model.stop_price,
            trail_price=model.trail_price,
            trail_percent=model.trail_percent,
            day=model.day,
        )

    @rule(
        user=picks,
        symbol=st.sampled_from(TRADED),
        order_type=order_types,
        lots=st.one_of(st.integers(1, 5), st.integers(1, 50)),
        cents=prices,
        stop_cents=prices,
        trail=trails,
        tif=tifs,
    )
    def place_buy(
        self,
        user: int,
        symbol: str,
        order_type: str,
        lots: int,
        cents: tuple[str, int],
        stop_cents: tuple[str, int],
        trail: tuple[str, str],
        tif: str,
    ) -> None:
        command = self.command(symbol, "buy", order_type, lots * LOT, cents, stop_cents, trail, tif)
        self.place(self.user(user), command)

    @rule(
        user=picks,
        symbol=st.sampled_from(TRADED),
        order_type=order_types,
        lots=st.integers(1, 20),
        cents=prices,
        stop_cents=prices,
        trail=trails,
        tif=tifs,
    )
    def place_affordable_buy(
        self,
        user: int,
        symbol: str,
        order_type: str,
        lots: int,
        cents: tuple[str, int],
        stop_cents: tuple[str, int],
        trail: tuple[str, str],
        tif: str,
    ) -> None:
        """Most random buys are refused for cash; this one shrinks until it fits, if it can."""
        user_id = self.user(user)
        spec = self.check(self.command(symbol, "buy", order_type, LOT, cents, stop_cents, trail))
        if spec is None:
            return
        lots = self.affordable_lots(user_id, lots, spec.price)
        if lots:
            command = self.command(
                symbol, "buy", order_type, lots * LOT, cents, stop_cents, trail, tif
            )
            self.place(user_id, command)

    @rule(
        user=picks,
        symbol=st.sampled_from(TRADED),
        order_type=order_types,
        qty=st.one_of(st.integers(1, 5), st.integers(1, 10_000)),
        amount=st.sampled_from(["all", "some", "few", "held", "any"]),
        cents=prices,
        stop_cents=prices,
        trail=trails,
        tif=tifs,
    )
    def place_sell(
        self,
        user: int,
        symbol: str,
        order_type: str,
        qty: int,
        amount: str,
        cents: tuple[str, int],
        stop_cents: tuple[str, int],
        trail: tuple[str, str],
        tif: str,
    ) -> None:
        """Sell what a user holds: all that may be sold, some lots of it, an odd few, all
        held with today's buys (T+1), or, for `any`, whatever `qty` says."""
        holdings = [
            (user_id, sym, int(sellable), int(sellable + locked))
            for user_id in sorted(self.initial_cash)
            for sym in TRADED
            for sellable, locked in [self.shares(user_id, sym)]
            if sellable + locked > 0
        ]
        if amount != "any" and holdings:
            user_id, symbol, available, held = holdings[user % len(holdings)]
            if amount == "held" or available == 0:  # refused (T+1) if some are today's
                qty = held
            elif amount == "all":
                qty = available
            elif amount == "some" and available >= LOT:
                qty = LOT * (1 + (qty - 1) % (available // LOT))
            else:  # an odd lot, refused unless it is all that may be sold
                qty = 1 + (qty - 1) % min(available, 5)
        else:
            user_id = self.user(user)
        command = self.command(symbol, "sell", order_type, qty, cents, stop_cents, trail, tif)
        self.place(user_id, command)

    @rule(
        side=st.sampled_from(["buy", "sell"]),
        qty=st.integers(-100, 1_000),
        price=st.sampled_from(["0", "-1.00", "8.505", "0.001", "1000000.01", "-0.01"]),
        field=st.sampled_from(["limit_price", "stop_price"]),
    )
    def invalid_order_is_rejected_before_it_touches_the_account(
        self, side: str, qty: int, price: str, field: str
    ) -> None:
        order_type = "limit" if field == "limit_price" else "stop"
        command = {
            "symbol": TRADED[0],
            "side": side,
            "order_type": order_type,
            "time_in_force": "gtc",
            "qty": str(qty),
            field: price,
        }
        with pytest.raises(RejectError):
            MARKET.check_order(command, self.last[TRADED[0]])
        unknown = {**command, "symbol": "999999", "qty": "100", field: "1.00"}
        with pytest.raises(RejectError) as rejected:
            MARKET.check_order(unknown, Decimal(1))
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
        assert order_id not in self.accounts.open_orders
        assert self.books[model.symbol].remove(order_id) is None

    @rule(pick=picks, cents=st.one_of(st.none(), cash_cents))
    def reset(self, pick: int, cents: int | None) -> None:
        """account.reset: the user's open orders leave the books and are canceled, as the
        matcher's cancels would; then the account starts its next epoch with `cents` (or
        its initial cash), its positions written off at cost."""
        user_id = self.user(pick)
        for order_id in sorted(i for i, o in self.orders.items() if o.user_id == user_id):
            model = self.orders.pop(order_id)
            assert self.books[model.symbol].remove(order_id) is not None
            self.accounts.cancel(self.accounts.open_orders[order_id], next(self.clock))
        account = self.accounts.accounts[user_id]
        capital = account.initial_cash if cents is None else money(cents)
        cash, epoch = account.cash, account.epoch
        held = {p.symbol: (p.qty, p.cost_basis) for p in self.accounts.user_positions(user_id)}
        note(f"reset user={user_id} to {capital}")
        done = self.accounts.reset(user_id, capital, next(self.clock))
        assert (done.epoch, done.previous_cash, done.change) == (epoch + 1, cash, capital - cash)
        assert {w.symbol: (w.qty, w.cost_basis) for w in done.written_off} == held
        assert account.cash == account.initial_cash == capital and account.reserved_cash == 0
        self.capital[user_id] += done.change
        for w in done.written_off:
            self.written_off[(user_id, w.symbol)] += w.qty
        for symbol in TRADED:
            self.past_fills[user_id] += self.fills.pop((user_id, symbol), [])
            self.bought_today.pop((user_id, symbol), None)
        self.initial_cash[user_id] = capital

    @precondition(lambda self: any(o.order_type == "limit" for o in self.orders.values()))
    @rule(
        pick=picks,
        qty=st.one_of(st.none(), st.just("most"), st.integers(1, 5), st.integers(1, 30)),
        cents=st.one_of(st.none(), prices),
        refused=st.booleans(),
    )
    def replace(
        self, pick: int, qty: int | str | None, cents: tuple[str, int] | None, refused: bool
    ) -> None:
        """The accountant holds for a replacement of a limit order (the rest of it, `most`
        lots the cash it holds and the free cash can pay for, or some lots), then the
        matcher swaps or refuses it."""
        limits = sorted(i for i, o in self.orders.items() if o.order_type == "limit")
        old_id = limits[pick % len(limits)]
        model = self.orders[old_id]
        old = self.accounts.open_orders[old_id]
        price = model.price if cents is None else money(self.cents(model.symbol, cents))
        if qty is None:
            new_qty = model.leaves
        elif qty == "most":
            free = self.accounts.accounts[model.user_id].available_cash + old.reserved_cash
            lots, step = 0, 1 << 20
            while step:  # the most lots whose reservation fits in `free`, found bit by bit
                more = Decimal((lots + step) * LOT)
                if expected_reserve("buy", more, price, ZERO, ZERO) <= free:
                    lots += step
                step >>= 1
            new_qty = Decimal(min(max(lots, 1), PROFILE.max_qty // LOT) * LOT)
        else:
            new_qty = Decimal(int(qty) * LOT)
        command = {
            "symbol": model.symbol,
            "side": model.side,
            "order_type": "limit",
            "time_in_force": model.tif,
            "qty": str(new_qty),
            "limit_price": str(price),
        }
        spec = self.check(command)
        assert spec is not None
        refusal = self.refusal(model.user_id, spec, old.reserved_cash, model.leaves)
        before = self.snapshot(model.user_id, model.symbol)
        new = self.accounts.request_replace(old, spec, None, next(self.clock))
        note(f"replace order={old_id} by {new_qty} @ {price} refused={refused} -> {new!r:.60}")
        if refusal is not None:
            assert isinstance(new, Rejection), refusal
            assert new.code == refusal, new
            assert self.snapshot(model.user_id, model.symbol) == before
            return
        assert isinstance(new, Order), new
        assert new.status == "pending_new" and new.replaces == old_id
        if refused:
            assert self.accounts.unreplace(old) is new
            assert self.snapshot(model.user_id, model.symbol) == before
            assert old.replacement is None and old.is_open
            return
        new_model = ModelOrder(
            model.user_id,
            model.symbol,
            model.side,
            "limit",
            new_qty,
            price,
            None,
            None,
            None,
            seq=new.id,
            waiting=False,
            tif=model.tif,
            day=new.trading_day,
        )
        keeps_place = price == model.price and new_qty <= model.leaves
        new_model.arrival = model.arrival if keeps_place else next(self.arrivals)
        new_model.maker = model.maker if keeps_place else self.rests(new_model)
        kept = self.books[model.symbol].replace(old_id, self.resting(new.id, new_model))
        assert kept == (keeps_place and not model.waiting)
        assert self.accounts.replace(old, next(self.clock)) is new
        assert (old.status, old.replaced_by, old.reserved_cash) == ("replaced", new.id, 0)
        assert new.status == "new" and new.reserved_cash == expected_reserve(
            model.side, new_qty, price, ZERO, ZERO
        )
        del self.orders[old_id]
        self.orders[new.id] = new_model
        self.fill_new(new.id)

    # FILLS ---------------------------------------------------------------------------

    def settle(self, match: Match, capped: bool) -> None:
        """What the accountant does with one exec from the matcher."""
        model = self.orders[match.order_id]
        order = self.accounts.open_orders[match.order_id]
        assert match.cum_qty == order.filled_qty + match.qty == model.filled + match.qty
        assert 0 < match.qty <= model.leaves
        # never past the bound: a buy pays at most it, a sell gets at least it
        if model.side == "buy":
            assert money(1) <= match.price <= model.price
        else:
            assert match.price >= model.price
        assert match.price == match.price.quantize(CENT)
        if capped:
            # a fill is the order's whole rest or whole lots, and the fills of one side
            # against one trade add up to at most participation_rate x its volume
            assert match.qty == model.leaves or match.qty % LOT == 0
            self.taken[model.symbol][model.side] += match.qty
            trade = self.trades[model.symbol]
            assert trade is not None
            if trade.volume is not None:
                rate = MODELS[model.symbol].participation_rate
                assert self.taken[model.symbol][model.side] <= rate * trade.volume
        else:
            assert match.qty == model.leaves  # instant fills are whole
        pos = self.accounts.position(model.user_id, model.symbol)
        qty_before, basis_before = pos.qty, pos.cost_basis
        # an order makes or takes liquidity as a whole; instant fills always take
        assert match.liquidity == (MAKER if capped and model.maker else TAKER)
        fill = self.accounts.fill(order, match.qty, match.price, next(self.clock), match.liquidity)
        note(f"fill order={order.id} {fill.side} {fill.qty} @ {fill.price} {fill.liquidity}")
        assert fill.value == match.qty * match.price and fill.liquidity == match.liquidity
        after = model.filled_value + fill.value
        # fees are per order: each fill pays what the order owes in all less what it paid
        assert fill.commission == expected_commission(after) - model.commission
        assert fill.tax == expected_tax(fill.side, after) - model.tax
        if fill.side == "sell":  # shares leave at their average cost, to the cent
            if match.qty == qty_before:
                removed = basis_before
            else:
                share = Fraction(basis_before) * Fraction(match.qty) / Fraction(qty_before)
                removed = decimal(half_up_cents(share))
            assert fill.realized_pnl == fill.value - fill.commission - fill.tax - removed
            assert pos.cost_basis == basis_before - removed
        else:
            assert pos.cost_basis == basis_before + fill.value + fill.commission + fill.tax
            self.bought_today[(model.user_id, model.symbol)] += fill.qty
        self.fills[(model.user_id, model.symbol)].append(fill)
        model.filled += match.qty
        model.filled_value = after
        model.commission += fill.commission
        model.tax += fill.tax
        assert (order.filled_value, order.commission, order.tax) == (
            model.filled_value,
            model.commission,
            model.tax,
        )
        if model.leaves == 0:
            assert order.status == "filled"
            del self.orders[match.order_id]
        else:
            assert order.status == "partially_filled"

    def working(self, symbol: str, side: str) -> list[tuple[int, ModelOrder]]:
        """The orders of one side that can fill, in price-time priority."""
        mine = [
            (order_id, o)
            for order_id, o in self.orders.items()
            if (o.symbol, o.side, o.waiting) == (symbol, side, False)
        ]
        return sorted(mine, key=lambda item: item[1].priority())

    def expected_matches(self, symbol: str) -> list[Match]:
        """The fill model, restated: per side in priority, while orders cross and the side's
        room lets the next one take something (its whole rest if it fits, else lots)."""
        trade = self.trades[symbol]
        if trade is None:
            return []
        matches = []
        for side in ("buy", "sell"):
            room = self.room[symbol][side]
            for order_id, o in self.working(symbol, side):
                take = portion(o.leaves, room) if crosses(side, o.price, trade) else ZERO
                if not take:
                    break  # strict priority: nothing behind it may fill
                room = None if room is None else room - take
                price = expected_fill_price(MODELS[symbol], side, trade, o.price)
                liquidity = MAKER if o.maker else TAKER
                matches.append(Match(order_id, take, price, o.filled + take, liquidity))
            self.room[symbol][side] = room
        return matches

    def match(self, symbol: str) -> None:
        """Wait mode: fill what the latest trade allows, in priority."""
        expected = self.expected_matches(symbol)
        matches = self.books[symbol].match()
        assert matches == expected
        for match in matches:
            self.settle(match, capped=True)

    def fill_new(self, order_id: int) -> None:
        """What the matcher does with a new order: in wait mode, fill what the latest
        trade has left (the whole book, in priority); in instant mode, fill it at once."""
        symbol = self.orders[order_id].symbol
        if not self.instant:
            self.match(symbol)
            return
        expected = self.expected_instant(order_id)
        match = self.books[symbol].fill_instantly(order_id)
        assert match == expected, (match, expected)
        if match is not None:
            self.settle(match, capped=False)

    def fill_everything(self, symbol: str) -> None:
        """Instant mode: every working order that can fills, bids then asks in priority."""
        in_priority = self.working(symbol, "buy") + self.working(symbol, "sell")
        expected = [self.expected_instant(i) for i, _ in in_priority]
        matches = self.books[symbol].fill_everything()
        assert matches == [m for m in expected if m is not None], (matches, expected)
        for match in matches:
            self.settle(match, capped=False)

    def expected_triggers(self, symbol: str, last: Decimal) -> list[Trigger]:
        """Trail the waiting trailing stops, then trigger every stop the last reached, in
        the order they were placed; a triggered stop's bound tightens to its stop's."""
        triggers = []
        waiting = sorted(
            ((i, o) for i, o in self.orders.items() if o.symbol == symbol and o.waiting),
            key=lambda item: item[1].seq,
        )
        for order_id, o in waiting:
            assert o.stop_price is not None
            buy = o.side == "buy"
            if o.order_type == "trailing_stop":
                seen = [last] if o.extreme is None else [o.extreme, last]
                o.extreme = min(seen) if buy else max(seen)
                stop = expected_trailing_stop(o.side, o.extreme, o.trail_price, o.trail_percent)
                o.stop_price = min(o.stop_price, stop) if buy else max(o.stop_price, stop)
            if not (last >= o.stop_price if buy else last <= o.stop_price):
                continue
            if o.order_type != "stop_limit":
                protection = expected_protection(o.side, o.stop_price)
                o.price = min(o.price, protection) if buy else max(o.price, protection)
            o.waiting = False
            o.arrival = next(self.arrivals)
            o.maker = self.rests(o)  # against the trade that triggered it
            triggers.append(Trigger(order_id, o.stop_price, o.price))
        return triggers

    @rule(
        symbol=st.sampled_from(TRADED),
        busy=picks,
        new_day=st.sampled_from([False] * 7 + [True]),
        moves=st.lists(
            st.tuples(st.one_of(st.integers(-15, 15), price_cents.map(str)), volumes, quotes),
            min_size=1,
            max_size=4,
        ),
    )
    def market_trades(
        self,
        symbol: str,
        busy: int,
        new_day: bool,
        moves: list[tuple[int | str, int | None, tuple[int, int] | None]],
    ) -> None:
        """A few trades in a row in one symbol: mostly one with open orders (`busy` picks
        one). Each moves some ticks from the last (an int) or jumps anywhere (a str).
        Sometimes a new trading day begins first."""
        if new_day:
            self.next_trading_day()
        if self.orders and busy % 4:
            symbol = self.orders[sorted(self.orders)[busy % len(self.orders)]].symbol
        for move, volume, quote in moves:
            if isinstance(move, str):
                cents = int(move)
            else:
                cents = max(1, int(self.last[symbol] / CENT) + move)
            self.market_trade(symbol, cents, volume, quote)

    def market_trade(
        self, symbol: str, cents: int, volume: int | None, quote: tuple[int, int] | None
    ) -> None:
        """A trade at `cents`, as the matcher and the accountant see it, maybe with a
        quote. A quote of volume 0 repeats a price: it is no trade, it
        triggers and fills nothing, and stands in for one only while the book has none."""
        last = money(cents)
        bid, ask = quote_prices(last, quote)
        trade = Trade(last, None if volume is None else Decimal(volume), bid, ask)
        note(f"trade {symbol} {trade}")
        book = self.books[symbol]
        self.last[symbol] = last  # the accountant's reference price, either way
        if not book.see(trade):
            assert volume == 0
            if self.trades[symbol] is None:
                self.trades[symbol] = trade
                self.room[symbol] = {"buy": ZERO, "sell": ZERO}
            assert book.trade == self.trades[symbol]
            return
        assert volume != 0
        self.trades[symbol] = trade
        cap = None if volume is None else volume * MODELS[symbol].participation_rate
        self.room[symbol] = {"buy": cap, "sell": cap}
        self.taken[symbol] = {"buy": ZERO, "sell": ZERO}

        before = {i: o.price for i, o in self.orders.items()}
        expected = self.expected_triggers(symbol, last)
        triggers = book.trigger()
        assert triggers == expected
        for t in triggers:
            order = self.accounts.open_orders[t.order_id]
            self.accounts.trigger(order, t.stop_price, t.price)
            assert (order.triggered, order.stop_price, order.price) == (True, t.stop_price, t.price)
            # a bound only tightens, so the reservation never grows
            if order.side == "buy":
                assert t.price <= before[t.order_id]
            else:
                assert t.price >= before[t.order_id]
        if self.instant:
            self.fill_everything(symbol)
        else:
            self.match(symbol)

    def expected_instant(self, order_id: int) -> Match | None:
        """Instant mode: a working limit order fills whole at its limit; a market-priced one
        fills whole when the latest trade crosses its bound, at the price the trade offers
        its side (the ask to a buy, the bid to a sell, else the last)."""
        o = self.orders[order_id]
        trade = self.trades[o.symbol]
        if o.waiting:
            return None
        if o.order_type in LIMIT_TYPES:
            return Match(order_id, o.leaves, o.price, o.qty, TAKER)
        if trade is None or not crosses(o.side, o.price, trade):
            return None
        quoted = trade.ask if o.side == "buy" else trade.bid
        return Match(order_id, o.leaves, trade.last if quoted is None else quoted, o.qty, TAKER)

    @rule()
    def trading_resumes(self) -> None:
        """Trading is on again: in instant mode what rests fills as it can; in wait mode
        nothing fills against the trades printed before, only against the next."""
        for symbol in TRADED:
            if self.instant:
                self.fill_everything(symbol)
            else:
                self.books[symbol].exhaust()
                self.room[symbol] = {"buy": ZERO, "sell": ZERO}
                self.match(symbol)  # nothing

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
    def money_and_shares_are_conserved_over_each_account_life_across_resets(self) -> None:
        """cash + every fee + all bought - all sold = the capital put in; shares held =
        bought - sold - written off; each fill in the epoch it was made in."""
        for user_id, account in self.accounts.accounts.items():
            past = self.past_fills[user_id]
            fills = past + self.user_fills(user_id)
            spent = sum(
                (f.commission + f.tax + (f.value if f.side == "buy" else -f.value) for f in fills),
                ZERO,
            )
            assert account.cash + spent == self.capital[user_id]
            assert all(f.epoch < account.epoch for f in past)
            assert all(f.epoch == account.epoch for f in self.user_fills(user_id))
            for symbol in TRADED:
                net = sum(
                    (f.qty if f.side == "buy" else -f.qty for f in fills if f.symbol == symbol),
                    ZERO,
                )
                held = self.accounts.position(user_id, symbol).qty
                assert held == net - self.written_off[(user_id, symbol)]

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
            for order in mine:
                model = self.orders[order.id]
                assert order.reserved_cash == expected_reserve(
                    model.side,
                    model.leaves,
                    model.price,
                    model.filled_value,
                    model.commission + model.tax,
                )

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
                sellable, locked = self.shares(user_id, symbol)
                assert self.accounts.locked(pos) == locked
                assert self.accounts.sellable(pos) == sellable >= 0

    @invariant()
    def accounts_and_books_hold_the_same_open_orders(self) -> None:
        resting = {r.order_id: r for book in self.books.values() for r in book.orders()}
        assert set(self.accounts.open_orders) == set(resting) == set(self.orders)
        for order_id, order in self.accounts.open_orders.items():
            model = self.orders[order_id]
            r = resting[order_id]
            assert order.is_open
            assert (order.user_id, order.symbol, order.side, order.order_type) == (
                model.user_id,
                model.symbol,
                model.side,
                model.order_type,
            )
            assert order.leaves_qty == model.leaves == r.leaves_qty
            assert order.filled_qty == r.cum_qty
            assert order.price == model.price == r.price
            assert r.waiting == model.waiting
            assert model.waiting or r.maker == model.maker
            assert order.triggered == (model.order_type in STOP_TYPES and not model.waiting)
            assert r.stop_price == model.stop_price
            if not (model.order_type == "trailing_stop" and model.waiting):
                assert order.stop_price == model.stop_price  # a trail moves in the book only
            assert order_id in self.books[order.symbol]
        for symbol, book in self.books.items():
            bids = [o.price for _, o in self.working(symbol, "buy")]
            asks = [o.price for _, o in self.working(symbol, "sell")]
            assert book.best_bid() == (bids[0] if bids else None)
            assert book.best_ask() == (asks[0] if asks else None)

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
                costs = sum(
                    (f.value + f.commission + f.tax for f in fills if f.side == "buy"), ZERO
                )
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
                costs = sum(
                    (f.value + f.commission + f.tax for f in fills if f.side == "buy"), ZERO
                )
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
