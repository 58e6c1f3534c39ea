"""A user never sees or touches another user's orders, fills, account or events."""

from __future__ import annotations

import time

import pytest
import zmq

from protocol import codec
from protocol.client import TradeError
from tests.conftest import fresh_name
from tests.harness import Server

pytestmark = pytest.mark.isolation


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
        ("GET", "/v1/control"),
        ("GET", "/v1/events"),
        ("GET", "/v1/admin/users"),
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
