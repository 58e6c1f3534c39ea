"""The ledger with no accountant running, for run.py and backtests: migrate and seed it,
create and list users, deposit shares, change a token, and the state digest.

The caller holds the ledger lock (actors/runtime/supervisor.py `no_server`). Each function
first brings the tables up to the journal (`prepare`), as the accountant does when it
starts: after a crash the last acknowledged entries may be in the journal only.
"""

from __future__ import annotations

import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from actors.accountant.accounts import Account, Accounts, Deposit
from actors.accountant.admin import capital, new_user_rows
from actors.accountant.deposits import deposit_detail, deposit_positions, deposit_qty
from actors.accountant.digest import books_from_orders, ledger_parts, summary
from actors.accountant.journal import catch_up, open_journal, write_offline
from actors.accountant.ledger import AccountRow, UserRow, make_engine, migrate
from actors.accountant.queries import load_accounts
from actors.accountant.rows import (
    Row,
    account_row,
    capital_row,
    operation_row,
    position_row,
    user_row,
)
from actors.accountant.views import deposit_view, position_view
from actors.market.rules import Market
from actors.matcher.router import book_part
from protocol.errors import RejectError
from protocol.settings import Settings
from protocol.tokens import hash_token, new_token, revoked_hash
from protocol.values import money

ADMIN_TOKEN_FILE = "admin_token"
DEMO_TOKEN_FILE = "demo_token"


def prepare(settings: Settings, now: int | None = None) -> Engine:
    """The ledger migrated to the newest schema and its tables caught up with the journal;
    on its first start, with the admin user and the demo user, stamped `now` (ns; default
    the wall clock), whose tokens go to the data dir."""
    sync = settings.ledger.sqlite_synchronous
    engine = make_engine(settings.database_url, sync)
    migrate(engine)
    journal = open_journal(settings.database_url, sync)
    try:
        catch_up(engine, journal)
    finally:
        journal.close()
        journal.engine.dispose()
    with Session(engine) as session:
        if session.scalar(select(func.count()).select_from(UserRow).where(UserRow.is_admin)):
            return engine
    now = time.time_ns() if now is None else now
    admin_token, demo_token = new_token(), new_token()
    _, rows = new_user_rows(1, "admin", admin_token, Decimal(0), True, now)
    demo = settings.demo
    if demo.create_user:
        rows += new_user_rows(2, demo.name, demo_token, demo.cash, False, now)[1]
    write_offline(engine, rows)
    write_secret(settings.data_dir / ADMIN_TOKEN_FILE, admin_token)
    if demo.create_user:
        write_secret(settings.data_dir / DEMO_TOKEN_FILE, demo_token)
    return engine


def bootstrap(settings: Settings, now: int | None = None) -> None:
    """prepare(), for the supervisor and backtests before the processes start."""
    prepare(settings, now).dispose()


