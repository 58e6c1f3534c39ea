"""A client that floods the server gets SYSTEM_BUSY for what was not done, not timeouts."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import pytest

from protocol import codec
from tests.harness import Server


@pytest.fixture(scope="module")
def short_timeout_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("overload")
    limits = {"request_timeout": 4.0, "rate_per_user": 0}  # load shedding, not rate limits
    with Server(folder, fill_mode="instant", limits=limits) as srv:
        yield srv
        srv.assert_no_crash()


def test_a_flood_is_shed_with_system_busy_and_every_accepted_order_is_real(
    short_timeout_server: Server,
) -> None:
    server = short_timeout_server
    client = server.client(server.new_user("flood", "10000000000"), events=False)
    sent = 12_000
    for _ in range(sent):
        client.send("order.new", symbol="600000", side="buy", qty=100, price="8.50")
    outcomes: Counter[str] = Counter()
    deadline = time.monotonic() + 120
    while sum(outcomes.values()) < sent and time.monotonic() < deadline:
        reply = client.recv(timeout=5)
        if reply is not None:
            outcomes[reply.get("code") or reply["type"]] += 1
    assert sum(outcomes.values()) == sent, outcomes
    assert outcomes["SYSTEM_BUSY"] > 0, outcomes
    assert set(outcomes) <= {"order.accepted", "SYSTEM_BUSY"}, outcomes

    accepted = outcomes["order.accepted"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        held = sum(Decimal(p["qty"]) for p in client.positions())
        if held == accepted * 100:
            break
        time.sleep(0.2)
    assert held == accepted * 100
    assert len(client.orders(status="open")) == 0


def test_one_flooding_connection_does_not_starve_http_clients(
    short_timeout_server: Server,
) -> None:
    server = short_timeout_server
    http = server.http(server.new_user("patient"))
    flooder = server.client()
    ping = codec.encode({"v": 1, "type": "ping", "rid": 1})
    for _ in range(40_000):
        flooder.send_raw(ping)
    started = time.monotonic()
    reply = http.get("/v1/account")
    waited = time.monotonic() - started
    assert reply.status_code == 200
    assert waited < 2.0, f"an HTTP request waited {waited:.1f}s behind 40,000 pings"
