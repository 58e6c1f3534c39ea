"""The journal, its projection into the ledger's tables, and the migrations, against real
SQLite files (actors/accountant/journal.py, projection.py, ledger.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal as D
from pathlib import Path

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from actors.accountant.accounts import Account, Accounts, Order, User
from actors.accountant.admin import new_user_rows
from actors.accountant.balance import imbalances
from actors.accountant.journal import catch_up, open_journal, projected_seq, write_offline
from actors.accountant.ledger import (
    AccountRow,
    CapitalRow,
    EquitySnapshotRow,
    OperationRow,
    OrderRow,
    make_engine,
    migrate,
)
from actors.accountant.orders import OrderDesk
from actors.accountant.queries import load_accounts
from actors.accountant.rows import (
    ACCOUNTS,
    ORDERS,
    SNAPSHOTS,
    account_row,
    capital_row,
    fill_row,
    operation_row,
    order_row,
    position_row,
    snapshot_row,
)
from actors.accountant.views import order_view
from actors.market.rules import Market, OrderSpec
from protocol.settings import Settings


def _ledger(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    migrate(make_engine(url, "NORMAL"))
    return url


def test_journal_entries_reach_the_tables_with_the_last_state_per_key(tmp_path: Path) -> None:
    url = _ledger(tmp_path)
    engine = make_engine(url, "NORMAL")
    journal = open_journal(url, "NORMAL")
    _, rows = new_user_rows(1, "ann", "token", D("100.00"), False, 1)
    account = Account(1, D("100.00"), D("90.50"))
    later = Account(1, D("100.00"), D("80.25"))
    assert journal.append(rows) == 1
    journal.append(
        [operation_row(2, "order.accepted", user_id=1, seq=1, qty=D(100)), account_row(account, 2)]
    )
    journal.append([operation_row(3, "control.paused", detail="run state"), account_row(later, 3)])
    assert projected_seq(engine) == 0  # committed to the journal only, as after a crash

    assert catch_up(engine, journal) == 3
    with Session(engine) as session:
        stored = session.scalars(select(AccountRow)).one()
        assert (stored.cash, stored.initial_cash) == (D("80.25"), D("100.00"))
        kinds = [(o.kind, o.user_id, o.seq) for o in session.scalars(select(OperationRow))]
    assert kinds == [
        ("user.created", None, 0),
        ("order.accepted", 1, 1),
        ("control.paused", None, 0),
    ]
    assert projected_seq(engine) == 3
    assert list(journal.entries_after(0)) == []  # dropped once the tables hold them
    assert catch_up(engine, journal) == 3  # nothing twice
    with Session(engine) as session:
        assert len(session.scalars(select(OperationRow)).all()) == 3
    assert journal.append([]) == 4  # numbering goes on after what was dropped
    journal.close()


def test_amounts_come_back_exactly_as_written(tmp_path: Path) -> None:
    engine = make_engine(_ledger(tmp_path), "NORMAL")
    _, rows = new_user_rows(1, "ann", "token", D("12345678.90"), False, 1)
    exact = Account(1, D("12345678.90"), D("0.10"))
    tiny = D("0").quantize(D("0.00000001"))  # 0E-8: stored as plain text, not an exponent
    exact.reserved_cash = tiny
    write_offline(engine, [*rows, account_row(exact, 2)])
    with Session(engine) as session:
        stored = session.scalars(select(AccountRow)).one()
    assert str(stored.cash) == "0.10" and str(stored.initial_cash) == "12345678.90"
    assert stored.reserved_cash == 0
    with engine.connect() as conn:
        raw = conn.exec_driver_sql("SELECT reserved_cash FROM accounts").scalar()
    assert raw == "0.00000000"
    engine.dispose()


def test_a_large_batch_goes_in_many_row_statements_and_arrives_whole(tmp_path: Path) -> None:
    """1,100 operations and 700 account states of 5 users: several statements of
    different row counts per table (512 + 512 + 64 + 8 + 4), in order, last state per key."""
    engine = make_engine(_ledger(tmp_path), "NORMAL")
    rows = []
    for user in range(1, 6):
        rows += new_user_rows(user, f"u{user}", f"token{user}", D("1000.00"), False, 1)[1]
    for n in range(1, 1101):
        rows.append(operation_row(n, "order.accepted", user_id=1 + n % 5, seq=n, qty=D(n)))
    for n in range(700):
        rows.append(account_row(Account(1 + n % 5, D("1000.00"), D(1000 - n)), n))
    write_offline(engine, rows)
    with Session(engine) as session:
        operations = session.scalars(
            select(OperationRow)
            .where(OperationRow.kind == "order.accepted")
            .order_by(OperationRow.id)
        ).all()
        cash = {a.user_id: a.cash for a in session.scalars(select(AccountRow))}
    assert [(o.seq, o.qty) for o in operations] == [(n, D(n)) for n in range(1, 1101)]
    assert cash == {1 + n % 5: D(1000 - n) for n in range(695, 700)}
    engine.dispose()


def test_orders_from_before_order_types_become_gtc_limit_orders(tmp_path: Path) -> None:
    """A ledger written by the core release (revision 0001) upgrades in place."""
    from sqlalchemy import text

    with ledger_at(tmp_path, "0001") as (engine, conn):
        insert_ann_with_an_order(conn)
    migrate(engine)
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT type, time_in_force, limit_price, stop_price, triggered FROM orders")
        ).one()
    assert tuple(row) == ("limit", "gtc", "8.50", None, 0)


def test_accounts_from_before_resets_get_their_creation_capital_entry(tmp_path: Path) -> None:
    """Revision 0007 backfills the capital put in, so an upgraded ledger balances."""
    from sqlalchemy import text

    with ledger_at(tmp_path, "0006") as (engine, conn):
        for user_id, cash in ((1, "0"), (2, "12345.67")):
            conn.execute(
                text(
                    "INSERT INTO users (id, name, token_hash, is_admin, ts_created)"
                    f" VALUES ({user_id}, 'u{user_id}', 'h{user_id}', 0, {user_id * 10})"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO accounts (user_id, initial_cash, cash, reserved_cash,"
                    " commission_paid, tax_paid, realized_pnl, bought_value, sold_value,"
                    f" ts_updated) VALUES ({user_id}, '{cash}', '{cash}', '0', '0', '0', '0',"
                    " '0', '0', 0)"
                )
            )
    migrate(engine)
    with Session(engine) as session:
        entries = [
            (c.user_id, c.epoch, c.ts_event, c.kind, c.amount)
            for c in session.scalars(select(CapitalRow).order_by(CapitalRow.id))
        ]
        epochs = [a.epoch for a in session.scalars(select(AccountRow))]
    assert entries == [(1, 0, 10, "capital", D(0)), (2, 0, 20, "capital", D("12345.67"))]
    assert epochs == [0, 0]
    assert imbalances(engine) == []
    engine.dispose()


def test_journal_rows_written_before_the_epoch_columns_are_projected_with_epoch_0(
    tmp_path: Path,
) -> None:
    """A journal left by the previous version after a crash still catches up."""
    url = _ledger(tmp_path)
    engine = make_engine(url, "NORMAL")
    journal = open_journal(url, "NORMAL")
    _, rows = new_user_rows(1, "ann", "token", D("100.00"), False, 1)
    old_account = account_row(Account(1, D("100.00"), D("90.00")), 2)[1][:-3]
    old_snapshot = snapshot_row(1, 3, D("90.00"), D(0), "interval", 0)[1][:-1]
    journal.append([*rows, (ACCOUNTS, old_account), (SNAPSHOTS, old_snapshot)])
    assert catch_up(engine, journal) == 1
    with Session(engine) as session:
        account = session.scalars(select(AccountRow)).one()
        snapshot = session.scalars(select(EquitySnapshotRow)).one()
    assert (account.cash, account.epoch, account.epoch_ts) == (D("90.00"), 0, 0)
    assert account.deposited_value == 0
    assert (snapshot.equity, snapshot.epoch) == (D("90.00"), 0)
    journal.close()
    engine.dispose()


def test_the_books_balance_across_a_reset_and_a_missing_entry_shows(tmp_path: Path) -> None:
    """imbalances(): capital entries against cash and trades, write-offs against shares."""
    engine = make_engine(_ledger(tmp_path), "NORMAL")
    accounts = Accounts(Market.from_settings(Settings()))
    user, rows = new_user_rows(1, "ann", "token", D("10000.00"), False, 1)
    accounts.add_user(user, Account(1, D("10000.00"), D("10000.00")))
    spec = OrderSpec("600000", "buy", "limit", "gtc", D(300), D("10.00"), limit_price=D("10.00"))
    order = accounts.place(1, spec, None, 2)
    assert isinstance(order, Order)
    fill = accounts.fill(order, D(300), D("10.00"), 3)
    rows += [order_row(order), fill_row(fill), account_row(accounts.accounts[1], 3)]
    rows.append(position_row(accounts.position(1, "600000")))
    write_offline(engine, rows)
    assert imbalances(engine) == []

    done = accounts.reset(1, D("5000.00"), 4)
    [gone] = done.written_off
    reset_rows = [
        capital_row(1, done.epoch, 4, done.change),
        account_row(accounts.accounts[1], 4),
        position_row(accounts.position(1, "600000")),
    ]
    write_offline(engine, reset_rows)  # the write-off entry is missing
    assert imbalances(engine) == [
        "user 1 600000: holds 0, bought - sold - written off + deposited = 300"
    ]
    write_offline(engine, [capital_row(1, done.epoch, 4, gone.cost_basis, gone.symbol, gone.qty)])
    assert imbalances(engine) == []
    write_offline(engine, [capital_row(1, done.epoch, 5, D("0.01"))])  # a cent too many
    assert imbalances(engine) == [
        "user 1: cash 5000.00 + fees + bought - sold = 8005.00, capital put in 8005.01"
    ]
    engine.dispose()


def test_orders_from_before_0008_are_not_post_only_and_cancel_the_newest(tmp_path: Path) -> None:
    """Revision 0008: an existing order gets post_only false and no stp, which its view
    shows as the default; a journal row from before the columns is projected so too."""

    with ledger_at(tmp_path, "0007") as (engine, conn):
        insert_ann_with_an_order(conn)
    migrate(engine)
    accounts = Accounts(Market.from_settings(Settings()))
    accounts.add_user(User(1, "ann", "h", False), Account(1, D("10000.00"), D("10000.00")))
    spec = OrderSpec("600000", "buy", "limit", "gtc", D(100), D("8.60"), limit_price=D("8.60"))
    order = accounts.place(1, spec, None, 2, post_only=True, stp="cancel_both")
    assert isinstance(order, Order)
    journal = open_journal(str(engine.url), "NORMAL")
    journal.append([(ORDERS, order_row(order)[1][:-3])])  # as a version before 0008 wrote it
    assert catch_up(engine, journal) == 1
    with Session(engine) as session:
        rows = session.scalars(select(OrderRow).order_by(OrderRow.id)).all()
        views = [order_view(row) for row in rows]
    assert [(r.id, r.post_only, r.stp, r.cancel_reason) for r in rows] == [
        (1, False, None, None),
        (7, False, None, None),
    ]
    assert [(v["post_only"], v["stp"], v["cancel_reason"]) for v in views] == [
        (False, "cancel_newest", None)
    ] * 2
    journal.append([order_row(order)])
    catch_up(engine, journal)
    with Session(engine) as session:
        row = session.get(OrderRow, 1)
        assert row is not None and (row.post_only, row.stp) == (True, "cancel_both")
    journal.close()
    engine.dispose()


def test_an_open_orders_post_only_and_stp_come_back_after_a_restart(tmp_path: Path) -> None:
    """load_accounts: the matcher's book snapshot after a restart has them again."""
    engine = make_engine(_ledger(tmp_path), "NORMAL")
    accounts = Accounts(Market.from_settings(Settings()))
    user, rows = new_user_rows(1, "ann", "token", D("10000.00"), False, 1)
    accounts.add_user(user, Account(1, D("10000.00"), D("10000.00")))
    spec = OrderSpec("600000", "buy", "limit", "gtc", D(100), D("8.60"), limit_price=D("8.60"))
    order = accounts.place(1, spec, None, 2, post_only=True, stp="cancel_oldest")
    assert isinstance(order, Order)
    order.status = "new"  # the matcher rested it
    write_offline(engine, [*rows, order_row(order), account_row(accounts.accounts[1], 2)])
    loaded, _ = load_accounts(engine, accounts.market)
    again = loaded.open_orders[order.id]
    assert (again.post_only, again.stp, again.cancel_reason) == (True, "cancel_oldest", None)
    book_order = OrderDesk.book_order(again)
    assert (book_order["post_only"], book_order["stp"], book_order["user_id"]) == (
        True,
        "cancel_oldest",
        1,
    )
    engine.dispose()


@contextmanager
def ledger_at(folder: Path, revision: str) -> Iterator[tuple[Engine, Connection]]:
    """A ledger migrated only up to an earlier `revision`, and a connection in the same
    transaction to write the rows of that time with."""
    from alembic import command
    from alembic.config import Config

    engine = make_engine(f"sqlite:///{folder / 'old.db'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(Path("actors/accountant/migrations").resolve()))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        yield engine, conn


def insert_ann_with_an_order(conn: Connection) -> None:
    """User 1, ann, with an open buy order 7 (100 600000 at 8.50), in the old columns."""
    from sqlalchemy import text

    conn.execute(
        text(
            "INSERT INTO users (id, name, token_hash, is_admin, ts_created)"
            " VALUES (1, 'ann', 'h', 0, 0)"
        )
    )
    conn.execute(
        text(
            "INSERT INTO orders (id, user_id, client_order_id, symbol, side, type, qty, price,"
            " status, filled_qty, filled_value, commission, tax, reserved_cash, ts_created,"
            " ts_updated) VALUES (7, 1, NULL, '600000', 'buy', 'limit', '100', '8.50', 'new',"
            " '0', '0', '0', '0', '855.00', 1, 1)"
        )
    )
