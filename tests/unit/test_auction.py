"""A-share call auctions in exchange mode (docs/market-rules.md 1.9): the price, the trades
at it, and the phases of the cn_a calendar."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from actors.controller.sessions import ExchangeSessions
from actors.market.rules import Market
from actors.matcher.book import FillModel, Resting
from actors.matcher.exchange import ExchangeBook
from protocol.settings import build_settings

MARKET = Market.from_settings(build_settings(None, flags={"market": {"mode": "exchange"}}))
SHANGHAI = ZoneInfo("Asia/Shanghai")

Level = tuple[str, int]


def book(bids: list[Level], asks: list[Level], users: list[int] | None = None) -> ExchangeBook:
    """A book rebuilt from resting orders, bids then asks in arrival order (each its own
    user unless `users` says)."""
    b = ExchangeBook("600000", FillModel(MARKET.rules("600000")))
    orders = [("buy", p, q) for p, q in bids] + [("sell", p, q) for p, q in asks]
    for i, (side, price, qty) in enumerate(orders, start=1):
        user = users[i - 1] if users else i
        b.rest(Resting(i, side, D(price), D(qty), D(0), i, user_id=user))
    return b


# THE PRICE -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bids", "asks", "prev_close", "shanghai", "price"),
    [
        # the most volume: 300 trade at 10.02 and at 10.03, but at 10.03 the ask at 10.02 (200)
        # and the one at 9.98 (150) are below it and could not all trade: 10.02
        (
            [("10.05", 100), ("10.03", 200), ("10.00", 300)],
            [("9.98", 150), ("10.02", 200), ("10.05", 300)],
            "10.00",
            True,
            "10.02",
        ),
        # one bid, one ask, crossing by two ticks: every price between trades 10. Shanghai
        # takes the midpoint of the declared prices; Shenzhen the one nearest the close
        ([("10.02", 10)], [("10.00", 10)], "10.50", True, "10.01"),
        ([("10.02", 10)], [("10.00", 10)], "10.50", False, "10.02"),
        ([("10.02", 10)], [("10.00", 10)], "9.00", False, "10.00"),
        ([("10.02", 10)], [("10.00", 10)], "10.01", False, "10.01"),
        # the fewest unmatched: at 10.00 buy 500 vs sell 300 (200 left), at 10.01 buy 300 vs
        # sell 300 (0 left): both trade 300, Shanghai takes 10.01
        (
            [("10.01", 300), ("10.00", 200)],
            [("9.99", 300)],
            "10.00",
            True,
            "10.01",
        ),
        # a midpoint half a tick rounds half up: 10.00 and 10.01 leave 0 unmatched each
        ([("10.01", 100)], [("10.00", 100)], "10.00", True, "10.01"),
    ],
)
def test_the_auction_price(
    bids: list[Level], asks: list[Level], prev_close: str, shanghai: bool, price: str
) -> None:
    assert book(bids, asks).auction_price(D(prev_close), shanghai) == D(price)


def test_a_book_that_does_not_cross_has_no_auction() -> None:
    b = book([("9.99", 100)], [("10.00", 100)])
    assert b.auction_price(D("10.00"), True) is None
    assert b.auction(D("10.00"), True).prints == []
    assert book([], [("10.00", 100)]).auction_price(D("10.00"), True) is None


# THE TRADES ----------------------------------------------------------------------------


def test_every_crossing_order_trades_at_the_one_price_in_priority_order() -> None:
    b = book(
        [("10.05", 100), ("10.03", 200), ("10.00", 300)],
        [("9.98", 150), ("10.02", 200), ("10.05", 300)],
    )
    out = b.auction(D("10.00"), shanghai=True)
    assert {p.price for p in out.prints} == {D("10.02")}
    # bids 1 (10.05) and 2 (10.03) take asks 4 (9.98) and 5 (10.02), best first
    assert [(p.qty, p.taker_id, p.maker_id) for p in out.prints] == [
        (D(100), 4, 1),
        (D(50), 4, 2),
        (D(150), 5, 2),
    ]
    assert sum(p.qty for p in out.prints) == 300
    bids, asks = b.depth(10)
    assert bids == [(D("10.00"), D(300))]
    assert asks == [(D("10.02"), D(50)), (D("10.05"), D(300))]
    assert b.last == D("10.02")
    # each pair's newer order is its taker
    assert [m.liquidity for m in out.matches[:2]] == ["taker", "maker"]


def test_a_user_never_trades_with_itself_in_an_auction() -> None:
    b = book([("10.02", 100)], [("10.00", 100)], users=[7, 7])
    out = b.auction(D("10.00"), shanghai=True)
    assert out.prints == []
    assert out.canceled == [(2, "self_trade")]  # the newer, by its stp (cancel_newest)
    assert b.depth(10) == ([(D("10.02"), D(100))], [])


# THE PHASES ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xshg() -> ExchangeSessions:
    return ExchangeSessions("XSHG", ("09:30-11:30", "13:00-15:00"), "Asia/Shanghai", calls=True)


def at(hhmm: str, day: str = "2026-12-08") -> int:
    """ns of a time on a Shanghai trading day (a Tuesday)."""
    local = datetime.fromisoformat(f"{day}T{hhmm}:00").replace(tzinfo=SHANGHAI)
    return int(local.timestamp()) * 1_000_000_000


@pytest.mark.parametrize(
    ("hhmm", "phase", "cancels"),
    [
        ("09:14", "closed", True),
        ("09:15", "opening_call", True),
        ("09:19", "opening_call", True),
        ("09:20", "opening_call", False),
        ("09:24", "opening_call", False),
        ("09:25", "pre_open", False),
        ("09:29", "pre_open", False),
        ("09:30", "continuous", True),
        ("11:29", "continuous", True),
        ("11:30", "closed", True),  # the lunch break
        ("13:00", "continuous", True),
        ("14:56", "continuous", True),
        ("14:57", "closing_call", False),
        ("14:59", "closing_call", False),
        ("15:00", "closed", True),
    ],
)
def test_the_phases_of_an_a_share_day(
    xshg: ExchangeSessions, hhmm: str, phase: str, cancels: bool
) -> None:
    assert (xshg.phase(at(hhmm)), xshg.cancels(at(hhmm))) == (phase, cancels)


def test_without_call_auctions_the_day_is_continuous_or_closed() -> None:
    plain = ExchangeSessions("XSHG", ("09:30-11:30", "13:00-15:00"), "Asia/Shanghai")
    assert plain.phase(at("09:20")) == "closed"
    assert plain.phase(at("14:58")) == "continuous"
    assert plain.cancels(at("09:22"))


def test_a_weekend_has_no_call(xshg: ExchangeSessions) -> None:
    assert xshg.phase(at("09:16", "2026-12-12")) == "closed"  # a Saturday
