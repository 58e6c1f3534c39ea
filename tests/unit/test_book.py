"""Price-time priority and fill decisions of the plain book (actors/book.py)."""

from __future__ import annotations

from decimal import Decimal as D

from actors.book import Book, Resting


def resting(order_id: int, side: str, price: str, qty: int = 100) -> Resting:
    return Resting(order_id, side, D(price), D(qty), D(0), order_id)


def test_a_trade_fills_bids_at_or_above_and_asks_at_or_below_its_price() -> None:
    book = Book("600000")
    for order in (
        resting(1, "buy", "10.00"),
        resting(2, "buy", "9.99"),
        resting(3, "sell", "10.00"),
        resting(4, "sell", "10.01"),
    ):
        book.add(order)
    matches = book.cross(D("10.00"))
    assert [m.order_id for m in matches] == [1, 3]
    assert all(m.price == D("10.00") and m.qty == 100 for m in matches)
    assert len(book) == 2 and 2 in book and 4 in book


def test_crossed_bids_come_best_price_first_then_earliest_first() -> None:
    book = Book("600000")
    for order in (
        resting(1, "buy", "10.00"),
        resting(2, "buy", "10.05"),
        resting(3, "buy", "10.00"),
        resting(4, "buy", "10.05"),
    ):
        book.add(order)
    assert [m.order_id for m in book.cross(D("9.00"))] == [2, 4, 1, 3]


def test_a_removed_order_never_fills() -> None:
    book = Book("600000")
    book.add(resting(1, "buy", "10.00"))
    assert book.remove(1) is not None
    assert book.remove(1) is None
    assert book.cross(D("1.00")) == []
    assert book.best_bid() is None


def test_instant_mode_fills_at_the_limit_price() -> None:
    book = Book("600000")
    book.add(resting(7, "sell", "12.34", 300))
    match = book.fill_at_limit(7)
    assert match is not None
    assert (match.qty, match.price, match.cum_qty) == (300, D("12.34"), 300)
    assert len(book) == 0


def test_best_prices_follow_the_book() -> None:
    book = Book("600000")
    book.add(resting(1, "buy", "9.98"))
    book.add(resting(2, "buy", "9.99"))
    book.add(resting(3, "sell", "10.02"))
    book.add(resting(4, "sell", "10.01"))
    assert (book.best_bid(), book.best_ask()) == (D("9.99"), D("10.01"))
