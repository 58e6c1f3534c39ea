"""Per-symbol market profiles over the real processes: cn_a, us_equity and crypto symbols
side by side on one server, listed in a CSV symbol table (docs/market-rules.md).

The server takes its trades from the external feed, so each test prints the trades it
needs; every test trades its own symbols.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import httpx
import pytest

from tests.conftest import fresh_name
from tests.harness import Server

PROPAGATE = 0.3  # s: long enough for an order or a trade to reach the matcher here
GTC = {"time_in_force": "gtc"}
SYMBOL_TABLE = """\
symbol,name,profile,prev_close,tick_size,qty_step,min_notional
600000,SPD Bank,,8.50,,,
AAPL,Apple,us_equity,190.00,,,
MSFT,Microsoft,us_equity,400.00,,,
IBM,IBM,us_equity,160.00,,,
BTCUSDT,Bitcoin,crypto,43000.00,0.01,0.0001,10
ETHUSDT,Ether,crypto,2300.00,0.01,0.001,10
SOLUSDT,Solana,crypto,100.000,0.001,0.01,5
"""


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("profiles")
    table = folder / "symbols.csv"
    table.write_text(SYMBOL_TABLE)
    with Server(
        folder,
        fill_mode="wait",
        market={"feed": "external", "symbols_file": str(table)},
        profiles={
            "us_equity": {"commission_per_share": "0.005", "min_commission": "1.00"},
            "crypto": {"maker_fee_rate": "0.001", "taker_fee_rate": "0.002"},
        },
    ) as srv:
        yield srv
        srv.assert_no_crash()


class Trader:
    def __init__(self, server: Server, cash: str = "1000000") -> None:
        self.server = server
        self.cash = D(cash)
        self.http = server.http(server.new_user(fresh_name("profile"), cash))

    def order(self, **fields: Any) -> httpx.Response:
        return self.http.post("/v1/orders", json={"type": "limit", **fields})

    def placed(self, **fields: Any) -> dict[str, Any]:
        r = self.order(**fields)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def refused(self, code: str, **fields: Any) -> None:
        """Refused with `code`, and nothing changed: account, orders, history."""
        before = self.state()
        r = self.order(**fields)
        assert r.status_code in (403, 422), r.text
        assert r.json()["error"]["code"] == code, r.text
        assert self.state() == before

    def state(self) -> tuple[Any, ...]:
        return tuple(
            self.http.get(path).json() for path in ("/v1/account", "/v1/orders", "/v1/history")
        )

    def wait(self, order_id: int, **expected: Any) -> dict[str, Any]:
        deadline = time.monotonic() + 15
        while True:
            order = dict(self.http.get(f"/v1/orders/{order_id}").json())
            if all(order[k] == v for k, v in expected.items()):
                return order
            assert time.monotonic() < deadline, (expected, order)
            time.sleep(0.05)

    def fills(self, order_id: int) -> list[dict[str, Any]]:
        return [f for f in self.http.get("/v1/fills").json() if f["order_id"] == order_id]

    def account(self) -> dict[str, Any]:
        return dict(self.http.get("/v1/account").json())

    def trade(self, symbol: str, last: str, volume: int | str) -> None:
        time.sleep(PROPAGATE)  # orders placed just before reach the book first
        self.server.push_quotes({"symbol": symbol, "last": last, "volume": volume})
        time.sleep(PROPAGATE)

    def assert_cash_conserved(self) -> None:
        """cash + fees + bought - sold = the capital, to the last unit, on the wire."""
        a = self.account()
        fills = self.http.get("/v1/fills", params={"limit": 1000}).json()
        bought = sum((D(f["value"]) for f in fills if f["side"] == "buy"), D(0))
        sold = sum((D(f["value"]) for f in fills if f["side"] == "sell"), D(0))
        paid = D(a["commission_paid"]) + D(a["tax_paid"])
        assert D(a["cash"]) + paid + bought - sold == self.cash


@pytest.fixture
def trader(mixed: Server) -> Trader:
    return Trader(mixed)


def test_the_symbol_table_gives_each_symbol_its_profile_and_sizes(trader: Trader) -> None:
    listed = {s["symbol"]: s for s in trader.http.get("/v1/symbols").json()}
    rows = {
        name: (s["profile"], s["tick_size"], s["lot_size"], s["qty_step"], s["min_notional"])
        for name, s in listed.items()
    }
    assert rows == {
        "600000": ("cn_a", "0.01", 100, 1, "0"),
        "AAPL": ("us_equity", "0.01", 1, 1, "0"),
        "MSFT": ("us_equity", "0.01", 1, 1, "0"),
        "IBM": ("us_equity", "0.01", 1, 1, "0"),
        "BTCUSDT": ("crypto", "0.01", "0.0001", "0.0001", "10"),
        "ETHUSDT": ("crypto", "0.01", "0.001", "0.001", "10"),
        "SOLUSDT": ("crypto", "0.001", "0.01", "0.01", "5"),
    }
    assert listed["BTCUSDT"]["name"] == "Bitcoin"


# US EQUITY -----------------------------------------------------------------------------


def test_us_equity_charges_per_share_with_a_minimum_and_regulatory_fees_on_sells(
    trader: Trader,
) -> None:
    buy = trader.placed(symbol="AAPL", side="buy", qty=7, limit_price="190.00")  # lot 1
    trader.trade("AAPL", "189.50", 1000)
    trader.wait(buy["id"], status="filled")
    [fill] = trader.fills(buy["id"])
    # 7 x 0.005 = 0.035 per share, under the 1.00 minimum; no regulatory fees on buys
    assert (fill["value"], fill["commission"], fill["tax"]) == ("1326.50", "1.00", "0.00")
    sell = trader.placed(symbol="AAPL", side="sell", qty=7, limit_price="200.00")
    trader.trade("AAPL", "200.00", 1000)
    trader.wait(sell["id"], status="filled")
    [fill] = trader.fills(sell["id"])
    # SEC: 1400.00 x 0.0000278 = 0.03892, up to 0.04; TAF: 7 x 0.000166, up to 0.01
    assert (fill["value"], fill["commission"], fill["tax"]) == ("1400.00", "1.00", "0.05")
    assert fill["liquidity"] == "maker"  # it rested below 200.00 until the market came
    trader.assert_cash_conserved()


def test_us_equity_takes_whole_shares_unless_fractional(trader: Trader) -> None:
    trader.refused("REQUEST_INVALID_QTY", symbol="AAPL", side="buy", qty="0.5", limit_price="1")
    trader.refused("REQUEST_PRICE_TICK", symbol="AAPL", side="buy", qty=1, limit_price="1.005")
    assert trader.placed(symbol="AAPL", side="buy", qty=3, limit_price="100.00")["qty"] == "3"


def test_us_equity_exact_cash_is_enough_and_a_cent_less_is_not(mixed: Server) -> None:
    # 10 x 160.00 + the 1.00 minimum commission
    exact, short = Trader(mixed, "1601.00"), Trader(mixed, "1600.99")
    order = exact.placed(symbol="IBM", side="buy", qty=10, limit_price="160.00")
    assert exact.account()["available_cash"] == "0.00"
    short.refused("RISK_INSUFFICIENT_CASH", symbol="IBM", side="buy", qty=10, limit_price="160.00")
    assert short.account()["reserved_cash"] == "0.00"
    exact.trade("IBM", "160.00", 100)
    exact.wait(order["id"], status="filled")
    assert exact.account()["cash"] == "0.00"
    exact.assert_cash_conserved()


def test_the_taf_is_capped_per_order(mixed: Server) -> None:
    trader = Trader(mixed, "25000000")
    buy = trader.placed(symbol="MSFT", side="buy", qty=60_000, limit_price="400.00")
    trader.trade("MSFT", "400.00", 240_000)
    trader.wait(buy["id"], status="filled")
    trader.trade("MSFT", "400.00", 1)  # a quarter share: no room for the sell at once
    sell = trader.placed(symbol="MSFT", side="sell", qty=60_000, limit_price="400.00")
    trader.trade("MSFT", "400.00", 120_000)  # 30 000 now, the rest on the next trade
    trader.trade("MSFT", "400.00", 120_000)
    trader.wait(sell["id"], status="filled")
    fills = trader.fills(sell["id"])
    assert [f["qty"] for f in fills] == ["30000", "30000"]
    # SEC on 24 000 000.00 = 667.20; TAF 60 000 x 0.000166 = 9.96, capped at 8.30 once
    assert sum(D(f["tax"]) for f in fills) == D("667.20") + D("8.30")
    assert sum(D(f["commission"]) for f in fills) == D("300.00")  # 60 000 x 0.005
    trader.assert_cash_conserved()


# CRYPTO --------------------------------------------------------------------------------


def test_crypto_qty_follows_the_symbols_step_and_minimum_notional(trader: Trader) -> None:
    btc = {"symbol": "BTCUSDT", "side": "buy"}
    trader.refused("REQUEST_LOT_SIZE", **btc, qty="0.00015", limit_price="43000.00")
    trader.refused("REQUEST_PRICE_TICK", **btc, qty="0.001", limit_price="43000.001")
    # 0.0002 x 43000.00 = 8.60, under 10
    trader.refused("REQUEST_MIN_NOTIONAL", **btc, qty="0.0002", limit_price="43000.00")
    at_minimum = trader.placed(**btc, qty="0.0005", limit_price="20000.00")  # exactly 10.00
    assert at_minimum["qty"] == "0.0005"
    sol = trader.placed(symbol="SOLUSDT", side="buy", qty="0.05", limit_price="100.001")
    assert (sol["qty"], sol["limit_price"]) == ("0.05", "100.001")  # 5.00005: over 5


def test_crypto_makers_and_takers_pay_their_own_rates(trader: Trader) -> None:
    trader.trade("ETHUSDT", "2301.37", "5")
    # a limit that reaches the last trade takes liquidity: it fills on that trade's volume
    taker = trader.placed(symbol="ETHUSDT", side="buy", qty="0.123", limit_price="2310.00")
    trader.wait(taker["id"], status="filled")
    # one below rests and makes liquidity when the market comes down to it
    maker = trader.placed(symbol="ETHUSDT", side="buy", qty="0.456", limit_price="2290.55")
    trader.trade("ETHUSDT", "2290.55", "4")
    trader.wait(maker["id"], status="filled")
    [took] = trader.fills(taker["id"])
    [made] = trader.fills(maker["id"])
    # 0.123 x 2301.37 = 283.06851 at 0.2%; 0.456 x 2290.55 = 1044.4908 at 0.1%
    assert (took["liquidity"], took["value"], took["commission"], took["tax"]) == (
        "taker",
        "283.06851",
        "0.56613702",
        "0.00",
    )
    assert (made["liquidity"], made["value"], made["commission"]) == (
        "maker",
        "1044.4908",
        "1.0444908",
    )
    account = trader.account()
    assert account["cash"] == "998670.83006218"  # exact: crypto settles to 0.00000001
    assert account["commission_paid"] == "1.61062782"
    trader.assert_cash_conserved()


def test_crypto_exact_cash_at_the_taker_rate_is_enough(mixed: Server) -> None:
    # 0.001 x 40000.00 = 40.00, and 0.2% taker fee 0.08: reserved at the dearer rate
    exact, short = Trader(mixed, "40.08"), Trader(mixed, "40.07")
    order = exact.placed(symbol="BTCUSDT", side="buy", qty="0.001", limit_price="40000.00")
    assert exact.account()["available_cash"] == "0.00"
    short.refused(
        "RISK_INSUFFICIENT_CASH", symbol="BTCUSDT", side="buy", qty="0.001", limit_price="40000.00"
    )
    exact.trade("BTCUSDT", "40000.00", "1")
    exact.wait(order["id"], status="filled")
    [fill] = exact.fills(order["id"])
    assert fill["liquidity"] == "maker"  # it rested: 0.1%, and the rest of the hold comes back
    assert exact.account()["cash"] == "0.04"
    exact.assert_cash_conserved()


def test_crypto_partial_fills_come_in_steps_of_a_fractional_volume(trader: Trader) -> None:
    trader.trade("BTCUSDT", "43000.00", "0.0001")  # leaves no room for a step: a fresh start
    order = trader.placed(symbol="BTCUSDT", side="buy", qty="0.0030", limit_price="43000.00")
    trader.trade("BTCUSDT", "43000.00", "0.0046")  # a quarter: 0.00115, in steps: 0.0011
    trader.wait(order["id"], filled_qty="0.0011")
    trader.trade("BTCUSDT", "42999.99", "0.1")
    trader.wait(order["id"], status="filled")
    fills = trader.fills(order["id"])
    assert sorted(f["qty"] for f in fills) == ["0.0011", "0.0019"]
    sell = trader.placed(symbol="BTCUSDT", side="sell", qty="0.003", limit_price="43000.00")
    trader.trade("BTCUSDT", "43000.00", "1")
    trader.wait(sell["id"], status="filled")
    positions = trader.http.get("/v1/positions").json()
    assert all(p["symbol"] != "BTCUSDT" for p in positions)  # sold to the last satoshi
    trader.assert_cash_conserved()


def test_cn_a_keeps_its_rules_beside_the_others(trader: Trader) -> None:
    trader.refused("REQUEST_LOT_SIZE", symbol="600000", side="buy", qty=150, limit_price="8.50")
    order = trader.placed(symbol="600000", side="buy", qty=100, limit_price="8.50")
    trader.trade("600000", "8.50", 1000)
    trader.wait(order["id"], status="filled")
    [fill] = trader.fills(order["id"])
    assert (fill["commission"], fill["tax"]) == ("5.00", "0.00")  # the 5.00 minimum


# SESSIONS BY PROFILE -------------------------------------------------------------------


@pytest.fixture(scope="module")
def by_profile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    symbols = [
        {"symbol": "600000", "name": "SPD Bank", "prev_close": "8.50"},
        {"symbol": "AAPL", "name": "Apple", "prev_close": "190.00", "profile": "us_equity"},
        {"symbol": "BTCUSDT", "name": "Bitcoin", "prev_close": "43000.00", "profile": "crypto"},
    ]
    with Server(
        tmp_path_factory.mktemp("sessions"),
        fill_mode="wait",
        market={"feed": "external", "symbols": symbols},
        control={"sessions": "profile", "clock": "market"},
    ) as srv:
        yield srv
        srv.assert_no_crash()


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * 10**9


def test_each_symbol_trades_in_its_own_profiles_sessions(by_profile: Server) -> None:
    trader = Trader(by_profile)

    def push(when: str, symbol: str, last: str, volume: int | str) -> None:
        """A trade at a UTC time, once the market clock has reached it."""
        ts = utc(when)
        by_profile.push_quotes({"symbol": symbol, "last": last, "volume": volume, "ts": ts})
        deadline = time.monotonic() + 15
        while trader.http.get("/v1/control").json()["ts"] < ts:
            assert time.monotonic() < deadline, "market time did not move"
            time.sleep(0.05)
        time.sleep(PROPAGATE)

    def sessions() -> dict[str, tuple[bool, str]]:
        markets = trader.http.get("/v1/control").json()["markets"]
        return {name: (m["session_open"], m["trading_day"]) for name, m in markets.items()}

    def status(order: dict[str, Any]) -> str:
        return str(trader.http.get(f"/v1/orders/{order['id']}").json()["status"])

    # Saturday 6 January 2024, 12:00 UTC: only crypto trades
    push("2024-01-06 12:00", "BTCUSDT", "43000.00", "1")
    assert sessions() == {
        "cn_a": (False, "2024-01-08"),
        "crypto": (True, "2024-01-06"),
        "us_equity": (False, "2024-01-08"),
    }
    btc = trader.placed(symbol="BTCUSDT", side="buy", qty="0.001", limit_price="43000.00")
    trader.wait(btc["id"], status="filled")  # on the latest trade's volume, at once
    apple = trader.placed(symbol="AAPL", side="buy", qty=10, limit_price="190.00")
    apple_low = trader.placed(symbol="AAPL", side="buy", qty=10, limit_price="180.00")
    bank = trader.placed(symbol="600000", side="buy", qty=100, limit_price="8.50", **GTC)
    bank_day = trader.placed(symbol="600000", side="buy", qty=100, limit_price="8.00")
    push("2024-01-06 12:01", "AAPL", "189.00", 1000)  # the exchanges are shut: dropped
    push("2024-01-06 12:02", "600000", "8.40", 1000)
    assert [status(o) for o in (apple, bank)] == ["new", "new"]

    # Monday 8 January, 15:00 UTC: 10:00 in New York, 23:00 in Shanghai
    push("2024-01-08 15:00", "AAPL", "189.50", 1000)
    assert sessions() == {
        "cn_a": (False, "2024-01-09"),  # Monday's session closed at 15:00 Shanghai
        "crypto": (True, "2024-01-08"),
        "us_equity": (True, "2024-01-08"),
    }
    trader.wait(apple["id"], status="filled", avg_fill_price="189.5000")
    trader.wait(bank_day["id"], status="expired")  # a DAY order for Monday in Shanghai
    push("2024-01-08 15:01", "600000", "8.40", 1000)
    assert status(bank) == "new"

    # Tuesday 9 January, 02:00 UTC: 10:00 in Shanghai, 21:00 on Monday in New York
    push("2024-01-09 02:00", "600000", "8.45", 1000)
    trader.wait(bank["id"], status="filled", avg_fill_price="8.4500")
    trader.wait(apple_low["id"], status="expired")  # Monday's DAY order in New York
    assert sessions()["us_equity"] == (False, "2024-01-09")
    trader.assert_cash_conserved()
