"""cn_a fees, reservations and order checks (actors/rules.py)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from actors.rules import Profile, symbol_table
from protocol.errors import ErrorCode, RejectError
from protocol.settings import Settings

PROFILE = Profile.from_settings(Settings())
SYMBOLS = symbol_table(Settings())


@pytest.mark.parametrize(
    ("value", "commission"),
    [
        (D("850.00"), D("5.00")),  # 0.85 is under the minimum
        (D("5000.00"), D("5.00")),  # exactly the minimum
        (D("5010.00"), D("5.01")),
        (D("12340.00"), D("12.34")),
        (D("12345.00"), D("12.35")),  # 12.345 rounds half up
        (D("12344.99"), D("12.34")),
    ],
)
def test_commission_is_rate_times_value_to_the_cent_with_a_five_yuan_minimum(
    value: D, commission: D
) -> None:
    assert PROFILE.commission(value) == commission


def test_stamp_tax_is_charged_on_sells_only() -> None:
    assert PROFILE.tax("buy", D("12345.00")) == 0
    assert PROFILE.tax("sell", D("12345.00")) == D("12.35")
    assert PROFILE.tax("sell", D("4.00")) == D("0.00")


def test_a_sell_of_1000_at_12_34_nets_proceeds_minus_commission_and_tax() -> None:
    value = 1000 * D("12.34")
    commission, tax = PROFILE.fees("sell", value)
    assert (commission, tax) == (D("12.34"), D("12.34"))
    assert value - commission - tax == D("12315.32")


def test_a_buy_reserves_its_value_at_the_limit_plus_that_commission() -> None:
    assert PROFILE.cash_to_reserve("buy", D(100), D("8.50")) == D("855.00")
    assert PROFILE.cash_to_reserve("buy", D(10000), D("10.00")) == D("100100.00")


def test_a_sell_reserves_cash_only_when_fees_exceed_its_proceeds() -> None:
    assert PROFILE.cash_to_reserve("sell", D(100), D("8.50")) == 0
    # 1 share at 0.01: commission 5.00 + tax 0.00 - proceeds 0.01
    assert PROFILE.cash_to_reserve("sell", D(1), D("0.01")) == D("4.99")


def test_a_valid_order_comes_back_as_exact_decimals() -> None:
    qty, price = PROFILE.check_order(SYMBOLS, "600000", "buy", "100", "8.5")
    assert (qty, price) == (D(100), D("8.50"))
    assert str(price) == "8.50"


@pytest.mark.parametrize(
    ("symbol", "side", "qty", "price", "code"),
    [
        ("999999", "buy", "100", "1.00", ErrorCode.REQUEST_UNKNOWN_SYMBOL),
        ("600000", "buy", "0", "1.00", ErrorCode.REQUEST_INVALID_QTY),
        ("600000", "buy", "-100", "1.00", ErrorCode.REQUEST_INVALID_QTY),
        ("600000", "buy", "100.5", "1.00", ErrorCode.REQUEST_INVALID_QTY),
        ("600000", "buy", "1000000000000", "1.00", ErrorCode.REQUEST_INVALID_QTY),
        ("600000", "buy", "150", "1.00", ErrorCode.REQUEST_LOT_SIZE),
        ("600000", "buy", "100", "0", ErrorCode.REQUEST_INVALID_PRICE),
        ("600000", "buy", "100", "-1.00", ErrorCode.REQUEST_INVALID_PRICE),
        ("600000", "buy", "100", "99999999", ErrorCode.REQUEST_INVALID_PRICE),
        ("600000", "buy", "100", "1.001", ErrorCode.REQUEST_PRICE_TICK),
        ("600000", "sell", "100", "1.005", ErrorCode.REQUEST_PRICE_TICK),
    ],
)
def test_an_invalid_order_is_refused_with_its_code(
    symbol: str, side: str, qty: str, price: str, code: ErrorCode
) -> None:
    with pytest.raises(RejectError) as caught:
        PROFILE.check_order(SYMBOLS, symbol, side, qty, price)
    assert caught.value.code is code


def test_a_sell_may_be_an_odd_lot() -> None:
    assert PROFILE.check_order(SYMBOLS, "600000", "sell", "50", "8.50")[0] == 50
