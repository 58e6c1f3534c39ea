"""Reading the ledger: the state at start-up, and the answers to history queries.

The Projector actor (actors/accountant/projector.py) runs the queries, after it has written
the rows of every burst before them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from actors.accountant.accounts import (
    DEFAULT_STP,
    OPEN_STATUSES,
    Account,
    Accounts,
    Order,
    Position,
    User,
)
from actors.accountant.ledger import (
    AccountRow,
    CapitalRow,
    EquitySnapshotRow,
    FillRow,
    OperationRow,
    OrderRow,
    PositionRow,
    UserRow,
)
from actors.accountant.stats import summary
from actors.accountant.views import fill_view, operation_view, order_view
from actors.market.rules import Market
from actors.runtime.bus import Message
from protocol.errors import ErrorCode, error_body

log = logging.getLogger("accountant")

OPEN = tuple(sorted(OPEN_STATUSES))  # for SQL IN
MAX_CURVE_POINTS = 5000


def load_accounts(engine: Engine, market: Market) -> tuple[Accounts, dict[int, int]]:
    """Rebuild users, accounts, positions and open orders from the ledger."""
    accounts = Accounts(market)
    with Session(engine) as session:
        rows = {a.user_id: a for a in session.scalars(select(AccountRow))}
        for u in session.scalars(select(UserRow)):
            a = rows[u.id]
            accounts.add_user(
                User(u.id, u.name, u.token_hash, u.is_admin, u.ts_created),
                Account(
                    user_id=u.id,
                    initial_cash=a.initial_cash,
                    cash=a.cash,
                    reserved_cash=a.reserved_cash,
                    commission_paid=a.commission_paid,
                    tax_paid=a.tax_paid,
                    realized_pnl=a.realized_pnl,
                    bought_value=a.bought_value,
                    sold_value=a.sold_value,
                    epoch=a.epoch,
                    epoch_ts=a.epoch_ts,
                    deposited_value=a.deposited_value,
                ),
            )
        for p in session.scalars(select(PositionRow)):
            accounts.positions.setdefault(p.user_id, {})[p.symbol] = Position(
                p.user_id,
                p.symbol,
                p.qty,
                p.reserved_qty,
                p.cost_basis,
                p.realized_pnl,
                stored=True,
                locked_qty=p.locked_qty,
                locked_day=p.locked_day,
            )
        for o in session.scalars(select(OrderRow).where(OrderRow.status.in_(OPEN))):
            accounts.open_orders[o.id] = Order(
                id=o.id,
                user_id=o.user_id,
                client_order_id=o.client_order_id,
                symbol=o.symbol,
                side=o.side,
                qty=o.qty,
                price=o.price,
                ts_created=o.ts_created,
                ts_updated=o.ts_updated,
                status=o.status,
                filled_qty=o.filled_qty,
                filled_value=o.filled_value,
                commission=o.commission,
                tax=o.tax,
                reserved_cash=o.reserved_cash,
                order_type=o.type,
                time_in_force=o.time_in_force,
                limit_price=o.limit_price,
                stop_price=o.stop_price,
                trail_price=o.trail_price,
                trail_percent=o.trail_percent,
                triggered=o.triggered,
                replaces=o.replaces,
                trading_day=o.trading_day or "",
                queue_after=o.queue_after or 0,
                queue_ts=o.queue_ts or 0,
                post_only=o.post_only,
                stp=o.stp or DEFAULT_STP,
            )
        _derive_reservations(accounts)
        for user_id, coid, order_id in session.execute(
            select(OrderRow.user_id, OrderRow.client_order_id, OrderRow.id).where(
                OrderRow.client_order_id.is_not(None)
            )
        ):
            accounts.client_ids[(user_id, coid)] = order_id
        accounts.next_order_id = (session.scalar(select(func.max(OrderRow.id))) or 0) + 1
        accounts.next_fill_id = (session.scalar(select(func.max(FillRow.id))) or 0) + 1
        user_seqs = {
            user_id: seq
            for user_id, seq in session.execute(
                select(OperationRow.user_id, func.max(OperationRow.seq))
                .where(OperationRow.user_id.is_not(None))
                .group_by(OperationRow.user_id)
            )
        }
    return accounts, user_seqs


def latest_time(engine: Engine) -> int:
    """The time of the latest user's entry in the operation log: market time resumes from
    it (system entries, such as the users run.py creates, carry wall-clock time)."""
    with Session(engine) as session:
        query = select(func.max(OperationRow.ts_event)).where(OperationRow.user_id.is_not(None))
        return session.scalar(query) or 0


def _derive_reservations(accounts: Accounts) -> None:
    """Reserved cash and shares are what the open orders hold; the stored totals may also
    count an IOC/FOK order or a replacement that was in flight when the process stopped."""
    for account in accounts.accounts.values():
        account.reserved_cash = Decimal(0)
    for held in accounts.positions.values():
        for pos in held.values():
            pos.reserved_qty = Decimal(0)
    for order in accounts.open_orders.values():
        accounts.accounts[order.user_id].reserved_cash += order.reserved_cash
        if order.side == "sell":
            accounts.position(order.user_id, order.symbol).reserved_qty += order.leaves_qty


class Queries:
    """Order, fill, history and stats queries on committed ledger rows, each a reply body."""

    def __init__(self, max_page: int) -> None:
        self._max_page = max_page
        self.handlers: dict[str, Callable[[Session, Message], Message]] = {
            "order.get": self.get_order,
            "order.cancel_closed": self.cancel_closed,
            "orders.list": self.list_orders,
            "fills.list": self.list_fills,
            "history.list": self.list_history,
            "stats.get": self.get_stats,
        }

    def answer(self, session: Session, msg: Message) -> Message:
        try:
            return self.handlers[msg["type"]](session, msg)
        finally:
            session.rollback()  # end the read transaction: the next query sees new commits

    def _own_order(self, session: Session, msg: Message) -> OrderRow | None:
        row = session.get(OrderRow, msg["order_id"])
        return row if row is not None and row.user_id == msg["user_id"] else None

    def get_order(self, session: Session, msg: Message) -> Message:
        row = self._own_order(session, msg)
        if row is None:
            return dict(error_body(ErrorCode.REQUEST_UNKNOWN_ORDER, f"no order {msg['order_id']}"))
        return {"type": msg.get("as", "order"), "order": order_view(row)}

    def cancel_closed(self, session: Session, msg: Message) -> Message:
        row = self._own_order(session, msg)
        if row is None:
            return dict(error_body(ErrorCode.REQUEST_UNKNOWN_ORDER, f"no order {msg['order_id']}"))
        return dict(error_body(ErrorCode.REQUEST_ORDER_NOT_OPEN, f"order {row.id} is {row.status}"))

    def list_orders(self, session: Session, msg: Message) -> Message:
        query = select(OrderRow).where(OrderRow.user_id == msg["user_id"])
        if msg.get("status", "open") == "open":
            query = query.where(OrderRow.status.in_(OPEN))
        if msg.get("before_id") is not None:
            query = query.where(OrderRow.id < msg["before_id"])
        query = query.order_by(OrderRow.id.desc()).limit(min(msg.get("limit", 100), self._max_page))
        return {"type": "orders", "orders": [order_view(r) for r in session.scalars(query)]}

    def list_fills(self, session: Session, msg: Message) -> Message:
        query = select(FillRow).where(FillRow.user_id == msg["user_id"])
        if msg.get("before_id") is not None:
            query = query.where(FillRow.id < msg["before_id"])
        query = query.order_by(FillRow.id.desc()).limit(min(msg.get("limit", 100), self._max_page))
        return {"type": "fills", "fills": [fill_view(r) for r in session.scalars(query)]}

    def list_history(self, session: Session, msg: Message) -> Message:
        after = msg.get("after_seq", 0)
        limit = min(msg.get("limit", 100), self._max_page)
        rows = list(
            session.scalars(
                select(OperationRow)
                .where(OperationRow.user_id == msg["user_id"], OperationRow.seq > after)
                .order_by(OperationRow.seq)
                .limit(limit)
            )
        )
        entries = [operation_view(r) for r in rows]
        next_after = rows[-1].seq if len(rows) == limit else None
        return {"type": "history", "entries": entries, "next_after_seq": next_after}

    def get_stats(self, session: Session, msg: Message) -> Message:
        """Statistics of the account's epoch: since its creation, or its last reset."""
        user_id = msg["user_id"]
        account = msg["account"]
        epoch = account["epoch"]
        snapshots = list(
            session.execute(
                select(EquitySnapshotRow.ts_event, EquitySnapshotRow.cash, EquitySnapshotRow.equity)
                .where(EquitySnapshotRow.user_id == user_id, EquitySnapshotRow.epoch == epoch)
                .order_by(EquitySnapshotRow.id.desc())
                .limit(MAX_CURVE_POINTS)
            )
        )
        curve = [(ts, cash, equity) for ts, cash, equity in reversed(snapshots)]
        curve.append((msg["now"], Decimal(account["cash"]), Decimal(account["equity"])))
        sells = list(
            session.scalars(
                select(FillRow.realized_pnl).where(
                    FillRow.user_id == user_id, FillRow.side == "sell", FillRow.epoch == epoch
                )
            )
        )
        fills = (
            session.scalar(
                select(func.count())
                .select_from(FillRow)
                .where(FillRow.user_id == user_id, FillRow.epoch == epoch)
            )
            or 0
        )
        deposits = list(
            session.execute(
                select(CapitalRow.ts_event, CapitalRow.amount)
                .where(
                    CapitalRow.user_id == user_id,
                    CapitalRow.epoch == epoch,
                    CapitalRow.kind == "deposit",
                )
                .order_by(CapitalRow.id)
            )
        )
        body = summary(
            initial_cash=Decimal(account["initial_cash"]),
            deposits=[(ts, amount) for ts, amount in deposits],
            curve=curve,
            sell_pnls=sells,
            fills=fills,
            commission_paid=Decimal(account["commission_paid"]),
            tax_paid=Decimal(account["tax_paid"]),
            realized_pnl=Decimal(account["realized_pnl"]),
            unrealized_pnl=Decimal(account["unrealized_pnl"]),
        )
        body["epoch"] = epoch
        body["since"] = account["reset_at"]
        return {"type": "stats", "stats": body}
