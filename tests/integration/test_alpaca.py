"""Alpaca's Trading API v2 through alpaca-py's own client and models, against the real server.

Every answer is validated by the SDK's pydantic models (an answer missing a required field,
or with a wrong type or enum spelling, fails here); raw HTTP checks what the SDK hides:
status codes, error bodies and headers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.models import Order, TradeAccount
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetCalendarRequest,
    GetOrdersRequest,
    GetPortfolioHistoryRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopOrderRequest,
)

from protocol.tokens import hash_token, key_id
from tests.conftest import fresh_name
from tests.harness import Server


def keys(token: str) -> dict[str, str]:
    return {"APCA-API-KEY-ID": key_id(hash_token(token)), "APCA-API-SECRET-KEY": token}


@pytest.fixture(scope="module")
def trader(server: Server) -> Iterator[tuple[TradingClient, str]]:
    token = server.new_user(fresh_name("alpaca"), cash="100000")
    client = TradingClient(key_id(hash_token(token)), token, paper=True, url_override=server.url)
    yield client, token


def buy(client: TradingClient, symbol: str = "AAPL", qty: int = 10, price: str = "231.00") -> Order:
    request = LimitOrderRequest(
        symbol=symbol,
        qty=qty,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.DAY,
        limit_price=float(price),
    )
    order = client.submit_order(request)
    assert isinstance(order, Order)
    return order


def test_the_account_is_a_cash_account_in_the_markets_currency(
    trader: tuple[TradingClient, str],
) -> None:
    client, _ = trader
    account = client.get_account()
    assert isinstance(account, TradeAccount)
    assert account.status == "ACTIVE" and account.cash == "100000.00"
    assert account.currency == "CNY"  # the default profile (cn_a) is the market's
    assert account.buying_power == account.cash and account.equity == "100000.00"
    assert account.account_number.startswith("PA") and account.shorting_enabled is False
    config = client.get_account_configurations()
    assert config.no_shorting is True and config.max_margin_multiplier == "1"


def test_a_limit_order_fills_and_reads_back_every_way(trader: tuple[TradingClient, str]) -> None:
    client, _ = trader
    order = buy(client, qty=10, price="231.00")
    assert order.symbol == "AAPL" and order.qty == "10" and order.limit_price == "231.00"
    assert uuid.UUID(str(order.id)).version == 8 and order.order_class == "simple"
    again = client.get_order_by_id(order.id)
    assert again.status == OrderStatus.FILLED and Decimal(again.filled_avg_price) == 231
    assert again.filled_at is not None
    by_client = client.get_order_by_client_id(order.client_order_id)
    assert by_client.id == order.id
    closed = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED, symbols=["AAPL"]))
    assert order.id in {o.id for o in closed}
    held = client.get_open_position("AAPL")
    assert held.qty == "10" and held.side == "long" and held.symbol == "AAPL"
    assert {p.symbol for p in client.get_all_positions()} == {"AAPL"}
    cash = Decimal(client.get_account().cash)
    assert cash == Decimal("100000.00") - Decimal("2310.00")  # no commission on US equity


def test_a_resting_order_is_replaced_then_canceled(trader: tuple[TradingClient, str]) -> None:
    client, _ = trader
    stop = StopOrderRequest(
        symbol="MSFT", qty=5, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, stop_price=460.0
    )
    order = client.submit_order(stop)
    assert order.status == OrderStatus.NEW and order.stop_price == "460.00"
    new = client.replace_order_by_id(order.id, ReplaceOrderRequest(stop_price=461.0, qty=3))
    assert new.replaces == order.id and new.qty == "3" and new.stop_price == "461.00"
    assert client.get_order_by_id(order.id).status == OrderStatus.REPLACED
    assert client.cancel_order_by_id(new.id) is None
    assert client.get_order_by_id(new.id).status == OrderStatus.CANCELED


def test_cancel_all_answers_207_with_each_order(
    server: Server, trader: tuple[TradingClient, str]
) -> None:
    client, token = trader
    ids = {
        client.submit_order(
            StopOrderRequest(
                symbol="SPY", qty=1, side="buy", time_in_force="gtc", stop_price=650.0 + n
            )
        ).id
        for n in range(3)
    }
    canceled = client.cancel_orders()
    assert {c.id for c in canceled} >= ids and {c.status for c in canceled} == {200}
    raw = httpx.delete(server.url + "/v2/orders", headers=keys(token))
    assert raw.status_code == 207 and raw.json() == []


def test_positions_close_by_percentage_and_all(trader: tuple[TradingClient, str]) -> None:
    client, _ = trader
    buy(client, "MSFT", qty=4, price="421.00")
    sold = client.close_position("MSFT", ClosePositionRequest(percentage="50"))
    assert sold.side == "sell" and sold.qty == "2" and sold.type == "market"
    results = client.close_all_positions(cancel_orders=True)
    assert {r.symbol for r in results} >= {"AAPL"} and all(r.status == 200 for r in results)


def test_a_notional_order_needs_a_fractionable_asset(trader: tuple[TradingClient, str]) -> None:
    client, _ = trader
    with pytest.raises(APIError) as refused:
        client.submit_order(
            MarketOrderRequest(symbol="AAPL", notional=500, side="buy", time_in_force="day")
        )
    assert refused.value.status_code == 422 and refused.value.code == 42210000
    assert "fractionable" in refused.value.message


def test_assets_clock_calendar_and_history(trader: tuple[TradingClient, str]) -> None:
    client, _ = trader
    assets = {a.symbol: a for a in client.get_all_assets()}
    assert {"AAPL", "MSFT", "SPY", "600000"} <= set(assets)
    assert assets["AAPL"].tradable and assets["AAPL"].price_increment == 0.01
    assert client.get_asset(str(assets["SPY"].id)).symbol == "SPY"
    clock = client.get_clock()
    assert clock.is_open is True and clock.next_close > clock.timestamp  # sessions: always
    days = client.get_calendar(GetCalendarRequest(start="2024-07-01", end="2024-07-05"))
    assert [str(d.date) for d in days] == ["2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05"]
    assert days[2].close.strftime("%H:%M") == "13:00"  # the early close before July 4th
    history = client.get_portfolio_history(GetPortfolioHistoryRequest(period="1D"))
    assert history.equity and history.base_value == 100000.0


def test_errors_have_alpacas_shape_and_status(
    server: Server, trader: tuple[TradingClient, str]
) -> None:
    _, token = trader
    url = server.url + "/v2"
    wrong = {"APCA-API-KEY-ID": "PKWRONGWRONGWRONG00", "APCA-API-SECRET-KEY": token}
    r = httpx.get(url + "/account", headers=wrong)
    assert r.status_code == 401 and r.json()["code"] == 40110000
    assert httpx.get(url + "/account").status_code == 401
    bearer = httpx.get(url + "/account", headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 200
    too_big = {
        "symbol": "SPY",
        "qty": 10_000,
        "side": "buy",
        "type": "limit",
        "time_in_force": "day",
        "limit_price": "600.00",
    }
    r = httpx.post(url + "/orders", json=too_big, headers=keys(token))
    assert r.status_code == 403 and r.json()["code"] == 40310000, r.text
    assert r.json()["reason"] == "RISK_INSUFFICIENT_CASH"
    r = httpx.get(url + "/orders/" + str(uuid.uuid4()), headers=keys(token))
    assert r.status_code == 404 and r.json()["code"] == 40410000
    r = httpx.post(url + "/orders", json={**too_big, "qty": "1.5"}, headers=keys(token))
    assert r.status_code == 422 and r.json()["code"] == 42210000
    r = httpx.post(url + "/orders", json={"symbol": "SPY"}, headers=keys(token))
    assert r.status_code == 422 and set(r.json()) == {"code", "message", "reason"}
    r = httpx.get(url + "/no-such-route", headers=keys(token))
    assert r.status_code == 404 and r.json()["code"] == 40410000
    for path in (  # times beyond what a datetime holds are refused, not server errors
        "/account/portfolio/history?period=9999A",
        "/account/portfolio/history?end=0001-01-01T00:00:00Z",
        "/orders?status=all&after=0001-01-01T00:00:00%2B14:00",
        "/orders?status=all&until=9999-12-31T23:59:59-05:00",
        "/account/activities?date=garbage",
    ):
        r = httpx.get(url + path, headers=keys(token))
        assert r.status_code in (200, 422), (path, r.status_code, r.text)
        assert r.status_code == 200 or r.json()["code"] == 42210000, (path, r.text)


def test_fills_are_fill_activities(server: Server, trader: tuple[TradingClient, str]) -> None:
    client, token = trader
    order = buy(client, "SPY", qty=2, price="601.00")
    r = httpx.get(server.url + "/v2/account/activities/FILL", headers=keys(token))
    assert r.status_code == 200
    newest = r.json()[0]
    assert newest["order_id"] == str(order.id) and newest["activity_type"] == "FILL"
    assert newest["qty"] == "2" and newest["price"] == "601.00" and newest["type"] == "fill"
    page = httpx.get(
        server.url + "/v2/account/activities",
        params={"page_size": 1, "page_token": newest["id"]},
        headers=keys(token),
    ).json()
    assert len(page) == 1 and page[0]["id"] != newest["id"]


def test_another_users_order_is_not_found(
    server: Server, trader: tuple[TradingClient, str]
) -> None:
    client, _ = trader
    order = buy(client, "AAPL", qty=1, price="231.00")
    other = server.new_user(fresh_name("alpaca"))
    r = httpx.get(server.url + f"/v2/orders/{order.id}", headers=keys(other))
    assert r.status_code == 404


def test_too_many_requests_get_429_with_alpacas_rate_limit_headers(tmp_path: Path) -> None:
    with Server(tmp_path, limits={"rate_per_user": 1, "rate_burst": 2}) as small:
        token = small.demo_token
        answers = [httpx.get(small.url + "/v2/account", headers=keys(token)) for _ in range(4)]
    limited = [r for r in answers if r.status_code == 429]
    assert limited and answers[0].status_code == 200
    body = limited[0].json()
    assert body["code"] == 42910000 and body["reason"] == "REQUEST_RATE_LIMITED"
    headers = limited[0].headers
    assert int(headers["Retry-After"]) >= 1 and headers["X-RateLimit-Limit"] == "2"
    assert headers["X-RateLimit-Remaining"] == "0" and int(headers["X-RateLimit-Reset"]) > 0


def test_order_filters_and_configuration_changes_through_the_sdk(
    trader: tuple[TradingClient, str],
) -> None:
    client, _ = trader
    first = buy(client, "SPY", qty=1, price="601.00")
    second = buy(client, "MSFT", qty=1, price="421.00")
    since = first.created_at - timedelta(microseconds=1)
    oldest = client.get_orders(
        GetOrdersRequest(status=QueryOrderStatus.ALL, after=since, direction="asc", limit=2)
    )
    assert [o.id for o in oldest] == [first.id, second.id]
    sells = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, side="sell"))
    assert sells and {o.side for o in sells} == {"sell"}
    until = client.get_orders(
        GetOrdersRequest(status=QueryOrderStatus.ALL, until=first.created_at, after=since)
    )
    assert [o.id for o in until] == [first.id]
    config = client.get_account_configurations()
    assert client.set_account_configurations(config).no_shorting is True
    with pytest.raises(APIError) as refused:
        client.set_account_configurations(config.model_copy(update={"no_shorting": False}))
    assert refused.value.status_code == 422 and "no_shorting" in refused.value.message


def test_orders_as_alpaca_takes_them(server: Server, trader: tuple[TradingClient, str]) -> None:
    """Asset ids as symbols, fields Alpaca does not know, a client order id sent again (the
    same order back) or reused for another order (422), and closing more than is free."""
    client, token = trader
    spy = client.get_asset("SPY")
    body = {
        "symbol": str(spy.id),
        "qty": 1,
        "side": "buy",
        "type": "limit",
        "time_in_force": "day",
        "limit_price": 601,
        "client_order_id": "same-1",
        "legs": None,
        "commission": 0,
    }
    first = httpx.post(server.url + "/v2/orders", json=body, headers=keys(token))
    assert first.status_code == 200 and first.json()["symbol"] == "SPY", first.text
    again = httpx.post(server.url + "/v2/orders", json=body, headers=keys(token))
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    other = httpx.post(server.url + "/v2/orders", json={**body, "qty": 2}, headers=keys(token))
    assert (
        other.status_code == 422 and other.json()["reason"] == "REQUEST_DUPLICATE_CLIENT_ORDER_ID"
    )
    with pytest.raises(APIError) as refused:
        client.close_position("SPY", ClosePositionRequest(qty="100000"))
    assert refused.value.status_code == 403 and "insufficient qty" in refused.value.message
