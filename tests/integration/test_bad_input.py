"""Bad input, over both client APIs, against the real four processes.

Every bad request must get a structured error with a stable code (HTTP:
`{"error": {"code", "message"}}` with the status of that code; ZeroMQ: a reply of type
`error` echoing the request id when it had a usable one), must change nothing (the
user's cash, reserved cash, open orders and positions are compared before and after, and
for order types and replacements the operation log too),
and must crash no process (the last test compares every pid with the start and places
orders that fill).

The server runs in wait mode: orders far from the market stay open, so the users here
hold open orders and a position that a wrongly accepted request would visibly change.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

import httpx
import msgpack
import pytest
import zmq

from protocol.client import TradeClient
from protocol.errors import HTTP_STATUS, ErrorCode
from tests.conftest import fresh_name
from tests.harness import PROCESSES, Server

pytestmark = pytest.mark.hostile

E = ErrorCode
RID = 7  # the request id every ZeroMQ request here carries
MAX_MESSAGE_BYTES = 65536  # limits.max_message_bytes (the default)
FRAME_CODES = {E.REQUEST_MALFORMED, E.REQUEST_TOO_LARGE}  # refused before any rid is read
JSON = {"content-type": "application/json"}
REPLY_TIMEOUT = 10.0


# HELPERS ------------------------------------------------------------------------------


def pack(obj: Any) -> bytes:
    """msgpack bytes as a client could send them (ext types and int keys included)."""
    return msgpack.packb(obj, use_bin_type=True)


def ok(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


def assert_http_error(response: httpx.Response, code: ErrorCode) -> None:
    """The status of `code` and exactly the body {"error": {"code", "message"}}."""
    assert response.status_code == HTTP_STATUS[code], (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert isinstance(body["error"], dict) and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code.value, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body


def exchange(client: TradeClient, frame: bytes, events_expected: bool = False) -> dict[str, Any]:
    """Send one raw frame and return the reply; a private event before it is a failure
    unless `events_expected` (then events are skipped)."""
    client.send_raw(frame)
    while True:
        reply = client.recv(REPLY_TIMEOUT)
        assert reply is not None, f"no reply within {REPLY_TIMEOUT}s"
        if reply.get("type") != "event":
            return reply
        assert events_expected, f"the bad input caused an event: {reply}"


def assert_zmq_error(reply: dict[str, Any], code: ErrorCode, rid: Any = RID) -> None:
    """An `error` reply with `code`; frame-level refusals cannot echo a request id."""
    assert reply.get("type") == "error", reply
    assert reply.get("code") == code.value, reply
    assert isinstance(reply.get("message"), str) and reply["message"], reply
    assert reply.get("v") == 1, reply
    assert reply.get("rid") == (None if code in FRAME_CODES else rid), reply


def order_json(**fields: str) -> str:
    """A POST /v1/orders body as raw JSON text; each keyword is a field's JSON text.

    The defaults make a valid buy far below the market: accepted, it would rest."""
    values = {"symbol": '"600000"', "side": '"buy"', "qty": "100", "price": '"1.00"', **fields}
    return "{" + ", ".join(f'"{key}": {text}' for key, text in values.items()) + "}"


def order_msg(**fields: Any) -> dict[str, Any]:
    """An `order.new` map with the same valid defaults as order_json()."""
    base = {"symbol": "600000", "side": "buy", "qty": 100, "price": "1.00"}
    return {"v": 1, "type": "order.new", "rid": RID, **base, **fields}


def commission(value: Decimal) -> Decimal:
    """cn_a: 0.1% of the value, half-up to the cent, at least 5.00."""
    return max((value * Decimal("0.001")).quantize(Decimal("0.01"), ROUND_HALF_UP), Decimal(5))


@dataclass
class User:
    """A user of the test server with its HTTP client and the orders it was given."""

    server: Server
    name: str
    token: str
    http: httpx.Client
    orders: dict[str, int] = field(default_factory=dict)

    def session(self) -> TradeClient:
        """A fresh ZeroMQ connection, logged in."""
        return self.server.client(self.token, events=True)

    def place(self, symbol: str, side: str, qty: int, price: str) -> dict[str, Any]:
        body = {"symbol": symbol, "side": side, "qty": qty, "price": price}
        return ok(self.http.post("/v1/orders", json=body))

    def state(self, history: bool = False) -> dict[str, Any]:
        """What no bad request may change: money, open orders, holdings (and, with
        `history`, the operation log: every ledger write the user can see)."""
        account = ok(self.http.get("/v1/account"))
        orders = ok(self.http.get("/v1/orders", params={"status": "open", "limit": 1000}))
        positions = ok(self.http.get("/v1/positions"))
        log = ok(self.http.get("/v1/history", params={"limit": 1000})) if history else None
        return {
            "history": log,
            "cash": account["cash"],
            "reserved_cash": account["reserved_cash"],
            "available_cash": account["available_cash"],
            "open_orders": sorted(
                (
                    o["id"],
                    o["symbol"],
                    o["side"],
                    o["qty"],
                    o["price"],
                    o["status"],
                    o["filled_qty"],
                    o["type"],
                    o["time_in_force"],
                    o["trail_price"],
                    o["trail_percent"],
                    o["price_bound"],
                    o["replaced_by"],
                    # a trailing stop's stop (and so its update time) follows the market
                    *((o["stop_price"], o["updated_at"]) if o["type"] != "trailing_stop" else ()),
                )
                for o in orders
            ),
            "positions": sorted((p["symbol"], p["qty"], p["available_qty"]) for p in positions),
        }

    def wait_status(self, order_id: int, status: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            order = ok(self.http.get(f"/v1/orders/{order_id}"))
            if order["status"] == status or time.monotonic() > deadline:
                assert order["status"] == status, order
                return order
            time.sleep(0.05)


@contextlib.contextmanager
def unchanged(*users: User, history: bool = False) -> Iterator[None]:
    """Assert that what runs inside leaves every user's account and orders (and, with
    `history`, operation log) as they were."""
    before = [user.state(history) for user in users]
    yield
    assert [user.state(history) for user in users] == before


_http_clients: dict[tuple[int, str | None], httpx.Client] = {}


def admin_http(server: Server) -> httpx.Client:
    return cached_http(server, server.admin_token)


def cached_http(server: Server, token: str | None = None) -> httpx.Client:
    """One HTTP client per server and token (the server closes them when it stops)."""
    key = (id(server), token)
    if key not in _http_clients:
        _http_clients[key] = server.http(token)
    return _http_clients[key]


def new_user(server: Server, cash: str = "1000000", prefix: str = "user") -> User:
    name = fresh_name(prefix)
    token = server.new_user(name, cash)
    return User(server, name, token, server.http(token))


# FIXTURES -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """This module's own server, in wait mode, so that orders far from the market rest."""
    with Server(tmp_path_factory.mktemp("bad_input"), fill_mode="wait") as srv:
        yield srv


@pytest.fixture(scope="module", autouse=True)
def pids_at_start(server: Server) -> dict[str, int]:
    return {name: server.pid(name) for name in PROCESSES}


@pytest.fixture(scope="module")
def trader(server: Server) -> User:
    """Holds 1000 600000 (300 of them reserved by an open sell), an open buy, a filled
    order and a canceled one: the victim of every bad request in this module."""
    user = new_user(server, prefix="trader")
    bought = user.place("600000", "buy", 1000, "20.00")  # above the market: fills at it
    user.wait_status(bought["id"], "filled")
    user.orders["filled"] = bought["id"]
    user.orders["open_buy"] = user.place("600519", "buy", 100, "1.00")["id"]
    user.orders["open_sell"] = user.place("600000", "sell", 300, "99.00")["id"]
    doomed = user.place("600519", "buy", 100, "1.00")["id"]
    ok(user.http.delete(f"/v1/orders/{doomed}"))
    user.wait_status(doomed, "canceled")
    user.orders["canceled"] = doomed
    positions = ok(user.http.get("/v1/positions"))
    assert [(p["symbol"], p["qty"], p["available_qty"]) for p in positions] == [
        ("600000", "1000", "700")
    ]
    return user


@pytest.fixture(scope="module")
def other(server: Server) -> User:
    """Another user, with one open order and one canceled order."""
    user = new_user(server, prefix="other")
    user.orders["open"] = user.place("600519", "buy", 100, "1.00")["id"]
    doomed = user.place("600519", "buy", 100, "1.00")["id"]
    ok(user.http.delete(f"/v1/orders/{doomed}"))
    user.wait_status(doomed, "canceled")
    user.orders["canceled"] = doomed
    return user


@pytest.fixture
def session(trader: User) -> Iterator[TradeClient]:
    """The trader's own ZeroMQ connection, logged in, new for each test."""
    client = trader.session()
    yield client
    client.close()


@pytest.fixture
def anonymous(server: Server) -> Iterator[TradeClient]:
    """A ZeroMQ connection that never logged in."""
    client = server.client(None)
    yield client
    client.close()


# AUTHENTICATION -----------------------------------------------------------------------

HTTP_ROUTES = [
    ("GET", "/v1/account", None),
    ("GET", "/v1/positions", None),
    ("GET", "/v1/orders", None),
    ("GET", "/v1/orders/{open_buy}", None),
    ("POST", "/v1/orders", {"symbol": "600000", "side": "buy", "qty": 100, "price": "1.00"}),
    ("DELETE", "/v1/orders/{open_buy}", None),
    ("GET", "/v1/fills", None),
    ("GET", "/v1/history", None),
    ("GET", "/v1/history.csv", None),
    ("GET", "/v1/stats", None),
    ("GET", "/v1/quotes/600000", None),
    ("GET", "/v1/depth/600000", None),
    ("GET", "/v1/control", None),
    ("POST", "/v1/control", {"state": "stopped"}),
    ("GET", "/v1/admin/users", None),
    ("POST", "/v1/admin/users", {"name": "intruder", "cash": "100"}),
    ("POST", "/v1/account/reset", {"cash": "1"}),
    ("POST", "/v1/admin/users/2/reset", None),
    ("GET", "/v1/events", None),
]


