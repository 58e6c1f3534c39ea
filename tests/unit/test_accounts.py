"""Reservation, release, settlement, average cost and realised P&L (accountant/accounts.py)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from actors.accountant.accounts import Account, Accounts, Order, Rejection, User
from actors.market.rules import Market, OrderSpec
from protocol.errors import ErrorCode
from protocol.settings import CnASettings, ProfileSettings, Settings

PROFILE = Market.from_settings(Settings()).rules("600000")


def accounts_for(**cn_a: object) -> Accounts:
    """Accounts under the cn_a profile with `cn_a` settings changed."""
    profiles = ProfileSettings(cn_a=CnASettings(**cn_a))  # type: ignore[arg-type]
    accounts = Accounts(Market.from_settings(Settings(profiles=profiles)))
    accounts.add_user(User(1, "ann", "h1", False), Account(1, D("10000.00"), D("10000.00")))
    return accounts


@pytest.fixture
def book() -> Accounts:
    """Accounts without T+1: these tests buy and sell within one day."""
    return accounts_for(t_plus_one=False)


def spec(side: str, qty: int, price: str, tif: str = "gtc") -> OrderSpec:
    return OrderSpec("600000", side, "limit", tif, D(qty), D(price), limit_price=D(price))


def place(accounts: Accounts, side: str, qty: int, price: str) -> Order:
    placed = accounts.place(1, spec(side, qty, price), None, 0)
    assert isinstance(placed, Order), placed
    return placed


def reservations_add_up(accounts: Accounts) -> bool:
    open_cash = sum((o.reserved_cash for o in accounts.open_orders.values()), D(0))
    return accounts.accounts[1].reserved_cash == open_cash


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
    refused = book.place(1, spec("buy", 100, "10.00"), None, 0)
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
    place(book, "sell", 100, "20.00")
    refused = book.place(1, spec("sell", 100, "20.00"), None, 0)
    assert isinstance(refused, Rejection)
    assert refused.code is ErrorCode.RISK_INSUFFICIENT_SHARES


def test_an_odd_lot_sell_must_sell_everything_that_may_be_sold(book: Accounts) -> None:
    buy = place(book, "buy", 200, "10.00")
    book.fill(buy, D(200), D("10.00"), 1)
    book.position(1, "600000").qty = D(250)  # 50 more, say from a bonus issue
    refused = book.place(1, spec("sell", 50, "11.00"), None, 0)
    assert isinstance(refused, Rejection) and refused.code is ErrorCode.REQUEST_LOT_SIZE
    place(book, "sell", 100, "11.00")  # whole lots are fine
    place(book, "sell", 150, "11.00")  # and the odd rest, all of it at once


def test_t_plus_one_keeps_todays_shares_until_the_next_trading_day() -> None:
    accounts = accounts_for(t_plus_one=True)
    accounts.trading_days = {"cn_a": "2024-01-02"}
    buy = place(accounts, "buy", 300, "10.00")
    accounts.fill(buy, D(300), D("10.00"), 1)
    pos = accounts.position(1, "600000")
    assert (pos.locked_qty, pos.locked_day, accounts.sellable(pos)) == (300, "2024-01-02", 0)
    refused = accounts.place(1, spec("sell", 100, "11.00"), None, 2)
    assert isinstance(refused, Rejection) and refused.code is ErrorCode.RISK_T_PLUS_ONE
    accounts.trading_days = {"cn_a": "2024-01-03"}
    assert accounts.sellable(pos) == 300
    place(accounts, "sell", 100, "11.00")
    again = place(accounts, "buy", 100, "10.00")
    accounts.fill(again, D(100), D("10.00"), 3)  # today's 100 are locked, not yesterday's
    assert (pos.locked_qty, accounts.sellable(pos)) == (100, 200)
    refused = accounts.place(1, spec("sell", 300, "11.00"), None, 4)
    assert isinstance(refused, Rejection) and refused.code is ErrorCode.RISK_T_PLUS_ONE
    over = accounts.place(1, spec("sell", 400, "11.00"), None, 4)
    assert isinstance(over, Rejection) and over.code is ErrorCode.RISK_INSUFFICIENT_SHARES


def test_the_transfer_fee_is_charged_on_both_sides_with_the_taxes() -> None:
    accounts = accounts_for(t_plus_one=False, transfer_fee_rate="0.00001")
    accounts.accounts[1].cash = accounts.accounts[1].initial_cash = D("20000.00")
    buy = place(accounts, "buy", 1000, "10.00")  # 10000.00 x 0.00001 = 0.10
    assert buy.reserved_cash == D("10000.00") + D("10.00") + D("0.10")
    fill = accounts.fill(buy, D(1000), D("10.00"), 1)
    assert (fill.commission, fill.tax) == (D("10.00"), D("0.10"))
    sell = place(accounts, "sell", 1000, "10.00")
    fill = accounts.fill(sell, D(1000), D("10.00"), 2)
    assert fill.tax == D("10.00") + D("0.10")  # stamp tax and transfer fee
    assert conserved(accounts)


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
    # the 5.00 minimum is per order and the first fill paid it: the rest adds no commission
    assert order.commission == D("5.00")
    assert order.reserved_cash == D("2000.00")
    assert book.accounts[1].reserved_cash == D("2000.00")
    assert conserved(book)


def test_an_order_filled_in_parts_pays_what_it_would_filled_at_once(book: Accounts) -> None:
    book.accounts[1].cash = book.accounts[1].initial_cash = D("200000.00")
    order = place(book, "buy", 800, "10.00")
    fees = [book.fill(order, D(100), D("10.00"), t).commission for t in range(8)]
    # in all: 5.00 (the minimum) up to 5000.00 filled, then 0.1% of the whole: 6.00, 7.00, 8.00
    assert fees == [D("5.00"), 0, 0, 0, 0, D("1.00"), D("1.00"), D("1.00")]
    assert order.commission == PROFILE.fees("buy", D(800), D("8000.00"))[0] == D("8.00")
    big = place(book, "buy", 10000, "10.00")
    parts = [book.fill(big, D(qty), D("10.00"), 9).commission for qty in (5000, 3000, 2000)]
    # 50.00 on 50000, then 80.00 in all on 80000, then 100.00 on 100000
    assert parts == [D("50.00"), D("30.00"), D("20.00")]
    assert book.accounts[1].reserved_cash == 0
    assert conserved(book)


def test_a_sell_filled_in_parts_pays_stamp_tax_on_the_whole_order(book: Accounts) -> None:
    buy = place(book, "buy", 300, "10.00")
    book.fill(buy, D(300), D("10.00"), 1)
    sell = place(book, "sell", 300, "10.05")
    taxes = [book.fill(sell, D(100), D("10.05"), 2).tax for _ in range(3)]
    # 1005.00 x 0.001 = 1.005 -> 1.01; 2010.00 -> 2.01 in all; 3015.00 -> 3.02 in all
    assert taxes == [D("1.01"), D("1.00"), D("1.01")]
    assert sell.tax == D("3.02") == PROFILE.fees("sell", D(300), D("3015.00"))[1]
    assert conserved(book)


@pytest.mark.parametrize("status", ["canceled", "expired", "replaced", "rejected"])
def test_closing_an_order_releases_what_it_held(book: Accounts, status: str) -> None:
    buy = place(book, "buy", 200, "10.00")
    book.fill(buy, D(200), D("10.00"), 1)
    sell = place(book, "sell", 200, "11.00")
    book.fill(sell, D(100), D("11.00"), 2)
    book.close(sell, status, 3)
    assert sell.status == status and sell.id not in book.open_orders
    assert book.position(1, "600000").reserved_qty == 0
    assert book.accounts[1].reserved_cash == 0
    assert conserved(book)


def test_a_trigger_that_tightens_the_bound_releases_cash(book: Accounts) -> None:
    stop = OrderSpec("600000", "buy", "stop", "gtc", D(100), D("10.50"), stop_price=D("10.00"))
    order = book.place(1, stop, None, 0)
    assert isinstance(order, Order)
    assert order.reserved_cash == D("1055.00")
    book.trigger(order, D("9.80"), D("10.29"))
    assert order.triggered and order.price == D("10.29")
    assert order.reserved_cash == book.accounts[1].reserved_cash == D("1034.00")


def test_a_replacement_holds_only_what_the_old_order_does_not(book: Accounts) -> None:
    old = place(book, "buy", 100, "10.00")  # holds 1005.00
    new = book.request_replace(old, spec("buy", 200, "10.00"), "r1", 5)
    assert isinstance(new, Order) and new.status == "pending_new"
    assert old.replace_hold == D("1000.00")  # 2005.00 needed, 1005.00 held already
    assert book.accounts[1].reserved_cash == D("2005.00")
    book.replace(old, 6)
    assert (old.status, old.replaced_by, new.status, new.replaces) == (
        "replaced",
        new.id,
        "new",
        old.id,
    )
    assert book.accounts[1].reserved_cash == new.reserved_cash == D("2005.00")
    assert reservations_add_up(book)


def test_a_refused_replacement_releases_its_hold(book: Accounts) -> None:
    old = place(book, "buy", 100, "10.00")
    new = book.request_replace(old, spec("buy", 100, "12.00"), "r1", 5)
    assert isinstance(new, Order)
    assert book.unreplace(old) is new
    assert book.accounts[1].reserved_cash == old.reserved_cash == D("1005.00")
    assert "r1" not in {coid for _, coid in book.client_ids}
    assert old.replacement is None and old.status == "new"


def test_a_replacement_beyond_the_cash_is_refused_and_holds_nothing(book: Accounts) -> None:
    old = place(book, "buy", 900, "10.00")  # 9009.00 of 10000.00
    refused = book.request_replace(old, spec("buy", 1000, "10.00"), None, 5)
    assert isinstance(refused, Rejection)
    assert refused.code is ErrorCode.RISK_INSUFFICIENT_CASH
    assert book.accounts[1].reserved_cash == D("9009.00")
    assert old.replacement is None


def test_an_ioc_order_opens_pending_until_the_matcher_decides(book: Accounts) -> None:
    order = book.place(1, spec("buy", 100, "10.00", tif="ioc"), None, 0)
    assert isinstance(order, Order)
    assert order.pending and order.reserved_cash == D("1005.00")


def test_a_replacement_checked_when_asked_is_not_checked_again_when_swapped() -> None:
    accounts = accounts_for(t_plus_one=False)  # odd lots: a sell sells all it may, or lots
    buy = place(accounts, "buy", 200, "10.00")
    accounts.fill(buy, D(200), D("10.00"), 1)
    pos = accounts.position(1, "600000")
    pos.qty += 50  # 250 held, say after a bonus issue
    first, second = place(accounts, "sell", 100, "11.00"), place(accounts, "sell", 100, "11.00")
    new = accounts.request_replace(second, spec("sell", 150, "11.00"), None, 2)  # all it may
    assert isinstance(new, Order)
    accounts.cancel(first, 3)  # 100 more may be sold now: 150 is no longer "all"
    assert accounts.replace(second, 4) is new
    assert (new.status, pos.reserved_qty) == ("new", 150)
    assert reservations_add_up(accounts)


def test_a_fill_records_whether_it_made_or_took_liquidity(book: Accounts) -> None:
    order = place(book, "buy", 300, "10.00")
    assert book.fill(order, D(100), D("10.00"), 1).liquidity == "taker"  # the default
    maker = book.fill(order, D(200), D("10.00"), 2, liquidity="maker")
    assert maker.liquidity == "maker"
    # cn_a charges makers and takers alike: 3000.00 in all owes the 5.00 minimum
    assert (order.commission, maker.commission) == (D("5.00"), D(0))
    assert conserved(book)


# RESET ---------------------------------------------------------------------------------


def test_a_reset_refuses_while_an_order_is_open_and_changes_nothing(book: Accounts) -> None:
    place(book, "buy", 100, "10.00")
    with pytest.raises(ValueError, match="open orders"):
        book.reset(1, D("500.00"), 7)
    account = book.accounts[1]
    assert (account.epoch, account.cash, account.reserved_cash) == (0, D("10000.00"), D("1005.00"))


def test_a_reset_writes_off_positions_at_cost_and_starts_the_counters_again(
    book: Accounts,
) -> None:
    book.fill(place(book, "buy", 300, "10.00"), D(300), D("10.00"), 1)  # 3005.00 with fees
    book.fill(place(book, "sell", 100, "12.00"), D(100), D("12.00"), 2)  # 1200 - 5 - 1.20
    account = book.accounts[1]
    before = account.cash
    assert before == D("10000.00") - D("3005.00") + D("1193.80")
    lifetime_fees = account.commission_paid + account.tax_paid
    lifetime_net = account.bought_value - account.sold_value

    done = book.reset(1, D("2500.00"), 9)

    assert (done.epoch, done.previous_cash, done.capital) == (1, before, D("2500.00"))
    assert done.change == D("2500.00") - before
    [written] = done.written_off
    # 200 shares held of 300 bought at 3005.00: two thirds of the cost, to the cent
    assert (written.symbol, written.qty, written.cost_basis) == ("600000", D(200), D("2003.33"))
    assert (account.epoch, account.epoch_ts) == (1, 9)
    assert account.cash == account.initial_cash == D("2500.00")
    assert account.commission_paid == account.tax_paid == account.realized_pnl == 0
    assert account.bought_value == account.sold_value == account.reserved_cash == 0
    assert book.user_positions(1) == []
    pos = book.position(1, "600000")
    assert (pos.qty, pos.cost_basis, pos.realized_pnl, pos.locked_qty) == (0, 0, 0, 0)
    assert conserved(book)  # within the new epoch
    # over the account's life: cash + fees + bought - sold = the capital put in
    assert account.cash + lifetime_fees + lifetime_net == D("10000.00") + done.change


def test_after_a_reset_fills_carry_the_new_epoch_and_trading_goes_on(book: Accounts) -> None:
    book.reset(1, D("5000.00"), 1)
    again = book.reset(1, D("5000.00"), 2)
    assert (again.epoch, again.change, again.written_off) == (2, D(0), ())
    fill = book.fill(place(book, "buy", 100, "10.00"), D(100), D("10.00"), 3)
    assert fill.epoch == 2
    assert book.accounts[1].cash == D("3995.00")
    assert conserved(book)
