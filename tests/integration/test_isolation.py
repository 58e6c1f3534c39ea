"""A user never sees or touches another user's orders, fills, account or events; tokens
are rotated and revoked; each token has a rate limit; concurrent orders never overdraw."""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest
import zmq

from protocol import codec
from protocol.client import TradeClient, TradeError
from tests.conftest import fresh_name
from tests.harness import Server

pytestmark = pytest.mark.isolation

RATE, BURST = 50, 250  # per token: low enough to reach in a test, above what others send


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Instant fills, and a per-token rate limit a test can reach (each test's own users
    have their own buckets)."""
    limits = {"rate_per_user": RATE, "rate_burst": BURST}
    with Server(tmp_path_factory.mktemp("isolation"), fill_mode="instant", limits=limits) as srv:
        yield srv
        srv.assert_no_crash()


def test_a_user_cannot_read_or_cancel_another_users_order(server: Server) -> None:
    alice = server.client(server.new_user(fresh_name("alice")))
    bob_token = server.new_user(fresh_name("bob"))
    bob = server.client(bob_token)
    server.set_control("paused")
    try:
        order = alice.place_order("600000", "buy", 100, "8.00")
        for attempt in (bob.get_order, bob.cancel_order):
            with pytest.raises(TradeError) as caught:
                attempt(order["id"])
            assert caught.value.code == "REQUEST_UNKNOWN_ORDER"
        http = server.http(bob_token)
        assert http.get(f"/v1/orders/{order['id']}").status_code == 404
        assert http.delete(f"/v1/orders/{order['id']}").status_code == 404
        assert bob.orders(status="all") == []
        assert alice.get_order(order["id"])["status"] == "new"
    finally:
        server.set_control("running")
    alice.wait_for("order.filled", order["id"])
    assert bob.fills() == []
    assert bob.history()["entries"] == []
    assert bob.positions() == []
    assert bob.account()["cash"] == "1000000.00"
    assert bob.next_event(timeout=0.5) is None


def test_admin_operations_need_the_admin_token(server: Server) -> None:
    http = server.http(server.new_user(fresh_name()))
    assert http.post("/v1/control", json={"state": "stopped"}).status_code == 403
    reply = http.post("/v1/admin/users", json={"name": fresh_name(), "cash": "1"})
    assert (reply.status_code, reply.json()["error"]["code"]) == (403, "AUTH_NOT_ADMIN")
    assert http.get("/v1/admin/users").status_code == 403
    assert http.get("/v1/control").json()["state"] == "running"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/account"),
        ("GET", "/v1/orders"),
        ("GET", "/v1/orders/1"),
        ("DELETE", "/v1/orders/1"),
        ("GET", "/v1/positions"),
        ("GET", "/v1/fills"),
        ("GET", "/v1/history"),
        ("GET", "/v1/history.csv"),
        ("GET", "/v1/stats"),
        ("GET", "/v1/quotes/600000"),
        ("GET", "/v1/depth/600000"),
        ("GET", "/v1/control"),
        ("GET", "/v1/events"),
        ("GET", "/v1/admin/users"),
        ("POST", "/v1/account/reset"),
        ("POST", "/v1/admin/users/1/reset"),
    ],
)
def test_every_endpoint_refuses_a_missing_or_wrong_token(
    server: Server, method: str, path: str
) -> None:
    http = server.http()
    missing = http.request(method, path)
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "AUTH_MISSING_TOKEN")
    wrong = http.request(method, path, headers=server.auth("not-a-token"))
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "AUTH_INVALID_TOKEN")


def test_a_routing_id_reused_by_another_connection_does_not_inherit_the_session(
    server: Server,
) -> None:
    alice_token = server.new_user(fresh_name("alice"))
    context = zmq.Context.instance()

    def dealer() -> zmq.Socket[bytes]:
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.ROUTING_ID, b"chosen-id")
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(server.api)
        return sock

    def ask(sock: zmq.Socket[bytes], **request: object) -> dict[str, object]:
        sock.send(codec.encode({"v": 1, "rid": 1, **request}))
        assert sock.poll(10_000), "no reply"
        return dict(codec.decode_internal(sock.recv()))

    first = dealer()
    assert ask(first, type="session.login", token=alice_token)["type"] == "session.ready"
    assert ask(first, type="account.get")["type"] == "account"
    first.close(linger=0)
    time.sleep(0.5)

    intruder = dealer()
    time.sleep(0.5)
    reply = ask(intruder, type="account.get")
    assert (reply["type"], reply["code"]) == ("error", "AUTH_LOGIN_REQUIRED")
    order = server.http(alice_token).post(
        "/v1/orders", json={"symbol": "600000", "side": "buy", "qty": 100, "price": "8.50"}
    )
    assert order.status_code == 200
    assert not intruder.poll(1000), "the intruder received alice's events"
    intruder.close(linger=0)


# EVERY OPERATION THAT TAKES AN ID ------------------------------------------------------


@pytest.fixture
def pair(server: Server) -> Iterator[tuple[TradeClient, httpx.Client, dict[str, Any]]]:
    """Bob's ZeroMQ and HTTP clients, and an open order of Alice's (trading paused)."""
    alice = server.client(server.new_user(fresh_name("alice")))
    bob_token = server.new_user(fresh_name("bob"))
    server.set_control("paused")
    try:
        order = alice.place_order("600000", "buy", 100, "8.00", client_order_id="mine")
        yield server.client(bob_token), server.http(bob_token), order
        assert alice.get_order(order["id"])["status"] == "new"  # untouched
        assert alice.get_order(order["id"])["qty"] == "100"
    finally:
        server.set_control("running")


def test_another_users_order_cannot_be_replaced(pair: Any) -> None:
    bob, http, order = pair
    with pytest.raises(TradeError) as caught:
        bob.replace_order(order["id"], qty=200)
    assert caught.value.code == "REQUEST_UNKNOWN_ORDER"
    reply = http.patch(f"/v1/orders/{order['id']}", json={"qty": 200})
    assert (reply.status_code, reply.json()["error"]["code"]) == (404, "REQUEST_UNKNOWN_ORDER")


def test_another_users_order_ids_do_not_page_into_their_orders(pair: Any) -> None:
    bob, http, order = pair
    mine = bob.place_order("600000", "buy", 100, "7.00")
    newer = order["id"] + 1000
    listed = bob.request("orders.list", status="all", before_id=newer)["orders"]
    assert [o["id"] for o in listed] == [mine["id"]]
    assert bob.request("fills.list", before_id=newer)["fills"] == []
    page = http.get("/v1/orders", params={"status": "all", "before_id": newer}).json()
    assert [o["id"] for o in page] == [mine["id"]]


def test_a_client_order_id_belongs_to_its_user(pair: Any) -> None:
    """Alice's "mine" neither blocks Bob's nor hands him her order (3.3's resend rule)."""
    bob, _, order = pair
    own = bob.place_order("600000", "buy", 100, "7.50", client_order_id="mine")
    assert own["id"] != order["id"]
    assert own["limit_price"] == "7.50"


def test_another_users_history_is_not_reachable_by_seq(pair: Any) -> None:
    bob, http, _ = pair
    assert bob.history(after_seq=0)["entries"] == []
    assert http.get("/v1/history", params={"after_seq": 0}).json()["entries"] == []


# TOKENS ------------------------------------------------------------------------------


def test_a_user_rotates_its_own_token_and_the_old_one_stops_at_once(server: Server) -> None:
    name = fresh_name("rotator")
    old = server.new_user(name)
    client = server.client(old)
    listener = server.client(old)
    rotated = client.rotate_token()
    assert (rotated["type"], rotated["name"]) == ("token.rotated", name)
    new = rotated["token"]
    assert new != old

    ended = listener.next_event(timeout=5)
    assert ended is not None
    assert (ended["event"], ended["reason"]) == ("session.ended", "token.rotated")
    with pytest.raises(TradeError) as caught:
        listener.account()  # logs in again with the old token
    assert caught.value.code == "AUTH_INVALID_TOKEN"
    old_http = server.http(old).get("/v1/account")
    assert (old_http.status_code, old_http.json()["error"]["code"]) == (401, "AUTH_INVALID_TOKEN")

    assert client.account()["cash"] == "1000000.00"  # the client signed in with the new one
    assert server.http(new).get("/v1/account").status_code == 200


def test_an_http_rotation_returns_the_new_token(server: Server) -> None:
    old = server.new_user(fresh_name())
    reply = server.http(old).post("/v1/token/rotate")
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {"user_id", "name", "token"}
    assert server.http(body["token"]).get("/v1/account").status_code == 200
    assert server.http(old).get("/v1/account").status_code == 401


def test_only_the_admin_rotates_or_revokes_another_users_token(server: Server) -> None:
    victim_token = server.new_user(fresh_name("victim"))
    victim_id = server.client(victim_token).user["user_id"]
    intruder = server.http(server.new_user(fresh_name("intruder")))
    for reply in (
        intruder.post(f"/v1/admin/users/{victim_id}/token"),
        intruder.delete(f"/v1/admin/users/{victim_id}/token"),
    ):
        assert (reply.status_code, reply.json()["error"]["code"]) == (403, "AUTH_NOT_ADMIN")
    with pytest.raises(TradeError) as caught:
        server.client(server.new_user(fresh_name())).rotate_token(victim_id)
    assert caught.value.code == "AUTH_NOT_ADMIN"
    assert server.http(victim_token).get("/v1/account").status_code == 200


def test_a_revoked_token_ends_sessions_and_signs_nobody_in_until_rotated(
    server: Server,
) -> None:
    token = server.new_user(fresh_name("revoked"))
    client = server.client(token)
    user_id = client.user["user_id"]
    admin = server.http(server.admin_token)
    with server.http(token).stream("GET", "/v1/events") as stream:
        lines = stream.iter_lines()
        assert next(lines) == ": connected"
        reply = admin.delete(f"/v1/admin/users/{user_id}/token")
        assert reply.status_code == 200
        assert reply.json() == {"user_id": user_id, "name": client.user["name"]}
        rest = [line for line in lines if line]  # the stream ends after the last event
    assert rest == ["event: session.ended", 'data: {"reason":"token.revoked"}']
    ended = client.next_event(timeout=5)
    assert ended is not None and ended["event"] == "session.ended"

    with pytest.raises(TradeError) as caught:
        server.client().login(token)
    assert caught.value.code == "AUTH_INVALID_TOKEN"
    assert server.http(token).get("/v1/orders").status_code == 401

    again = admin.post(f"/v1/admin/users/{user_id}/token")
    assert again.status_code == 200
    assert server.http(again.json()["token"]).get("/v1/account").status_code == 200
    assert server.http(token).get("/v1/account").status_code == 401


def raw_request(server: Server, method: str, path: str, token: str) -> socket.socket:
    """A request sent on a socket of its own, not read yet: many go out back to back."""
    sock = socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
    sock.settimeout(10)
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
    sock.sendall(f"{head}Content-Length: 0\r\n\r\n".encode())
    return sock


def read_until(sock: socket.socket, wanted: bytes, limit_s: float = 10.0) -> bytes:
    """What the socket got until `wanted`, the end of the answer or `limit_s`."""
    got = b""
    deadline = time.monotonic() + limit_s
    while wanted not in got and time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        got += chunk
    return got


@pytest.mark.parametrize("change", ["rotate", "revoke"])
def test_event_streams_opened_as_the_token_changes_all_end(server: Server, change: str) -> None:
    """Issue 14, item 1: 20 streams with the old token, the rotation (or revocation), 20
    more, back to back: of the streams that opened (200), some never got session.ended,
    and the new token's events arrived on them. Every one must end."""
    token = server.new_user(fresh_name(change))
    user_id = server.client(token, events=False).user["user_id"]
    method = "POST" if change == "rotate" else "DELETE"
    change_path = f"/v1/admin/users/{user_id}/token"
    first = raw_request(server, "GET", "/v1/events", token)  # open before the change:
    first_got = read_until(first, b": connected")  # one at least
    assert first_got.startswith(b"HTTP/1.1 200"), first_got[:200]
    streams = [first] + [raw_request(server, "GET", "/v1/events", token) for _ in range(19)]
    changed = raw_request(server, method, change_path, server.admin_token)
    streams += [raw_request(server, "GET", "/v1/events", token) for _ in range(20)]
    answer = read_until(changed, b"}")
    changed.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    opened = 0
    for sock in streams:
        got = (first_got if sock is first else b"") + read_until(sock, b"event: session.ended")
        sock.close()
        status = got[:12]
        assert status in (b"HTTP/1.1 200", b"HTTP/1.1 401"), got[:200]
        if status == b"HTTP/1.1 200":
            opened += 1
            assert b"event: session.ended" in got, got[:400]
    assert opened >= 1
    if change == "rotate":
        new_token = json.loads(answer.split(b"\r\n\r\n", 1)[1])["token"]
        assert server.http(new_token).get("/v1/account").status_code == 200


def test_token_requests_for_no_such_user_or_the_admin_are_refused(server: Server) -> None:
    admin = server.http(server.admin_token)
    missing = admin.delete("/v1/admin/users/999999/token")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "REQUEST_NOT_FOUND")
    admin_id = server.client(server.admin_token).user["user_id"]
    itself = admin.delete(f"/v1/admin/users/{admin_id}/token")
    assert (itself.status_code, itself.json()["error"]["code"]) == (422, "REQUEST_INVALID")
    assert admin.get("/v1/admin/users").status_code == 200


