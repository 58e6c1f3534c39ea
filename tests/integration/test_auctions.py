"""A-share call auctions in exchange mode over the real processes, on market time: the
test moves the clock with the external feed's timestamps through the opening call, the
pre-open, continuous trading and the closing call of one XSHG day (docs/market-rules.md 1.9).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.conftest import fresh_name
from tests.harness import Server
from tests.integration.test_market_rules import at

DAY = "2024-01-03"  # a Wednesday the XSHG calendar trades


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(
        tmp_path_factory.mktemp("calls"),
        fill_mode="wait",
        market={"feed": "external", "mode": "exchange"},
        control={"sessions": "cn_a", "clock": "market"},
    ) as srv:
        yield srv
        srv.assert_no_crash()
        srv.stop()
        assert srv.ledger_imbalances() == []


def move_clock(srv: Server, http: httpx.Client, hhmm: str) -> dict[str, Any]:
    """Push a reference price stamped `hhmm` Shanghai time; returns the control state
    once the server's market time has reached it."""
    ts = at(f"{DAY}T{hhmm}:00")
    srv.push_quotes({"symbol": "600000", "last": "8.50", "volume": 1, "ts": ts})
    deadline = time.monotonic() + 15
    while (control := http.get("/v1/control").json())["ts"] < ts:
        assert time.monotonic() < deadline, "market time did not move"
        time.sleep(0.05)
    time.sleep(0.3)  # the control state reached the matcher
    return dict(control)


def place(http: httpx.Client, side: str, qty: int, price: str) -> int:
    r = http.post(
        "/v1/orders",
        json={"symbol": "600000", "side": side, "qty": qty, "price": price, "time_in_force": "day"},
    )
    assert r.status_code == 200, r.text
    return int(r.json()["id"])


def order(http: httpx.Client, order_id: int) -> dict[str, Any]:
    return dict(http.get(f"/v1/orders/{order_id}").json())


def wait_filled(http: httpx.Client, order_id: int, qty: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while Decimal(str((found := order(http, order_id))["filled_qty"])) != qty:
        assert time.monotonic() < deadline, found
        time.sleep(0.05)
    return found


def test_the_opening_and_closing_calls_trade_at_one_price_each(calls: Server) -> None:
    seller = calls.http(calls.new_user(fresh_name("s"), "1000000", positions={"600000": "1000"}))
    buyer = calls.http(calls.new_user(fresh_name("b"), "1000000"))
    late = calls.http(calls.new_user(fresh_name("l"), "1000000"))

    control = move_clock(calls, buyer, "09:16")
    assert (control["phase"], control["cancels"]) == ("opening_call", True)
    cheap = place(seller, "sell", 300, "8.48")
    dear = place(seller, "sell", 200, "8.52")
    bid = place(buyer, "buy", 400, "8.55")
    low_bid = place(late, "buy", 100, "8.50")
    time.sleep(0.3)
    assert order(buyer, bid)["status"] == "new"  # nothing trades in the call

    control = move_clock(calls, buyer, "09:21")
    assert (control["phase"], control["cancels"]) == ("opening_call", False)
    refused = seller.delete(f"/v1/orders/{dear}")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "MATCH_NOT_CANCELABLE"

    # 09:25: the most volume (400) trades at 8.52, where every bid above and every ask
    # below trades whole; the 8.50 bid and 100 of the 8.52 ask are left
    assert move_clock(calls, buyer, "09:25")["phase"] == "pre_open"
    filled = wait_filled(buyer, bid, 400)
    assert Decimal(filled["avg_fill_price"]) == Decimal("8.52")
    assert Decimal(str(wait_filled(seller, cheap, 300)["avg_fill_price"])) == Decimal("8.52")
    assert Decimal(str(wait_filled(seller, dear, 100)["filled_qty"])) == 100
    assert order(late, low_bid)["status"] == "new"
    depth = buyer.get("/v1/depth/600000").json()
    assert (depth["bids"], depth["asks"], depth["last"]) == (
        [["8.50", "100"]],
        [["8.52", "100"]],
        "8.52",
    )

    assert move_clock(calls, buyer, "09:30")["phase"] == "continuous"
    # the closing call: a crossing bid waits for 15:00, then trades at the call's price
    assert move_clock(calls, buyer, "14:57")["phase"] == "closing_call"
    closing = place(late, "buy", 100, "8.53")
    time.sleep(0.3)
    assert order(late, closing)["status"] == "new"
    assert move_clock(calls, buyer, "15:00")["phase"] == "closed"
    # 100 trade at 8.52 and at 8.53, none left unmatched at either: Shanghai's midpoint,
    # 8.525, half up to the tick
    assert Decimal(str(wait_filled(late, closing, 100)["avg_fill_price"])) == Decimal("8.53")
    assert Decimal(str(wait_filled(seller, dear, 200)["filled_qty"])) == 200
