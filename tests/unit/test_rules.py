"""cn_a fees, reservations and order checks (actors/market/rules.py)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from actors.market.rules import Market
from protocol.errors import ErrorCode, RejectError
from protocol.settings import Settings, SymbolSettings

MARKET = Market.from_settings(Settings())
PROFILE = MARKET.rules("600000")
SYMBOLS = MARKET.symbols


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
    qty = D(100)  # cn_a commission depends on the value only
    assert PROFILE.fees("buy", qty, value)[0] == commission
    assert PROFILE.fees("sell", qty, value)[0] == commission


def test_stamp_tax_is_charged_on_sells_only() -> None:
    assert PROFILE.fees("buy", D(1000), D("12345.00"))[1] == 0
    assert PROFILE.fees("sell", D(1000), D("12345.00"))[1] == D("12.35")
    assert PROFILE.fees("sell", D(400), D("4.00"))[1] == D("0.00")


def test_a_sell_of_1000_at_12_34_nets_proceeds_minus_commission_and_tax() -> None:
    value = 1000 * D("12.34")
    commission, tax = PROFILE.fees("sell", D(1000), value)
    assert (commission, tax) == (D("12.34"), D("12.34"))
    assert value - commission - tax == D("12315.32")


def test_a_buy_reserves_its_value_at_the_limit_plus_that_commission() -> None:
    assert PROFILE.cash_to_reserve("buy", D(100), D("8.50")) == D("855.00")
    assert PROFILE.cash_to_reserve("buy", D(10000), D("10.00")) == D("100100.00")


def test_a_sell_reserves_cash_only_when_fees_exceed_its_proceeds() -> None:
    assert PROFILE.cash_to_reserve("sell", D(100), D("8.50")) == 0
    # 1 share at 0.01: commission 5.00 + tax 0.00 - proceeds 0.01
    assert PROFILE.cash_to_reserve("sell", D(1), D("0.01")) == D("4.99")


def limit(symbol: str, side: str, qty: str, price: str) -> dict[str, str]:
    return {
        "symbol": symbol,
        "side": side,
        "order_type": "limit",
        "time_in_force": "day",
        "qty": qty,
        "limit_price": price,
    }


def test_a_valid_order_comes_back_as_exact_decimals() -> None:
    spec = MARKET.check_order(limit("600000", "buy", "100", "8.5"), D("8.50"))
    assert (spec.qty, spec.price, spec.limit_price) == (D(100), D("8.50"), D("8.50"))
    assert str(spec.price) == "8.50"


def test_fees_of_an_order_filled_in_parts_add_up_to_its_fees_filled_at_once() -> None:
    paid = (D(0), D(0))
    before = (D(0), D(0))
    for part in ((D(100), D("1005.00")), (D(100), D("1005.00")), (D(400), D("4000.00"))):
        fees = PROFILE.fill_fees("sell", before, part, paid)
        paid = (paid[0] + fees[0], paid[1] + fees[1])
        before = (before[0] + part[0], before[1] + part[1])
    assert before == (D(600), D("6010.00"))
    assert paid == PROFILE.fees("sell", D(600), D("6010.00")) == (D("6.01"), D("6.01"))


def test_the_reservation_of_a_partly_filled_buy_covers_the_rest_of_its_fees() -> None:
    # 200 filled at 10.00 paid the 5.00 minimum; 800 more at up to 10.00 make 10000.00
    # in all, 10.00 commission: 5.00 more
    rest = PROFILE.cash_to_reserve(
        "buy", D(800), D("10.00"), (D(200), D("2000.00")), (D("5.00"), D(0))
    )
    assert rest == D("8005.00")


@pytest.mark.parametrize(
    ("side", "start", "bound"),
    [
        ("buy", "10.00", "10.50"),
        ("sell", "10.00", "9.50"),
        ("buy", "10.01", "10.52"),  # 10.5105 rounds up for a buy
        ("sell", "10.01", "9.50"),  # 9.5095 rounds down for a sell
        ("sell", "0.01", "0.01"),  # never below one tick
    ],
)
def test_a_market_order_is_bounded_five_percent_away_rounded_outward(
    side: str, start: str, bound: str
) -> None:
    assert PROFILE.protection_price(side, D(start)) == D(bound)


@pytest.mark.parametrize(
    ("side", "amount", "percent", "stop"),
    [
        ("sell", "0.50", None, "9.50"),
        ("buy", "0.50", None, "10.50"),
        ("sell", None, "2.5", "9.75"),
        ("sell", None, "3.33", "9.66"),  # 9.667 rounds down, away from the price
        ("buy", None, "3.33", "10.34"),  # 10.333 rounds up, away from the price
    ],
)
def test_a_trailing_stop_trails_by_an_amount_or_a_percentage(
    side: str, amount: str | None, percent: str | None, stop: str
) -> None:
    trail = None if amount is None else D(amount)
    pct = None if percent is None else D(percent)
    assert PROFILE.trailing_stop(side, D("10.00"), trail, pct) == D(stop)


def test_a_trailing_stop_is_placed_from_the_reference_price() -> None:
    command = {**limit("600000", "sell", "100", "1"), "order_type": "trailing_stop"}
    del command["limit_price"]
    command["trail_percent"] = "10"
    spec = MARKET.check_order(command, D("8.50"))
    assert spec.stop_price == D("7.65")
    # 5% below the stop is 7.26, below the day's lower limit: the bound stops at the limit
    assert PROFILE.protection_price("sell", D("7.65")) == D("7.26")
    assert spec.price == D("7.65") == PROFILE.price_band(SYMBOLS["600000"], D("8.50"))[0]
    command["trail_percent"] = None
    command["trail_price"] = "9.00"
    with pytest.raises(RejectError) as caught:
        MARKET.check_order(command, D("8.50"))
    assert caught.value.code is ErrorCode.REQUEST_INVALID_TRAIL


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
        MARKET.check_order(limit(symbol, side, qty, price), D("8.50"))
    assert caught.value.code is code


def test_a_sell_may_be_an_odd_lot() -> None:
    assert MARKET.check_order(limit("600000", "sell", "50", "8.50"), D(1)).qty == 50


@pytest.mark.parametrize(
    ("symbol", "st", "prev_close", "band"),
    [
        ("600000", False, "8.50", ("7.65", "9.35")),  # main board: 10%
        ("600000", False, "8.55", ("7.70", "9.41")),  # 7.695 and 9.405 round half up
        ("300750", False, "10.00", ("8.00", "12.00")),  # ChiNext: 20%
        ("688981", False, "10.00", ("8.00", "12.00")),  # STAR: 20%
        ("600000", True, "10.00", ("9.50", "10.50")),  # ST: 5%
    ],
)
def test_daily_price_limits_are_a_band_around_the_previous_close(
    symbol: str, st: bool, prev_close: str, band: tuple[str, str]
) -> None:
    listed = SymbolSettings(symbol=symbol, name="x", prev_close=D(prev_close), st=st)
    assert PROFILE.price_band(listed, D(prev_close)) == (D(band[0]), D(band[1]))


def test_a_price_exactly_at_the_limit_is_accepted_and_one_tick_beyond_is_refused() -> None:
    assert MARKET.check_order(limit("600000", "buy", "100", "9.35"), D("8.50"))
    assert MARKET.check_order(limit("600000", "sell", "100", "7.65"), D("8.50"))
    for price in ("9.36", "7.64"):
        with pytest.raises(RejectError) as caught:
            MARKET.check_order(limit("600000", "buy", "100", price), D("8.50"))
        assert caught.value.code is ErrorCode.REQUEST_PRICE_LIMIT
    stop = {**limit("600000", "buy", "100", "1"), "order_type": "stop", "limit_price": None}
    stop["stop_price"] = "9.36"
    with pytest.raises(RejectError) as caught:
        MARKET.check_order(stop, D("8.50"))
    assert caught.value.code is ErrorCode.REQUEST_PRICE_LIMIT


def test_a_market_buy_near_the_upper_limit_is_bounded_by_it() -> None:
    market = {**limit("600000", "buy", "100", "1"), "order_type": "market", "limit_price": None}
    assert MARKET.check_order(market, D("9.30")).price == D("9.35")


def test_an_order_worth_less_than_the_minimum_notional_is_refused() -> None:
    market = Market.from_settings(Settings(profiles={"cn_a": {"min_notional": "850"}}))
    assert market.check_order(limit("600000", "buy", "100", "8.50"), D("8.50")).qty == 100
    with pytest.raises(RejectError) as caught:
        market.check_order(limit("600000", "buy", "100", "8.49"), D("8.50"))
    assert caught.value.code is ErrorCode.REQUEST_MIN_NOTIONAL


def test_a_qty_off_the_step_is_refused_as_a_lot_size_error() -> None:
    pair = SymbolSettings(symbol="BTCUSDT", name="Bitcoin", prev_close=D(60000), profile="crypto")
    market = Market.from_settings(Settings(market={"symbols": [pair]}))
    assert market.rules("BTCUSDT").qty_step == D("0.00001")
    spec = market.check_order(limit("BTCUSDT", "buy", "0.50000", "60000"), D(60000))
    assert str(spec.qty) == "0.5"
    with pytest.raises(RejectError) as caught:
        market.check_order(limit("BTCUSDT", "buy", "0.000015", "60000"), D(60000))
    assert caught.value.code is ErrorCode.REQUEST_LOT_SIZE
