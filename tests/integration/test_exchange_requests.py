"""The requests exchange mode brings, over the real processes and both APIs: orders'
`post_only` and `stp` (kept, shown, inherited by a replacement), their refusals, and
depth.get (docs/protocol.md 3.3, 3.27).

The server is in paper mode, wait fills, on an external feed: each test prints the
trades it needs on a symbol of its own (previous close 10.00); one symbol, XEX, is in
exchange mode. In paper mode the matcher answers a post_only order at once: `book.rested`
when it would not trade against the latest trade, `book.killed` (reason post_only) when
it would.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from protocol.client import TradeClient, TradeError
from tests.conftest import fresh_name
from tests.harness import Server

SYMBOLS = [f"X{n:02d}" for n in range(1, 21)]
_free_symbols = iter(SYMBOLS)
EXCHANGE = "XEX"  # the one symbol in exchange mode
DEPTH_FIELDS = {"symbol", "seq", "bids", "asks", "bid", "ask", "last", "ts", "time"}
PROPAGATE = 0.3  # s: long enough for an order or a trade to reach the matcher here


@pytest.fixture(scope="module")
def feed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    market = {
        "feed": "external",
        "symbols": [{"symbol": s, "name": f"Test {s}", "prev_close": "10.00"} for s in SYMBOLS]
        + [{"symbol": EXCHANGE, "name": "Exchange", "prev_close": "10.00", "mode": "exchange"}],
    }
    with Server(tmp_path_factory.mktemp("exchange"), fill_mode="wait", market=market) as srv:
        yield srv
        srv.assert_no_crash()


def symbol() -> str:
    return next(_free_symbols)


class Trader:
    """One fresh user with HTTP and ZeroMQ clients."""

    _ids = itertools.count(1)

    def __init__(self, server: Server) -> None:
        self.server = server
        self.token = server.new_user(fresh_name("stp"), "1000000")
        self.http = server.http(self.token)
        self.zmq: TradeClient = server.client(self.token)

    def post(self, **fields: Any) -> dict[str, Any]:
        r = self.http.post("/v1/orders", json=fields)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def refusal(self, method: str, path: str, status: int, **body: Any) -> dict[str, Any]:
        """The HTTP error of a refused request, with its status checked."""
        r = self.http.request(method, path, **body)
        assert r.status_code == status, r.text
        return dict(r.json()["error"])

    def get(self, order_id: int) -> dict[str, Any]:
        return dict(self.http.get(f"/v1/orders/{order_id}").json())

    def trade(self, sym: str, last: str, volume: int) -> None:
        """Print a trade and give it time to reach the matcher."""
        time.sleep(PROPAGATE)
        self.server.push_quotes({"symbol": sym, "last": last, "volume": volume})
        time.sleep(PROPAGATE)


@pytest.fixture
def trader(feed_server: Server) -> Trader:
    return Trader(feed_server)


def zmq_code(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(TradeError) as refused:
        call(*args, **kwargs)
    return refused.value.code


# STP AND POST_ONLY KEPT (no market needed: these orders rest) ------------------------------


def test_stp_is_kept_shown_and_inherited_by_a_replacement_over_zeromq(trader: Trader) -> None:
    sym = symbol()
    placed = trader.zmq.place_order(sym, "buy", 100, "9.00", stp="cancel_oldest")
    assert (placed["status"], placed["post_only"], placed["stp"]) == ("new", False, "cancel_oldest")
    assert placed["cancel_reason"] is None
    stored = trader.zmq.get_order(placed["id"])
    assert (stored["post_only"], stored["stp"], stored["cancel_reason"]) == (
        False,
        "cancel_oldest",
        None,
    )
    reply = trader.zmq.replace_order(placed["id"], limit_price="8.90")
    new = reply["order"]
    assert (new["replaces"], new["limit_price"], new["stp"]) == (
        placed["id"],
        "8.90",
        "cancel_oldest",
    )
    assert reply["replaced"]["stp"] == "cancel_oldest"
    assert [(o["id"], o["stp"]) for o in trader.zmq.orders()] == [(new["id"], "cancel_oldest")]
    canceled = trader.zmq.cancel_order(new["id"])
    assert (canceled["status"], canceled["cancel_reason"]) == ("canceled", None)  # asked for


def test_stp_over_http_defaults_to_cancel_newest_and_survives_a_replace(trader: Trader) -> None:
    sym = symbol()
    plain = trader.post(symbol=sym, side="buy", qty=100, limit_price="9.00")
    assert (plain["post_only"], plain["stp"], plain["cancel_reason"]) == (
        False,
        "cancel_newest",
        None,
    )
    both = trader.post(symbol=sym, side="buy", qty=100, limit_price="9.10", stp="cancel_both")
    assert trader.get(both["id"])["stp"] == "cancel_both"
    r = trader.http.patch(f"/v1/orders/{both['id']}", json={"qty": 200, "time_in_force": "gtc"})
    assert r.status_code == 200, r.text
    new = r.json()
    assert (new["qty"], new["time_in_force"], new["stp"], new["post_only"]) == (
        "200",
        "gtc",
        "cancel_both",
        False,
    )
    views = {o["id"]: o["stp"] for o in trader.http.get("/v1/orders").json()}
    assert views == {plain["id"]: "cancel_newest", new["id"]: "cancel_both"}


def test_post_only_and_stp_refusals_are_the_same_on_both_apis(trader: Trader) -> None:
    sym = symbol()
    base = {"symbol": sym, "side": "buy", "qty": 100}
    for fields, code, words in (
        ({"type": "market", "post_only": True}, "REQUEST_FIELD_NOT_ALLOWED", "not a market"),
        (
            {"limit_price": "9.00", "time_in_force": "ioc", "post_only": True},
            "REQUEST_FIELD_NOT_ALLOWED",
            "(day or gtc), not ioc",
        ),
        (
            {"type": "stop_limit", "stop_price": "9.50", "limit_price": "9.60", "post_only": True},
            "REQUEST_FIELD_NOT_ALLOWED",
            "not a stop_limit",
        ),
        ({"limit_price": "9.00", "stp": "cancel_all"}, "REQUEST_INVALID", "stp: must be"),
        ({"limit_price": "9.00", "post_only": "yes"}, "REQUEST_INVALID", "post_only: must be"),
    ):
        error = trader.refusal("POST", "/v1/orders", 422, json={**base, **fields})
        assert error["code"] == code and words in error["message"], error
        wire = {("order_type" if k == "type" else k): v for k, v in {**base, **fields}.items()}
        with pytest.raises(TradeError) as refused:
            trader.zmq.request("order.new", **wire)
        assert refused.value.code == code and words in refused.value.message
    assert trader.http.get("/v1/orders", params={"status": "all"}).json() == []
    order = trader.post(**base, limit_price="9.00")
    for field, value in (("post_only", True), ("stp", "cancel_both")):
        error = trader.refusal("PATCH", f"/v1/orders/{order['id']}", 422, json={field: value})
        assert error["code"] == "REQUEST_INVALID" and "is not a field" in error["message"]
        code = zmq_code(trader.zmq.replace_order, order["id"], **{field: value})
        assert code == "REQUEST_INVALID"


def test_depth_of_an_unknown_symbol_or_with_levels_out_of_range_is_refused(
    trader: Trader,
) -> None:
    error = trader.refusal("GET", "/v1/depth/NOPE", 422)
    assert error["code"] == "REQUEST_UNKNOWN_SYMBOL"
    assert zmq_code(trader.zmq.depth, "NOPE") == "REQUEST_UNKNOWN_SYMBOL"
    for levels, words in ((0, "at least 1"), (501, "at most 500"), ("ten", "an integer")):
        error = trader.refusal("GET", "/v1/depth/X01", 422, params={"levels": levels})
        assert error["code"] == "REQUEST_INVALID" and f"levels: must be {words}" in error["message"]
    for levels in (0, 501, "10"):
        with pytest.raises(TradeError) as refused:
            trader.zmq.request("depth.get", symbol="X01", levels=levels)
        assert refused.value.code == "REQUEST_INVALID"
        assert refused.value.message.startswith("REQUEST_INVALID: levels: must be")


# NEED THE MATCHER'S SIDE ---------------------------------------------------------------------


def test_a_post_only_order_that_would_rest_is_accepted_and_kept_through_a_replace(
    trader: Trader,
) -> None:
    sym = symbol()
    trader.trade(sym, "10.00", 10_000)
    placed = trader.zmq.place_order(sym, "buy", 100, "9.90", post_only=True, stp="cancel_both")
    assert (placed["status"], placed["post_only"], placed["stp"]) == ("new", True, "cancel_both")
    assert trader.zmq.wait_for("order.accepted", placed["id"], timeout=5)["order"]["post_only"]
    new = trader.zmq.replace_order(placed["id"], limit_price="9.80")["order"]
    assert (new["post_only"], new["stp"], new["limit_price"]) == (True, "cancel_both", "9.80")
    assert trader.get(new["id"])["post_only"] is True

    over_http = trader.post(
        symbol=sym, side="buy", qty=100, limit_price="9.95", post_only=True, time_in_force="gtc"
    )
    assert (over_http["status"], over_http["post_only"], over_http["stp"]) == (
        "new",
        True,
        "cancel_newest",
    )
    r = trader.http.patch(f"/v1/orders/{over_http['id']}", json={"qty": 300})
    assert r.status_code == 200, r.text
    assert (r.json()["post_only"], r.json()["qty"]) == (True, "300")
    trader.trade(sym, "9.95", 10_000)  # a maker now: the market came to it
    deadline = time.monotonic() + 10
    while trader.get(r.json()["id"])["status"] != "filled":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_post_only_order_that_would_take_is_refused_on_both_apis(trader: Trader) -> None:
    sym = symbol()
    trader.trade(sym, "10.00", 10_000)
    error = trader.refusal(
        "POST",
        "/v1/orders",
        409,
        json={"symbol": sym, "side": "buy", "qty": 100, "limit_price": "10.10", "post_only": True},
    )
    assert error["code"] == "MATCH_POST_ONLY_WOULD_TAKE", error
    code = zmq_code(trader.zmq.place_order, sym, "buy", 100, "10.00", post_only=True)
    assert code == "MATCH_POST_ONLY_WOULD_TAKE"
    orders = trader.http.get("/v1/orders", params={"status": "all"}).json()
    assert [(o["status"], o["post_only"], o["filled_qty"]) for o in orders] == [
        ("rejected", True, "0")
    ] * 2
    assert trader.http.get("/v1/account").json()["reserved_cash"] == "0.00"
    kinds = [e["kind"] for e in trader.http.get("/v1/history").json()["entries"]]
    assert kinds == ["order.rejected", "order.rejected"]


def test_a_post_only_replacement_that_would_take_is_refused_and_the_order_stays(
    trader: Trader,
) -> None:
    sym = symbol()
    trader.trade(sym, "10.00", 10_000)
    placed = trader.post(symbol=sym, side="buy", qty=100, limit_price="9.90", post_only=True)
    error = trader.refusal(
        "PATCH", f"/v1/orders/{placed['id']}", 409, json={"limit_price": "10.10"}
    )
    assert error["code"] == "MATCH_POST_ONLY_WOULD_TAKE", error
    kept = trader.get(placed["id"])
    assert (kept["status"], kept["limit_price"], kept["replaced_by"]) == ("new", "9.90", None)
    assert trader.http.get("/v1/account").json()["reserved_cash"] == "995.00"  # 990 + 5


def test_depth_of_a_paper_mode_symbol_is_refused_not_exchange(trader: Trader) -> None:
    error = trader.refusal("GET", "/v1/depth/X01", 409, params={"levels": 5})
    assert error["code"] == "REQUEST_NOT_EXCHANGE"
    assert zmq_code(trader.zmq.depth, "X01") == "REQUEST_NOT_EXCHANGE"


def test_ioc_and_fok_sent_while_the_market_is_closed_say_so(
    feed_server: Server, trader: Trader
) -> None:
    """Assumes the paper-mode matcher gives its reasons too (ioc, market_closed)."""
    sym = symbol()
    trader.trade(sym, "10.00", 10_000)
    rests = trader.zmq.place_order(sym, "buy", 100, "9.00", time_in_force="ioc")
    assert (rests["status"], rests["cancel_reason"]) == ("canceled", "ioc")
    feed_server.set_control("paused")
    try:
        with pytest.raises(TradeError) as refused:
            trader.zmq.place_order(sym, "buy", 100, "10.00", time_in_force="fok")
        assert refused.value.code == "MATCH_FOK_NOT_FILLED"
        assert "does not trade" in refused.value.message
        ioc = trader.zmq.place_order(sym, "buy", 100, "10.00", time_in_force="ioc")
        assert (ioc["status"], ioc["cancel_reason"]) == ("canceled", "market_closed")
    finally:
        feed_server.set_control("running")


def test_depth_of_an_exchange_mode_symbol_has_its_levels_on_both_apis(trader: Trader) -> None:
    r = trader.http.get(f"/v1/depth/{EXCHANGE}", params={"levels": 3})
    assert r.status_code == 200, r.text
    empty = r.json()
    assert set(empty) == DEPTH_FIELDS and empty["symbol"] == EXCHANGE
    assert isinstance(empty["seq"], int) and isinstance(empty["ts"], int)
    trader.post(symbol=EXCHANGE, side="buy", qty=100, limit_price="9.90")
    trader.post(symbol=EXCHANGE, side="buy", qty=200, limit_price="9.90")
    trader.post(symbol=EXCHANGE, side="buy", qty=100, limit_price="9.80")
    reply = trader.zmq.depth(EXCHANGE, levels=1)
    assert reply["type"] == "depth" and set(reply) == DEPTH_FIELDS | {"type", "rid", "v"}
    assert (reply["bids"], reply["asks"], reply["bid"], reply["ask"]) == (
        [["9.90", "300"]],
        [],
        "9.90",
        None,
    )
    assert reply["seq"] >= empty["seq"]
    both = trader.http.get(f"/v1/depth/{EXCHANGE}").json()
    assert both["bids"] == [["9.90", "300"], ["9.80", "100"]]
