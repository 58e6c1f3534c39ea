"""Reservation, release, settlement, average cost and realised P&L (actors/accounts.py)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from actors.accounts import Account, Accounts, Order, Rejection, User
from actors.rules import Profile
from protocol.errors import ErrorCode
from protocol.settings import Settings


@pytest.fixture
def book() -> Accounts:
    accounts = Accounts(Profile.from_settings(Settings()))
    accounts.add_user(User(1, "ann", "h1", False), Account(1, D("10000.00"), D("10000.00")))
    return accounts


def place(accounts: Accounts, side: str, qty: int, price: str) -> Order:
    placed = accounts.place(1, "600000", side, D(qty), D(price), None, 0)
    assert isinstance(placed, Order), placed
    return placed


def conserved(accounts: Accounts) -> bool:
    a = accounts.accounts[1]
    return a.cash + a.commission_paid + a.tax_paid + a.bought_value - a.sold_value == a.initial_cash


def test_a_buy_reserves_value_plus_commission(book: Accounts) -> None:
    order = place(book, "buy", 100, "10.00")
    assert order.reserved_cash == D("1005.00")
    assert book.accounts[1].reserved_cash == D("1005.00")
    assert book.accounts[1].available_cash == D("8995.00")


def test_exact_cash_is_accepted_and_one_cent_less_is_refused(book: Accounts) -> None:
    book.accounts[1].cash = D("1005.00")
    book.accounts[1].initial_cash = D("1005.00")
    assert isinstance(place(book, "buy", 100, "10.00"), Order)
    book.accounts[1].reserved_cash = D(0)
    book.accounts[1].cash = D("1004.99")
    refused = book.place(1, "600000", "buy", D(100), D("10.00"), None, 0)
    assert isinstance(refused, Rejection)
    assert refused.code is ErrorCode.RISK_INSUFFICIENT_CASH


def test_cancel_releases_the_whole_reservation(book: Accounts) -> None:
    order = place(book, "buy", 100, "10.00")
    book.cancel(order, 1)
    assert order.status == "canceled"
    assert book.accounts[1].reserved_cash == 0
    assert book.accounts[1].cash == D("10000.00")
    assert order.id not in book.open_orders


def test_a_fill_below_the_limit_releases_the_unused_reservation(book: Accounts) -> None:
    order = place(book, "buy", 100, "10.00")
    fill = book.fill(order, D(100), D("9.50"), 1)
    assert (fill.value, fill.commission, fill.tax) == (D("950.00"), D("5.00"), D(0))
    account = book.accounts[1]
    assert account.cash == D("10000.00") - D("955.00")
    assert account.reserved_cash == 0
    assert order.status == "filled"
    assert conserved(book)


def test_average_cost_includes_fees(book: Accounts) -> None:
    place_and_fill = place(book, "buy", 100, "10.00")
    book.fill(place_and_fill, D(100), D("10.00"), 1)
    second = place(book, "buy", 200, "11.00")
    book.fill(second, D(200), D("11.00"), 2)
    pos = book.position(1, "600000")
    # (1000 + 5 + 2200 + 5) / 300
    assert pos.cost_basis == D("3210.00")
    assert pos.avg_cost == D("10.7000")


def test_a_sell_realises_proceeds_minus_fees_minus_the_cost_of_the_shares(book: Accounts) -> None:
    buy = place(book, "buy", 300, "10.00")
    book.fill(buy, D(300), D("10.00"), 1)  # cost 3000 + 5 = 3005
    sell = place(book, "sell", 100, "12.00")
    assert book.position(1, "600000").reserved_qty == 100
    fill = book.fill(sell, D(100), D("12.00"), 2)
    # proceeds 1200 - 5 commission - 1.20 tax; cost of 100 of 300 shares: 1001.67
    assert fill.tax == D("1.20")
    assert fill.realized_pnl == D("1200.00") - D("5.00") - D("1.20") - D("1001.67")
    pos = book.position(1, "600000")
    assert (pos.qty, pos.reserved_qty, pos.cost_basis) == (200, 0, D("2003.33"))
    assert conserved(book)


def test_selling_everything_realises_the_whole_cost_basis(book: Accounts) -> None:
    buy = place(book, "buy", 300, "10.00")
    book.fill(buy, D(300), D("10.00"), 1)
    for qty in (100, 200):
        sell = place(book, "sell", qty, "9.00")
        book.fill(sell, D(qty), D("9.00"), 2)
    pos = book.position(1, "600000")
    assert (pos.qty, pos.cost_basis) == (0, 0)
    fees = D("5.00") + D("0.90") + D("5.00") + D("1.80")
    assert pos.realized_pnl == D("2700.00") - fees - D("3005.00")
    assert book.accounts[1].cash == D("10000.00") + pos.realized_pnl
    assert conserved(book)


def test_a_sell_of_shares_already_reserved_is_refused(book: Accounts) -> None:
    buy = place(book, "buy", 100, "10.00")
    book.fill(buy, D(100), D("10.00"), 1)
    place(book, "sell", 60, "20.00")
    refused = book.place(1, "600000", "sell", D(50), D("20.00"), None, 0)
    assert isinstance(refused, Rejection)
    assert refused.code is ErrorCode.RISK_INSUFFICIENT_SHARES


def test_cancel_of_a_sell_frees_its_shares(book: Accounts) -> None:
    buy = place(book, "buy", 100, "10.00")
    book.fill(buy, D(100), D("10.00"), 1)
    sell = place(book, "sell", 100, "20.00")
    book.cancel(sell, 2)
    assert book.position(1, "600000").available_qty == 100


def test_a_partial_fill_trues_up_the_reservation_to_what_is_left(book: Accounts) -> None:
    order = place(book, "buy", 300, "10.00")
    book.fill(order, D(100), D("10.00"), 1)
    assert order.status == "partially_filled"
    assert order.reserved_cash == D("2005.00")
    assert book.accounts[1].reserved_cash == D("2005.00")
    assert conserved(book)
