"""Fills on replayed bars (actors/matcher/book.py see_bar, docs/fill-model.md "Bars").

cn_a defaults: lot 100, tick 0.01, market protection 500 bp, participation 25%. Every
price below is worked out by hand from the rules: an order fills at the open when the
open is within its bound, else at its bound when the bar's range reaches it; a stop
triggers at the open when the bar opens beyond it, else at the stop.
"""

from __future__ import annotations

from decimal import Decimal as D

from actors.market.rules import Market
from actors.matcher.book import Bar, Book, FillModel, Resting
from protocol.settings import Settings

PROFILE = Market.from_settings(Settings()).rules("600000")


def make_book() -> Book:
    return Book("600000", FillModel(PROFILE, D("0.25")))


def order(order_id: int, side: str, bound: str, qty: int = 100, **fields: object) -> Resting:
    return Resting(order_id, side, D(bound), D(qty), D(0), order_id, **fields)  # type: ignore[arg-type]


def bar(o: str, h: str, low: str, c: str, volume: int = 10_000) -> Bar:
    return Bar(D(o), D(h), D(low), D(c), D(volume))


def fills(book: Book, b: Bar) -> list[tuple[int, int, str, str]]:
    _triggers, matches = book.see_bar(b)
    return [(m.order_id, int(m.qty), str(m.price), m.liquidity) for m in matches]


def test_a_market_order_fills_at_the_next_bars_open() -> None:
    book = make_book()
    book.see_bar(bar("10.00", "10.10", "9.90", "10.00"))
    book.add(order(1, "buy", "10.50", order_type="market"))  # bound: 10.00 + 5%
    book.add(order(2, "sell", "9.50", order_type="market"))
    assert fills(book, bar("10.05", "10.20", "9.95", "10.10")) == [
        (1, 100, "10.05", "taker"),
        (2, 100, "10.05", "taker"),
    ]


def test_a_limit_fills_at_its_limit_when_the_range_reaches_it_and_at_the_open_when_it_gaps() -> (
    None
):
    book = make_book()
    book.see_bar(bar("10.00", "10.10", "9.90", "10.00"))
    book.add(order(1, "buy", "9.80"))  # the low reaches it: at 9.80
    book.add(order(2, "buy", "9.70"))  # the low does not reach it
    book.add(order(3, "sell", "10.30"))  # the high reaches it: at 10.30
    assert fills(book, bar("9.95", "10.40", "9.75", "10.00")) == [
        (1, 100, "9.80", "maker"),
        (3, 100, "10.30", "maker"),
    ]
    assert len(book) == 1
    # the next bar opens below the buy's limit: it fills at the open, better than its limit
    assert fills(book, bar("9.60", "9.65", "9.50", "9.55")) == [(2, 100, "9.60", "maker")]


def test_an_order_placed_after_a_bar_never_fills_on_that_bar() -> None:
    book = make_book()
    book.see_bar(bar("10.00", "10.10", "9.90", "10.00"))
    book.add(order(1, "buy", "10.10"))  # it would have filled on the bar it saw
    assert book.match() == []  # that bar's room is gone
    assert fills(book, bar("10.20", "10.30", "10.15", "10.25")) == []
    assert fills(book, bar("10.05", "10.10", "10.00", "10.05")) == [(1, 100, "10.05", "taker")]


def test_a_stop_triggers_at_the_stop_or_at_the_open_when_the_bar_gaps_through_it() -> None:
    book = make_book()
    book.see_bar(bar("10.00", "10.10", "9.90", "10.00"))
    book.add(order(1, "buy", "10.71", order_type="stop", stop_price=D("10.20")))
    book.add(order(2, "sell", "9.31", order_type="stop", stop_price=D("9.80")))
    triggers, matches = book.see_bar(bar("10.05", "10.25", "9.95", "10.20"))
    assert [(t.order_id, str(t.stop_price)) for t in triggers] == [(1, "10.20")]
    assert [(m.order_id, str(m.price), m.liquidity) for m in matches] == [(1, "10.20", "taker")]
    triggers, matches = book.see_bar(bar("9.60", "9.70", "9.40", "9.50"))  # gaps below 9.80
    assert [(m.order_id, str(m.price)) for m in matches] == [(2, "9.60")]


