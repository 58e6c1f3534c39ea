"""Quotes an external feed pushes (actors/controller.py parse_pushed) and market time."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from actors.clock import MarketClock
from actors.controller import parse_pushed
from protocol.errors import ErrorCode, RejectError

SYMBOLS = {"600000"}
TICK = D("0.01")


def quote(**fields: Any) -> dict[str, Any]:
    return {"type": "quote", "symbol": "600000", "last": "8.50", "volume": 100, **fields}


def test_a_valid_quote_comes_back_on_the_tick_with_its_time() -> None:
    pushed = parse_pushed(quote(last=8.5, bid="8.49", ask="8.5", ts=7), SYMBOLS, TICK, True)
    assert (pushed.last, pushed.extra, pushed.volume, pushed.ts) == (
        "8.50",
        {"bid": "8.49", "ask": "8.50"},
        100,
        7,
    )


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"symbol": "999999"}, ErrorCode.REQUEST_UNKNOWN_SYMBOL),
        ({"last": "8.505"}, ErrorCode.REQUEST_INVALID_PRICE),  # off the tick
        ({"last": "0"}, ErrorCode.REQUEST_INVALID_PRICE),
        ({"last": "NaN"}, ErrorCode.REQUEST_INVALID_PRICE),
        ({"bid": "8.51", "ask": "8.50"}, ErrorCode.REQUEST_INVALID_PRICE),  # crossed
        ({"volume": -1}, ErrorCode.REQUEST_INVALID),
        ({"volume": "100"}, ErrorCode.REQUEST_INVALID),
        ({"extra": 1}, ErrorCode.REQUEST_INVALID),
        ({"ts": -5}, ErrorCode.REQUEST_INVALID),
    ],
)
def test_a_bad_quote_is_refused_with_its_reason(fields: dict[str, Any], code: ErrorCode) -> None:
    with pytest.raises(RejectError) as caught:
        parse_pushed(quote(**fields), SYMBOLS, TICK)
    assert caught.value.code is code


def test_market_time_needs_a_ts() -> None:
    assert parse_pushed(quote(), SYMBOLS, TICK).ts == 0  # the wall clock stamps it
    with pytest.raises(RejectError) as caught:
        parse_pushed(quote(), SYMBOLS, TICK, market_time=True)
    assert caught.value.code is ErrorCode.REQUEST_INVALID


def test_market_time_never_goes_back() -> None:
    clock = MarketClock(100)
    clock.advance(50)
    assert clock.now_ns() == 100
    clock.advance(150)
    assert clock.now_ns() == 150