def write_secret(path: Path, text: str) -> None:
    """Create a file only its owner can read, holding `text`."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")


def create_user(
    settings: Settings, name: str, cash_text: str, positions: dict[str, str] | None = None
) -> dict[str, Any]:
    """Write a user with `cash`, and the shares of `positions` (symbol -> qty) deposited,
    straight into the ledger. Raises SystemExit when refused."""
    market = Market.from_settings(settings)
    try:
        cash = capital(cash_text)
    except RejectError as rej:
        raise SystemExit(f"--cash: {rej.message}") from None
    try:
        shares = deposit_positions(market, positions)
    except RejectError as rej:
        raise SystemExit(f"--shares: {rej.code.value}: {rej.message}") from None
    engine = prepare(settings)
    try:
        accounts, user_seqs = load_accounts(engine, market)
        if name in accounts.by_name:
            raise SystemExit(f"a user named {name!r} exists")
        user_id = max(accounts.users, default=0) + 1
        token = new_token()
        now = time.time_ns()
        user, rows = new_user_rows(user_id, name, token, cash, False, now)
        accounts.add_user(user, Account(user_id=user_id, initial_cash=cash, cash=cash))
        for symbol, qty in shares:
            rows += _deposit_rows(accounts, user_seqs, user_id, symbol, qty, now)[1]
        write_offline(engine, rows)
    finally:
        engine.dispose()
    account = accounts.accounts[user_id]
    return {
        "user_id": user_id,
        "name": name,
        "token": token,
        "cash": str(cash),
        "deposited_value": money(account.deposited_value),
        "positions": _positions(accounts, user_id),
    }


def deposit(settings: Settings, name: str, symbol: str, qty_text: str) -> dict[str, Any]:
    """Deposit `qty` shares of `symbol` into the account of user `name`, straight into the
    ledger, valued at the symbol's previous close in the symbol table (with no server
    running no trade is known). Returns the fields of an account.deposited reply, with
    the name. Raises SystemExit when refused."""
    market = Market.from_settings(settings)
    try:
        qty = deposit_qty(market, symbol, qty_text)
    except RejectError as rej:
        raise SystemExit(f"{rej.code.value}: {rej.message}") from None
    engine = prepare(settings)
    try:
        accounts, user_seqs = load_accounts(engine, market)
        user_id = accounts.by_name.get(name)
        if user_id is None:
            raise SystemExit(f"no user named {name!r}")
        now = time.time_ns()
        done, rows = _deposit_rows(accounts, user_seqs, user_id, symbol, qty, now)
        write_offline(engine, rows)
    finally:
        engine.dispose()
    pos = accounts.position(user_id, symbol)
    held = position_view(pos, None, accounts.sellable(pos))
    return {"name": name, **deposit_view(done, now), "position": dict(held)}


def _deposit_rows(
    accounts: Accounts,
    user_seqs: dict[int, int],
    user_id: int,
    symbol: str,
    qty: Decimal,
    now: int,
) -> tuple[Deposit, list[Row]]:
    """A deposit at the symbol's previous close in the symbol table, and its ledger rows as
    the accountant writes them (deposits.DepositDesk)."""
    price = accounts.market.listed(symbol).prev_close
    done = accounts.deposit(user_id, symbol, qty, price)
    seq = user_seqs[user_id] = user_seqs.get(user_id, 0) + 1
    account = accounts.accounts[user_id]
    return done, [
        capital_row(user_id, done.epoch, now, done.value, symbol, qty, kind="deposit"),
        position_row(accounts.position(user_id, symbol)),
        account_row(account, now),
        operation_row(
            now,
            "account.deposited",
            user_id=user_id,
            seq=seq,
            symbol=symbol,
            qty=qty,
            price=price,
            cash=account.cash,
            detail=deposit_detail(done),
        ),
    ]


def _positions(accounts: Accounts, user_id: int) -> list[dict[str, Any]]:
    """Position views at cost: no price is known offline."""
    return [
        dict(position_view(p, None, accounts.sellable(p))) for p in accounts.user_positions(user_id)
    ]


def list_users(settings: Settings) -> list[dict[str, Any]]:
    engine = prepare(settings)
    try:
        with Session(engine) as session:
            rows = session.execute(
                select(UserRow, AccountRow).join(AccountRow, AccountRow.user_id == UserRow.id)
            )
            return [
                {
                    "user_id": u.id,
                    "name": u.name,
                    "is_admin": u.is_admin,
                    "initial_cash": str(a.initial_cash),
                    "deposited_value": str(a.deposited_value),
                    "cash": str(a.cash),
                    "equity": None,
                }
                for u, a in rows
            ]
    finally:
        engine.dispose()


def change_token(settings: Settings, name: str, action: str) -> dict[str, Any]:
    """Rotate (a new token) or revoke the token of user `name`. Raises SystemExit."""
    engine = prepare(settings)
    try:
        accounts, _ = load_accounts(engine, Market.from_settings(settings))
        user = next((u for u in accounts.users.values() if u.name == name), None)
        if user is None:
            raise SystemExit(f"no user named {name!r}")
        if action == "revoke" and user.is_admin:
            raise SystemExit("the admin token can be rotated, not revoked")
        result: dict[str, Any] = {"user_id": user.id, "name": name}
        if action == "rotate":
            result["token"] = new_token()
            user.token_hash = hash_token(result["token"])
        else:
            user.token_hash = revoked_hash()
        entry = operation_row(time.time_ns(), f"token.{action}d", detail=f"user {user.id} {name}")
        write_offline(engine, [user_row(user), entry])
    finally:
        engine.dispose()
    return result


def digest(settings: Settings) -> dict[str, Any]:
    """The state digest of the ledger, with the books a matcher would build from its open
    orders (docs/reliability.md)."""
    engine = prepare(settings)
    try:
        accounts, user_seqs = load_accounts(engine, Market.from_settings(settings))
    finally:
        engine.dispose()
    parts = ledger_parts(accounts, user_seqs)
    return summary({**parts, "books": book_part(books_from_orders(accounts))})