def control_state(server: Server) -> str:
    return str(ok(admin_http(server).get("/v1/control"))["state"])


def user_names(server: Server) -> set[str]:
    return {u["name"] for u in ok(admin_http(server).get("/v1/admin/users"))}


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        pytest.param(None, E.AUTH_MISSING_TOKEN, id="no-header"),
        pytest.param("Bearer not-a-token", E.AUTH_INVALID_TOKEN, id="wrong-token"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path", "body"), HTTP_ROUTES, ids=[f"{m} {p}" for m, p, _ in HTTP_ROUTES]
)
@pytest.mark.isolation
def test_every_http_route_refuses_a_missing_or_wrong_token(
    server: Server,
    trader: User,
    method: str,
    path: str,
    body: Any,
    authorization: str | None,
    code: ErrorCode,
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    with unchanged(trader):
        response = cached_http(server).request(
            method, path.format(**trader.orders), json=body, headers=headers
        )
        assert_http_error(response, code)
    assert control_state(server) == "running"
    assert "intruder" not in user_names(server)


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        pytest.param("Basic dXNlcjpwYXNz", E.AUTH_MISSING_TOKEN, id="basic-scheme"),
        pytest.param("Bearer", E.AUTH_MISSING_TOKEN, id="bearer-without-token"),
        pytest.param("Token abc", E.AUTH_MISSING_TOKEN, id="other-scheme"),
        pytest.param("Bearer " + "x" * 5000, E.AUTH_INVALID_TOKEN, id="5000-char-token"),
        pytest.param("Bearer ' OR 1=1 --", E.AUTH_INVALID_TOKEN, id="sql-in-token"),
    ],
)
def test_a_malformed_authorization_header_is_refused(
    server: Server, trader: User, authorization: str, code: ErrorCode
) -> None:
    with unchanged(trader):
        response = cached_http(server).post(
            "/v1/orders",
            json={"symbol": "600000", "side": "buy", "qty": 100, "price": "1.00"},
            headers={"Authorization": authorization},
        )
        assert_http_error(response, code)


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(order_msg(), id="order.new"),
        pytest.param({"v": 1, "type": "account.get", "rid": RID}, id="account.get"),
        pytest.param({"v": 1, "type": "orders.list", "rid": RID}, id="orders.list"),
        pytest.param({"v": 1, "type": "order.cancel", "rid": RID, "order_id": 1}, id="cancel"),
        pytest.param({"v": 1, "type": "user.list", "rid": RID}, id="user.list"),
        pytest.param({"v": 1, "type": "control.set", "rid": RID, "state": "stopped"}, id="ctl"),
        pytest.param({"v": 1, "type": "depth.get", "rid": RID, "symbol": "600000"}, id="depth"),
    ],
)
def test_a_zmq_request_before_login_is_refused(
    server: Server, trader: User, anonymous: TradeClient, request_: dict[str, Any]
) -> None:
    with unchanged(trader):
        assert_zmq_error(exchange(anonymous, pack(request_)), E.AUTH_LOGIN_REQUIRED)
    assert control_state(server) == "running"


@pytest.mark.parametrize(
    "token",
    [pytest.param("not-a-token", id="wrong-token"), pytest.param("x" * 256, id="256-char-token")],
)
def test_a_zmq_login_with_a_wrong_token_is_refused_and_logs_nobody_in(
    trader: User, anonymous: TradeClient, token: str
) -> None:
    with unchanged(trader):
        login = {"v": 1, "type": "session.login", "rid": RID, "token": token}
        assert_zmq_error(exchange(anonymous, pack(login)), E.AUTH_INVALID_TOKEN)
        assert_zmq_error(exchange(anonymous, pack(order_msg())), E.AUTH_LOGIN_REQUIRED)


@pytest.mark.isolation
def test_http_admin_operations_refuse_a_user_token(server: Server, trader: User) -> None:
    with unchanged(trader):
        assert_http_error(trader.http.get("/v1/admin/users"), E.AUTH_NOT_ADMIN)
        created = trader.http.post("/v1/admin/users", json={"name": "sneaky", "cash": "100"})
        assert_http_error(created, E.AUTH_NOT_ADMIN)
        stopped = trader.http.post("/v1/control", json={"state": "stopped"})
        assert_http_error(stopped, E.AUTH_NOT_ADMIN)
    assert control_state(server) == "running"
    assert "sneaky" not in user_names(server)


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param({"type": "user.list"}, id="user.list"),
        pytest.param({"type": "user.create", "name": "sneaky2", "cash": "100"}, id="user.create"),
        pytest.param({"type": "control.set", "state": "paused"}, id="control.set"),
    ],
)
@pytest.mark.isolation
def test_zmq_admin_operations_refuse_a_user_token(
    server: Server, trader: User, session: TradeClient, request_: dict[str, Any]
) -> None:
    with unchanged(trader):
        reply = exchange(session, pack({"v": 1, "rid": RID, **request_}))
        assert_zmq_error(reply, E.AUTH_NOT_ADMIN)
    assert control_state(server) == "running"
    assert "sneaky2" not in user_names(server)


# ORDER FIELDS: SYMBOL, QTY, PRICE -----------------------------------------------------


class Bad(NamedTuple):
    """One bad value: as raw JSON text, as a msgpack value (NO_WIRE: msgpack cannot carry
    it), the code both APIs must answer, and the ZeroMQ code when it differs.

    A value of the wrong type (true, null, a list) is REQUEST_INVALID; a number or a
    decimal string that is not a valid qty (price) is REQUEST_INVALID_QTY (_PRICE) however
    many digits it has: the field's own code, whatever check refuses it."""

    json: str
    wire: Any
    code: ErrorCode
    zmq_code: ErrorCode | None = None


NO_WIRE = object()  # a value msgpack cannot encode (ints beyond 64 bits)
DIGITS_5000 = "9" * 5000
DIGITS_100 = "9" * 100

QTY_CASES = {
    "zero": Bad("0", 0, E.REQUEST_INVALID_QTY),
    "minus-zero": Bad("-0", -0.0, E.REQUEST_INVALID_QTY),
    "negative": Bad("-100", -100, E.REQUEST_INVALID_QTY),
    "negative-string": Bad('"-100"', "-100", E.REQUEST_INVALID_QTY),
    "150-for-a-buy-is-off-the-lot": Bad("150", 150, E.REQUEST_LOT_SIZE),
    "150-string-is-off-the-lot": Bad('"150"', "150", E.REQUEST_LOT_SIZE),
    "fraction-100.5": Bad("100.5", 100.5, E.REQUEST_INVALID_QTY),
    "fraction-string-100.5": Bad('"100.5"', "100.5", E.REQUEST_INVALID_QTY),
    "abc": Bad('"abc"', "abc", E.REQUEST_INVALID_QTY),
    "empty-string": Bad('""', "", E.REQUEST_INVALID_QTY),
    "exponent-string": Bad('"1e3"', "1e3", E.REQUEST_INVALID_QTY),
    "nan-string": Bad('"nan"', "nan", E.REQUEST_INVALID_QTY),
    "true": Bad("true", True, E.REQUEST_INVALID),
    "null": Bad("null", None, E.REQUEST_INVALID),
    "list": Bad("[100]", [100], E.REQUEST_INVALID),
    "map": Bad('{"n": 100}', {"n": 100}, E.REQUEST_INVALID),
    "above-max-qty": Bad("100000100", 100_000_100, E.REQUEST_INVALID_QTY),
    "2**64": Bad(str(2**64), 2**64 - 1, E.REQUEST_INVALID_QTY),
    "-2**63": Bad(str(-(2**63)), -(2**63), E.REQUEST_INVALID_QTY),
    "10**30": Bad(str(10**30), str(10**30), E.REQUEST_INVALID_QTY),
    "100-digit-string": Bad(f'"{DIGITS_100}"', DIGITS_100, E.REQUEST_INVALID_QTY),
    # Python's JSON reader refuses integers of more than 4300 digits: the body is unreadable
    "5000-digit-number": Bad(DIGITS_5000, NO_WIRE, E.REQUEST_MALFORMED),
    # over ZeroMQ a 5000-char string is above the codec's max_str_len: the frame is refused
    "5000-digit-string": Bad(
        f'"{DIGITS_5000}"', DIGITS_5000, E.REQUEST_INVALID_QTY, E.REQUEST_MALFORMED
    ),
    "NaN": Bad("NaN", float("nan"), E.REQUEST_INVALID_QTY),
    "Infinity": Bad("Infinity", float("inf"), E.REQUEST_INVALID_QTY),
    "-Infinity": Bad("-Infinity", float("-inf"), E.REQUEST_INVALID_QTY),
    # digits of other scripts, which Python's int() and Decimal() read as 100
    "arabic-indic-100": Bad('"\u0661\u0660\u0660"', "\u0661\u0660\u0660", E.REQUEST_INVALID_QTY),
    "fullwidth-100": Bad('"\uff11\uff10\uff10"', "\uff11\uff10\uff10", E.REQUEST_INVALID_QTY),
    "math-bold-100": Bad(
        '"\U0001d7cf\U0001d7ce\U0001d7ce"', "\U0001d7cf\U0001d7ce\U0001d7ce", E.REQUEST_INVALID_QTY
    ),
}

