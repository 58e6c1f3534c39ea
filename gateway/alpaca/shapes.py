"""Our replies in Alpaca's shapes (Trading API v2), as pure functions of our views.

alpaca-py validates each answer with pydantic: every field it requires is here, money
and quantities are decimal strings, times RFC 3339, enums in Alpaca's spelling. What we
do not have is given as Alpaca gives it for a cash account (margin "0", no shorting,
no day-trade count). docs/alpaca.md lists every field and where it comes from.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from gateway.alpaca.ids import account_uuid, asset_uuid, order_uuid
from protocol.values import number

CURRENCY = {"cn_a": "CNY", "us_equity": "USD", "crypto": "USD"}
_ASSET_CLASS = {"crypto": "crypto"}  # Alpaca has no class for A-shares: us_equity's rules
_EXCHANGE = {"crypto": "CRYPTO"}  # else "", which Alpaca's enum allows: we list no venue
_CLOSED_AT = {
    "filled": "filled_at",
    "canceled": "canceled_at",
    "expired": "expired_at",
    "replaced": "replaced_at",
    "rejected": "failed_at",
}
JSON = dict[str, Any]


def asset_class(profile: str) -> str:
    return _ASSET_CLASS.get(profile, "us_equity")


def account_number(user_id: int) -> str:
    return f"PA{user_id:010d}"


def order(view: JSON, symbol_profile: str = "us_equity", notional: str | None = None) -> JSON:
    """An Alpaca order from our order view."""
    filled = Decimal(view["filled_qty"])
    status = view["status"]
    times: JSON = dict.fromkeys(_CLOSED_AT.values())
    if status in _CLOSED_AT:
        times[_CLOSED_AT[status]] = view["updated_at"]
    return {
        "id": order_uuid(view["id"]),
        "client_order_id": view["client_order_id"] or order_uuid(view["id"]),
        "created_at": view["created_at"],
        "updated_at": view["updated_at"],
        "submitted_at": view["created_at"],
        **times,
        "expires_at": None,
        "replaced_by": order_uuid(view["replaced_by"]) if view.get("replaced_by") else None,
        "replaces": order_uuid(view["replaces"]) if view.get("replaces") else None,
        "asset_id": asset_uuid(view["symbol"]),
        "symbol": view["symbol"],
        "asset_class": asset_class(symbol_profile),
        "notional": notional,
        "qty": None if notional is not None and not filled else view["qty"],
        "filled_qty": view["filled_qty"],
        "filled_avg_price": view["avg_fill_price"],
        "order_class": "simple",
        "order_type": view["type"],
        "type": view["type"],
        "side": view["side"],
        "position_intent": "buy_to_open" if view["side"] == "buy" else "sell_to_close",
        "time_in_force": view["time_in_force"],
        "limit_price": view["limit_price"],
        "stop_price": view["stop_price"],
        "status": status,
        "extended_hours": False,
        "legs": None,
        "trail_percent": view["trail_percent"],
        "trail_price": view["trail_price"],
        "hwm": None,
        "subtag": None,
        "source": None,
    }


def _ratio(part: Decimal, whole: Decimal) -> str:
    """part / whole to 10 places, without trailing zeros ("0.1", not "0.1000000000")."""
    return number((part / whole).quantize(Decimal("1E-10")).normalize()) if whole else "0"


def position(view: JSON, symbol: JSON) -> JSON:
    """An Alpaca position from our position view and the symbol's row of symbols.list."""
    qty = Decimal(view["qty"])
    cost = Decimal(view["cost_basis"])
    unrealized = Decimal(view["unrealized_pnl"])
    last = view["last_price"] or symbol["prev_close"]
    lastday = Decimal(symbol["prev_close"])
    intraday = (Decimal(last) - lastday) * qty
    profile = symbol["profile"]
    return {
        "asset_id": asset_uuid(view["symbol"]),
        "symbol": view["symbol"],
        "exchange": _EXCHANGE.get(profile, ""),
        "asset_class": asset_class(profile),
        "asset_marginable": False,
        "avg_entry_price": view["avg_cost"],
        "qty": view["qty"],
        "qty_available": view["available_qty"],
        "side": "long",
        "market_value": view["market_value"],
        "cost_basis": view["cost_basis"],
        "unrealized_pl": view["unrealized_pnl"],
        "unrealized_plpc": _ratio(unrealized, cost),
        "unrealized_intraday_pl": number(intraday),
        "unrealized_intraday_plpc": _ratio(intraday, lastday * qty),
        "current_price": last,
        "lastday_price": symbol["prev_close"],
        "change_today": _ratio(Decimal(last) - lastday, lastday),
    }


