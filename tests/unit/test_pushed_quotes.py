"""Quotes an external feed pushes (actors/controller/main.py parse_pushed) and market time."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from actors.controller.quotes import parse_pushed
from actors.market.rules import Market
from actors.runtime.clock import MarketClock
from protocol.errors import ErrorCode, RejectError
from protocol.settings import Settings

MARKET = Market.from_settings(Settings())  # 600000 on cn_a: tick 0.01


def quote(**fields: Any) -> dict[str, Any]:
    return {"type": "quote", "symbol": "600000", "last": "8.50", "volume": 100, **fields}


def test_a_valid_quote_comes_back_on_the_tick_with_its_time() -> None:
    pushed = parse_pushed(quote(last=8.5, bid="8.49", ask="8.5", ts=7), MARKET, True)
    assert (pushed.last, pushed.extra, pushed.volume, pushed.ts) == (
        "8.50",
        {"bid": "8.49", "ask": "8.50"},
        D(100),
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
        ({"volume": "-0.5"}, ErrorCode.REQUEST_INVALID),
        ({"volume": "lots"}, ErrorCode.REQUEST_INVALID),
        ({"volume": "1e3"}, ErrorCode.REQUEST_INVALID),
        ({"volume": 10**15 + 1}, ErrorCode.REQUEST_INVALID),
        ({"volume": "1000000000000000.5"}, ErrorCode.REQUEST_INVALID),
        ({"volume": True}, ErrorCode.REQUEST_INVALID),
        ({"volume": None}, ErrorCode.REQUEST_INVALID),
        ({"extra": 1}, ErrorCode.REQUEST_INVALID),
        ({"ts": -5}, ErrorCode.REQUEST_INVALID),
    ],
)
def test_a_bad_quote_is_refused_with_its_reason(fields: dict[str, Any], code: ErrorCode) -> None:
    with pytest.raises(RejectError) as caught:
        parse_pushed(quote(**fields), MARKET)
    assert caught.value.code is code


@pytest.mark.parametrize(
    ("volume", "expected"),
    [
        (100, D(100)),
        ("100", D(100)),
        ("0.5", D("0.5")),
        (0, D(0)),
        (10**15, D(10**15)),
    ],
)
def test_a_volume_may_be_an_int_or_a_decimal_string(volume: Any, expected: D) -> None:
    pushed = parse_pushed(quote(volume=volume), MARKET)
    assert isinstance(pushed.volume, D)
    assert pushed.volume == expected


def test_market_time_needs_a_ts() -> None:
    assert parse_pushed(quote(), MARKET).ts == 0  # the wall clock stamps it
    with pytest.raises(RejectError) as caught:
        parse_pushed(quote(), MARKET, market_time=True)
    assert caught.value.code is ErrorCode.REQUEST_INVALID


def test_market_time_never_goes_back() -> None:
    clock = MarketClock(100)
    clock.advance(50)
    assert clock.now_ns() == 100
    clock.advance(150)
    assert clock.now_ns() == 150
