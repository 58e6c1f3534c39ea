"""cn_a market rules over the real processes, on market time: the test is the clock.

The server takes its trades and its time from the external feed (`clock = "market"`) and
its sessions from the XSHG calendar, so a test walks through trading days of January 2024
in seconds: T+1, daily price limits that follow the previous close, DAY expiry.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import fresh_name
from tests.harness import Server

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str) -> int:
    """ns of a Shanghai wall-clock time."""
    return int(datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp()) * 10**9


@pytest.fixture(scope="module")
def cn_a(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(
        tmp_path_factory.mktemp("cn_a"),
        fill_mode="wait",
        market={"feed": "external"},
        control={"sessions": "cn_a", "clock": "market"},
        profiles={"cn_a": {"t_plus_one": True, "price_limits": True, "odd_lots": "sell_all"}},
    ) as srv:
        yield srv
        srv.assert_no_crash()


class Market:
    """Prints trades at given Shanghai times and waits until the server has seen them."""

    def __init__(self, server: Server, http: httpx.Client) -> None:
        self.server = server
        self.http = http

    def trade(self, when: str, last: str, volume: int, symbol: str = "600000") -> None:
        ts = at(when)
        self.server.push_quotes({"symbol": symbol, "last": last, "volume": volume, "ts": ts})
        deadline = time.monotonic() + 15
        while self.http.get("/v1/control").json()["ts"] < ts:  # the time has reached us
            assert time.monotonic() < deadline, "market time did not move"
            time.sleep(0.05)
        time.sleep(0.3)  # and the trade reached the matcher


def order(http: httpx.Client, **fields: Any) -> httpx.Response:
    return http.post("/v1/orders", json={"symbol": "600000", **fields})


def wait(http: httpx.Client, order_id: int, **expected: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        found = http.get(f"/v1/orders/{order_id}").json()
        if all(found[k] == v for k, v in expected.items()):
            return dict(found)
        assert time.monotonic() < deadline, (expected, found)
        time.sleep(0.05)


def code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def test_a_trading_week_of_t_plus_one_price_limits_and_expiry(cn_a: Server) -> None:
    http = cn_a.http(cn_a.new_user(fresh_name("cn"), "100000"))
    market = Market(cn_a, http)

    # Tuesday 2 January 2024, 10:00: in session, the clock is the market's
    market.trade("2024-01-02 10:00", "8.50", 1)
    control = http.get("/v1/control").json()
    assert (control["session_open"], control["trading_day"]) == (True, "2024-01-02")
    buy = order(http, side="buy", qty=200, limit_price="8.50")
    assert buy.status_code == 200, buy.text
    assert buy.json()["created_at"] == "2024-01-02T02:00:00.000000Z"
    market.trade("2024-01-02 10:01", "8.50", 1000)
    wait(http, buy.json()["id"], status="filled")

    # T+1: what was bought today is sellable tomorrow
    [position] = http.get("/v1/positions").json()
    assert (position["qty"], position["available_qty"]) == ("200", "0")
    refused = order(http, side="sell", qty=100, limit_price="8.60")
    assert (refused.status_code, code(refused)) == (403, "RISK_T_PLUS_ONE")

    # daily limits: +/-10% around the previous close, 8.50 from the symbol table
    assert code(order(http, side="buy", qty=100, limit_price="9.36")) == "REQUEST_PRICE_LIMIT"
    assert code(order(http, side="buy", qty=100, limit_price="7.64")) == "REQUEST_PRICE_LIMIT"
    at_limit = order(http, side="buy", qty=100, limit_price="7.65")  # rests: a DAY order
    assert at_limit.status_code == 200, at_limit.text
    gtc = order(http, side="buy", qty=100, limit_price="7.65", time_in_force="gtc")
    market.trade("2024-01-02 14:59", "9.00", 1)  # the day's last trade: tomorrow's prev close

    # 20:00, after the close: the trading day has turned, and an order placed overnight is
    # checked against Wednesday's limits (8.10 to 9.90 around 9.00), not Tuesday's
    market.trade("2024-01-02 20:00", "9.00", 1)  # out of session: it only moves the clock
    assert http.get("/v1/control").json()["trading_day"] == "2024-01-03"
    overnight = order(http, side="buy", qty=100, limit_price="9.90", time_in_force="gtc")
    assert overnight.status_code == 200, overnight.text
    assert code(order(http, side="buy", qty=100, limit_price="9.91")) == "REQUEST_PRICE_LIMIT"
    assert http.delete(f"/v1/orders/{overnight.json()['id']}").status_code == 200

    # Wednesday 3 January, 09:31: a new trading day
    market.trade("2024-01-03 09:31", "9.00", 1)
    assert http.get("/v1/control").json()["trading_day"] == "2024-01-03"
    wait(http, at_limit.json()["id"], status="expired")  # yesterday's DAY order
    assert http.get(f"/v1/orders/{gtc.json()['id']}").json()["status"] == "new"
    [position] = http.get("/v1/positions").json()
    assert position["available_qty"] == "200"
    sell = order(http, side="sell", qty=200, limit_price="9.00")
    assert sell.status_code == 200, sell.text
    # the band moved with the close: 8.10 to 9.90 around 9.00
    assert order(http, side="buy", qty=100, limit_price="9.90").status_code == 200
    assert code(order(http, side="buy", qty=100, limit_price="9.91")) == "REQUEST_PRICE_LIMIT"
    market.trade("2024-01-03 09:32", "9.00", 4000)
    filled = wait(http, sell.json()["id"], status="filled")
    assert filled["updated_at"] == "2024-01-03T01:32:00.000000Z"


def test_trades_out_of_session_or_back_in_time_are_dropped(cn_a: Server) -> None:
    http = cn_a.http(cn_a.new_user(fresh_name("cn"), "100000"))
    market = Market(cn_a, http)
    market.trade("2024-01-04 10:00", "9.00", 1)
    buy = order(http, side="buy", qty=100, limit_price="9.00", time_in_force="gtc")
    assert buy.status_code == 200, buy.text
    # a trade stamped before the latest: dropped, the market time stays
    cn_a.push_quotes(
        {"symbol": "600000", "last": "8.90", "volume": 1000, "ts": at("2024-01-04 09:59")}
    )
    market.trade("2024-01-04 12:00", "8.90", 1000)  # the lunch break: no quotes flow
    assert http.get(f"/v1/orders/{buy.json()['id']}").json()["status"] == "new"
    assert http.get("/v1/control").json()["session_open"] is False
    market.trade("2024-01-04 13:00", "8.90", 1000)
    wait(http, buy.json()["id"], status="filled", avg_fill_price="8.9000")


def test_a_day_order_expires_before_the_next_days_first_trade_can_fill_it(cn_a: Server) -> None:
    http = cn_a.http(cn_a.new_user(fresh_name("cn"), "100000"))
    market = Market(cn_a, http)
    market.trade("2024-01-08 14:58", "9.00", 1)
    day = order(http, side="buy", qty=100, limit_price="9.00")
    assert day.status_code == 200, day.text
    market.trade("2024-01-08 14:59", "9.20", 1)  # the day's last trade, above the order
    # the next day opens at a price that crosses it: it must expire, not fill
    market.trade("2024-01-09 09:30", "8.90", 10_000)
    expired = wait(http, day.json()["id"], status="expired")
    assert expired["filled_qty"] == "0"
    # the new day's limits count from 9.20 at once: 10.12 is the top of 8.28 to 10.12
    assert order(http, side="buy", qty=100, limit_price="10.12").status_code == 200
    assert code(order(http, side="buy", qty=100, limit_price="10.13")) == "REQUEST_PRICE_LIMIT"
    [listed] = [s for s in http.get("/v1/symbols").json() if s["symbol"] == "600000"]
    assert (listed["prev_close"], listed["limit_down"], listed["limit_up"]) == (
        "9.20",
        "8.28",
        "10.12",
    )


def test_a_dropped_quote_does_not_move_market_time(cn_a: Server) -> None:
    http = cn_a.http(cn_a.new_user(fresh_name("cn"), "100000"))
    market = Market(cn_a, http)
    market.trade("2024-01-10 10:00", "9.00", 1)
    saturday = at("2024-01-13 10:00")
    cn_a.push_quotes({"symbol": "999999", "last": "9.00", "volume": 1, "ts": saturday})
    cn_a.push_quotes({"symbol": "600000", "last": "9.001", "volume": 1, "ts": saturday})
    market.trade("2024-01-10 10:01", "9.00", 1)  # still Wednesday, still in session
    control = http.get("/v1/control").json()
    assert (control["trading_day"], control["session_open"]) == ("2024-01-10", True)
