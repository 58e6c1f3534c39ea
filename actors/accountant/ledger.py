"""The ledger's tables, its database engine and its migrations.

Only the accountant process writes the ledger (and run.py before the processes start,
to migrate and seed it). Its durable record is the journal (actors/accountant/journal.py);
these tables are the projections of it that queries read.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Dialect,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)


class ExactDecimal(TypeDecorator[Decimal]):
    """A Decimal stored exactly as decimal text, on every database.

    SQLite has no exact numeric type, and NUMERIC(p, s) on PostgreSQL would pad every
    value to its scale ("8.50" back as "8.500000000000"); text keeps value and precision.
    Sums are done in Python, never in SQL.
    """

    impl = String(48)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"ledger amounts must be Decimal, got {type(value).__name__}")
        return format(value, "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


Amount = Annotated[Decimal, "amount"]
TsNs = Annotated[int, "ts_ns"]


# Row ids the database numbers: 64-bit, but SQLite autoincrements only INTEGER PRIMARY KEY.
SERIAL = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        Amount: ExactDecimal(),
        TsNs: BigInteger(),
        int: BigInteger(),
    }


class UserRow(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean)
    ts_created: Mapped[TsNs]


class AccountRow(Base):
    __tablename__ = "accounts"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    initial_cash: Mapped[Amount]
    cash: Mapped[Amount]
    reserved_cash: Mapped[Amount]
    commission_paid: Mapped[Amount]
    tax_paid: Mapped[Amount]
    realized_pnl: Mapped[Amount]
    bought_value: Mapped[Amount]
    sold_value: Mapped[Amount]
    ts_updated: Mapped[TsNs]
    # the account's epoch: 0 from its creation, one more at each reset (docs/protocol.md
    # 3.26); the counters above and the statistics count from its start, `epoch_ts`
    epoch: Mapped[int] = mapped_column(server_default="0")
    epoch_ts: Mapped[TsNs] = mapped_column(server_default="0")
    # the value of the shares deposited in the epoch (its `deposit` capital entries):
    # returns are measured against initial_cash + deposited_value
    deposited_value: Mapped[Amount] = mapped_column(server_default="0")


class PositionRow(Base):
    __tablename__ = "positions"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    qty: Mapped[Amount]
    reserved_qty: Mapped[Amount]
    cost_basis: Mapped[Amount]
    realized_pnl: Mapped[Amount]
    locked_qty: Mapped[Amount] = mapped_column(server_default="0")  # T+1: bought on locked_day
    locked_day: Mapped[str | None] = mapped_column(String(10))


class OrderRow(Base):
    """Current state of each order; its history is in `operations`."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("user_id", "client_order_id"),
        Index("ix_orders_user_status", "user_id", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    client_order_id: Mapped[str | None] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    type: Mapped[str] = mapped_column(String(16))
    time_in_force: Mapped[str] = mapped_column(String(3), server_default="gtc")
    qty: Mapped[Amount]
    price: Mapped[Amount]  # the bound: its limit, or a market or stop order's protection price
    limit_price: Mapped[Amount | None]
    stop_price: Mapped[Amount | None]
    trail_price: Mapped[Amount | None]
    trail_percent: Mapped[Amount | None]
    triggered: Mapped[bool] = mapped_column(Boolean, server_default=false())
    replaces: Mapped[int | None]
    replaced_by: Mapped[int | None]
    trading_day: Mapped[str | None] = mapped_column(String(10))  # a DAY order ends with it
    status: Mapped[str] = mapped_column(String(20))
    filled_qty: Mapped[Amount]
    filled_value: Mapped[Amount]
    commission: Mapped[Amount]
    tax: Mapped[Amount]
    reserved_cash: Mapped[Amount]
    ts_created: Mapped[TsNs]
    ts_updated: Mapped[TsNs]
    # its place in its price level (Order.queue_key): set when a stop triggered or a
    # replacement kept the place of the order it replaced; else the id is the place
    queue_after: Mapped[int | None]
    queue_ts: Mapped[TsNs] = mapped_column(server_default="0")
    # refused rather than take liquidity; self-trade prevention (None: cancel_newest, the
    # default, as for every order placed before it could be chosen); why the matcher
    # canceled it (None: its owner did, or it did not end canceled)
    post_only: Mapped[bool] = mapped_column(Boolean, server_default=false())
    stp: Mapped[str | None] = mapped_column(String(16))
    cancel_reason: Mapped[str | None] = mapped_column(String(16))


class FillRow(Base):
    __tablename__ = "fills"
    __table_args__ = (Index("ix_fills_user", "user_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    qty: Mapped[Amount]
    price: Mapped[Amount]
    value: Mapped[Amount]
    commission: Mapped[Amount]
    tax: Mapped[Amount]
    realized_pnl: Mapped[Amount]
    ts_event: Mapped[TsNs]
    liquidity: Mapped[str] = mapped_column(String(5), server_default="taker")  # or maker
    epoch: Mapped[int] = mapped_column(server_default="0")  # the account's, when it filled


class OperationRow(Base):
    """The operation log: every order state change, fill, cancel, user and control change.

    `seq` counts per user from 1 (0 for system entries, whose user_id is NULL), the same
    number the user's private event carries.
    """

    __tablename__ = "operations"
    __table_args__ = (Index("ix_operations_user_seq", "user_id", "seq"),)
    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    seq: Mapped[int]
    ts_event: Mapped[TsNs]
    kind: Mapped[str] = mapped_column(String(32))
    order_id: Mapped[int | None]
    symbol: Mapped[str | None] = mapped_column(String(32))
    side: Mapped[str | None] = mapped_column(String(4))
    qty: Mapped[Amount | None]
    price: Mapped[Amount | None]
    status: Mapped[str | None] = mapped_column(String(20))
    cash: Mapped[Amount | None]  # account cash after the operation
    detail: Mapped[str | None] = mapped_column(Text)


class LedgerState(Base):
    """One row: the last journal entry the tables above hold (actors/accountant/journal.py)."""

    __tablename__ = "ledger_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    projected_seq: Mapped[int]


class EquitySnapshotRow(Base):
    __tablename__ = "equity_snapshots"
    __table_args__ = (Index("ix_snapshots_user_ts", "user_id", "ts_event"),)
    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    ts_event: Mapped[TsNs]
    cash: Mapped[Amount]
    market_value: Mapped[Amount]
    equity: Mapped[Amount]
    reason: Mapped[str] = mapped_column(String(16))  # interval | session_close | reset
    epoch: Mapped[int] = mapped_column(server_default="0")  # the account's


class CapitalRow(Base):
    """What was put into an account and taken out of it, and the shares written off.

    `capital` entries: the starting cash when the user is created, and at each reset the
    change of cash to the new capital (positive: put in, negative: taken out). Their sum
    is the capital put in over the account's life: cash + fees + bought - sold equals it.
    `write_off` entries: a reset removed `qty` shares of `symbol` that had cost `amount`.
    `deposit` entries: the admin put `qty` shares of `symbol` into the account, worth
    `amount` then (their cost basis); the cash does not change, so they are not in the sum
    above: a position holds bought - sold - written off + deposited.
    """

    __tablename__ = "capital"
    __table_args__ = (Index("ix_capital_user", "user_id", "id"),)
    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # the epoch that starts with it: 0 at creation, N at the Nth reset; a deposit's: the
    # epoch it was made in
    epoch: Mapped[int]
    ts_event: Mapped[TsNs]
    kind: Mapped[str] = mapped_column(String(16))  # capital | write_off | deposit
    amount: Mapped[Amount]
    symbol: Mapped[str | None] = mapped_column(String(32))
    qty: Mapped[Amount | None]


# ENGINE AND MIGRATIONS ------------------------------------------------------------------


def make_engine(url: str, synchronous: str = "FULL") -> Engine:
    """An engine; for SQLite, WAL journal so readers never block the writer."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (actors/accountant/migrations, Alembic)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