PRICE_CASES = {
    "zero": Bad("0", 0, E.REQUEST_INVALID_PRICE),
    "zero-string": Bad('"0.00"', "0.00", E.REQUEST_INVALID_PRICE),
    "minus-zero": Bad("-0", -0.0, E.REQUEST_INVALID_PRICE),
    "minus-zero-string": Bad('"-0"', "-0", E.REQUEST_INVALID_PRICE),
    "negative": Bad("-1", -1, E.REQUEST_INVALID_PRICE),
    "negative-string": Bad('"-8.50"', "-8.50", E.REQUEST_INVALID_PRICE),
    "nan-string": Bad('"nan"', "nan", E.REQUEST_INVALID_PRICE),
    "inf-string": Bad('"inf"', "inf", E.REQUEST_INVALID_PRICE),
    "-inf-string": Bad('"-inf"', "-inf", E.REQUEST_INVALID_PRICE),
    "1e999": Bad("1e999", float("inf"), E.REQUEST_INVALID_PRICE),
    "NaN": Bad("NaN", float("nan"), E.REQUEST_INVALID_PRICE),
    "-Infinity": Bad("-Infinity", float("-inf"), E.REQUEST_INVALID_PRICE),
    "10.001-string-is-off-the-tick": Bad('"10.001"', "10.001", E.REQUEST_PRICE_TICK),
    "10.001-is-off-the-tick": Bad("10.001", 10.001, E.REQUEST_PRICE_TICK),
    "abc": Bad('"abc"', "abc", E.REQUEST_INVALID_PRICE),
    "empty-string": Bad('""', "", E.REQUEST_INVALID_PRICE),
    "exponent-string": Bad('"1e1"', "1e1", E.REQUEST_INVALID_PRICE),
    "above-max-price": Bad('"1000000.01"', "1000000.01", E.REQUEST_INVALID_PRICE),
    "true": Bad("true", True, E.REQUEST_INVALID),
    # price is optional since order types (a market order has none): null is no price,
    # which a limit order (the default type) needs
    "null": Bad("null", None, E.REQUEST_FIELD_REQUIRED),
    "2**64": Bad(str(2**64), 2**64 - 1, E.REQUEST_INVALID_PRICE),
    "100-digit-string": Bad(f'"{DIGITS_100}"', DIGITS_100, E.REQUEST_INVALID_PRICE),
    "5000-digit-number": Bad(DIGITS_5000, NO_WIRE, E.REQUEST_MALFORMED),
    "5000-digit-string": Bad(
        f'"{DIGITS_5000}"', DIGITS_5000, E.REQUEST_INVALID_PRICE, E.REQUEST_MALFORMED
    ),
}


def http_params(cases: dict[str, Bad]) -> list[Any]:
    return [pytest.param(case, id=name) for name, case in cases.items()]


def zmq_params(cases: dict[str, Bad]) -> list[Any]:
    return [pytest.param(case, id=name) for name, case in cases.items() if case.wire is not NO_WIRE]


@pytest.mark.parametrize("bad", http_params(QTY_CASES))
def test_a_bad_buy_qty_is_rejected_over_http(trader: User, bad: Bad) -> None:
    with unchanged(trader):
        response = trader.http.post("/v1/orders", content=order_json(qty=bad.json), headers=JSON)
        assert_http_error(response, bad.code)


@pytest.mark.parametrize("bad", zmq_params(QTY_CASES))
def test_a_bad_buy_qty_is_rejected_over_zmq(trader: User, session: TradeClient, bad: Bad) -> None:
    with unchanged(trader):
        reply = exchange(session, pack(order_msg(qty=bad.wire)))
        assert_zmq_error(reply, bad.zmq_code or bad.code)


@pytest.mark.parametrize("bad", http_params(PRICE_CASES))
def test_a_bad_price_is_rejected_over_http(trader: User, bad: Bad) -> None:
    with unchanged(trader):
        body = order_json(price=bad.json)
        assert_http_error(trader.http.post("/v1/orders", content=body, headers=JSON), bad.code)


@pytest.mark.parametrize("bad", zmq_params(PRICE_CASES))
def test_a_bad_price_is_rejected_over_zmq(trader: User, session: TradeClient, bad: Bad) -> None:
    with unchanged(trader):
        reply = exchange(session, pack(order_msg(price=bad.wire)))
        assert_zmq_error(reply, bad.zmq_code or bad.code)


@pytest.mark.parametrize("qty", ["100.5", '"abc"', "0", "NaN"])
def test_a_bad_sell_qty_is_rejected_too(trader: User, qty: str) -> None:
    with unchanged(trader):
        body = order_json(side='"sell"', qty=qty, price='"99.00"')
        assert_http_error(
            trader.http.post("/v1/orders", content=body, headers=JSON), E.REQUEST_INVALID_QTY
        )


UNKNOWN_SYMBOLS = ["999999", "TSLA", "600000 ", "60000", "６００００"]


@pytest.mark.parametrize("symbol", UNKNOWN_SYMBOLS)
def test_an_order_for_an_unknown_symbol_is_rejected(
    trader: User, session: TradeClient, symbol: str
) -> None:
    with unchanged(trader):
        response = trader.http.post(
            "/v1/orders", content=order_json(symbol=json.dumps(symbol)), headers=JSON
        )
        assert_http_error(response, E.REQUEST_UNKNOWN_SYMBOL)
        reply = exchange(session, pack(order_msg(symbol=symbol)))
        assert_zmq_error(reply, E.REQUEST_UNKNOWN_SYMBOL)


@pytest.mark.parametrize("symbol", ["999999", "TSLA"])
def test_a_quote_for_an_unknown_symbol_is_rejected(
    trader: User, session: TradeClient, symbol: str
) -> None:
    assert_http_error(trader.http.get(f"/v1/quotes/{symbol}"), E.REQUEST_UNKNOWN_SYMBOL)
    reply = exchange(session, pack({"v": 1, "type": "quote.get", "rid": RID, "symbol": symbol}))
    assert_zmq_error(reply, E.REQUEST_UNKNOWN_SYMBOL)


# FUNDS AND SHARES ---------------------------------------------------------------------

CASH_CASES = [
    # symbol 600519 trades near 1500: these buys rest, so their reservation is visible
    pytest.param(100, "1.00", "105.00", id="minimum-commission-5.00"),
    pytest.param(100, "55.65", "5570.57", id="commission-5.565-rounds-half-up-to-5.57"),
    pytest.param(100, "1000.00", "100100.00", id="commission-100.00-above-the-minimum"),
]


@pytest.mark.parametrize("api", ["http", "zmq"])
@pytest.mark.parametrize(("qty", "price", "total"), CASH_CASES)
def test_a_buy_needs_its_value_plus_commission_to_the_cent(
    server: Server, api: str, qty: int, price: str, total: str
) -> None:
    """Exactly qty x price + commission is enough (all of it reserved); a cent less is not."""
    value = qty * Decimal(price)
    assert value + commission(value) == Decimal(total)
    exact = new_user(server, total, prefix="exact")
    short = new_user(server, str(Decimal(total) - Decimal("0.01")), prefix="short")
    body = order_json(symbol='"600519"', qty=str(qty), price=json.dumps(price))
    frame = pack(order_msg(symbol="600519", qty=qty, price=price))

    if api == "http":
        order = ok(exact.http.post("/v1/orders", content=body, headers=JSON))
    else:
        with exact.session() as client:
            reply = exchange(client, frame, events_expected=True)
        assert reply["type"] == "order.accepted", reply
        order = reply["order"]
    assert (order["status"], order["qty"], order["price"]) == ("new", str(qty), price)
    account = ok(exact.http.get("/v1/account"))
    assert (account["cash"], account["reserved_cash"], account["available_cash"]) == (
        total,
        total,
        "0.00",
    )

    with unchanged(short):
        if api == "http":
            response = short.http.post("/v1/orders", content=body, headers=JSON)
            assert_http_error(response, E.RISK_INSUFFICIENT_CASH)
        else:
            with short.session() as client:
                assert_zmq_error(exchange(client, frame), E.RISK_INSUFFICIENT_CASH)
    assert short.state()["open_orders"] == []


SHARE_CASES = [
    pytest.param("000001", 100, id="no-position-in-the-symbol"),
    pytest.param("600000", 1001, id="more-than-held"),
    pytest.param("600000", 701, id="more-than-held-minus-the-open-sell"),
    pytest.param("600000", 1000, id="shares-already-reserved-by-the-open-sell"),
]


@pytest.mark.parametrize(("symbol", "qty"), SHARE_CASES)
def test_a_sell_of_shares_not_available_is_rejected(
    trader: User, session: TradeClient, symbol: str, qty: int
) -> None:
    with unchanged(trader):
        body = order_json(symbol=json.dumps(symbol), side='"sell"', qty=str(qty), price='"99.00"')
        response = trader.http.post("/v1/orders", content=body, headers=JSON)
        assert_http_error(response, E.RISK_INSUFFICIENT_SHARES)
        msg = order_msg(symbol=symbol, side="sell", qty=qty, price="99.00")
        assert_zmq_error(exchange(session, pack(msg)), E.RISK_INSUFFICIENT_SHARES)


