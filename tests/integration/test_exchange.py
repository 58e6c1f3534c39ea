"""Exchange mode on the real server: users' bots trade with each other over ZeroMQ and HTTP,
the book's depth can be rebuilt from a snapshot and the numbered changes, and the ledger
balances across users (docs/fill-model.md section 19, protocol.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from protocol.client import MarketData, TradeClient, TradeError
from tests.conftest import fresh_name
from tests.harness import Server

SHARES = "10000"


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """US symbols in exchange mode, cn_a ones in paper mode, trading around the clock."""
    with Server(
        tmp_path_factory.mktemp("exchange"),
        fill_mode="wait",
        market={"mode": "exchange"},
        profiles={"cn_a": {"mode": "paper"}},
        control={"sessions": "always"},
    ) as srv:
        yield srv
        srv.assert_no_crash()
        srv.stop()
        assert srv.ledger_imbalances() == []  # cash + fees and shares add up across users


def trader(srv: Server, symbol: str, shares: str = SHARES) -> tuple[str, TradeClient]:
    token = srv.new_user(fresh_name("trader"), "10000000", positions={symbol: shares})
    client = srv.client(token)
    client.login(token)
    return token, client


def rest(client: TradeClient, symbol: str, side: str, qty: int, price: str) -> dict[str, Any]:
    order = client.place_order(symbol, side, qty, price, time_in_force="gtc")
    assert order["status"] == "new", order
    return order


def test_two_users_trade_with_each_other_over_zeromq(exchange: Server) -> None:
    _, alice = trader(exchange, "AAPL")
    _, bob = trader(exchange, "AAPL")
    md = exchange.market(("md.AAPL",))
    time.sleep(0.3)  # the SUB joins
    sell = rest(alice, "AAPL", "sell", 100, "231.10")
    buy = bob.place_order("AAPL", "buy", 60, "231.20", time_in_force="gtc")

    taker = bob.wait_for("order.filled", buy["id"])
    maker = alice.wait_for("order.partially_filled", sell["id"])
    assert (taker["fill"]["price"], n(taker["fill"]["qty"])) == ("231.10", 60)
    assert taker["fill"]["liquidity"] == "taker"
    assert (maker["fill"]["price"], maker["fill"]["liquidity"]) == ("231.10", "maker")
    assert n(maker["order"]["filled_qty"]) == 60
    trade = next_of(md, "quote", lambda q: n(q["volume"]) == 60)
    assert (trade["last"], trade["taker_side"]) == ("231.10", "buy")
    assert trade["ask"] == "231.10"  # alice's 40 left rest there
    alice.cancel_order(sell["id"])


def test_two_users_trade_with_each_other_over_http(exchange: Server) -> None:
    seller, _ = trader(exchange, "MSFT")
    buyer, _ = trader(exchange, "MSFT")
    s, b = exchange.http(seller), exchange.http(buyer)
    ask = s.post(
        "/v1/orders",
        json={
            "symbol": "MSFT",
            "side": "sell",
            "qty": 50,
            "price": "421.00",
            "time_in_force": "gtc",
        },
    )
    assert ask.status_code == 200, ask.text
    bid = b.post(
        "/v1/orders",
        json={
            "symbol": "MSFT",
            "side": "buy",
            "qty": 50,
            "price": "421.50",
            "time_in_force": "gtc",
        },
    )
    assert bid.status_code == 200, bid.text
    for http, order_id in ((s, ask.json()["id"]), (b, bid.json()["id"])):
        order = wait_status(http, order_id, "filled")
        assert (n(order["filled_qty"]), n(order["avg_fill_price"])) == (50, 421)
    positions = {p["symbol"]: p for p in b.get("/v1/positions").json()}
    assert n(positions["MSFT"]["qty"]) == 10050


def test_the_book_sweeps_levels_in_price_time_order(exchange: Server) -> None:
    _, first = trader(exchange, "SPY")
    _, second = trader(exchange, "SPY")
    _, taker = trader(exchange, "SPY")
    a = rest(first, "SPY", "sell", 100, "601.00")
    b = rest(second, "SPY", "sell", 100, "601.00")  # behind a at the same price
    c = rest(first, "SPY", "sell", 100, "601.05")
    buy = taker.place_order("SPY", "buy", 250, "601.05", time_in_force="ioc")
    fills = [taker.wait_for("order.partially_filled", buy["id"])["fill"] for _ in range(2)]
    fills.append(taker.wait_for("order.filled", buy["id"])["fill"])
    expected = [(100, "601.00"), (100, "601.00"), (50, "601.05")]
    assert [(n(f["qty"]), f["price"]) for f in fills] == expected
    assert n(first.wait_for("order.filled", a["id"])["fill"]["qty"]) == 100
    assert n(second.wait_for("order.filled", b["id"])["fill"]["qty"]) == 100
    assert n(first.get_order(c["id"])["filled_qty"]) == 50
    first.cancel_order(c["id"])


def test_a_market_order_takes_what_there_is_and_the_rest_is_canceled(exchange: Server) -> None:
    _, maker = trader(exchange, "AAPL")
    _, taker = trader(exchange, "AAPL")
    best = depth(taker, "AAPL")
    assert not best["asks"], best  # earlier tests left no asks
    rest(maker, "AAPL", "sell", 30, "231.00")
    order = taker.place_order("AAPL", "buy", 100, order_type="market", time_in_force="day")
    taker.wait_for("order.partially_filled", order["id"])
    canceled = taker.wait_for("order.canceled", order["id"])
    assert n(canceled["order"]["filled_qty"]) == 30
    assert canceled["order"]["cancel_reason"] == "no_liquidity"


def test_self_trade_prevention_cancels_the_newest_by_default(exchange: Server) -> None:
    _, alice = trader(exchange, "MSFT")
    resting = rest(alice, "MSFT", "sell", 100, "425.00")
    taker = alice.place_order("MSFT", "buy", 100, "425.00", time_in_force="gtc")
    canceled = alice.wait_for("order.canceled", taker["id"])
    assert n(canceled["order"]["filled_qty"]) == 0
    assert canceled["order"]["cancel_reason"] == "self_trade"
    assert alice.get_order(resting["id"])["status"] == "new"
    oldest = alice.place_order(
        "MSFT", "buy", 100, "425.00", time_in_force="gtc", stp="cancel_oldest"
    )
    alice.wait_for("order.canceled", resting["id"])
    assert alice.get_order(oldest["id"])["status"] == "new"  # it rests: nothing else to take
    alice.cancel_order(oldest["id"])


def test_post_only_is_refused_when_it_would_take(exchange: Server) -> None:
    _, maker = trader(exchange, "SPY")
    ask = rest(maker, "SPY", "sell", 10, "602.00")
    _, other = trader(exchange, "SPY")
    with pytest.raises(TradeError) as refused:
        other.place_order("SPY", "buy", 10, "602.00", time_in_force="gtc", post_only=True)
    assert refused.value.code == "MATCH_POST_ONLY_WOULD_TAKE"
    resting = other.place_order("SPY", "buy", 10, "601.99", time_in_force="gtc", post_only=True)
    assert resting["status"] == "new" and resting["post_only"] is True
    other.cancel_order(resting["id"])
    maker.cancel_order(ask["id"])


def test_a_client_rebuilds_the_book_from_a_snapshot_and_numbered_changes(
    exchange: Server,
) -> None:
    _, alice = trader(exchange, "AAPL")
    _, bob = trader(exchange, "AAPL")
    md = exchange.market(("md.AAPL",))
    time.sleep(0.3)
    snapshot = depth(alice, "AAPL", levels=500)
    book = {side: {p: q for p, q in snapshot[side]} for side in ("bids", "asks")}
    seq = snapshot["seq"]
    placed = [rest(alice, "AAPL", "buy", 10 * (i + 1), f"22{i}.50") for i in range(5)]
    placed += [rest(bob, "AAPL", "sell", 10 * (i + 1), f"24{i}.50") for i in range(5)]
    alice.cancel_order(placed[2]["id"])
    taker = bob.place_order("AAPL", "sell", 15, "224.50", time_in_force="ioc")
    bob.wait_for("order.filled", taker["id"])
    final = depth(alice, "AAPL", levels=500)
    deadline = time.monotonic() + 10
    while seq < final["seq"] and time.monotonic() < deadline:
        message = next_of(md, "depth", lambda m: True)
        if message["seq"] <= seq:
            continue
        assert message["seq"] == seq + 1, "a gap in the depth messages"
        seq = message["seq"]
        for side in ("bids", "asks"):
            if message["reset"]:
                book[side] = {}
            for price, qty in message[side]:
                if Decimal(qty):
                    book[side][price] = qty
                else:
                    book[side].pop(price, None)
    assert seq == final["seq"]
    for side, reverse in (("bids", True), ("asks", False)):
        rebuilt = sorted(book[side].items(), key=lambda pq: Decimal(pq[0]), reverse=reverse)
        assert [list(level) for level in rebuilt] == final[side]
    assert ["224.50", "35"] in final["bids"]  # 50 less the 15 sold
    for order in placed:
        if order["id"] != placed[2]["id"]:
            (alice if order["side"] == "buy" else bob).cancel_order(order["id"])


def test_depth_of_a_paper_symbol_is_refused(exchange: Server) -> None:
    _, client = trader(exchange, "AAPL")
    modes = {s["symbol"]: s["mode"] for s in client.symbols()}
    assert (modes["600000"], modes["AAPL"]) == ("paper", "exchange")
    with pytest.raises(TradeError) as refused:
        client.depth("600000")
    assert refused.value.code == "REQUEST_NOT_EXCHANGE"
    http = exchange.http(exchange.demo_token)
    assert http.get("/v1/depth/AAPL?levels=3").status_code == 200
    refused_over_http = http.get("/v1/depth/600000")
    assert refused_over_http.status_code == 409
    assert refused_over_http.json()["error"]["code"] == "REQUEST_NOT_EXCHANGE"


def test_the_books_hold_exactly_the_open_orders_of_the_ledger(exchange: Server) -> None:
    admin = exchange.client(exchange.admin_token)
    admin.login(exchange.admin_token)
    digest = admin.digest()
    assert digest["books_match_orders"], digest


# HELPERS -------------------------------------------------------------------------------


def n(value: Any) -> Decimal:
    """A quantity as a number, whichever width the wire gave it in (protocol.md 1.4)."""
    return Decimal(str(value))


def depth(client: TradeClient, symbol: str, levels: int = 10) -> dict[str, Any]:
    return client.depth(symbol, levels)


def next_of(md: MarketData, kind: str, wanted: Any, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = md.next(max(0.0, deadline - time.monotonic()))
        if item is not None and item[1].get("type") == kind and wanted(item[1]):
            return item[1]
    raise TimeoutError(f"no {kind} message in {timeout}s")


def wait_status(http: Any, order_id: int, status: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        order = http.get(f"/v1/orders/{order_id}").json()
        if order.get("status") == status or time.monotonic() > deadline:
            assert order.get("status") == status, order
            return order
        time.sleep(0.05)


def test_a_refused_replacement_leaves_the_digest_as_a_restart_finds_it(tmp_path: Any) -> None:
    """A replacement the matcher refuses is never stored: the order id it took is free
    again, so the state digest is the same before and after a restart (the crash
    harness's digest over a restart saw the next order id differ)."""
    with Server(tmp_path, fill_mode="wait", market={"mode": "exchange"}) as srv:
        _, alice = trader(srv, "AAPL")
        _, bob = trader(srv, "AAPL")
        bid = alice.place_order("AAPL", "buy", 10, "229.99", time_in_force="gtc", post_only=True)
        rest(bob, "AAPL", "sell", 10, "230.01")
        with pytest.raises(TradeError) as refused:
            alice.replace_order(bid["id"], limit_price="230.01")
        assert refused.value.code == "MATCH_POST_ONLY_WOULD_TAKE"
        admin = srv.client(srv.admin_token)
        admin.login(srv.admin_token)
        before = admin.digest()
        admin.close()
        srv.restart()
        admin = srv.client(srv.admin_token)
        admin.login(srv.admin_token)
        after = admin.digest()
        assert after["counters"] == before["counters"]
        assert after["digest"] == before["digest"]


def test_depth_and_trades_reach_the_public_event_stream(exchange: Server) -> None:
    from tests.integration.test_market_stream import PATH, events, read_until

    _, alice = trader(exchange, "SPY")
    _, bob = trader(exchange, "SPY")
    http = exchange.http(exchange.demo_token)
    with http.stream("GET", PATH, params={"symbols": "SPY"}) as response:
        assert response.status_code == 200
        stream = events(response.iter_lines())
        ask = rest(alice, "SPY", "sell", 7, "612.34")
        seen = read_until(
            stream, lambda e: e[0] == "depth" and ["612.34", "7"] in e[1]["asks"], seconds=10
        )
        bob.place_order("SPY", "buy", 7, "612.34", time_in_force="ioc")
        seen += read_until(
            stream, lambda e: e[0] == "quote" and e[1].get("taker_side") == "buy", seconds=10
        )
    depth = [data for name, data in seen if name == "depth"]
    assert all(d["symbol"] == "SPY" and isinstance(d["seq"], int) for d in depth)
    trade = seen[-1][1]
    assert (trade["last"], n(trade["volume"])) == ("612.34", 7)
    assert alice.wait_for("order.filled", ask["id"])["order"]["id"] == ask["id"]


def test_a_book_crossed_while_stopped_uncrosses_and_a_post_only_taker_is_canceled(
    exchange: Server,
) -> None:
    _, bob = trader(exchange, "SPY")
    _, alice = trader(exchange, "SPY")
    exchange.set_control("stopped")
    try:
        ask = rest(bob, "SPY", "sell", 10, "655.55")
        bid = alice.place_order("SPY", "buy", 10, "655.60", time_in_force="gtc", post_only=True)
        assert bid["status"] == "new"  # nothing trades while stopped: it rests, crossed
        crossing = alice.place_order("SPY", "buy", 4, "655.60", time_in_force="gtc")
    finally:
        exchange.set_control("running")
    # the newer front order takes from the older: the post-only bid would, so it goes
    canceled = alice.wait_for("order.canceled", bid["id"])
    assert canceled["order"]["cancel_reason"] == "post_only"
    taken = alice.wait_for("order.filled", crossing["id"])
    assert (taken["fill"]["price"], taken["fill"]["liquidity"]) == ("655.55", "taker")
    assert n(bob.get_order(ask["id"])["filled_qty"]) == 4
    bob.cancel_order(ask["id"])