def test_a_stop_that_gaps_beyond_its_protection_waits_at_its_bound() -> None:
    book = make_book()
    book.see_bar(bar("10.00", "10.10", "9.90", "10.00"))
    book.add(order(1, "buy", "10.71", order_type="stop", stop_price=D("10.20")))
    triggers, matches = book.see_bar(bar("11.00", "11.20", "10.90", "11.10"))
    assert [t.order_id for t in triggers] == [1] and matches == []
    assert fills(book, bar("10.80", "10.90", "10.60", "10.70")) == [(1, 100, "10.71", "taker")]


def test_a_stop_limit_fills_where_it_triggers_or_rests_at_its_limit() -> None:
    book = make_book()
    book.see_bar(bar("10.00", "10.10", "9.90", "10.00"))
    book.add(order(1, "buy", "10.30", order_type="stop_limit", stop_price=D("10.20")))
    book.add(order(2, "buy", "10.30", order_type="stop_limit", stop_price=D("10.25")))
    # opens at 10.40: both trigger at the open, above their limit; neither fills
    triggers, matches = book.see_bar(bar("10.40", "10.50", "10.35", "10.45"))
    assert [t.order_id for t in triggers] == [1, 2] and matches == []
    # resting at 10.30 now, makers: a bar that comes down to it fills them at the limit
    assert fills(book, bar("10.35", "10.36", "10.28", "10.30")) == [
        (1, 100, "10.30", "maker"),
        (2, 100, "10.30", "maker"),
    ]


def test_a_trailing_stop_is_checked_where_it_stood_then_follows_the_bar() -> None:
    book = make_book()
    book.see_bar(bar("10.00", "10.10", "9.90", "10.00"))
    trail = order(
        1,
        "sell",
        "9.02",
        order_type="trailing_stop",
        stop_price=D("9.50"),
        trail_price=D("0.50"),
        extreme=D("10.00"),
    )
    book.add(trail)
    # the low 9.60 stays above 9.50; then the stop follows the high, 10.40: 9.90
    assert fills(book, bar("10.00", "10.40", "9.60", "10.30")) == []
    assert trail.stop_price == D("9.90")
    assert fills(book, bar("10.00", "10.05", "9.80", "9.85")) == [(1, 100, "9.90", "taker")]


def test_each_side_takes_at_most_a_quarter_of_the_bars_volume_in_priority() -> None:
    book = make_book()
    book.see_bar(bar("10.00", "10.10", "9.90", "10.00"))
    book.add(order(1, "buy", "9.95", qty=300))
    book.add(order(2, "buy", "9.98", qty=300))  # a better price: first
    # a quarter of 1000 is 250: in lots, 200 for order 2, nothing left for order 1
    assert fills(book, bar("9.99", "10.00", "9.90", "9.95", volume=1000)) == [
        (2, 200, "9.98", "maker")
    ]
    assert fills(book, bar("9.97", "10.00", "9.90", "9.95", volume=1600)) == [
        (2, 100, "9.97", "maker"),  # the rest of order 2 first, at the open below its limit
        (1, 300, "9.95", "maker"),
    ]


def test_a_bar_without_volume_triggers_and_fills_nothing() -> None:
    book = make_book()
    book.see_bar(bar("10.00", "10.10", "9.90", "10.00"))
    book.add(order(1, "buy", "10.71", order_type="stop", stop_price=D("10.20")))
    book.add(order(2, "buy", "10.50", order_type="market"))
    triggers, matches = book.see_bar(bar("10.30", "10.30", "10.30", "10.30", volume=0))
    assert (triggers, matches) == ([], [])  # a suspended day: a price, not a trade
    assert book.get(1) is not None and book.get(1).triggered is False  # type: ignore[union-attr]
