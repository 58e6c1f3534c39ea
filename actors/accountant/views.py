"""Wire views of ledger objects: the order, fill, account and position maps clients receive.

Each function takes an in-memory object or a ledger row (they share field names) and
returns the documented map (protocol.messages), every decimal as a string.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from actors.accountant.accounts import DEFAULT_STP, Account, Order, Position, Reset, User, mark
from protocol.messages import AccountView, FillView, OrderView, PositionView
from protocol.values import average, iso_time, money, number, ratio


def order_view(o: Any) -> OrderView:
    """`o` is an Order or an OrderRow: the in-memory order calls its type `order_type`."""
    limit = _optional(o.limit_price)
    filled = o.filled_qty
    return {
        "id": o.id,
        "client_order_id": o.client_order_id,
        "symbol": o.symbol,
        "side": o.side,
        "type": o.order_type if hasattr(o, "order_type") else o.type,
        "time_in_force": o.time_in_force,
        "qty": number(o.qty),
        "limit_price": limit,
        "price": limit,
        "stop_price": _optional(o.stop_price),
        "trail_price": _optional(o.trail_price),
        "trail_percent": _optional(o.trail_percent),
        "price_bound": number(o.price),
        "triggered": o.triggered,
        "replaces": o.replaces,
        "replaced_by": o.replaced_by,
        "post_only": o.post_only,
        "stp": o.stp or DEFAULT_STP,  # a row from before stp: the default
        "status": o.status,
        "cancel_reason": o.cancel_reason,
        "filled_qty": number(filled),
        "avg_fill_price": average(o.filled_value, filled) if filled else None,
        "commission": money(o.commission),
        "tax": money(o.tax),
        "created_at": iso_time(o.ts_created),
        "updated_at": iso_time(o.ts_updated),
    }


def order_view_of_row(order: Order, row: tuple[Any, ...]) -> OrderView:
    """The same view as order_view, from the order's ledger row (rows.order_row), whose
    numbers are text already: an event costs one conversion of each, not two."""
    filled = order.filled_qty
    return {
        "id": row[0],
        "client_order_id": row[2],
        "symbol": row[3],
        "side": row[4],
        "type": row[5],
        "time_in_force": row[6],
        "qty": row[7],
        "limit_price": row[9],
        "price": row[9],
        "stop_price": row[10],
        "trail_price": row[11],
        "trail_percent": row[12],
        "price_bound": row[8],
        "triggered": row[13],
        "replaces": row[14],
        "replaced_by": row[15],
        "post_only": row[27],
        "stp": row[28],
        "status": row[17],
        "cancel_reason": row[29],
        "filled_qty": row[18],
        "avg_fill_price": average(order.filled_value, filled) if filled else None,
        "commission": money_text(row[20]),
        "tax": money_text(row[21]),
        "created_at": iso_time(row[23]),
        "updated_at": iso_time(row[24]),
    }


def fill_view_of_row(row: tuple[Any, ...]) -> FillView:
    """fill_view from the fill's ledger row (rows.fill_row)."""
    return {
        "id": row[0],
        "order_id": row[1],
        "symbol": row[3],
        "side": row[4],
        "qty": row[5],
        "price": row[6],
        "value": money_text(row[7]),
        "commission": money_text(row[8]),
        "tax": money_text(row[9]),
        "liquidity": row[12],
        "time": iso_time(row[11]),
        "epoch": row[13],
    }


def money_text(text: str) -> str:
    """money() of a decimal's text, without a Decimal when it is in cents already."""
    return text if text[-3:-2] == "." else money(Decimal(text))


def _optional(value: Decimal | None) -> str | None:
    return None if value is None else number(value)


def fill_view(f: Any) -> FillView:
    return {
        "id": f.id,
        "order_id": f.order_id,
        "symbol": f.symbol,
        "side": f.side,
        "qty": number(f.qty),
        "price": number(f.price),
        "value": money(f.value),
        "commission": money(f.commission),
        "tax": money(f.tax),
        "liquidity": f.liquidity,
        "time": iso_time(f.ts_event),
        "epoch": f.epoch,
    }


def position_view(p: Position, last: Decimal | None, sellable: Decimal) -> PositionView:
    value = mark(p, last)
    return {
        "symbol": p.symbol,
        "qty": number(p.qty),
        "available_qty": number(sellable),
        "avg_cost": number(p.avg_cost),
        "cost_basis": money(p.cost_basis),
        "last_price": None if last is None else number(last),
        "market_value": money(value),
        "unrealized_pnl": money(value - p.cost_basis),
        "realized_pnl": money(p.realized_pnl),
    }


def account_view(
    user: User, account: Account, market_value: Decimal, cost_basis: Decimal
) -> AccountView:
    equity = account.cash + market_value
    base = account.initial_cash + account.deposited_value  # the capital put in this epoch
    total_return = (equity / base - 1) if base else Decimal(0)
    return {
        "user_id": user.id,
        "name": user.name,
        "cash": money(account.cash),
        "reserved_cash": money(account.reserved_cash),
        "available_cash": money(account.available_cash),
        "market_value": money(market_value),
        "equity": money(equity),
        "initial_cash": money(account.initial_cash),
        "deposited_value": money(account.deposited_value),
        "commission_paid": money(account.commission_paid),
        "tax_paid": money(account.tax_paid),
        "realized_pnl": money(account.realized_pnl),
        "unrealized_pnl": money(market_value - cost_basis),
        "total_return": ratio(total_return),
        "epoch": account.epoch,
        "reset_at": iso_time(account.epoch_ts) if account.epoch else None,
    }


def reset_view(reset: Reset, canceled: list[int], now_ns: int) -> dict[str, Any]:
    """The `reset` map of an account.reset reply and event (docs/protocol.md 4.11)."""
    return {
        "user_id": reset.user_id,
        "epoch": reset.epoch,
        "time": iso_time(now_ns),
        "capital": money(reset.capital),
        "previous_cash": money(reset.previous_cash),
        "capital_change": money(reset.change),
        "canceled_orders": canceled,
        "written_off": [
            {"symbol": w.symbol, "qty": number(w.qty), "cost_basis": money(w.cost_basis)}
            for w in reset.written_off
        ],
    }


def deposit_view(deposit: Any, now_ns: int) -> dict[str, Any]:
    """What a share deposit (accounts.Deposit) did (docs/protocol.md 3.28): the
    account.deposited reply's fields, and the `deposit` map of its event."""
    return {
        "user_id": deposit.user_id,
        "symbol": deposit.symbol,
        "qty": number(deposit.qty),
        "price": number(deposit.price),
        "value": money(deposit.value),
        "time": iso_time(now_ns),
    }


def operation_view(row: Any) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "time": iso_time(row.ts_event),
        "kind": row.kind,
        "order_id": row.order_id,
        "symbol": row.symbol,
        "side": row.side,
        "qty": None if row.qty is None else number(row.qty),
        "price": None if row.price is None else number(row.price),
        "status": row.status,
        "cash": None if row.cash is None else money(row.cash),
        "detail": row.detail,
    }