# CANCELS ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("whose", "which", "code"),
    [
        pytest.param("trader", None, E.REQUEST_UNKNOWN_ORDER, id="unknown-id"),
        pytest.param("trader", "filled", E.REQUEST_ORDER_NOT_OPEN, id="own-filled-order"),
        pytest.param("trader", "canceled", E.REQUEST_ORDER_NOT_OPEN, id="own-canceled-order"),
        pytest.param("other", "open", E.REQUEST_UNKNOWN_ORDER, id="another-users-open-order"),
        pytest.param(
            "other", "canceled", E.REQUEST_UNKNOWN_ORDER, id="another-users-canceled-order"
        ),
    ],
)
def test_a_cancel_of_an_order_that_cannot_be_canceled_is_rejected(
    trader: User,
    other: User,
    session: TradeClient,
    whose: str,
    which: str | None,
    code: ErrorCode,
) -> None:
    owner = {"trader": trader, "other": other}[whose]
    order_id = 999_999_999 if which is None else owner.orders[which]
    with unchanged(trader, other):
        assert_http_error(trader.http.delete(f"/v1/orders/{order_id}"), code)
        cancel = {"v": 1, "type": "order.cancel", "rid": RID, "order_id": order_id}
        assert_zmq_error(exchange(session, pack(cancel)), code)
    if which == "open":
        assert other.wait_status(order_id, "new", timeout=0)["filled_qty"] == "0"


@pytest.mark.isolation
def test_another_users_order_cannot_be_read(
    trader: User, other: User, session: TradeClient
) -> None:
    order_id = other.orders["open"]
    assert_http_error(trader.http.get(f"/v1/orders/{order_id}"), E.REQUEST_UNKNOWN_ORDER)
    get = {"v": 1, "type": "order.get", "rid": RID, "order_id": order_id}
    assert_zmq_error(exchange(session, pack(get)), E.REQUEST_UNKNOWN_ORDER)


# MESSAGE SHAPE: ZEROMQ ----------------------------------------------------------------


def _without(message: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k != key}


# v must be the integer 1: not a string, a boolean or a float that equals it
VERSIONS = {"2": 2, "0": 0, "-1": -1, "string-1": "1", "true": True, "float-1.0": 1.0, "nil": None}
ORDER_IDS = {
    "0": 0,
    "-1": -1,
    "string": "1",
    "float": 1.5,
    "true": True,
    "nil": None,
    "2**63": 2**63,
}

MESSAGE_CASES = [
    # protocol version
    *[
        pytest.param(order_msg(v=v), E.REQUEST_UNSUPPORTED_VERSION, RID, id=f"version-{name}")
        for name, v in VERSIONS.items()
    ],
    # type
    pytest.param(order_msg(type="order.bogus"), E.REQUEST_UNKNOWN_TYPE, RID, id="unknown-type"),
    pytest.param(order_msg(type="ORDER.NEW"), E.REQUEST_UNKNOWN_TYPE, RID, id="type-in-caps"),
    pytest.param(order_msg(type=""), E.REQUEST_UNKNOWN_TYPE, RID, id="empty-type"),
    pytest.param(order_msg(type=5), E.REQUEST_UNKNOWN_TYPE, RID, id="type-an-int"),
    pytest.param(_without(order_msg(), "type"), E.REQUEST_UNKNOWN_TYPE, RID, id="no-type"),
    pytest.param(order_msg(type="book.add"), E.REQUEST_UNKNOWN_TYPE, RID, id="internal-type"),
    # missing, extra and wrongly typed fields
    *[
        pytest.param(_without(order_msg(), key), E.REQUEST_INVALID, RID, id=f"no-{key}")
        for key in ("symbol", "side", "qty")
    ],
    pytest.param(_without(order_msg(), "price"), E.REQUEST_FIELD_REQUIRED, RID, id="no-price"),
    pytest.param(order_msg(extra=1), E.REQUEST_INVALID, RID, id="extra-field"),
    pytest.param(order_msg(side="hold"), E.REQUEST_INVALID, RID, id="side-hold"),
    pytest.param(order_msg(side="BUY"), E.REQUEST_INVALID, RID, id="side-in-caps"),
    pytest.param(order_msg(symbol=600000), E.REQUEST_INVALID, RID, id="symbol-an-int"),
    pytest.param(order_msg(symbol=""), E.REQUEST_INVALID, RID, id="symbol-empty"),
    pytest.param(order_msg(symbol=None), E.REQUEST_INVALID, RID, id="symbol-nil"),
    pytest.param(order_msg(client_order_id=""), E.REQUEST_INVALID, RID, id="coid-empty"),
    pytest.param(order_msg(client_order_id=5), E.REQUEST_INVALID, RID, id="coid-an-int"),
    pytest.param(order_msg(client_order_id="x" * 65), E.REQUEST_INVALID, RID, id="coid-65"),
    pytest.param(order_msg(rid=True), E.REQUEST_INVALID, None, id="rid-a-bool"),
    pytest.param(order_msg(rid=2**64 - 1), E.REQUEST_INVALID, None, id="rid-above-int64"),
    pytest.param(order_msg(rid=[1]), E.REQUEST_INVALID, None, id="rid-a-list"),
    pytest.param(order_msg(rid="r" * 65), E.REQUEST_INVALID, None, id="rid-65-chars"),
    *[
        pytest.param(
            {"v": 1, "type": "order.cancel", "rid": RID, "order_id": order_id},
            E.REQUEST_INVALID,
            RID,
            id=f"cancel-id-{name}",
        )
        for name, order_id in ORDER_IDS.items()
    ],
    pytest.param(
        {"v": 1, "type": "order.cancel", "rid": RID}, E.REQUEST_INVALID, RID, id="cancel-no-id"
    ),
    pytest.param(
        {"v": 1, "type": "orders.list", "rid": RID, "limit": 0},
        E.REQUEST_INVALID,
        RID,
        id="limit-0",
    ),
    pytest.param(
        {"v": 1, "type": "orders.list", "rid": RID, "status": "closed"},
        E.REQUEST_INVALID,
        RID,
        id="list-status-closed",
    ),
    pytest.param(
        {"v": 1, "type": "session.login", "rid": RID, "token": 12345},
        E.REQUEST_INVALID,
        RID,
        id="login-token-an-int",
    ),
    pytest.param(
        {"v": 1, "type": "session.login", "rid": RID}, E.REQUEST_INVALID, RID, id="login-no-token"
    ),
]


@pytest.mark.parametrize(("message", "code", "rid"), MESSAGE_CASES)
def test_a_bad_zmq_message_gets_a_coded_error(
    trader: User, session: TradeClient, message: dict[str, Any], code: ErrorCode, rid: Any
) -> None:
    with unchanged(trader):
        assert_zmq_error(exchange(session, pack(message)), code, rid)


def _nested(depth: int) -> Any:
    value: Any = 100
    for _ in range(depth):
        value = [value]
    return value


def _padded_to(size: int) -> bytes:
    """An order.new frame of exactly `size` bytes, padded in an extra string field."""
    pad = size - len(pack(order_msg(pad="")))
    while len(frame := pack(order_msg(pad="x" * pad))) > size:
        pad -= 1
    assert len(frame) == size
    return frame


FRAME_CASES = [
    *[
        pytest.param(random.Random(seed).randbytes(64), E.REQUEST_MALFORMED, id=f"random-{seed}")
        for seed in (1, 2, 3)
    ],
    pytest.param(pack(order_msg())[:-3], E.REQUEST_MALFORMED, id="truncated"),
    pytest.param(pack(order_msg())[:1], E.REQUEST_MALFORMED, id="only-the-map-header"),
    pytest.param(pack(order_msg()) + b"\x00", E.REQUEST_MALFORMED, id="trailing-byte"),
    pytest.param(b"", E.REQUEST_MALFORMED, id="empty-frame"),
    pytest.param(b"\xc1", E.REQUEST_MALFORMED, id="never-used-byte-0xc1"),
    pytest.param(json.dumps(order_msg()).encode(), E.REQUEST_MALFORMED, id="json-not-msgpack"),
    pytest.param(
        pack(order_msg(qty=msgpack.ExtType(5, b"100"))), E.REQUEST_MALFORMED, id="ext-type"
    ),
    pytest.param(pack(order_msg(ts=msgpack.Timestamp(0))), E.REQUEST_MALFORMED, id="timestamp-ext"),
    pytest.param(pack(msgpack.ExtType(1, b"x")), E.REQUEST_MALFORMED, id="bare-ext"),
    pytest.param(pack(order_msg(qty=b"100")), E.REQUEST_MALFORMED, id="bin-value"),
    pytest.param(pack({1: "x", **order_msg()}), E.REQUEST_MALFORMED, id="int-map-key"),
    pytest.param(pack({None: "x", **order_msg()}), E.REQUEST_MALFORMED, id="nil-map-key"),
    pytest.param(pack(order_msg(qty={1: 2})), E.REQUEST_MALFORMED, id="nested-int-map-key"),
    pytest.param(pack(order_msg(qty=_nested(8))), E.REQUEST_MALFORMED, id="nested-8-deep"),
    pytest.param(b"\x91" * 60_000 + b"\x00", E.REQUEST_MALFORMED, id="nested-60000-deep"),
    pytest.param(pack([order_msg(), 5]), E.REQUEST_MALFORMED, id="list-with-a-non-map"),
    pytest.param(pack([order_msg(), None]), E.REQUEST_MALFORMED, id="list-with-a-nil"),
    pytest.param(pack([order_msg(), [order_msg()]]), E.REQUEST_MALFORMED, id="list-in-list"),
    pytest.param(pack([]), E.REQUEST_MALFORMED, id="empty-list"),
    pytest.param(pack(5), E.REQUEST_MALFORMED, id="bare-int"),
    pytest.param(pack("order.new"), E.REQUEST_MALFORMED, id="bare-string"),
    pytest.param(pack(None), E.REQUEST_MALFORMED, id="nil"),
    pytest.param(
        pack({**order_msg(), **{f"k{i}": i for i in range(60)}}),
        E.REQUEST_MALFORMED,
        id="map-of-67-keys",
    ),
    pytest.param(pack(order_msg(qty=list(range(1001)))), E.REQUEST_MALFORMED, id="array-1001"),
    pytest.param(pack(order_msg(client_order_id="x" * 5000)), E.REQUEST_MALFORMED, id="str-5000"),
    pytest.param(b"\xdf\xff\xff\xff\xff", E.REQUEST_MALFORMED, id="map-header-of-4G-keys"),
    pytest.param(b"\xdd\xff\xff\xff\xff", E.REQUEST_MALFORMED, id="array-header-of-4G-items"),
    pytest.param(b"\xdb\xff\xff\xff\xff", E.REQUEST_MALFORMED, id="str-header-of-4GB"),
    pytest.param(_padded_to(MAX_MESSAGE_BYTES + 1), E.REQUEST_TOO_LARGE, id="one-byte-too-big"),
    pytest.param(b"\x00" * 1_000_000, E.REQUEST_TOO_LARGE, id="1MB"),
]


