"""Share deposits as plain arithmetic and checks: the position, the account's capital, the
returns measured against it, and the refusals (actors/accountant/deposits.py, accounts.py
`deposit`, views.py, stats.py); and in the ledger: the deposit entries balance.imbalances
checks, migration 0009, journal rows from before it."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from actors.accountant.accounts import Account, Accounts, Order, Rejection, User
from actors.accountant.admin import new_user_rows
from actors.accountant.balance import imbalances
from actors.accountant.deposits import MAX_DEPOSIT_SYMBOLS, deposit_positions, deposit_qty
from actors.accountant.journal import catch_up, open_journal, write_offline
from actors.accountant.ledger import AccountRow, CapitalRow, make_engine, migrate
from actors.accountant.rows import (
    ACCOUNTS,
    account_row,
    capital_row,
    fill_row,
    order_row,
    position_row,
)
from actors.accountant.stats import summary
from actors.accountant.views import account_view, position_view
from actors.market.rules import Market, OrderSpec
from protocol.errors import ErrorCode, RejectError
from protocol.messages import MAX_DEPOSIT_SYMBOLS as WIRE_MAX_DEPOSIT_SYMBOLS
from protocol.settings import CnASettings, ProfileSettings, Settings, SymbolSettings
from tests.unit.test_ledger import ledger_at

PAIR = SymbolSettings(symbol="BTC-USDT", name="Bitcoin", prev_close=D("43000.00"), profile="crypto")
SYMBOLS = {"symbols": [*Settings().market.symbols, PAIR]}  # the defaults and a crypto pair
MARKET = Market.from_settings(Settings(market=SYMBOLS))  # type: ignore[arg-type]
ANN = User(1, "ann", "h1", False)


def accounts_for(t_plus_one: bool = True) -> Accounts:
    profiles = ProfileSettings(cn_a=CnASettings(t_plus_one=t_plus_one))
    settings = Settings(profiles=profiles, market=SYMBOLS)  # type: ignore[arg-type]
    accounts = Accounts(Market.from_settings(settings))
    accounts.add_user(ANN, Account(1, D("10000.00"), D("10000.00")))
    accounts.trading_days = {"cn_a": "2024-01-02"}
    return accounts


def place(accounts: Accounts, side: str, qty: int, price: str) -> Order:
    spec = OrderSpec("600000", side, "limit", "gtc", D(qty), D(price), limit_price=D(price))
    placed = accounts.place(1, spec, None, 0)
    assert isinstance(placed, Order), placed
    return placed


def epoch_adds_up(account: Account) -> bool:
    return (
        account.cash
        + account.commission_paid
        + account.tax_paid
        + account.bought_value
        - account.sold_value
        == account.initial_cash
    )


# ARITHMETIC ----------------------------------------------------------------------------


def test_a_deposit_adds_shares_at_their_value_and_leaves_the_cash_alone() -> None:
    accounts = accounts_for()
    done = accounts.deposit(1, "600000", D(5000), D("8.47"))
    assert (done.user_id, done.epoch, done.symbol, done.qty) == (1, 0, "600000", D(5000))
    assert (done.price, done.value) == (D("8.47"), D("42350.00"))
    pos = accounts.position(1, "600000")
    assert (pos.qty, pos.cost_basis, pos.avg_cost, pos.realized_pnl) == (
        D(5000),
        D("42350.00"),
        D("8.4700"),
        0,
    )
    account = accounts.accounts[1]
    assert (account.cash, account.deposited_value, account.bought_value) == (
        D("10000.00"),
        D("42350.00"),
        0,
    )
    assert epoch_adds_up(account)  # the epoch's identity does not see deposits
    again = accounts.deposit(1, "600000", D(150), D("8.50"))  # an odd lot is fine
    assert again.value == D("1275.00")
    assert (pos.qty, pos.cost_basis, account.deposited_value) == (
        D(5150),
        D("43625.00"),
        D("43625.00"),
    )


def test_deposited_shares_may_be_sold_at_once_under_t_plus_one() -> None:
    accounts = accounts_for(t_plus_one=True)
    accounts.fill(place(accounts, "buy", 100, "8.50"), D(100), D("8.50"), 1)  # locked today
    accounts.deposit(1, "600000", D(1000), D("8.50"))
    pos = accounts.position(1, "600000")
    assert (pos.qty, pos.locked_qty, accounts.sellable(pos)) == (D(1100), D(100), D(1000))
    refused = accounts.place(
        1,
        OrderSpec("600000", "sell", "limit", "gtc", D(1100), D("9.00"), limit_price=D("9.00")),
        None,
        2,
    )
    assert isinstance(refused, Rejection) and refused.code is ErrorCode.RISK_T_PLUS_ONE
    place(accounts, "sell", 1000, "9.00")
    assert accounts.sellable(pos) == 0


def test_selling_deposited_shares_at_their_price_realises_only_the_fees() -> None:
    accounts = accounts_for(t_plus_one=True)
    accounts.deposit(1, "600000", D(1000), D("8.50"))
    fill = accounts.fill(place(accounts, "sell", 1000, "8.50"), D(1000), D("8.50"), 2)
    assert (fill.value, fill.commission, fill.tax) == (D("8500.00"), D("8.50"), D("8.50"))
    assert fill.realized_pnl == D("-17.00")
    account = accounts.accounts[1]
    assert account.cash == D("10000.00") + D("8500.00") - D("17.00")
    assert account.deposited_value == D("8500.00")  # capital put in stays so
    assert epoch_adds_up(account)
    # the shares came in by a deposit: bought - sold - written off + deposited = held
    assert accounts.position(1, "600000").qty == 0 - 1000 + 1000


def test_a_deposit_is_valued_to_its_profiles_cash_unit() -> None:
    accounts = accounts_for()
    crypto = accounts.deposit(1, "BTC-USDT", D("0.12345"), D("43210.57"))
    assert crypto.value == D("5334.34486650")  # exact: crypto settles to 0.00000001
    profiles = ProfileSettings(us_equity={"fractional": True})  # type: ignore[arg-type]
    fractional = Accounts(Market.from_settings(Settings(profiles=profiles)))
    fractional.add_user(ANN, Account(1, D("100.00"), D("100.00")))
    done = fractional.deposit(1, "AAPL", D("0.123456"), D("230.01"))
    assert done.value == D("28.40")  # 28.39611456, half up to the cent
    assert fractional.position(1, "AAPL").cost_basis == D("28.40")


def test_a_reset_writes_deposited_shares_off_and_the_new_epoch_starts_with_cash_only() -> None:
    accounts = accounts_for()
    accounts.deposit(1, "600000", D(2000), D("8.50"))
    done = accounts.reset(1, D("5000.00"), 9)
    assert [(w.symbol, w.qty, w.cost_basis) for w in done.written_off] == [
        ("600000", D(2000), D("17000.00"))
    ]
    account = accounts.accounts[1]
    assert (account.cash, account.initial_cash, account.deposited_value) == (
        D("5000.00"),
        D("5000.00"),
        0,
    )
    assert accounts.user_positions(1) == []
    again = accounts.deposit(1, "600000", D(100), D("8.60"))  # the admin deposits again
    assert again.epoch == 1 and account.deposited_value == D("860.00")


# RETURNS -------------------------------------------------------------------------------


def test_the_account_view_measures_returns_against_the_cash_and_the_shares_put_in() -> None:
    accounts = accounts_for()
    accounts.deposit(1, "600000", D(1000), D("8.50"))
    account = accounts.accounts[1]
    pos = accounts.position(1, "600000")
    at_cost = account_view(ANN, account, pos.cost_basis, pos.cost_basis)
    assert (at_cost["equity"], at_cost["deposited_value"], at_cost["total_return"]) == (
        "18500.00",
        "8500.00",
        "0.000000",
    )
    assert at_cost["unrealized_pnl"] == "0.00"
    up = account_view(ANN, account, D("9250.00"), pos.cost_basis)  # 9.25 a share
    assert up["total_return"] == "0.040541"  # 750 / 18500
    view = position_view(pos, None, accounts.sellable(pos))
    assert (view["market_value"], view["unrealized_pnl"]) == ("8500.00", "0.00")


def test_stats_count_each_deposit_in_the_base_from_its_time() -> None:
    ten_thousand, deposit = D("10000.00"), D("8500.00")
    curve = [
        (100, D("10000.00"), D("9900.00")),  # before the deposit: 1% down on the cash
        (300, D("10000.00"), D("18400.00")),  # after it: 100 down on 18500
        (400, D("10000.00"), D("18500.00")),  # now
    ]
    body = summary(ten_thousand, curve, [], 0, D(0), D(0), D(0), D(0), [(200, deposit)])
    assert (body["initial_cash"], body["deposited_value"]) == ("10000.00", "8500.00")
    assert body["total_return"] == "0.000000"
    returns = [p["return"] for p in body["equity_curve"]]  # type: ignore[attr-defined]
    assert returns == ["-0.010000", "-0.005405", "0.000000"]
    # the deposit is no drawdown and no gain: the worst fall is 100 of 10000
    assert body["max_drawdown"] == "0.010000"


def test_stats_of_an_account_created_with_shares_start_from_all_its_capital() -> None:
    curve = [(500, D("10000.00"), D("18500.00"))]
    body = summary(D("10000.00"), curve, [], 0, D(0), D(0), D(0), D(0), [(1, D("8500.00"))])
    assert (body["total_return"], body["max_drawdown"]) == ("0.000000", "0.000000")
    without = summary(D("10000.00"), curve, [], 0, D(0), D(0), D(0), D(0))
    assert without["deposited_value"] == "0.00" and without["total_return"] == "0.850000"


# CHECKS --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symbol", "qty", "expected"),
    [
        ("600000", "5000", D(5000)),
        ("600000", 150, D(150)),  # cn_a's step is one share: odd lots may be deposited
        ("600000", "100.0", D(100)),
        ("AAPL", "3", D(3)),
        ("BTC-USDT", "0.50000", D("0.5")),
        ("600000", "100000000", D(100000000)),  # max_qty
    ],
)
def test_a_deposit_qty_is_a_positive_multiple_of_the_step(
    symbol: str, qty: object, expected: D
) -> None:
    assert deposit_qty(MARKET, symbol, qty) == expected


@pytest.mark.parametrize(
    ("symbol", "qty", "code"),
    [
        ("NOPE", "100", ErrorCode.REQUEST_UNKNOWN_SYMBOL),
        ("600000", "0", ErrorCode.REQUEST_INVALID_QTY),
        ("600000", "-100", ErrorCode.REQUEST_INVALID_QTY),
        ("600000", "100.5", ErrorCode.REQUEST_INVALID_QTY),  # whole shares
        ("AAPL", "1.5", ErrorCode.REQUEST_INVALID_QTY),
        ("BTC-USDT", "0.000015", ErrorCode.REQUEST_INVALID_QTY),  # off the 0.00001 step
        ("600000", "100000001", ErrorCode.REQUEST_INVALID_QTY),  # above max_qty
        ("600000", "lots", ErrorCode.REQUEST_INVALID_QTY),
        ("600000", True, ErrorCode.REQUEST_INVALID_QTY),
    ],
)
def test_a_bad_deposit_is_refused_with_its_code(symbol: str, qty: object, code: ErrorCode) -> None:
    with pytest.raises(RejectError) as caught:
        deposit_qty(MARKET, symbol, qty)
    assert caught.value.code is code


def test_the_positions_of_a_new_user_are_checked_all_before_any_is_made() -> None:
    assert deposit_positions(MARKET, None) == []
    assert deposit_positions(MARKET, {"AAPL": "10", "600000": 5000}) == [
        ("600000", D(5000)),
        ("AAPL", D(10)),
    ]
    with pytest.raises(RejectError) as caught:
        deposit_positions(MARKET, {"600000": "100", "MISSING": "100"})
    assert caught.value.code is ErrorCode.REQUEST_UNKNOWN_SYMBOL
    assert MAX_DEPOSIT_SYMBOLS == WIRE_MAX_DEPOSIT_SYMBOLS == 100
    too_many = {f"S{n}": "1" for n in range(MAX_DEPOSIT_SYMBOLS + 1)}
    with pytest.raises(RejectError) as caught:
        deposit_positions(MARKET, too_many)
    assert caught.value.code is ErrorCode.REQUEST_INVALID


# IN THE LEDGER ---------------------------------------------------------------------------


def _ledger(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(make_engine(url, "NORMAL"))
    return url


def test_journal_account_rows_written_before_deposits_are_projected_with_none_deposited(
    tmp_path: Path,
) -> None:
    """An account row journaled by the version before migration 0009 (with its epoch
    columns, without deposited_value) still catches up."""
    url = _ledger(tmp_path)
    engine = make_engine(url, "NORMAL")
    journal = open_journal(url, "NORMAL")
    _, rows = new_user_rows(1, "ann", "token", D("100.00"), False, 1)
    reset = Account(1, D("70.00"), D("70.00"), epoch=2, epoch_ts=5)
    journal.append([*rows, (ACCOUNTS, account_row(reset, 5)[1][:-1])])
    assert catch_up(engine, journal) == 1
    with Session(engine) as session:
        account = session.scalars(select(AccountRow)).one()
    assert (account.cash, account.epoch, account.epoch_ts) == (D("70.00"), 2, 5)
    assert account.deposited_value == 0
    journal.close()
    engine.dispose()


def test_accounts_from_before_deposits_have_none_deposited_and_still_balance(
    tmp_path: Path,
) -> None:
    """Revision 0009 adds deposited_value, 0 for every account that was there."""
    with ledger_at(tmp_path, "0007") as (engine, _conn):
        pass
    write_offline(engine, new_user_rows(1, "ann", "token", D("500.00"), False, 1)[1][:1])
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO accounts (user_id, initial_cash, cash, reserved_cash, commission_paid,"
            " tax_paid, realized_pnl, bought_value, sold_value, ts_updated, epoch, epoch_ts)"
            " VALUES (1, '500.00', '500.00', '0', '0', '0', '0', '0', '0', 1, 0, 0)"
        )
        conn.exec_driver_sql(
            "INSERT INTO capital (user_id, epoch, ts_event, kind, amount)"
            " VALUES (1, 0, 1, 'capital', '500.00')"
        )
    migrate(engine)
    with Session(engine) as session:
        account = session.scalars(select(AccountRow)).one()
    assert (account.cash, account.deposited_value) == (D("500.00"), 0)
    assert imbalances(engine) == []
    engine.dispose()


def test_the_books_balance_with_deposits_and_a_missing_or_wrong_entry_shows(
    tmp_path: Path,
) -> None:
    """imbalances(): a deposit adds shares, not cash; the account's deposited_value is
    its epoch's deposit entries."""
    engine = make_engine(_ledger(tmp_path), "NORMAL")
    accounts = Accounts(Market.from_settings(Settings()))
    user, rows = new_user_rows(1, "ann", "token", D("10000.00"), False, 1)
    accounts.add_user(user, Account(1, D("10000.00"), D("10000.00")))
    done = accounts.deposit(1, "600000", D(1000), D("8.50"))
    deposit = capital_row(1, 0, 2, done.value, "600000", D(1000), kind="deposit")
    spec = OrderSpec("600000", "sell", "limit", "gtc", D(400), D("9.00"), limit_price=D("9.00"))
    order = accounts.place(1, spec, None, 3)
    assert isinstance(order, Order)
    fill = accounts.fill(order, D(400), D("9.00"), 4)
    rows += [order_row(order), fill_row(fill), account_row(accounts.accounts[1], 4)]
    rows.append(position_row(accounts.position(1, "600000")))
    write_offline(engine, rows)  # the deposit entry is missing
    assert imbalances(engine) == [
        "user 1: deposited_value 8500.00, epoch 0's deposits 0",
        "user 1 600000: holds 600, bought - sold - written off + deposited = -400",
    ]
    write_offline(engine, [deposit])
    assert imbalances(engine) == []
    with Session(engine) as session:
        [entry] = session.scalars(select(CapitalRow).where(CapitalRow.kind == "deposit"))
    assert (entry.epoch, entry.amount, entry.symbol, entry.qty) == (0, D("8500.00"), "600000", 1000)

    done = accounts.reset(1, D("5000.00"), 5)  # the deposited shares are written off
    [gone] = done.written_off
    write_offline(
        engine,
        [
            capital_row(1, done.epoch, 5, done.change),
            capital_row(1, done.epoch, 5, gone.cost_basis, gone.symbol, gone.qty),
            account_row(accounts.accounts[1], 5),
            position_row(accounts.position(1, "600000")),
        ],
    )
    assert imbalances(engine) == []
    engine.dispose()
