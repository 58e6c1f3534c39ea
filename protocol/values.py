"""Exact decimals on the wire: parse untrusted numbers and format money as strings.

Prices, quantities and money travel as decimal strings (or integers) and live as
`Decimal` in memory; binary floats are accepted from clients only as input and are
converted through their shortest repr, so 10.1 means Decimal("10.1").
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from protocol.errors import ErrorCode, RejectError

# ASCII digits only: Python's \d, int() and Decimal() take any script's digits ("١٠٠" == 100)
_DECIMAL_TEXT = re.compile(r"[+-]?[0-9]{1,20}(\.[0-9]{1,20})?")
_ASCII_SPACE = " \t\r\n"
CENT = Decimal("0.01")
MONEY_PLACES = Decimal("0.00000001")  # the finest cash unit of any profile (crypto)
AVERAGE_PLACES = Decimal("0.0001")  # average prices and costs
RATIO_PLACES = Decimal("0.000001")  # returns, drawdowns, win rates


def parse_decimal(value: Any, field: str, code: ErrorCode) -> Decimal:
    """A finite decimal from an int, a float or a plain decimal string (no exponent, 20.20 digits).

    Raises:
        RejectError: with `code` when the value is not such a number.
    """
    if isinstance(value, bool):
        raise RejectError(code, f"{field} must be a number, got a boolean")
    if isinstance(value, int):
        if abs(value) >= 10**20:
            raise RejectError(code, f"{field} is out of range")
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RejectError(code, f"{field} must be finite, got {value!r}")
        # repr is the shortest text that round-trips; exponents mean out of range here
        return parse_decimal(repr(value).replace("e", "E"), field, code)
    if isinstance(value, str):
        text = value.strip(_ASCII_SPACE)
        if len(text) > 42 or not _DECIMAL_TEXT.fullmatch(text):
            raise RejectError(code, f"{field} must be a plain decimal number, got {value[:40]!r}")
        return Decimal(text)
    raise RejectError(code, f"{field} must be a number or a decimal string")


def money(amount: Decimal) -> str:
    """Money for the wire, as a string: two decimals, or as many more as the amount has
    (fractional shares and crypto settle in finer units than the cent), up to eight."""
    text = str(amount)
    if text[-3:-2] == "." and "E" not in text:  # in cents already, as most amounts are
        return text
    exact = amount.quantize(MONEY_PLACES, rounding=ROUND_HALF_UP)
    cents = exact.quantize(CENT)
    return str(cents) if cents == exact else format(exact.normalize(), "f")


def average(total: Decimal, count: Decimal) -> str:
    """An average price or cost for the wire: four decimals, rounded half up."""
    return str((total / count).quantize(AVERAGE_PLACES, rounding=ROUND_HALF_UP))


def ratio(value: Decimal) -> str:
    """A return, drawdown or rate for the wire: six decimals, rounded half up (0.1 = 10%)."""
    return str(value.quantize(RATIO_PLACES, rounding=ROUND_HALF_UP))


def number(amount: Decimal) -> str:
    """A price or quantity for the wire, printed as stored, never in exponent form."""
    return format(amount, "f")


def wire_qty(amount: Decimal) -> int | str:
    """A size that is whole in most markets: an integer, or a decimal string when it has
    a fraction (fractional shares, crypto)."""
    whole = amount.to_integral_value()
    return int(whole) if amount == whole else format(amount.normalize(), "f")


_DAYS: dict[int, str] = {}  # day number since the epoch -> "YYYY-MM-DDT"


def iso_time(ts_ns: int) -> str:
    """Nanoseconds since the epoch to ISO 8601 UTC: 2026-11-26T09:30:00.000000Z."""
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    day, second = divmod(seconds, 86_400)
    prefix = _DAYS.get(day)
    if prefix is None:  # strftime is slow: once per day seen (a replay sees many)
        prefix = datetime.fromtimestamp(day * 86_400, tz=UTC).strftime("%Y-%m-%dT")
        if len(_DAYS) < 100_000:
            _DAYS[day] = prefix
    hour, rest = divmod(second, 3600)
    minute, second = divmod(rest, 60)
    return f"{prefix}{hour:02d}:{minute:02d}:{second:02d}.{nanos // 1000:06d}Z"