@pytest.mark.parametrize(("frame", "code"), FRAME_CASES)
def test_a_bad_zmq_frame_gets_a_coded_error(
    trader: User, session: TradeClient, frame: bytes, code: ErrorCode
) -> None:
    with unchanged(trader):
        assert_zmq_error(exchange(session, frame), code)
        assert exchange(session, pack({"v": 1, "type": "ping", "rid": 8}))["type"] == "pong"


def test_a_frame_at_the_size_limit_is_not_too_large(trader: User, session: TradeClient) -> None:
    frame = _padded_to(MAX_MESSAGE_BYTES)
    assert len(frame) == MAX_MESSAGE_BYTES
    with unchanged(trader):
        assert_zmq_error(exchange(session, frame), E.REQUEST_MALFORMED)  # its pad is too long


def test_a_frame_far_above_the_limit_costs_only_its_own_link(server: Server, trader: User) -> None:
    """Frames beyond 16 x the limit are cut by the socket (ZMQ_MAXMSGSIZE), not answered:
    the sender loses its connection, and nothing else."""
    with unchanged(trader), trader.session() as doomed, trader.session() as bystander:
        doomed.send_raw(b"\x00" * (32 * MAX_MESSAGE_BYTES))
        assert bystander.ping()["type"] == "pong"
        assert bystander.account()["cash"] == trader.state()["cash"]
    with trader.session() as fresh:
        assert fresh.ping()["type"] == "pong"


def test_a_zmq_batch_with_a_bad_message_is_refused_whole(
    trader: User, session: TradeClient
) -> None:
    """A valid order in front of a non-map in the same frame must not be placed."""
    with unchanged(trader):
        frame = pack([order_msg(rid=1), order_msg(rid=2), "junk"])
        assert_zmq_error(exchange(session, frame), E.REQUEST_MALFORMED)
        assert session.recv(0.5) is None


def test_a_zmq_request_with_extra_envelope_frames_is_still_answered(
    trader: User, session: TradeClient
) -> None:
    with unchanged(trader):
        session._socket.send_multipart([b"junk", pack(order_msg(qty=0))])
        assert session._socket.poll(int(REPLY_TIMEOUT * 1000))
        *_envelope, last = session._socket.recv_multipart()
        reply = msgpack.unpackb(last)  # the client logs in with batch=true: an array
        assert_zmq_error(reply[0] if isinstance(reply, list) else reply, E.REQUEST_INVALID_QTY)


def test_a_req_socket_sending_garbage_gets_a_coded_error(server: Server, trader: User) -> None:
    req = zmq.Context.instance().socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    try:
        req.connect(server.api)
        with unchanged(trader):
            req.send(b"garbage")
            assert req.poll(int(REPLY_TIMEOUT * 1000))
            assert_zmq_error(msgpack.unpackb(req.recv()), E.REQUEST_MALFORMED)
    finally:
        req.close()


def test_a_req_socket_cannot_send_a_batch(server: Server, trader: User) -> None:
    """REQ takes exactly one reply per request, so a batch is refused whole, with one reply."""
    req = zmq.Context.instance().socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    try:
        req.connect(server.api)
        with unchanged(trader):
            login = {"v": 1, "type": "session.login", "rid": 1, "token": trader.token}
            req.send(pack([login, order_msg()]))
            assert req.poll(int(REPLY_TIMEOUT * 1000))
            assert_zmq_error(msgpack.unpackb(req.recv()), E.REQUEST_INVALID, rid=None)
    finally:
        req.close()


# MESSAGE SHAPE: HTTP ------------------------------------------------------------------

MALFORMED_BODIES = {
    "open-brace": b"{",
    "not-json": b"not json",
    "trailing-comma": b'{"symbol": "600000",}',
    "single-quotes": b"{'symbol': '600000'}",
    "unterminated-string": b'{"symbol": "600000',
    "invalid-utf8": b'{"symbol": "\xff\xfe"}',
    "trailing-garbage": order_json().encode() + b" trailing",
    "two-objects": order_json().encode() * 2,
}


@pytest.mark.parametrize("body", MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
def test_malformed_json_is_rejected(trader: User, body: bytes) -> None:
    with unchanged(trader):
        response = trader.http.post("/v1/orders", content=body, headers=JSON)
        assert_http_error(response, E.REQUEST_MALFORMED)


INVALID_BODIES = {
    "no-symbol": '{"side": "buy", "qty": 100, "price": "1.00"}',
    "no-side": '{"symbol": "600000", "qty": 100, "price": "1.00"}',
    "no-qty": '{"symbol": "600000", "side": "buy", "price": "1.00"}',
    "extra-field": order_json(extra="1"),
    "side-hold": order_json(side='"hold"'),
    "side-in-caps": order_json(side='"BUY"'),
    "symbol-a-number": order_json(symbol="600000"),
    "symbol-empty": order_json(symbol='""'),
    "coid-empty": order_json(client_order_id='""'),
    "coid-a-number": order_json(client_order_id="5"),
    "array-body": "[" + order_json() + "]",
    "string-body": '"order"',
    "null-body": "null",
    "number-body": "42",
    "empty-object": "{}",
}


@pytest.mark.parametrize("body", INVALID_BODIES.values(), ids=INVALID_BODIES.keys())
def test_an_order_body_of_the_wrong_shape_is_rejected(trader: User, body: str) -> None:
    with unchanged(trader):
        response = trader.http.post("/v1/orders", content=body, headers=JSON)
        assert_http_error(response, E.REQUEST_INVALID)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/v1/orders/abc"),
        ("DELETE", "/v1/orders/0"),
        ("DELETE", "/v1/orders/-5"),
        ("DELETE", "/v1/orders/1.5"),
        ("DELETE", f"/v1/orders/{2**63}"),
        ("GET", "/v1/orders/abc"),
        ("GET", "/v1/orders?limit=0"),
        ("GET", "/v1/orders?limit=1001"),
        ("GET", "/v1/orders?limit=abc"),
        ("GET", "/v1/orders?status=closed"),
        ("GET", "/v1/orders?before_id=0"),
        ("GET", "/v1/fills?limit=-1"),
        ("GET", "/v1/history?after_seq=-1"),
    ],
)
def test_a_bad_path_or_query_parameter_is_rejected(trader: User, method: str, path: str) -> None:
    with unchanged(trader):
        assert_http_error(trader.http.request(method, path), E.REQUEST_INVALID)


def test_an_http_body_above_the_limit_is_too_large(trader: User) -> None:
    body = order_json(client_order_id=json.dumps("x" * (MAX_MESSAGE_BYTES + 10)))
    with unchanged(trader):
        response = trader.http.post("/v1/orders", content=body, headers=JSON)
        assert_http_error(response, E.REQUEST_TOO_LARGE)


def test_a_streamed_http_body_above_the_limit_is_too_large(trader: User) -> None:
    """Without a Content-Length (chunked), the limit must hold while the body streams in."""
    body = order_json(client_order_id=json.dumps("x" * (MAX_MESSAGE_BYTES + 10))).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    with unchanged(trader):
        response = trader.http.post("/v1/orders", content=chunks(), headers=JSON)
        assert "content-length" not in response.request.headers
        assert_http_error(response, E.REQUEST_TOO_LARGE)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/nope"),
        ("POST", "/v1/nope"),
        ("GET", "/console/nope.js"),
        ("GET", "/v3/orders"),
        ("GET", "/v1/orders/1/fills"),
        ("GET", "/v1/admin"),
    ],
)
def test_an_unknown_http_route_is_a_structured_404(
    server: Server, trader: User, method: str, path: str
) -> None:
    with unchanged(trader):
        assert_http_error(trader.http.request(method, path), E.REQUEST_NOT_FOUND)
        assert_http_error(cached_http(server).request(method, path), E.REQUEST_NOT_FOUND)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/v1/orders"),
        ("PATCH", "/v1/orders"),
        ("PUT", "/v1/orders/1"),
        ("DELETE", "/v1/account"),
        ("POST", "/v1/fills"),
    ],
)
def test_a_wrong_http_method_is_a_structured_405(trader: User, method: str, path: str) -> None:
    with unchanged(trader):
        response = trader.http.request(method, path)
        assert_http_error(response, ErrorCode("REQUEST_METHOD_NOT_ALLOWED"))


