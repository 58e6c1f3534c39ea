"""Alpaca's UUIDs for our integer ids, and back.

Orders and accounts get UUIDs that carry our id (version 8, "custom", RFC 9562), so no
table maps them: `order_uuid(7)` always gives the same UUID and `order_id_of` reads 7
back. Assets get a name-based UUID of their symbol.
"""

from __future__ import annotations

import uuid

_ID_BITS = 62  # ids up to 2**62 - 1: the low 64 bits also hold the RFC 4122 variant
_VARIANT = 0b10 << _ID_BITS
_ORDER_HIGH = 0x74726164_6F72_8000  # "trad" "or", version 8
_ACCOUNT_HIGH = 0x74726164_6163_8000  # "trad" "ac", version 8
_FILL_HIGH = 0x74726164_6669_8000  # "trad" "fi", version 8
_ASSETS = uuid.UUID("3b0a4f5e-6f2c-5d7a-9c1e-7472616465a5")  # namespace of asset ids


def _make(high: int, number: int) -> str:
    return str(uuid.UUID(int=(high << 64) | _VARIANT | number))


def _read(high: int, text: str) -> int | None:
    try:
        value = uuid.UUID(text).int
    except ValueError:
        return None
    if value >> 64 != high or (value >> _ID_BITS) & 0b11 != 0b10:
        return None
    number = value & ((1 << _ID_BITS) - 1)
    return number or None


def order_uuid(order_id: int) -> str:
    return _make(_ORDER_HIGH, order_id)


def order_id_of(text: str) -> int | None:
    """Our order id in an order UUID, or None when the text is not one of ours."""
    return _read(_ORDER_HIGH, text)


def account_uuid(user_id: int) -> str:
    return _make(_ACCOUNT_HIGH, user_id)


def execution_uuid(fill_id: int) -> str:
    return _make(_FILL_HIGH, fill_id)


def asset_uuid(symbol: str) -> str:
    return str(uuid.uuid5(_ASSETS, symbol))
