"""The ledger: tables, the database engine, and the batched Ledger writer actor.

Only the accountant process opens the ledger (and run.py before the processes start,
to migrate and seed it). The Ledger actor owns the writing session: each batch of work
becomes one transaction (group commit), and the messages that acknowledge that work are
released to the bus only after the commit, so an acknowledged order is a durable order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ClassVar

import pykka
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
    and_,
    bindparam,
    create_engine,
    event,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator

from actors.runtime import process

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


class EquitySnapshotRow(Base):
    __tablename__ = "equity_snapshots"
    __table_args__ = (Index("ix_snapshots_user_ts", "user_id", "ts_event"),)
    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    ts_event: Mapped[TsNs]
    cash: Mapped[Amount]
    market_value: Mapped[Amount]
    equity: Mapped[Amount]
    reason: Mapped[str] = mapped_column(String(16))  # interval | session_close


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


# THE WRITER -----------------------------------------------------------------------------

Outbound = tuple[str, str | None, dict[str, Any]]  # (peer, topic, message) for Bus.send_many


@dataclass
class Work:
    """Rows to write and what to release once they are committed, in order."""

    inserts: list[tuple[type[Base], dict[str, Any]]] = field(default_factory=list)
    updates: list[tuple[type[Base], dict[str, Any]]] = field(default_factory=list)
    outbound: list[Outbound] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)  # run after commit, in order

    def __bool__(self) -> bool:
        return bool(self.inserts or self.updates or self.outbound or self.after)


class _Flush:
    """Sent by the Ledger to itself: write everything received before it."""


@dataclass(frozen=True)
class _TableWriter:
    """Core statements for one table, built once: bulk insert, and bulk update by key."""

    keys: tuple[str, ...]  # primary key columns
    generated_key: bool  # the database numbers the rows (operations, snapshots)
    insert: Any
    update: Any

    @classmethod
    def of(cls, model: type[Base]) -> _TableWriter:
        table = model.__table__
        keys = tuple(c.key for c in table.primary_key.columns)
        where = and_(*(table.c[k] == bindparam(f"key_{k}") for k in keys))
        return cls(
            keys,
            bool(table.autoincrement_column is not None),
            table.insert(),
            table.update().where(where),
        )

    def key(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row[k] for k in self.keys)

    def update_params(self, row: dict[str, Any]) -> dict[str, Any]:
        params = {k: v for k, v in row.items() if k not in self.keys}
        params.update({f"key_{k}": row[k] for k in self.keys})
        return params


_WRITERS: dict[type[Base], _TableWriter] = {}


def _writer(model: type[Base]) -> _TableWriter:
    writer = _WRITERS.get(model)
    if writer is None:
        writer = _WRITERS[model] = _TableWriter.of(model)
    return writer


def write_batch(session: Session, works: Iterable[Work]) -> None:
    """Write the rows of several Work items in one transaction; updates coalesce by key.

    Rows are full-state dicts, so for one key the last update wins, and an update of a row
    inserted in the same batch folds into the insert. Core executemany, not the ORM's unit
    of work: this is the accountant's hottest path.
    """
    inserts: dict[type[Base], dict[Any, dict[str, Any]]] = {}
    updates: dict[type[Base], dict[tuple[Any, ...], dict[str, Any]]] = {}
    serial = 0
    for work in works:
        for model, row in work.inserts:
            writer = _writer(model)
            serial += 1
            inserts.setdefault(model, {})[serial if writer.generated_key else writer.key(row)] = row
        for model, row in work.updates:
            key = _writer(model).key(row)
            pending = inserts.get(model, {}).get(key)
            if pending is not None:
                pending.update(row)
            else:
                updates.setdefault(model, {})[key] = row
    connection = session.connection()
    for table in Base.metadata.sorted_tables:
        model = _MODEL_BY_TABLE[table.name]
        writer = _writer(model)
        if model in inserts:
            connection.execute(writer.insert, list(inserts[model].values()))
        if model in updates:
            rows = [writer.update_params(row) for row in updates[model].values()]
            connection.execute(writer.update, rows)


_MODEL_BY_TABLE: dict[str, type[Base]] = {
    m.__tablename__: m
    for m in (UserRow, AccountRow, PositionRow, OrderRow, FillRow, OperationRow, EquitySnapshotRow)
}


class Ledger(pykka.ThreadingActor):
    """Batched writer: one transaction per burst of Work, then releases its messages.

    Work sent while a commit is running queues in the inbox; the next _Flush takes all of
    it, so the transaction size grows with load (group commit).
    """

    def __init__(self, engine: Engine, send_many: Callable[[list[Outbound]], None]) -> None:
        super().__init__()
        self._engine = engine
        self._send_many = send_many
        self._pending: list[Work] = []
        self._session: Session | None = None

    def on_start(self) -> None:
        self._session = Session(self._engine, expire_on_commit=False)

    def on_stop(self) -> None:
        self._flush()
        if self._session is not None:
            self._session.close()

    def on_failure(self, *_exc: object) -> None:
        process.die("ledger writer failed")

    def on_receive(self, message: Any) -> None:
        if isinstance(message, Work):
            if not self._pending:
                self.actor_ref.tell(_Flush())
            self._pending.append(message)
        elif isinstance(message, _Flush):
            self._flush()

    def _flush(self) -> None:
        works, self._pending = self._pending, []
        if not works:
            return
        session = self._session
        assert session is not None
        if any(w.inserts or w.updates for w in works):
            with session.begin():
                write_batch(session, works)
        outbound: list[Outbound] = []
        for work in works:
            outbound.extend(work.outbound)
        self._send_many(outbound)
        for work in works:
            for callback in work.after:
                callback()