# ADMIN INPUT --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param({"name": "n1", "cash": "abc"}, E.REQUEST_INVALID_AMOUNT, id="cash-abc"),
        pytest.param({"name": "n2", "cash": "-5"}, E.REQUEST_INVALID_AMOUNT, id="cash-negative"),
        pytest.param({"name": "n3", "cash": "0"}, E.REQUEST_INVALID_AMOUNT, id="cash-zero"),
        pytest.param({"name": "n4", "cash": "1.001"}, E.REQUEST_INVALID_AMOUNT, id="cash-mills"),
        pytest.param({"name": "n5", "cash": "NaN"}, E.REQUEST_INVALID_AMOUNT, id="cash-nan"),
        pytest.param({"name": "n6", "cash": 10**30}, E.REQUEST_INVALID_AMOUNT, id="cash-10**30"),
        pytest.param({"name": "n 7", "cash": "5"}, E.REQUEST_INVALID, id="name-with-space"),
        pytest.param({"name": "", "cash": "5"}, E.REQUEST_INVALID, id="name-empty"),
        pytest.param({"name": "n8"}, E.REQUEST_INVALID, id="no-cash"),
        pytest.param({"name": "n9", "cash": None}, E.REQUEST_INVALID, id="cash-null"),
        pytest.param(
            {"name": "n10", "cash": "\u0661\u0660\u0660"},
            E.REQUEST_INVALID_AMOUNT,
            id="cash-arabic-100",
        ),
    ],
)
def test_a_bad_user_creation_is_rejected(
    server: Server, body: dict[str, Any], code: ErrorCode
) -> None:
    names = user_names(server)
    assert_http_error(admin_http(server).post("/v1/admin/users", json=body), code)
    assert user_names(server) == names


def test_a_user_name_that_is_taken_is_rejected(server: Server, trader: User) -> None:
    names = user_names(server)
    with unchanged(trader):
        body = {"name": trader.name, "cash": "5"}
        response = admin_http(server).post("/v1/admin/users", json=body)
        assert_http_error(response, E.REQUEST_NAME_TAKEN)
    assert user_names(server) == names


@pytest.mark.parametrize("state", ["flying", "", "RUNNING", None, 1])
def test_a_bad_control_state_is_rejected(server: Server, state: Any) -> None:
    response = admin_http(server).post("/v1/control", json={"state": state})
    assert_http_error(response, E.REQUEST_INVALID)
    assert control_state(server) == "running"


# ORDER TYPES, TIME IN FORCE AND REPLACE -----------------------------------------------
#
# A case is the fields of a request under their HTTP names; over ZeroMQ the order type is
# `order_type`, since `type` names the message. Each case goes over both APIs in one test
# and must leave the user's money, open orders, holdings and operation log as they were.


class Case(NamedTuple):
    fields: dict[str, Any]
    code: ErrorCode


def typed_order(fields: dict[str, Any]) -> dict[str, Any]:
    """A POST /v1/orders body: a buy of 100 600000 with `fields` (no price by default)."""
    return {"symbol": "600000", "side": "buy", "qty": 100, **fields}


def zmq_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """HTTP field names to ZeroMQ ones: `type` (the order type) is `order_type`."""
    return {("order_type" if key == "type" else key): value for key, value in fields.items()}


def post_and_send(user: User, client: TradeClient, body: dict[str, Any], code: ErrorCode) -> None:
    """POST `body` as an order and send it as `order.new`: both refused with `code`."""
    response = user.http.post("/v1/orders", content=json.dumps(body), headers=JSON)
    assert_http_error(response, code)
    message = {"v": 1, "type": "order.new", "rid": RID, **zmq_fields(body)}
    assert_zmq_error(exchange(client, pack(message)), code)


def patch_and_send(
    user: User, client: TradeClient, order_id: int, fields: dict[str, Any], code: ErrorCode
) -> None:
    """PATCH order `order_id` with `fields` and send the same `order.replace`: both refused
    with `code`."""
    response = user.http.patch(f"/v1/orders/{order_id}", content=json.dumps(fields), headers=JSON)
    assert_http_error(response, code)
    message = {"v": 1, "type": "order.replace", "rid": RID, "order_id": order_id}
    assert_zmq_error(exchange(client, pack({**message, **zmq_fields(fields)})), code)


NAN = float("nan")
STOP = {"type": "stop", "stop_price": "20.00"}
STOP_LIMIT = {"type": "stop_limit", "stop_price": "20.00", "limit_price": "20.00"}
TRAILING = {"type": "trailing_stop", "trail_price": "1.00"}

TYPED_ORDER_CASES = {
    # a field the type does not take
    "limit-with-stop_price": Case(
        {"type": "limit", "limit_price": "1.00", "stop_price": "1.00"}, E.REQUEST_FIELD_NOT_ALLOWED
    ),
    "default-type-with-stop_price": Case(
        {"price": "1.00", "stop_price": "1.00"}, E.REQUEST_FIELD_NOT_ALLOWED
    ),
    "limit-with-trail_price": Case(
        {"type": "limit", "limit_price": "1.00", "trail_price": "0.10"},
        E.REQUEST_FIELD_NOT_ALLOWED,
    ),
    "limit-with-trail_percent": Case(
        {"type": "limit", "price": "1.00", "trail_percent": 5}, E.REQUEST_FIELD_NOT_ALLOWED
    ),
    "market-with-limit_price": Case(
        {"type": "market", "limit_price": "1.00"}, E.REQUEST_FIELD_NOT_ALLOWED
    ),
    "market-with-price-alias": Case(
        {"type": "market", "price": "1.00"}, E.REQUEST_FIELD_NOT_ALLOWED
    ),
    "market-with-stop_price": Case(
        {"type": "market", "stop_price": "20.00"}, E.REQUEST_FIELD_NOT_ALLOWED
    ),
    "market-with-trail_percent": Case(
        {"type": "market", "trail_percent": "5"}, E.REQUEST_FIELD_NOT_ALLOWED
    ),
    "stop-with-limit_price": Case({**STOP, "limit_price": "20.00"}, E.REQUEST_FIELD_NOT_ALLOWED),
    "stop-with-price-alias": Case({**STOP, "price": "20.00"}, E.REQUEST_FIELD_NOT_ALLOWED),
    "stop-with-trail_price": Case({**STOP, "trail_price": "1.00"}, E.REQUEST_FIELD_NOT_ALLOWED),
    "stop-with-trail_percent": Case({**STOP, "trail_percent": 5}, E.REQUEST_FIELD_NOT_ALLOWED),
    "stop_limit-with-trail_percent": Case(
        {**STOP_LIMIT, "trail_percent": 5}, E.REQUEST_FIELD_NOT_ALLOWED
    ),
    "trailing_stop-with-limit_price": Case(
        {**TRAILING, "limit_price": "20.00"}, E.REQUEST_FIELD_NOT_ALLOWED
    ),
    "trailing_stop-with-stop_price": Case(
        {**TRAILING, "stop_price": "20.00"}, E.REQUEST_FIELD_NOT_ALLOWED
    ),
    # a field the type needs is missing
    "limit-without-limit_price": Case({"type": "limit"}, E.REQUEST_FIELD_REQUIRED),
    "default-type-without-a-price": Case({}, E.REQUEST_FIELD_REQUIRED),
    "limit-with-limit_price-null": Case(
        {"type": "limit", "limit_price": None}, E.REQUEST_FIELD_REQUIRED
    ),
    "limit-with-only-a-stop_price": Case(
        {"type": "limit", "stop_price": "1.00"}, E.REQUEST_FIELD_REQUIRED
    ),
    "stop-without-stop_price": Case({"type": "stop"}, E.REQUEST_FIELD_REQUIRED),
    "stop_limit-without-stop_price": Case(
        {"type": "stop_limit", "limit_price": "20.00"}, E.REQUEST_FIELD_REQUIRED
    ),
    "stop_limit-without-limit_price": Case(
        {"type": "stop_limit", "stop_price": "20.00"}, E.REQUEST_FIELD_REQUIRED
    ),
    "trailing_stop-without-a-trail": Case({"type": "trailing_stop"}, E.REQUEST_FIELD_REQUIRED),
    "trailing_stop-with-both-trails": Case(
        {**TRAILING, "trail_percent": 5}, E.REQUEST_FIELD_REQUIRED
    ),
    # immediate time in force on a stop
    **{
        f"{kind}-{tif}": Case({**fields, "time_in_force": tif}, E.REQUEST_TIF_NOT_ALLOWED)
        for kind, fields in (("stop", STOP), ("stop_limit", STOP_LIMIT), ("trailing", TRAILING))
        for tif in ("ioc", "fok")
    },
    # unknown type, time in force; both price and limit_price
    "type-bogus": Case({"type": "bogus", "price": "1.00"}, E.REQUEST_INVALID),
    "type-in-caps": Case({"type": "LIMIT", "price": "1.00"}, E.REQUEST_INVALID),
    "type-empty": Case({"type": "", "price": "1.00"}, E.REQUEST_INVALID),
    "type-null": Case({"type": None, "price": "1.00"}, E.REQUEST_INVALID),
    "type-an-int": Case({"type": 1, "price": "1.00"}, E.REQUEST_INVALID),
    "tif-bogus": Case({"price": "1.00", "time_in_force": "gtd"}, E.REQUEST_INVALID),
    "tif-in-caps": Case({"price": "1.00", "time_in_force": "IOC"}, E.REQUEST_INVALID),
    "tif-null": Case({"price": "1.00", "time_in_force": None}, E.REQUEST_INVALID),
    "tif-an-int": Case({"price": "1.00", "time_in_force": 1}, E.REQUEST_INVALID),
    "price-and-limit_price": Case({"price": "1.00", "limit_price": "1.00"}, E.REQUEST_INVALID),
    "price-and-limit_price-on-stop_limit": Case(
        {**STOP_LIMIT, "price": "20.00"}, E.REQUEST_INVALID
    ),
    # trail_percent: above 0 and below 100
    **{
        f"trail_percent-{name}": Case(
            {"type": "trailing_stop", "trail_percent": value}, E.REQUEST_INVALID_TRAIL
        )
        for name, value in {
            "0": 0,
            "0-string": "0",
            "negative": "-5",
            "100": 100,
            "100.00-string": "100.00",
            "150": 150.0,
            "nan-string": "nan",
            "NaN": NAN,
            "inf": float("inf"),
            "abc": "abc",
            "empty-string": "",
            "exponent-string": "1e1",
        }.items()
    },
    "trail_percent-true": Case({"type": "trailing_stop", "trail_percent": True}, E.REQUEST_INVALID),
    "trail_percent-a-list": Case(
        {"type": "trailing_stop", "trail_percent": [5]}, E.REQUEST_INVALID
    ),
    # a trail that puts the stop outside the price range (600000 trades near 8.50)
    "sell-trail_price-above-the-price": Case(
        {"type": "trailing_stop", "side": "sell", "trail_price": "1000.00"},
        E.REQUEST_INVALID_TRAIL,
    ),
    "sell-trail_percent-99.99-rounds-the-stop-to-0": Case(
        {"type": "trailing_stop", "side": "sell", "trail_percent": "99.99"},
        E.REQUEST_INVALID_TRAIL,
    ),
    "buy-trail_price-beyond-max_price": Case(
        {"type": "trailing_stop", "trail_price": "999999.00"}, E.REQUEST_INVALID_TRAIL
    ),
    # stop_price, trail_price and the new name limit_price: like price
    **{
        f"{field}-{name}": Case({**fields, field: value}, code)
        for field, fields in (
            ("stop_price", {"type": "stop"}),
            ("trail_price", {"type": "trailing_stop"}),
            ("limit_price", {"type": "stop_limit", "stop_price": "20.00"}),
        )
        for name, (value, code) in {
            "zero": ("0", E.REQUEST_INVALID_PRICE),
            "negative": ("-1.00", E.REQUEST_INVALID_PRICE),
            "off-the-tick": ("20.001", E.REQUEST_PRICE_TICK),
            "nan-string": ("NaN", E.REQUEST_INVALID_PRICE),
            "NaN": (NAN, E.REQUEST_INVALID_PRICE),
            "abc": ("abc", E.REQUEST_INVALID_PRICE),
            "above-max-price": ("1000000.01", E.REQUEST_INVALID_PRICE),
            "10**30": (str(10**30), E.REQUEST_INVALID_PRICE),
            "true": (True, E.REQUEST_INVALID),
        }.items()
    },
    # funds and shares, reserved at the bound: a market order's or a stop's protection price
    "market-buy-beyond-the-cash": Case(
        {"type": "market", "symbol": "600519", "qty": 1_000_000}, E.RISK_INSUFFICIENT_CASH
    ),
    "stop-buy-beyond-the-cash": Case(
        {"type": "stop", "symbol": "600519", "stop_price": "5000.00", "qty": 10_000},
        E.RISK_INSUFFICIENT_CASH,
    ),
    "stop-sell-beyond-the-shares": Case(
        {"type": "stop", "side": "sell", "stop_price": "1.00", "qty": 701},
        E.RISK_INSUFFICIENT_SHARES,
    ),
    "trailing-sell-beyond-the-shares": Case(
        {"type": "trailing_stop", "side": "sell", "trail_percent": 10, "qty": 701},
        E.RISK_INSUFFICIENT_SHARES,
    ),
    "stop_price-on-stop_limit-off-the-tick": Case(
        {**STOP_LIMIT, "stop_price": "0.001"}, E.REQUEST_PRICE_TICK
    ),
}


