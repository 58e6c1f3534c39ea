"""GET /v1/admin/health: each process reports to the gateway; the operator sees them all."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.harness import PROCESSES, Server

PROCESSES_IN_ORDER = ("controller", "matcher", "accountant", "gateway")


@pytest.fixture(scope="module")
def health_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("health")) as srv:
        yield srv


def _health(server: Server) -> dict[str, dict[str, Any]]:
    reply = server.http(server.admin_token).get("/v1/admin/health")
    assert reply.status_code == 200, reply.text
    return {p["process"]: p for p in reply.json()["processes"]}


def _until(server: Server, check: Callable[[dict[str, dict[str, Any]]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        health = _health(server)
        if check(health) or time.monotonic() > deadline:
            return health
        time.sleep(0.2)


def test_the_operator_sees_each_process_up_with_its_pid_links_and_queues(
    health_server: Server,
) -> None:
    server = health_server
    client = server.client(server.new_user("healthy"))
    client.place_order("600000", "buy", 100, "9.00")  # traffic on every link
    # reports come every second: wait for ones sent after the order went through
    health = _until(server, lambda h: all(p["up"] for p in h.values()) and _carried(h))
    assert sorted(health) == sorted(PROCESSES)
    for name in PROCESSES:
        report = health[name]
        assert report["up"], report
        assert report["pid"] == server.pid(name)
        assert report["restarts"] == 0
        assert report["started"].endswith("Z")
        assert all(isinstance(depth, int) for depth in report["inboxes"].values()), report
    assert _carried(health), health
    for name in PROCESSES:
        for link in health[name]["received"].values():
            assert link["lost"] == 0 and link["held"] == 0, health[name]


def _carried(health: dict[str, dict[str, Any]]) -> bool:
    """The order went gateway -> accountant -> matcher, and its fill came back."""
    received = {name: health[name].get("received", {}) for name in PROCESSES}
    return (
        health["gateway"]["sent"]["accountant"] > 0
        and received["accountant"].get("gateway/accountant", {}).get("seq", 0) > 0
        and received["matcher"].get("accountant/matcher", {}).get("seq", 0) > 0
        and received["accountant"].get("matcher/accountant", {}).get("seq", 0) > 0
    )


def test_a_trader_may_not_read_health(health_server: Server) -> None:
    server = health_server
    reply = server.http(server.new_user("curious")).get("/v1/admin/health")
    assert reply.status_code == 403
    assert reply.json()["error"]["code"] == "AUTH_NOT_ADMIN"


def test_a_killed_process_shows_restarted_with_a_new_pid(health_server: Server) -> None:
    server = health_server
    old_pid = server.pid("matcher")
    server.kill("matcher")
    health = _until(
        server,
        lambda h: h["matcher"]["up"] and h["matcher"]["pid"] != old_pid,
    )
    matcher = health["matcher"]
    assert matcher["up"] and matcher["pid"] == server.pid("matcher") != old_pid
    assert matcher["restarts"] == 1
    assert health["accountant"]["restarts"] == 0


def test_the_operator_gets_health_and_users_pushed_and_a_trader_does_not(
    health_server: Server,
) -> None:
    server = health_server
    refused = server.http(server.new_user("nosy")).get("/v1/admin/events")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "AUTH_NOT_ADMIN"
    events: dict[str, list[dict[str, Any]]] = {"health": [], "users": []}
    with server.http(server.admin_token).stream("GET", "/v1/admin/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            elif line.startswith("data: "):
                events[kind].append(json.loads(line[len("data: ") :]))
            if len(events["health"]) >= 2 and events["users"]:
                break
    for report in events["health"]:
        assert [p["process"] for p in report["processes"]] == list(PROCESSES_IN_ORDER)
    sent = [r["processes"][0]["sent"]["pub"] for r in events["health"][:2]]
    assert sent[1] > sent[0], "the controller's numbers move between two reports"
    names = {user["name"] for user in events["users"][0]["users"]}
    assert {"admin", "nosy"} <= names