# RATE LIMIT --------------------------------------------------------------------------

UNVERIFIED_RATE, UNVERIFIED_BURST = 5, 20  # per address, for tokens not accepted yet


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose allowance for unknown tokens a test can reach quickly."""
    limits = {"unverified_rate": UNVERIFIED_RATE, "unverified_burst": UNVERIFIED_BURST}
    with Server(tmp_path_factory.mktemp("guarded"), limits=limits) as srv:
        yield srv
        srv.assert_no_crash()


def test_logins_with_made_up_tokens_are_limited_per_address_not_per_token(
    guarded: Server,
) -> None:
    """Issue 14, item 4: 140,500 session.login with random tokens on one connection each
    got a fresh allowance (the limit was per token) and all reached the accountant; a
    signed-in user's requests waited seconds behind them. Now an address has one
    allowance for tokens not accepted yet; users already signed in do not feel it."""
    user = guarded.client(guarded.new_user(fresh_name("calm")), events=False)
    attacker = guarded.client(events=False)
    sent = 600
    started = time.monotonic()
    rids = [attacker.send("session.login", token=secrets.token_urlsafe(32)) for _ in range(sent)]
    answers = [attacker.recv(timeout=15) for _ in rids]
    elapsed = time.monotonic() - started
    codes = Counter(a["code"] for a in answers if a)
    assert sum(codes.values()) == sent and set(codes) <= {
        "AUTH_INVALID_TOKEN",
        "REQUEST_RATE_LIMITED",
    }, codes
    # the accountant saw the allowance, and what refilled meanwhile; the rest stopped here
    assert codes["AUTH_INVALID_TOKEN"] <= UNVERIFIED_BURST + UNVERIFIED_RATE * elapsed + 1
    assert codes["REQUEST_RATE_LIMITED"] >= sent - UNVERIFIED_BURST - UNVERIFIED_RATE * elapsed
    limited = next(a for a in answers if a and a["code"] == "REQUEST_RATE_LIMITED")
    assert 0 < limited["retry_after"] <= 1 / UNVERIFIED_RATE + 0.001
    assert all(user.account()["user_id"] for _ in range(20))  # signed in: unaffected

    http = httpx.Client(base_url=guarded.url, timeout=15)
    statuses = Counter(
        http.get("/v1/account", headers=guarded.auth(secrets.token_urlsafe(32))).status_code
        for _ in range(UNVERIFIED_BURST + 10)
    )
    assert statuses[429] >= 5 and set(statuses) <= {401, 429}, statuses
    refused = http.get("/v1/account", headers=guarded.auth(secrets.token_urlsafe(32)))
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "REQUEST_RATE_LIMITED"
    # a token already accepted is not counted: the calm user's works over HTTP too
    assert guarded.http(user.token).get("/v1/account").status_code == 200
    http.close()


def test_a_token_over_its_rate_is_refused_and_others_are_not(server: Server) -> None:
    token = server.new_user(fresh_name("busy"))
    client = server.client(token, events=False)
    sent = BURST + 150
    started = time.monotonic()
    rids = [client.send("account.get") for _ in range(sent)]
    replies = [client.recv(timeout=15) for _ in rids]
    elapsed = time.monotonic() - started
    outcomes = Counter(r["code"] if r["type"] == "error" else r["type"] for r in replies if r)
    assert sum(outcomes.values()) == sent, outcomes
    assert set(outcomes) == {"account", "REQUEST_RATE_LIMITED"}, outcomes
    # the burst, and what the rate refilled while they were sent (plus the login)
    assert BURST - 1 <= outcomes["account"] <= BURST + RATE * elapsed, (outcomes, elapsed)
    refused = next(r for r in replies if r and r["type"] == "error")
    assert 0 < refused["retry_after"] <= 1 / RATE + 0.001

    http = server.http(token)
    limited = next(r for _ in range(BURST) if (r := http.get("/v1/account")).status_code != 200)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "REQUEST_RATE_LIMITED"
    assert int(limited.headers["Retry-After"]) >= 1
    assert server.http(server.new_user(fresh_name())).get("/v1/account").status_code == 200
    time.sleep(3 / RATE)
    assert client.account()["user_id"] == client.user["user_id"]


# CONCURRENT ORDERS -------------------------------------------------------------------


def test_200_simultaneous_orders_for_a_tenth_of_the_cash_each_never_overdraw(
    server: Server,
) -> None:
    """Each order is 100,000 of value plus 100 commission: at most nine fit in 1,000,000."""
    token = server.new_user(fresh_name("eager"), "1000000")
    server.set_control("paused")
    try:
        order = {"symbol": "600000", "side": "buy", "qty": 10_000, "price": "10.00"}
        zmq_clients = [server.client(token, events=False) for _ in range(2)]
        start = threading.Barrier(2 + 20)
        outcomes: Counter[str] = Counter()
        lock = threading.Lock()

        def over_zmq(client: TradeClient) -> None:
            start.wait()
            for _ in range(50):
                client.send("order.new", **order)
            for _ in range(50):
                reply = client.recv(timeout=15)
                assert reply is not None
                with lock:
                    outcomes[reply.get("code") or reply["type"]] += 1

        def over_http(_: int) -> None:
            with httpx.Client(base_url=server.url, headers=server.auth(token)) as http:
                start.wait()
                for _ in range(5):
                    reply = http.post("/v1/orders", json=order, timeout=15)
                    with lock:
                        outcomes[reply.json().get("error", {}).get("code", "order.accepted")] += 1

        with ThreadPoolExecutor(22) as pool:
            done = [pool.submit(over_zmq, c) for c in zmq_clients]
            done += [pool.submit(over_http, n) for n in range(20)]
            for future in done:
                future.result()
        assert sum(outcomes.values()) == 200, outcomes
        assert outcomes == {"order.accepted": 9, "RISK_INSUFFICIENT_CASH": 191}, outcomes
        account = server.client(token).account()
        assert Decimal(account["cash"]) == Decimal("1000000.00")
        assert Decimal(account["reserved_cash"]) == 9 * Decimal("100100.00")
        assert Decimal(account["cash"]) - Decimal(account["reserved_cash"]) >= 0
    finally:
        server.set_control("running")