@pytest.mark.parametrize("case", [pytest.param(c, id=n) for n, c in TYPED_ORDER_CASES.items()])
def test_an_order_whose_fields_do_not_fit_its_type_is_rejected(
    trader: User, session: TradeClient, case: Case
) -> None:
    with unchanged(trader, history=True):
        post_and_send(trader, session, typed_order(case.fields), case.code)


def test_the_order_type_field_has_each_apis_name(trader: User, session: TradeClient) -> None:
    """HTTP calls it `type`, ZeroMQ `order_type`: the other name is an unknown field (or,
    over ZeroMQ, a message type)."""
    with unchanged(trader, history=True):
        body = typed_order({"order_type": "limit", "price": "1.00"})
        response = trader.http.post("/v1/orders", json=body)
        assert_http_error(response, E.REQUEST_INVALID)
        message = {"v": 1, "type": "limit", "rid": RID, **typed_order({"price": "1.00"})}
        assert_zmq_error(exchange(session, pack(message)), E.REQUEST_UNKNOWN_TYPE)


@pytest.fixture(scope="module")
def holder(server: Server) -> User:
    """Holds one open order of each type (buys far from the market: none triggers or
    fills), a filled buy of 100 600000 all reserved by an open sell, and a canceled order."""
    user = new_user(server, cash="100000", prefix="holder")
    bought = user.place("600000", "buy", 100, "20.00")
    user.wait_status(bought["id"], "filled")
    user.orders["filled"] = bought["id"]
    doomed = user.place("600519", "buy", 100, "1.00")["id"]
    ok(user.http.delete(f"/v1/orders/{doomed}"))
    user.wait_status(doomed, "canceled")
    user.orders["canceled"] = doomed
    typed = {
        "limit": {"symbol": "600519", "type": "limit", "limit_price": "1.00"},
        "sell": {"symbol": "600000", "side": "sell", "price": "99.00"},
        # 000001 trades near 11.20
        "stop": {"symbol": "000001", "type": "stop", "stop_price": "100.00"},
        "stop_limit": {
            "symbol": "000001",
            "type": "stop_limit",
            "stop_price": "100.00",
            "limit_price": "100.00",
            "time_in_force": "gtc",
        },
        "trail_price": {"symbol": "000001", "type": "trailing_stop", "trail_price": "50.00"},
        "trail_percent": {"symbol": "000001", "type": "trailing_stop", "trail_percent": "50"},
    }
    for name, fields in typed.items():
        order = ok(user.http.post("/v1/orders", json=typed_order(fields)))
        assert order["status"] == "new", order
        user.orders[name] = order["id"]
    positions = ok(user.http.get("/v1/positions"))
    assert [(p["symbol"], p["qty"], p["available_qty"]) for p in positions] == [
        ("600000", "100", "0")
    ]
    return user


@pytest.fixture
def holder_session(holder: User) -> Iterator[TradeClient]:
    client = holder.session()
    yield client
    client.close()


