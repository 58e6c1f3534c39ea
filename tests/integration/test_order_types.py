"""Order types, time in force, partial fills and replacement over the real processes.

The server takes its trades from the external feed, so each test prints exactly the
trades it needs (docs/fill-model.md): every test trades its own symbol, all with a
previous close of 10.00, so no test's orders or volume reach another's.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from protocol.client import TradeClient, TradeError
from tests.conftest import fresh_name
from tests.harness import Server

SYMBOLS = [f"T{n:02d}" for n in range(1, 31)]
_free_symbols = iter(SYMBOLS)
PROPAGATE = 0.3  # s: long enough for an order or a trade to reach the matcher here


@pytest.fixture(scope="module")
def feed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    market = {
        "feed": "external",
        "symbols": [{"symbol": s, "name": f"Test {s}", "prev_close": "10.00"} for s in SYMBOLS],
    }
    with Server(tmp_path_factory.mktemp("feed"), fill_mode="wait", market=market) as srv:
        yield srv
        srv.assert_no_crash()


def symbol() -> str:
    return next(_free_symbols)


class Trader:
    """One fresh user with HTTP and ZeroMQ clients, and helpers to print trades."""

    _ids = itertools.count(1)

    def __init__(self, server: Server, cash: str = "1000000") -> None:
        self.server = server
        self.token = server.new_user(fresh_name("trader"), cash)
        self.http = server.http(self.token)
        self.zmq: TradeClient = server.client(self.token)

    def order(self, **fields: Any) -> dict[str, Any]:
        r = self.http.post("/v1/orders", json=fields)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def get(self, order_id: int) -> dict[str, Any]:
        return dict(self.http.get(f"/v1/orders/{order_id}").json())

    def wait(self, order_id: int, timeout: float = 15, **expected: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            order = self.get(order_id)
            if all(order[k] == v for k, v in expected.items()):
                return order
            assert time.monotonic() < deadline, (expected, order)
            time.sleep(0.05)

    def account(self) -> dict[str, Any]:
        return dict(self.http.get("/v1/account").json())

    def history(self) -> list[dict[str, Any]]:
        return list(self.http.get("/v1/history", params={"limit": 1000}).json()["entries"])

    def trade(self, sym: str, last: str, volume: int, **extra: str) -> None:
        """Print a trade and give it time to reach the matcher."""
        time.sleep(PROPAGATE)  # orders placed just before reach the book first
        self.server.push_quotes({"symbol": sym, "last": last, "volume": volume, **extra})
        time.sleep(PROPAGATE)

    def hold(self, sym: str, qty: int) -> None:
        """Buy `qty` shares at 10.00 for a test that sells."""
        order = self.order(symbol=sym, side="buy", qty=qty, type="limit", limit_price="10.00")
        self.trade(sym, "10.00", qty * 4)
        self.wait(order["id"], status="filled")
        self.trade(sym, "10.00", 1)  # too little volume for a lot: later orders wait


@pytest.fixture
def trader(feed_server: Server) -> Trader:
    return Trader(feed_server)


def fills_of(http: httpx.Client, order_id: int) -> list[dict[str, Any]]:
    return [f for f in http.get("/v1/fills").json() if f["order_id"] == order_id]


# MARKET AND LIMIT ------------------------------------------------------------------------


def test_a_market_buy_fills_at_the_next_printed_price_within_its_bound(trader: Trader) -> None:
    sym = symbol()
    order = trader.order(symbol=sym, side="buy", qty=100, type="market")
    assert (order["type"], order["limit_price"], order["price_bound"]) == ("market", None, "10.50")
    assert order["status"] == "new"  # no trade since it arrived
    assert trader.account()["reserved_cash"] == "1055.00"  # 100 x 10.50 + 5.00
    trader.trade(sym, "10.07", 1000)
    filled = trader.wait(order["id"], status="filled")
    assert filled["avg_fill_price"] == "10.0700"
    assert trader.account()["reserved_cash"] == "0.00"


def test_a_market_order_does_not_fill_beyond_its_protection_price(trader: Trader) -> None:
    sym = symbol()
    order = trader.order(symbol=sym, side="buy", qty=100, type="market", time_in_force="gtc")
    trader.trade(sym, "10.51", 1000)  # one tick beyond 10.50
    assert trader.get(order["id"])["status"] == "new"
    trader.trade(sym, "10.50", 1000)
    trader.wait(order["id"], status="filled", avg_fill_price="10.5000")


def test_a_limit_order_fills_only_at_prices_the_market_printed(trader: Trader) -> None:
    sym = symbol()
    buy = trader.order(symbol=sym, side="buy", qty=100, type="limit", limit_price="9.90")
    trader.trade(sym, "9.91", 10_000)
    assert trader.get(buy["id"])["status"] == "new"
    trader.trade(sym, "9.85", 10_000)
    # filled at the price printed, better than its limit; never at the limit itself
    trader.wait(buy["id"], status="filled", avg_fill_price="9.8500")


def test_a_buy_takes_the_ask_and_a_sell_the_bid_when_the_feed_has_them(trader: Trader) -> None:
    sym = symbol()
    trader.hold(sym, 100)
    buy = trader.order(symbol=sym, side="buy", qty=100, limit_price="10.00")
    sell = trader.order(symbol=sym, side="sell", qty=100, limit_price="10.00")
    trader.trade(sym, "10.00", 10_000, bid="9.99", ask="10.01")
    assert trader.get(buy["id"])["status"] == "new"  # the ask is above its limit
    assert trader.get(sell["id"])["status"] == "new"  # the bid is below its limit
    trader.trade(sym, "10.00", 10_000, bid="9.98", ask="9.99")
    trader.wait(buy["id"], status="filled", avg_fill_price="9.9900")
    assert trader.get(sell["id"])["status"] == "new"
    trader.trade(sym, "10.00", 10_000, bid="10.02", ask="10.03")
    trader.wait(sell["id"], status="filled", avg_fill_price="10.0200")


# PARTIAL FILLS ---------------------------------------------------------------------------


def test_fills_never_exceed_a_quarter_of_each_trades_volume(trader: Trader) -> None:
    sym = symbol()
    order = trader.order(symbol=sym, side="buy", qty=1000, limit_price="10.00", time_in_force="gtc")
    # 25% of 1000 is 250, in lots: 200; of 2000: 500; of 399: 99, not a lot; of 400: 100
    for last, volume, filled in (
        ("10.00", 1000, "200"),
        ("9.99", 2000, "700"),
        ("10.00", 399, "700"),
        ("10.00", 400, "800"),
    ):
        trader.trade(sym, last, volume)
        trader.wait(order["id"], filled_qty=filled)
    assert [f["qty"] for f in reversed(fills_of(trader.http, order["id"]))] == [
        "200",
        "500",
        "100",
    ]
    partial = trader.get(order["id"])
    assert partial["status"] == "partially_filled"
    # 0.1% of 7995.00 in all, half up: one commission on the order, not a minimum per fill
    assert partial["commission"] == "8.00"
    # the rest, 200 x 10.00, and what its commission adds: 0.1% of 9995.00 is 10.00 in all
    assert trader.account()["reserved_cash"] == "2002.00"


def test_the_volume_of_a_trade_is_shared_in_price_time_priority(feed_server: Server) -> None:
    sym = symbol()
    first, second, better = Trader(feed_server), Trader(feed_server), Trader(feed_server)
    a = first.order(symbol=sym, side="buy", qty=300, limit_price="10.00")
    b = second.order(symbol=sym, side="buy", qty=300, limit_price="10.00")
    c = better.order(symbol=sym, side="buy", qty=100, limit_price="10.01")
    first.trade(sym, "10.00", 1600)  # 400 for the buyers
    better.wait(c["id"], status="filled")
    first.wait(a["id"], status="filled")
    assert second.get(b["id"])["filled_qty"] == "0"


# STOPS -------------------------------------------------------------------------------------


def test_a_stop_buy_triggers_on_a_trade_at_its_stop_and_fills_on_it(trader: Trader) -> None:
    sym = symbol()
    stop = trader.order(symbol=sym, side="buy", qty=100, type="stop", stop_price="10.20")
    assert stop["price_bound"] == "10.71"  # 10.20 + 5%, rounded up to the tick
    trader.trade(sym, "10.19", 1000)
    assert trader.get(stop["id"])["triggered"] is False
    trader.trade(sym, "10.20", 1000)
    filled = trader.wait(stop["id"], status="filled")
    assert (filled["triggered"], filled["avg_fill_price"]) == (True, "10.2000")
    kinds = [e["kind"] for e in trader.history() if e["order_id"] == stop["id"]]
    assert kinds == ["order.accepted", "order.triggered", "order.filled"]


def test_a_stop_sell_triggers_at_or_below_its_stop(trader: Trader) -> None:
    sym = symbol()
    trader.hold(sym, 200)
    stop = trader.order(symbol=sym, side="sell", qty=200, type="stop", stop_price="9.80")
    trader.trade(sym, "9.81", 1000)
    assert trader.get(stop["id"])["status"] == "new"
    trader.trade(sym, "9.75", 1000)
    trader.wait(stop["id"], status="filled", avg_fill_price="9.7500", triggered=True)


def test_a_triggered_stop_limit_waits_for_its_limit(trader: Trader) -> None:
    sym = symbol()
    order = trader.order(
        symbol=sym, side="buy", qty=100, type="stop_limit", stop_price="10.20", limit_price="10.22"
    )
    assert order["price_bound"] == "10.22"
    trader.trade(sym, "10.25", 1000)  # triggers; above the limit, so no fill
    trader.wait(order["id"], triggered=True)
    assert trader.get(order["id"])["status"] == "new"
    trader.trade(sym, "10.21", 1000)
    trader.wait(order["id"], status="filled", avg_fill_price="10.2100")


def test_a_trailing_stop_follows_the_high_and_never_moves_back(trader: Trader) -> None:
    sym = symbol()
    trader.hold(sym, 100)  # the last trade is now 10.00
    order = trader.order(symbol=sym, side="sell", qty=100, type="trailing_stop", trail_price="0.20")
    assert order["stop_price"] == "9.80"
    for last in ("10.50", "10.40", "10.31"):  # the stop rises to 10.30 and stays there
        trader.trade(sym, last, 1000)
        assert trader.get(order["id"])["status"] == "new", last
    trader.trade(sym, "10.30", 1000)
    filled = trader.wait(order["id"], status="filled", avg_fill_price="10.3000")
    assert filled["stop_price"] == "10.30"


def test_a_trailing_stop_keeps_its_stop_over_a_matcher_crash(tmp_path: Path) -> None:
    """Each move of the stop is in the ledger: the order shows it, and a matcher rebuilt
    after a kill -9 trails on from it, not from the stop it was accepted with."""
    symbols = [{"symbol": "TS1", "name": "Trailing", "prev_close": "10.00"}]
    market = {"feed": "external", "symbols": symbols}
    with Server(tmp_path, fill_mode="wait", market=market) as server:
        trader = Trader(server)
        trader.hold("TS1", 100)
        order = trader.order(
            symbol="TS1", side="sell", qty=100, type="trailing_stop", trail_price="0.20"
        )
        assert order["stop_price"] == "9.80"
        trader.trade("TS1", "10.50", 1000)
        trader.wait(order["id"], stop_price="10.30")
        server.kill("matcher")
        trader.trade("TS1", "10.35", 1000)  # the stop stays at 10.30, not 10.15
        assert trader.get(order["id"])["status"] == "new"
        trader.trade("TS1", "10.30", 1000)
        trader.wait(order["id"], status="filled", avg_fill_price="10.3000", stop_price="10.30")


def test_a_trailing_percent_stop_starts_from_the_last_price(trader: Trader) -> None:
    sym = symbol()
    order = trader.order(symbol=sym, side="buy", qty=100, type="trailing_stop", trail_percent=5)
    assert (order["stop_price"], order["trail_percent"]) == ("10.50", "5")  # prev close 10.00
    trader.trade(sym, "9.00", 1000)  # the stop falls to 9.45
    trader.trade(sym, "9.44", 1000)
    assert trader.get(order["id"])["status"] == "new"
    trader.trade(sym, "9.45", 1000)
    trader.wait(order["id"], status="filled", avg_fill_price="9.4500", stop_price="9.45")


# TIME IN FORCE -----------------------------------------------------------------------------


def test_an_ioc_order_fills_what_it_can_and_cancels_the_rest(trader: Trader) -> None:
    sym = symbol()
    trader.trade(sym, "10.00", 800)  # 200 may still fill against it
    reply = trader.zmq.place_order(sym, "buy", 500, "10.10", time_in_force="ioc")
    assert (reply["status"], reply["filled_qty"]) == ("canceled", "200")
    assert reply["avg_fill_price"] == "10.0000"
    assert trader.account()["reserved_cash"] == "0.00"
    kinds = [e["kind"] for e in trader.history() if e["order_id"] == reply["id"]]
    assert kinds == ["order.accepted", "order.partially_filled", "order.canceled"]


def test_a_fok_that_cannot_fill_whole_leaves_only_its_rejection(trader: Trader) -> None:
    sym = symbol()
    trader.trade(sym, "10.00", 800)  # room for 200
    before = trader.account()
    r = trader.http.post(
        "/v1/orders",
        json={"symbol": sym, "side": "buy", "qty": 300, "limit_price": "10.00",
              "time_in_force": "fok", "client_order_id": "fok-1"},
    )  # fmt: skip
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "MATCH_FOK_NOT_FILLED"
    assert trader.account() == before
    [entry] = [e for e in trader.history() if e["kind"] != "order.accepted"]
    assert (entry["kind"], entry["status"], entry["qty"]) == ("order.rejected", "rejected", "300")
    assert trader.http.get("/v1/fills").json() == []
    assert trader.http.get("/v1/orders").json() == []
    # a FOK that fits fills whole
    fits = trader.zmq.place_order(sym, "buy", 200, "10.00", time_in_force="fok")
    assert (fits["status"], fits["filled_qty"]) == ("filled", "200")


def test_a_retried_client_order_id_creates_no_second_order(trader: Trader) -> None:
    sym = symbol()
    trader.trade(sym, "10.00", 400)
    first = trader.zmq.place_order(sym, "buy", 100, "10.00", "ioc-1", time_in_force="ioc")
    again = trader.zmq.place_order(sym, "buy", 100, "10.00", "ioc-1", time_in_force="ioc")
    assert again["id"] == first["id"] and again["status"] == first["status"] == "filled"
    rest = trader.order(symbol=sym, side="buy", qty=100, limit_price="9.00", client_order_id="r")
    assert (
        trader.order(symbol=sym, side="buy", qty=100, limit_price="9.00", client_order_id="r")["id"]
        == rest["id"]
    )
    assert len(trader.http.get("/v1/orders", params={"status": "all"}).json()) == 2


def test_ioc_and_fok_end_at_once_while_trading_is_paused(feed_server: Server) -> None:
    trader = Trader(feed_server)
    sym = symbol()
    trader.trade(sym, "10.00", 10_000)
    feed_server.set_control("paused")
    try:
        ioc = trader.zmq.place_order(sym, "buy", 100, "10.00", time_in_force="ioc")
        assert (ioc["status"], ioc["filled_qty"]) == ("canceled", "0")
        with pytest.raises(TradeError) as refused:
            trader.zmq.place_order(sym, "buy", 100, "10.00", time_in_force="fok")
        assert refused.value.code == "MATCH_FOK_NOT_FILLED"
    finally:
        feed_server.set_control("running")


# REPLACE -----------------------------------------------------------------------------------


def test_a_replacement_takes_the_orders_place_under_a_new_id(trader: Trader) -> None:
    sym = symbol()
    old = trader.order(symbol=sym, side="buy", qty=300, limit_price="9.50", time_in_force="gtc")
    r = trader.http.patch(f"/v1/orders/{old['id']}", json={"limit_price": "9.60", "qty": 200})
    assert r.status_code == 200, r.text
    new = r.json()
    assert (new["replaces"], new["qty"], new["limit_price"], new["time_in_force"]) == (
        old["id"],
        "200",
        "9.60",
        "gtc",
    )
    replaced = trader.get(old["id"])
    assert (replaced["status"], replaced["replaced_by"]) == ("replaced", new["id"])
    assert trader.account()["reserved_cash"] == "1925.00"  # 200 x 9.60 + 5.00
    assert [o["id"] for o in trader.http.get("/v1/orders").json()] == [new["id"]]
    trader.trade(sym, "9.60", 10_000)
    trader.wait(new["id"], status="filled")
    r = trader.http.patch(f"/v1/orders/{new['id']}", json={"qty": 100})
    assert r.status_code == 409 and r.json()["error"]["code"] == "REQUEST_ORDER_NOT_OPEN"


def test_a_replacement_keeps_time_priority_only_for_a_smaller_qty_at_the_same_price(
    feed_server: Server,
) -> None:
    sym = symbol()
    first, second = Trader(feed_server), Trader(feed_server)
    a = first.order(symbol=sym, side="buy", qty=200, limit_price="10.00")
    b = second.order(symbol=sym, side="buy", qty=200, limit_price="10.00")
    smaller = first.zmq.replace_order(a["id"], qty=100)["order"]
    first.trade(sym, "10.00", 400)  # room for 100: the front of the queue takes it
    first.wait(smaller["id"], status="filled")
    assert second.get(b["id"])["filled_qty"] == "0"
    larger = second.zmq.replace_order(b["id"], qty=300)["order"]  # same price, back of queue
    c = first.order(symbol=sym, side="buy", qty=100, limit_price="10.00")
    time.sleep(PROPAGATE)
    grown = second.zmq.replace_order(larger["id"], qty=400)["order"]
    first.trade(sym, "10.00", 400)
    first.wait(c["id"], status="filled")
    assert second.get(grown["id"])["filled_qty"] == "0"


def test_a_stop_replacement_moves_the_stop(trader: Trader) -> None:
    sym = symbol()
    stop = trader.order(symbol=sym, side="buy", qty=100, type="stop", stop_price="10.50")
    reply = trader.zmq.replace_order(stop["id"], stop_price="10.10")
    new = reply["order"]
    assert (new["type"], new["stop_price"], new["price_bound"]) == ("stop", "10.10", "10.61")
    assert reply["replaced"]["status"] == "replaced"
    trader.trade(sym, "10.10", 1000)
    trader.wait(new["id"], status="filled", triggered=True)


# RECOVERY ----------------------------------------------------------------------------------


def test_triggered_and_partly_filled_orders_survive_a_restart(feed_server: Server) -> None:
    trader = Trader(feed_server)
    sym = symbol()
    stop = trader.order(
        symbol=sym, side="buy", qty=500, type="stop_limit", stop_price="10.20",
        limit_price="10.30", time_in_force="gtc",
    )  # fmt: skip
    trader.trade(sym, "10.25", 800)  # triggers, and 200 fill
    trader.wait(stop["id"], filled_qty="200", triggered=True)
    account = trader.account()
    feed_server.restart()
    trader.http = feed_server.http(trader.token)
    # 300 x 10.30, and 0.14 more commission: 0.1% of 5140.00 in all, of which 5.00 is paid
    assert trader.account()["reserved_cash"] == account["reserved_cash"] == "3090.14"
    trader.trade(sym, "10.19", 10_000)  # below its stop: only a triggered order fills here
    trader.wait(stop["id"], status="filled", filled_qty="500", avg_fill_price="10.2140")


def test_fees_and_cash_are_conserved_across_every_order_type(feed_server: Server) -> None:
    trader = Trader(feed_server, cash="100000")
    sym = symbol()
    trader.hold(sym, 500)
    orders = [
        trader.order(symbol=sym, side="sell", qty=100, type="market"),
        trader.order(symbol=sym, side="sell", qty=150, type="stop", stop_price="9.90"),
        trader.order(symbol=sym, side="buy", qty=300, type="limit", limit_price="9.95"),
        trader.order(symbol=sym, side="sell", qty=50, type="trailing_stop", trail_percent="1"),
    ]
    for last, volume in (("10.05", 900), ("9.89", 1200), ("9.95", 4000), ("9.70", 4000)):
        trader.trade(sym, last, volume)
    account = trader.account()
    fills = trader.http.get("/v1/fills").json()
    assert {f["order_id"] for f in fills} >= {o["id"] for o in orders}  # each filled, some
    spent = sum(D(f["value"]) for f in fills if f["side"] == "buy")
    got = sum(D(f["value"]) for f in fills if f["side"] == "sell")
    fees = sum(D(f["commission"]) + D(f["tax"]) for f in fills)
    assert D(account["cash"]) == D("100000") - spent + got - fees
    assert D(account["commission_paid"]) + D(account["tax_paid"]) == fees
    held = sum(D(f["qty"]) if f["side"] == "buy" else -D(f["qty"]) for f in fills)
    open_sells = sum(
        D(o["qty"]) - D(o["filled_qty"])
        for o in trader.http.get("/v1/orders").json()
        if o["side"] == "sell"
    )
    [position] = trader.http.get("/v1/positions").json()
    assert (D(position["qty"]), D(position["available_qty"])) == (held, held - open_sells)
    assert D(account["available_cash"]) >= 0


# EXPIRY ------------------------------------------------------------------------------------


def test_day_orders_expire_at_the_session_close_and_gtc_orders_stay(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    zone = "UTC" if 1 <= datetime.now(UTC).hour <= 22 else "Etc/GMT-6"  # no window over midnight
    now = datetime.now(ZoneInfo(zone))
    close = now + timedelta(seconds=30)
    hours = f"{(now - timedelta(minutes=5)):%H:%M:%S}-{close:%H:%M:%S}"
    control = {"sessions": "hours", "hours": [hours], "timezone": zone}
    market = {"feed": "external"}
    folder = tmp_path_factory.mktemp("expiry")
    with Server(folder, fill_mode="wait", market=market, control=control) as server:
        trader = Trader(server)
        day = trader.order(symbol="600000", side="buy", qty=100, limit_price="1.00")
        gtc = trader.order(
            symbol="600000", side="buy", qty=100, limit_price="1.00", time_in_force="gtc"
        )
        assert trader.account()["reserved_cash"] == "210.00"
        assert datetime.now(ZoneInfo(zone)) < close, "the session closed before the orders"
        expired = trader.wait(day["id"], timeout=60, status="expired")
        assert expired["filled_qty"] == "0"
        after_close = trader.order(symbol="600000", side="buy", qty=100, limit_price="1.00")
        time.sleep(2)  # heartbeats after the close: the order placed since does not expire
        assert trader.get(gtc["id"])["status"] == "new"
        assert trader.get(after_close["id"])["status"] == "new"
        assert trader.account()["reserved_cash"] == "210.00"
        kinds = [e["kind"] for e in trader.history() if e["order_id"] == day["id"]]
        assert kinds == ["order.accepted", "order.expired"]
        server.assert_no_crash()


def test_the_replacement_of_a_triggered_stop_works_at_once(trader: Trader) -> None:
    sym = symbol()
    order = trader.order(
        symbol=sym, side="buy", qty=100, type="stop_limit", stop_price="10.20", limit_price="10.22"
    )
    trader.trade(sym, "10.30", 1000)  # triggers; above the limit, so no fill
    trader.wait(order["id"], triggered=True)
    r = trader.http.patch(f"/v1/orders/{order['id']}", json={"stop_price": "10.40"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "REQUEST_FIELD_NOT_ALLOWED")
    new = trader.zmq.replace_order(order["id"], limit_price="10.19")["order"]
    assert new["triggered"] is True
    trader.trade(sym, "10.19", 1000)  # below the stop: a stop waiting for it would not fill
    trader.wait(new["id"], status="filled", avg_fill_price="10.1900")
    again = trader.http.patch(f"/v1/orders/{new['id']}", json={"qty": 100})
    assert again.status_code == 409


def test_a_replace_retried_with_its_client_order_id_gets_the_same_replacement(
    trader: Trader,
) -> None:
    sym = symbol()
    first = trader.order(symbol=sym, side="buy", qty=100, limit_price="9.00", client_order_id="a")
    other = trader.order(symbol=sym, side="buy", qty=100, limit_price="9.00", client_order_id="b")
    body = {"limit_price": "9.10", "client_order_id": "a2"}
    new = trader.http.patch(f"/v1/orders/{first['id']}", json=body).json()
    retried = trader.http.patch(f"/v1/orders/{first['id']}", json=body)
    assert (retried.status_code, retried.json()["id"]) == (200, new["id"])
    taken = trader.http.patch(
        f"/v1/orders/{other['id']}", json={"qty": 200, "client_order_id": "a"}
    )
    assert (taken.status_code, taken.json()["error"]["code"]) == (
        409,
        "REQUEST_DUPLICATE_CLIENT_ORDER_ID",
    )
    assert trader.get(other["id"])["status"] == "new"
