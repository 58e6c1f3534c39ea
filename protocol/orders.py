"""Order types, time in force and the price fields each type takes: checks that need no state.

Both gateways run these on every new order and replacement before it leaves for the
accountant, which then checks what needs the market (symbol, tick, lot, funds).

| type          | needs                         | time in force      |
|---------------|-------------------------------|--------------------|
| market        | -                             | day, gtc, ioc, fok |
| limit         | limit_price                   | day, gtc, ioc, fok |
| stop          | stop_price                    | day, gtc           |
| stop_limit    | stop_price, limit_price       | day, gtc           |
| trailing_stop | trail_price or trail_percent  | day, gtc           |

A field the type does not take is refused, never ignored. `post_only` (rest or nothing)
is for limit orders that may rest: time in force day or gtc. `stp` (self-trade
prevention) goes with every order.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from protocol.errors import ErrorCode, RejectError
from protocol.values import number, parse_decimal

PRICE_FIELDS = ("limit_price", "stop_price", "trail_price", "trail_percent")
STOP_FIELDS = ("stop_price", "trail_price", "trail_percent")
NEEDS: dict[str, tuple[str, ...]] = {
    "market": (),
    "limit": ("limit_price",),
    "stop": ("stop_price",),
    "stop_limit": ("stop_price", "limit_price"),
    "trailing_stop": (),  # one of trail_price, trail_percent
}
TAKES: dict[str, frozenset[str]] = {
    **{kind: frozenset(fields) for kind, fields in NEEDS.items()},
    "trailing_stop": frozenset({"trail_price", "trail_percent"}),
}
IMMEDIATE = frozenset({"ioc", "fok"})  # never rest
RESTING = frozenset({"day", "gtc"})
STOP_TYPES = frozenset({"stop", "stop_limit", "trailing_stop"})
MAX_TRAIL_PERCENT = Decimal(100)


def order_command(fields: dict[str, Any]) -> dict[str, Any]:
    """The internal `order.new` fields from a validated request: `price` folded into
    `limit_price`, numbers as canonical decimal strings, fields that fit the type.

    Raises:
        RejectError: REQUEST_INVALID (price and limit_price both given), REQUEST_INVALID_QTY,
            REQUEST_INVALID_PRICE, REQUEST_INVALID_TRAIL, REQUEST_FIELD_REQUIRED,
            REQUEST_FIELD_NOT_ALLOWED or REQUEST_TIF_NOT_ALLOWED.
    """
    command = _canonical_fields(fields)
    check_fits_type(command["order_type"], command["time_in_force"], command)
    return command


def replace_command(fields: dict[str, Any]) -> dict[str, Any]:
    """The internal `order.replace` fields: like order_command, but only what changes.

    Raises:
        RejectError: as order_command, and REQUEST_NOTHING_TO_REPLACE.
    """
    command = _canonical_fields(fields)
    if all(command.get(f) is None for f in ("qty", "time_in_force", *PRICE_FIELDS)):
        raise RejectError(
            ErrorCode.REQUEST_NOTHING_TO_REPLACE,
            "give at least one of qty, time_in_force, limit_price, stop_price, trail_price, "
            "trail_percent",
        )
    return command


def check_fits_type(order_type: str, time_in_force: str, fields: dict[str, Any]) -> None:
    """Raise unless the price fields, time in force and post_only are ones `order_type`
    takes."""
    for field in NEEDS[order_type]:
        if fields.get(field) is None:
            raise RejectError(ErrorCode.REQUEST_FIELD_REQUIRED, f"{order_type} needs {field}")
    for field in PRICE_FIELDS:
        if fields.get(field) is not None and field not in TAKES[order_type]:
            raise RejectError(
                ErrorCode.REQUEST_FIELD_NOT_ALLOWED, f"{field} is not allowed on a {order_type}"
            )
    if order_type == "trailing_stop":
        given = [f for f in ("trail_price", "trail_percent") if fields.get(f) is not None]
        if len(given) != 1:
            raise RejectError(
                ErrorCode.REQUEST_FIELD_REQUIRED,
                "trailing_stop needs exactly one of trail_price and trail_percent",
            )
    if time_in_force in IMMEDIATE and order_type in STOP_TYPES:
        raise RejectError(
            ErrorCode.REQUEST_TIF_NOT_ALLOWED,
            f"{time_in_force} is for market and limit orders; a {order_type} takes day or gtc",
        )
    if fields.get("post_only") and order_type != "limit":
        raise RejectError(
            ErrorCode.REQUEST_FIELD_NOT_ALLOWED,
            f"post_only is for limit orders that rest, not a {order_type}",
        )
    if fields.get("post_only") and time_in_force not in RESTING:
        raise RejectError(
            ErrorCode.REQUEST_FIELD_NOT_ALLOWED,
            f"post_only is for limit orders that rest (day or gtc), not {time_in_force}",
        )


def _canonical_fields(fields: dict[str, Any]) -> dict[str, Any]:
    command = dict(fields)
    alias = command.pop("price", None)
    if alias is not None:
        if command.get("limit_price") is not None:
            raise RejectError(
                ErrorCode.REQUEST_INVALID, "give limit_price or its alias price, not both"
            )
        command["limit_price"] = alias
    if command.get("qty") is not None:
        command["qty"] = _canonical(command["qty"], "qty", ErrorCode.REQUEST_INVALID_QTY)
    for field in ("limit_price", "stop_price", "trail_price"):
        if command.get(field) is not None:
            command[field] = _canonical(command[field], field, ErrorCode.REQUEST_INVALID_PRICE)
    if command.get("trail_percent") is not None:
        percent = parse_decimal(
            command["trail_percent"], "trail_percent", ErrorCode.REQUEST_INVALID_TRAIL
        )
        if not 0 < percent < MAX_TRAIL_PERCENT:
            raise RejectError(
                ErrorCode.REQUEST_INVALID_TRAIL,
                f"trail_percent must be above 0 and below 100, got {number(percent)}",
            )
        command["trail_percent"] = number(percent)
    return command


def _canonical(value: Any, field: str, code: ErrorCode) -> str:
    return number(parse_decimal(value, field, code))