REPLACE_CASES = [
    # refused by the gateway: nothing that changes, or a bad value
    *[
        pytest.param("limit", fields, E.REQUEST_NOTHING_TO_REPLACE, id=name)
        for name, fields in {
            "nothing": {},
            "only-a-client_order_id": {"client_order_id": "only-coid"},
            "all-null": {"qty": None, "limit_price": None, "time_in_force": None},
        }.items()
    ],
    pytest.param(
        "limit", {"price": "2.00", "limit_price": "2.00"}, E.REQUEST_INVALID, id="price-twice"
    ),
    pytest.param("limit", {"time_in_force": "gtd"}, E.REQUEST_INVALID, id="tif-bogus"),
    pytest.param("limit", {"time_in_force": 1}, E.REQUEST_INVALID, id="tif-an-int"),
    pytest.param("limit", {"type": "market"}, E.REQUEST_INVALID, id="a-new-type"),
    pytest.param("limit", {"symbol": "000001"}, E.REQUEST_INVALID, id="a-new-symbol"),
    pytest.param("sell", {"side": "buy"}, E.REQUEST_INVALID, id="a-new-side"),
    pytest.param("limit", {"qty": 100, "extra": 1}, E.REQUEST_INVALID, id="extra-field"),
    pytest.param("limit", {"qty": 100, "client_order_id": ""}, E.REQUEST_INVALID, id="coid-empty"),
    pytest.param("limit", {"qty": 0}, E.REQUEST_INVALID_QTY, id="qty-zero"),
    pytest.param("limit", {"qty": "abc"}, E.REQUEST_INVALID_QTY, id="qty-abc"),
    pytest.param("limit", {"qty": -100}, E.REQUEST_INVALID_QTY, id="qty-negative"),
    pytest.param("limit", {"qty": True}, E.REQUEST_INVALID, id="qty-true"),
    pytest.param("limit", {"limit_price": "0"}, E.REQUEST_INVALID_PRICE, id="limit_price-zero"),
    pytest.param("limit", {"price": NAN}, E.REQUEST_INVALID_PRICE, id="price-NaN"),
    pytest.param("stop", {"stop_price": "-1"}, E.REQUEST_INVALID_PRICE, id="stop_price-negative"),
    pytest.param(
        "trail_price", {"trail_price": "abc"}, E.REQUEST_INVALID_PRICE, id="trail_price-abc"
    ),
    *[
        pytest.param(
            "trail_percent", {"trail_percent": v}, E.REQUEST_INVALID_TRAIL, id=f"trail_percent-{n}"
        )
        for n, v in {"0": 0, "100": "100", "NaN": NAN, "abc": "abc"}.items()
    ],
    # refused by the accountant, which knows the order
    *[
        pytest.param(which, {"time_in_force": tif}, E.REQUEST_TIF_NOT_ALLOWED, id=f"{which}-{tif}")
        for which, tif in (
            ("limit", "ioc"),
            ("limit", "fok"),
            ("stop", "ioc"),
            ("stop_limit", "fok"),
            ("trail_price", "ioc"),
        )
    ],
    *[
        pytest.param(which, fields, E.REQUEST_FIELD_NOT_ALLOWED, id=f"{which}-{name}")
        for which, name, fields in (
            ("limit", "adds-stop_price", {"stop_price": "2.00"}),
            ("limit", "adds-trail_percent", {"trail_percent": 5}),
            ("stop", "adds-limit_price", {"limit_price": "100.00"}),
            ("stop", "adds-price-alias", {"price": "100.00"}),
            ("stop", "adds-trail_price", {"trail_price": "1.00"}),
            ("stop_limit", "adds-trail_percent", {"trail_percent": 5}),
            ("trail_price", "adds-limit_price", {"limit_price": "100.00"}),
            ("trail_price", "adds-stop_price", {"stop_price": "100.00"}),
            ("trail_percent", "adds-stop_price", {"stop_price": "100.00"}),
        )
    ],
    pytest.param(
        "trail_price",
        {"trail_price": "40.00", "trail_percent": 40},
        E.REQUEST_FIELD_REQUIRED,
        id="trailing-both-trails",
    ),
    pytest.param(
        "trail_price",
        {"trail_price": "999999.00"},
        E.REQUEST_INVALID_TRAIL,
        id="trailing-stop-beyond-max_price",
    ),
    pytest.param("limit", {"qty": 150}, E.REQUEST_LOT_SIZE, id="buy-qty-off-the-lot"),
    pytest.param("limit", {"limit_price": "1.001"}, E.REQUEST_PRICE_TICK, id="limit-off-the-tick"),
    pytest.param("stop", {"stop_price": "100.001"}, E.REQUEST_PRICE_TICK, id="stop-off-the-tick"),
    pytest.param(
        "trail_price", {"trail_price": "0.001"}, E.REQUEST_PRICE_TICK, id="trail-off-the-tick"
    ),
    pytest.param(
        "stop_limit",
        {"stop_price": "1000000.01"},
        E.REQUEST_INVALID_PRICE,
        id="stop-above-max-price",
    ),
    # funds: the replacement needs more than the order it replaces holds, and more than
    # is available (about 69,000 of 100,000)
    pytest.param(
        "limit", {"limit_price": "1000.00"}, E.RISK_INSUFFICIENT_CASH, id="limit-price-up"
    ),
    pytest.param("limit", {"qty": 100_000}, E.RISK_INSUFFICIENT_CASH, id="limit-qty-up"),
    pytest.param("stop", {"stop_price": "999999.00"}, E.RISK_INSUFFICIENT_CASH, id="stop-price-up"),
    pytest.param("sell", {"qty": 200}, E.RISK_INSUFFICIENT_SHARES, id="sell-more-than-held"),
    # orders that cannot be replaced
    pytest.param("filled", {"qty": 100}, E.REQUEST_ORDER_NOT_OPEN, id="own-filled-order"),
    pytest.param("canceled", {"qty": 100}, E.REQUEST_ORDER_NOT_OPEN, id="own-canceled-order"),
    pytest.param(
        "filled", {"time_in_force": "ioc"}, E.REQUEST_ORDER_NOT_OPEN, id="own-filled-order-ioc"
    ),
    pytest.param(None, {"qty": 100}, E.REQUEST_UNKNOWN_ORDER, id="unknown-id"),
    pytest.param("other:open", {"qty": 100}, E.REQUEST_UNKNOWN_ORDER, id="another-users-open"),
    pytest.param(
        "other:canceled", {"qty": 100}, E.REQUEST_UNKNOWN_ORDER, id="another-users-canceled"
    ),
]


@pytest.mark.parametrize(("which", "fields", "code"), REPLACE_CASES)
def test_a_bad_replace_is_rejected(
    holder: User,
    other: User,
    holder_session: TradeClient,
    which: str | None,
    fields: dict[str, Any],
    code: ErrorCode,
) -> None:
    if which is None:
        order_id = 999_999_999
    elif which.startswith("other:"):
        order_id = other.orders[which.removeprefix("other:")]
    else:
        order_id = holder.orders[which]
    users = (holder, other) if which is not None and which.startswith("other:") else (holder,)
    with unchanged(*users, history=True):
        patch_and_send(holder, holder_session, order_id, fields, code)


@pytest.mark.parametrize("path_id", ["abc", "0", "-5", "1.5", str(2**63)])
def test_a_replace_of_a_bad_order_id_is_rejected(holder: User, path_id: str) -> None:
    with unchanged(holder, history=True):
        response = holder.http.patch(f"/v1/orders/{path_id}", json={"qty": 100})
        assert_http_error(response, E.REQUEST_INVALID)


REPLACE_MESSAGE_CASES = [
    *[pytest.param({"order_id": v}, id=f"order_id-{name}") for name, v in ORDER_IDS.items()],
    pytest.param({}, id="no-order_id"),
]


@pytest.mark.parametrize("ids", REPLACE_MESSAGE_CASES)
def test_a_zmq_replace_of_a_bad_order_id_is_rejected(
    holder: User, holder_session: TradeClient, ids: dict[str, Any]
) -> None:
    with unchanged(holder, history=True):
        message = {"v": 1, "type": "order.replace", "rid": RID, "qty": 100, **ids}
        assert_zmq_error(exchange(holder_session, pack(message)), E.REQUEST_INVALID)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(b"", E.REQUEST_INVALID, id="no-body"),
        pytest.param(b"{", E.REQUEST_MALFORMED, id="open-brace"),
        pytest.param(b'{"qty": 100,}', E.REQUEST_MALFORMED, id="trailing-comma"),
        pytest.param(b'[{"qty": 100}]', E.REQUEST_INVALID, id="array-body"),
        pytest.param(b"null", E.REQUEST_INVALID, id="null-body"),
    ],
)
def test_a_replace_body_of_the_wrong_shape_is_rejected(
    holder: User, body: bytes, code: ErrorCode
) -> None:
    with unchanged(holder, history=True):
        response = holder.http.patch(
            f"/v1/orders/{holder.orders['limit']}", content=body, headers=JSON
        )
        assert_http_error(response, code)


# AFTER ALL OF IT ----------------------------------------------------------------------


def test_no_process_crashed_and_the_server_still_fills_orders(
    server: Server, trader: User, pids_at_start: dict[str, int]
) -> None:
    """Runs last: every process is the one that started, and a valid order still fills."""
    status = server.status()["children"]
    assert {name: status[name]["pid"] for name in PROCESSES} == pids_at_start
    assert all(status[name]["restarts"] == 0 for name in PROCESSES), status
    assert ok(cached_http(server).get("/v1/health")) == {"status": "ok"}

    def held() -> int:
        positions = ok(trader.http.get("/v1/positions"))
        return sum(int(p["qty"]) for p in positions if p["symbol"] == "600000")

    before = held()
    by_http = trader.place("600000", "buy", 100, "20.00")
    assert by_http["status"] == "new"
    trader.wait_status(by_http["id"], "filled")
    with trader.session() as client:
        order = client.place_order("600000", "buy", 100, "20.00")
        assert client.wait_for("order.filled", order["id"], timeout=15)["order"]["status"] == (
            "filled"
        )
    assert held() == before + 200

    for name, text in server.logs():
        assert "Traceback" not in text, f"{name}:\n{text[-3000:]}"


def test_refusals_say_what_the_field_takes_in_plain_words(
    trader: User, session: TradeClient
) -> None:
    """The same words over both APIs, and none of the validator's (union branches such
    as `qty.int` or `rid.constrained-int`, problem counts)."""
    qty = "REQUEST_INVALID: qty: must be an integer or a decimal string"
    rid = "REQUEST_INVALID: rid: must be an integer or a string of at most 64 characters"
    with unchanged(trader):
        assert exchange(session, pack(order_msg(qty=True)))["message"] == qty
        reply = exchange(session, pack(order_msg(rid=1.5)))
        assert_zmq_error(reply, E.REQUEST_INVALID, rid=None)
        assert reply["message"] == rid
        http = trader.http.post("/v1/orders", content=order_json(qty="true"), headers=JSON)
        assert_http_error(http, E.REQUEST_INVALID)
        assert http.json()["error"]["message"] == qty
        query = trader.http.get("/v1/orders?limit=0").json()["error"]["message"]
        assert query == "REQUEST_INVALID: query.limit: must be at least 1"
        body = trader.http.post("/v1/orders", content="42", headers=JSON).json()
        assert body["error"]["message"] == "REQUEST_INVALID: body: must be a map (an object)"


def test_a_login_refused_for_its_token_logs_the_connection_out(
    trader: User, session: TradeClient
) -> None:
    """protocol.md 2.4 and 3.2: AUTH_INVALID_TOKEN ends the connection's session; a login
    refused before its token is looked at (REQUEST_INVALID) leaves it as it was."""
    account = {"v": 1, "type": "account.get", "rid": RID}
    with unchanged(trader):
        empty = {"v": 1, "type": "session.login", "rid": RID, "token": ""}
        assert_zmq_error(exchange(session, pack(empty), events_expected=True), E.REQUEST_INVALID)
        assert exchange(session, pack(account), events_expected=True)["type"] == "account"
        wrong = {"v": 1, "type": "session.login", "rid": RID, "token": "not-a-token"}
        reply = exchange(session, pack(wrong), events_expected=True)
        assert_zmq_error(reply, E.AUTH_INVALID_TOKEN)
        reply = exchange(session, pack(account), events_expected=True)
        assert_zmq_error(reply, E.AUTH_LOGIN_REQUIRED)