def account(view: JSON, profile: str, last_equity: str, created_at: str | None) -> JSON:
    """An Alpaca account from our account view: a cash account, so buying power is the
    cash not held for open orders and there is no margin."""
    available = view["available_cash"]
    return {
        "id": account_uuid(view["user_id"]),
        "account_number": account_number(view["user_id"]),
        "status": "ACTIVE",
        "crypto_status": "ACTIVE",
        "currency": CURRENCY[profile],
        "buying_power": available,
        "regt_buying_power": available,
        "daytrading_buying_power": "0",
        "effective_buying_power": available,
        "non_marginable_buying_power": available,
        "options_buying_power": "0",
        "bod_dtbp": "0",
        "cash": view["cash"],
        "accrued_fees": "0",
        "pending_transfer_in": "0",
        "pending_transfer_out": "0",
        "portfolio_value": view["equity"],
        "pattern_day_trader": False,
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "created_at": created_at,
        "trade_suspended_by_user": False,
        "multiplier": "1",
        "shorting_enabled": False,
        "equity": view["equity"],
        "last_equity": last_equity,
        "long_market_value": view["market_value"],
        "short_market_value": "0",
        "position_market_value": view["market_value"],
        "initial_margin": "0",
        "maintenance_margin": "0",
        "last_maintenance_margin": "0",
        "sma": "0",
        "daytrade_count": 0,
        "balance_asof": None,
        "crypto_tier": 0,
        "options_approved_level": 0,
        "options_trading_level": 0,
        "intraday_adjustments": "0",
        "pending_reg_taf_fees": "0",
    }


def asset(symbol: JSON) -> JSON:
    """An Alpaca asset from a row of symbols.list."""
    profile = symbol["profile"]
    step = Decimal(str(symbol["qty_step"]))
    return {
        "id": asset_uuid(symbol["symbol"]),
        "class": asset_class(profile),
        "exchange": _EXCHANGE.get(profile, ""),
        "symbol": symbol["symbol"],
        "name": symbol["name"],
        "status": "active",
        "tradable": True,
        "marginable": False,
        "shortable": False,
        "easy_to_borrow": False,
        "fractionable": step < 1,
        "min_order_size": str(symbol["lot_size"]),
        "min_trade_increment": str(symbol["qty_step"]),
        "price_increment": symbol["tick_size"],
        "maintenance_margin_requirement": 100,
        "attributes": [],
    }


def fill_activity(fill: JSON, user_id: int, order_view: JSON | None) -> JSON:
    """A `FILL` activity from one of our fills (and its order, for cum_qty and status)."""
    cum = order_view["filled_qty"] if order_view else fill["qty"]
    leaves = Decimal(order_view["qty"]) - Decimal(cum) if order_view else Decimal(0)
    done = order_view is None or order_view["status"] == "filled"
    return {
        "id": f"{fill['time'].replace('-', '').replace(':', '')[:15]}::{fill['id']}",
        "account_id": account_uuid(user_id),
        "activity_type": "FILL",
        "transaction_time": fill["time"],
        "type": "fill" if done else "partial_fill",
        "price": fill["price"],
        "qty": fill["qty"],
        "side": fill["side"],
        "symbol": fill["symbol"],
        "leaves_qty": number(leaves),
        "order_id": order_uuid(fill["order_id"]),
        "cum_qty": cum,
        "order_status": order_view["status"] if order_view else "filled",
    }
