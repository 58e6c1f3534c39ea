"""The pure parts of the Alpaca API: ids, keys, error codes and the shapes of answers."""

from __future__ import annotations

import uuid
from decimal import Decimal

import msgpack
from alpaca.trading.models import Order, Position, TradeAccount
from hypothesis import given
from hypothesis import strategies as st

from gateway.alpaca import calendars, shapes, stream
from gateway.alpaca.errors import alpaca_code, status_of
from gateway.alpaca.ids import account_uuid, asset_uuid, order_id_of, order_uuid
from protocol.errors import ErrorCode
from protocol.tokens import hash_token, key_id

ORDER = {
    "id": 41,
    "client_order_id": None,
    "symbol": "AAPL",
    "side": "buy",
    "type": "limit",
    "time_in_force": "day",
    "qty": "10",
    "limit_price": "231.00",
    "price": "231.00",
    "stop_price": None,
    "trail_price": None,
    "trail_percent": None,
    "price_bound": "231.00",
    "triggered": False,
    "replaces": 40,
    "replaced_by": None,
    "status": "filled",
    "filled_qty": "10",
    "avg_fill_price": "230.9000",
    "commission": "0.00",
    "tax": "0.00",
    "created_at": "2026-12-07T14:30:00.000001Z",
    "updated_at": "2026-12-07T14:30:01.500000Z",
}


@given(st.integers(min_value=1, max_value=2**62 - 1))
def test_an_order_uuid_carries_its_id_and_nothing_else_reads_as_one(order_id: int) -> None:
    text = order_uuid(order_id)
    parsed = uuid.UUID(text)
    assert parsed.version == 8 and parsed.variant == uuid.RFC_4122
    assert order_id_of(text) == order_id and order_id_of(text.upper()) == order_id
    assert order_id_of(account_uuid(order_id)) is None
    assert order_id_of(str(uuid.uuid4())) is None and order_id_of("41") is None


def test_a_key_id_is_alpacas_shape_and_goes_with_one_token_only() -> None:
    first, second = key_id(hash_token("token-a")), key_id(hash_token("token-b"))
    assert first == key_id(hash_token("token-a")) and first != second
    assert len(first) == 20 and first.startswith("PK") and first.isalnum() and first.isupper()


def test_error_codes_follow_alpacas_statuses() -> None:
    assert status_of(ErrorCode.RISK_INSUFFICIENT_CASH) == 403
    assert status_of(ErrorCode.REQUEST_ORDER_NOT_OPEN) == 422  # ours is 409
    assert status_of(ErrorCode.SYSTEM_BUSY) == 429  # so that the SDK retries
    codes = [alpaca_code(s) for s in (400, 401, 403, 404, 422, 429, 500)]
    assert codes == [40010001, 40110000, 40310000, 40410000, 42210000, 42910000, 50010000]


def test_a_filled_order_validates_as_the_sdks_order_with_its_times() -> None:
    shaped = shapes.order(ORDER)
    order = Order(**shaped)
    assert order.filled_at is not None and order.canceled_at is None
    assert str(order.replaces) == order_uuid(40) and order.client_order_id == order_uuid(41)
    assert str(order.asset_id) == asset_uuid("AAPL") and order.asset_class == "us_equity"
    canceled = shapes.order({**ORDER, "status": "canceled", "filled_qty": "0"})
    assert canceled["canceled_at"] == ORDER["updated_at"] and canceled["filled_at"] is None


def test_a_position_and_an_account_validate_as_the_sdks() -> None:
    view = {
        "symbol": "AAPL",
        "qty": "10",
        "available_qty": "10",
        "avg_cost": "230.0000",
        "cost_basis": "2300.00",
        "last_price": "253.00",
        "market_value": "2530.00",
        "unrealized_pnl": "230.00",
        "realized_pnl": "0.00",
    }
    row = {"symbol": "AAPL", "profile": "us_equity", "prev_close": "250.00"}
    position = Position(**shapes.position(view, row))
    assert position.unrealized_plpc == "0.1" and position.change_today == "0.012"
    assert position.unrealized_intraday_pl == "30.00"
    account = {
        "user_id": 3,
        "name": "x",
        "cash": "97700.00",
        "reserved_cash": "100.00",
        "available_cash": "97600.00",
        "market_value": "2530.00",
        "equity": "100230.00",
        "initial_cash": "100000.00",
    }
    shaped = TradeAccount(**shapes.account(account, "us_equity", "100000.00", None))
    assert shaped.buying_power == "97600.00" and shaped.currency == "USD"
    assert str(shaped.id) == account_uuid(3) and shaped.account_number == "PA0000000003"


def test_portfolio_history_keeps_the_last_point_of_each_bucket_in_the_period() -> None:
    curve = [
        {"time": "2026-12-06T10:00:30Z", "equity": "99000.00"},  # before the period: the base
        {"time": "2026-12-07T10:00:10Z", "equity": "100100.00"},
        {"time": "2026-12-07T10:00:50Z", "equity": "100200.00"},  # same minute: kept
        {"time": "2026-12-07T10:05:00Z", "equity": "98010.00"},
    ]
    stats = {"initial_cash": "100000.00", "deposited_value": "0.00", "equity_curve": curve}
    history = calendars.portfolio_history(stats, "1D", "1Min", None, None, None)
    assert history["equity"] == [100200.0, 98010.0] and history["base_value"] == 99000.0
    assert history["timestamp"][1] - history["timestamp"][0] == 300
    assert history["profit_loss"] == [1200.0, -990.0]
    assert history["profit_loss_pct"][1] == float(Decimal(-990) / Decimal(99000))


def test_market_messages_are_alpacas_trades_quotes_and_bars() -> None:
    ts = 1_765_117_800_123_456_789
    quote = {
        "symbol": "AAPL",
        "last": "230.10",
        "volume": 300,
        "bid": "230.09",
        "ask": "230.11",
        "ts": ts,
        "seq": 9,
    }
    out = stream.market_messages(quote, {"trades", "quotes"}, packed=False)
    assert [m["T"] for m in out] == ["t", "q"]
    assert out[0]["p"] == 230.1 and out[0]["s"] == 300 and out[0]["t"].endswith(".123456789Z")
    assert out[1]["bp"] == 230.09 and out[1]["ap"] == 230.11
    repeat = stream.market_messages({**quote, "volume": 0}, {"trades"}, packed=True)
    assert repeat == []  # a price repeated for late joiners is not a trade
    plain = {k: v for k, v in quote.items() if k not in ("bid", "ask")}  # the synthetic feed
    (only,) = stream.market_messages(plain, {"quotes"}, packed=False)
    assert only["T"] == "q" and only["bp"] == only["ap"] == 230.1 and only["bs"] == 0
    bar = {
        "type": "bar",
        "symbol": "SPY",
        "open": "1",
        "high": "2",
        "low": "0.5",
        "close": "1.5",
        "volume": 7,
        "ts": ts,
    }
    (shaped,) = stream.market_messages(bar, {"bars"}, packed=True)
    assert shaped["T"] == "b" and shaped["h"] == 2.0 and shaped["n"] is None
    assert msgpack.unpackb(msgpack.packb(shaped))["t"].to_unix_nano() == ts
