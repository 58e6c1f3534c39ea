"""Ledger rows as plain tuples in column order: what the journal records and the projector
writes into the query tables.

A row is `(table, values)`: `table` one of the ids below, `values` database-ready (decimals
as exact text, times as integer ns). Keyed tables (users, accounts, positions, orders)
get the whole current state of a row each time, so the last one for a key wins; the
others (fills, operations, snapshots) are appended.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from actors.accountant.accounts import Account, Fill, Order, Position, User
from actors.accountant.ledger import (
    AccountRow,
    Base,
    CapitalRow,
    EquitySnapshotRow,
    FillRow,
    OperationRow,
    OrderRow,
    PositionRow,
    UserRow,
)

Row = tuple[int, tuple[Any, ...]]

USERS, ACCOUNTS, POSITIONS, ORDERS, FILLS, OPERATIONS, SNAPSHOTS, CAPITAL = range(8)
MODELS: tuple[type[Base], ...] = (
    UserRow,
    AccountRow,
    PositionRow,
    OrderRow,
    FillRow,
    OperationRow,
    EquitySnapshotRow,
    CapitalRow,
)
KEYED = frozenset({USERS, ACCOUNTS, POSITIONS, ORDERS})
# Columns added at the end of a table's rows since the journal began, with the values a
# row journaled before them gets (the epoch columns of migration 0007, the orders' post_only,
# stp and cancel_reason of 0008): a journal left by an older version after a crash is
# projected with them.
ADDED: dict[int, tuple[Any, ...]] = {
    ACCOUNTS: (0, 0),
    ORDERS: (False, None, None),
    FILLS: (0,),
    SNAPSHOTS: (0,),
}

# An account row journaled before migration 0008d has no deposited_value: none then.
ADDED[ACCOUNTS] += ("0",)


def columns(table: int) -> tuple[str, ...]:
    """The columns a row of `table` fills, in order (a database-numbered id is left out)."""
    model_table = MODELS[table].__table__
    auto = model_table.autoincrement_column
    return tuple(c.key for c in model_table.columns if c is not auto)


def keys(table: int) -> tuple[int, ...]:
    """Positions of the primary key in a row of a keyed table."""
    names = columns(table)
    return tuple(names.index(c.key) for c in MODELS[table].__table__.primary_key.columns)


def widened(table: int, values: tuple[Any, ...]) -> tuple[Any, ...]:
    """A journaled row with the columns added since it was written (ADDED)."""
    added = ADDED.get(table)
    if added is None:
        return values
    missing = len(_BUILT[table]) - len(values)
    return values + added[len(added) - missing :] if missing > 0 else values


def text(value: Decimal | None) -> str | None:
    """A decimal as exact text, never in exponent form (0E-8 is stored as 0.00000000)."""
    if value is None:
        return None
    shown = str(value)
    return format(value, "f") if "E" in shown else shown


def user_row(user: User) -> Row:
    return USERS, (user.id, user.name, user.token_hash, user.is_admin, user.ts_created)


def account_row(a: Account, now_ns: int) -> Row:
    return ACCOUNTS, (
        a.user_id,
        text(a.initial_cash),
        text(a.cash),
        text(a.reserved_cash),
        text(a.commission_paid),
        text(a.tax_paid),
        text(a.realized_pnl),
        text(a.bought_value),
        text(a.sold_value),
        now_ns,
        a.epoch,
        a.epoch_ts,
        text(a.deposited_value),
    )


def position_row(p: Position) -> Row:
    return POSITIONS, (
        p.user_id,
        p.symbol,
        text(p.qty),
        text(p.reserved_qty),
        text(p.cost_basis),
        text(p.realized_pnl),
        text(p.locked_qty),
        p.locked_day,
    )


def order_row(o: Order) -> Row:
    return ORDERS, (
        o.id,
        o.user_id,
        o.client_order_id,
        o.symbol,
        o.side,
        o.order_type,
        o.time_in_force,
        text(o.qty),
        text(o.price),
        text(o.limit_price),
        text(o.stop_price),
        text(o.trail_price),
        text(o.trail_percent),
        o.triggered,
        o.replaces,
        o.replaced_by,
        o.trading_day or None,
        o.status,
        text(o.filled_qty),
        text(o.filled_value),
        text(o.commission),
        text(o.tax),
        text(o.reserved_cash),
        o.ts_created,
        o.ts_updated,
        o.queue_after or None,
        o.queue_ts,
        o.post_only,
        o.stp,
        o.cancel_reason,
    )


def fill_row(f: Fill) -> Row:
    return FILLS, (
        f.id,
        f.order_id,
        f.user_id,
        f.symbol,
        f.side,
        text(f.qty),
        text(f.price),
        text(f.value),
        text(f.commission),
        text(f.tax),
        text(f.realized_pnl),
        f.ts_event,
        f.liquidity,
        f.epoch,
    )


def operation_row(
    ts_event: int,
    kind: str,
    *,
    user_id: int | None = None,
    seq: int = 0,
    order_id: int | None = None,
    symbol: str | None = None,
    side: str | None = None,
    qty: Decimal | None = None,
    price: Decimal | None = None,
    status: str | None = None,
    cash: Decimal | None = None,
    detail: str | None = None,
) -> Row:
    """An operation-log entry; system entries have no user and seq 0."""
    return OPERATIONS, (
        user_id,
        seq,
        ts_event,
        kind,
        order_id,
        symbol,
        side,
        text(qty),
        text(price),
        status,
        text(cash),
        detail,
    )


def snapshot_row(
    user_id: int, ts_event: int, cash: Decimal, market_value: Decimal, reason: str, epoch: int
) -> Row:
    return SNAPSHOTS, (
        user_id,
        ts_event,
        text(cash),
        text(market_value),
        text(cash + market_value),
        reason,
        epoch,
    )


def capital_row(
    user_id: int,
    epoch: int,
    ts_event: int,
    amount: Decimal,
    symbol: str | None = None,
    qty: Decimal | None = None,
    kind: str | None = None,
) -> Row:
    """A capital entry (cash put in, or taken out if negative), or with `symbol` and
    `qty` a write-off of shares that had cost `amount`, or (kind "deposit") shares put in
    worth `amount` (ledger.CapitalRow)."""
    if kind is None:
        kind = "capital" if symbol is None else "write_off"
    return CAPITAL, (user_id, epoch, ts_event, kind, text(amount), symbol, text(qty))


# The builders above write each table's columns in the order columns() gives: checked once
# here, so a column added to a table without its builder fails at import, not in a query.
_BUILT = {
    USERS: ("id", "name", "token_hash", "is_admin", "ts_created"),
    ACCOUNTS: (
        "user_id",
        "initial_cash",
        "cash",
        "reserved_cash",
        "commission_paid",
        "tax_paid",
        "realized_pnl",
        "bought_value",
        "sold_value",
        "ts_updated",
        "epoch",
        "epoch_ts",
        "deposited_value",
    ),
    POSITIONS: (
        "user_id",
        "symbol",
        "qty",
        "reserved_qty",
        "cost_basis",
        "realized_pnl",
        "locked_qty",
        "locked_day",
    ),
    ORDERS: (
        "id",
        "user_id",
        "client_order_id",
        "symbol",
        "side",
        "type",
        "time_in_force",
        "qty",
        "price",
        "limit_price",
        "stop_price",
        "trail_price",
        "trail_percent",
        "triggered",
        "replaces",
        "replaced_by",
        "trading_day",
        "status",
        "filled_qty",
        "filled_value",
        "commission",
        "tax",
        "reserved_cash",
        "ts_created",
        "ts_updated",
        "queue_after",
        "queue_ts",
        "post_only",
        "stp",
        "cancel_reason",
    ),
    FILLS: (
        "id",
        "order_id",
        "user_id",
        "symbol",
        "side",
        "qty",
        "price",
        "value",
        "commission",
        "tax",
        "realized_pnl",
        "ts_event",
        "liquidity",
        "epoch",
    ),
    OPERATIONS: (
        "user_id",
        "seq",
        "ts_event",
        "kind",
        "order_id",
        "symbol",
        "side",
        "qty",
        "price",
        "status",
        "cash",
        "detail",
    ),
    SNAPSHOTS: ("user_id", "ts_event", "cash", "market_value", "equity", "reason", "epoch"),
    CAPITAL: ("user_id", "epoch", "ts_event", "kind", "amount", "symbol", "qty"),
}
for _table, _names in _BUILT.items():
    if columns(_table) != _names:
        raise RuntimeError(f"rows.py writes {_names}, the table has {columns(_table)}")
