"""The public market-data stream over HTTP (GET /v1/market/events): a token or console
cookie is needed, unknown symbols are refused with their code, quotes of the named
symbols arrive with the control state and its changes, and nothing private is on it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import fresh_name
from tests.harness import Server

pytestmark = pytest.mark.isolation

PATH = "/v1/market/events"
Event = tuple[str, dict[str, Any]]


def events(lines: Iterator[str]) -> Iterator[Event]:
    """(event name, data) of each SSE event; comments are skipped."""
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, json.loads(line.removeprefix("data: "))
        elif line and not line.startswith(":"):
            raise AssertionError(f"not an SSE line: {line!r}")


def read_until(stream: Iterator[Event], done: Any, seconds: float = 30.0) -> list[Event]:
    """Events until `done(event)` is true for one (included in the list)."""
    seen: list[Event] = []
    deadline = time.monotonic() + seconds
    for event in stream:
        seen.append(event)
        if done(event):
            return seen
        assert time.monotonic() < deadline, f"not seen in {seconds} s: {seen[-5:]}"
    raise AssertionError(f"the stream ended: {seen[-5:]}")


def test_the_stream_needs_a_valid_token(server: Server) -> None:
    missing = httpx.get(server.url + PATH, timeout=15)
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "AUTH_MISSING_TOKEN")
    wrong = httpx.get(server.url + PATH, headers=server.auth("not-a-token"), timeout=15)
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "AUTH_INVALID_TOKEN")


def test_unknown_or_malformed_symbols_are_refused_with_their_codes(server: Server) -> None:
    http = server.http(server.new_user(fresh_name("md")))
    unknown = http.get(PATH, params={"symbols": "600000,NOPE"})
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "REQUEST_UNKNOWN_SYMBOL"
    assert "'NOPE'" in unknown.json()["error"]["message"]
    for bad in ("", "600000,,000001", ","):
        reply = http.get(PATH, params={"symbols": bad})
        assert (reply.status_code, reply.json()["error"]["code"]) == (422, "REQUEST_INVALID")


def test_quotes_of_the_named_symbol_arrive_and_a_fill_of_ones_own_is_not_on_it(
    server: Server,
) -> None:
    """Instant mode: a buy at the market price fills at once, and its private events go to
    the user's own stream only."""
    token = server.new_user(fresh_name("md"))
    http = server.http(token)
    with http.stream("GET", PATH, params={"symbols": "600000"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines) == ": connected"
        stream = events(lines)
        first = read_until(stream, lambda e: e[0] == "quote")
        assert first[0][0] == "control" and first[0][1]["state"] == "running"
        last = first[-1][1]
        assert last["symbol"] == "600000" and last["v"] == 1 and last["type"] == "quote"
        price = str(last["last"])
        placed = http.post("/v1/orders", json={"symbol": "600000", "side": "buy", "qty": 100,
                                               "type": "limit", "limit_price": price})  # fmt: skip
        assert placed.status_code == 200, placed.text
        order_id = placed.json()["id"]
        deadline = time.monotonic() + 30
        while http.get(f"/v1/orders/{order_id}").json()["status"] != "filled":
            assert time.monotonic() < deadline, "the order did not fill"
            time.sleep(0.2)
        seen = read_until(stream, lambda e: e[0] == "quote" and e[1]["seq"] > last["seq"] + 20)
    names = {name for name, _ in first + seen}
    assert names <= {"control", "quote"}, names
    assert {data["symbol"] for name, data in first + seen if name == "quote"} == {"600000"}
    text = json.dumps([data for _, data in first + seen])
    # no private key or event name: "order", "order.filled", "fill", "user_id" (the
    # control state's public "fill_mode" is not one)
    assert '"order' not in text and '"fill"' not in text and '"user' not in text, text


def test_a_console_cookie_opens_it_and_a_pause_shows_on_it(server: Server) -> None:
    token = server.new_user(fresh_name("mdcookie"))
    with httpx.Client(base_url=server.url, timeout=15) as browser:
        assert browser.post("/v1/session", json={"token": token}).status_code == 200
        with browser.stream("GET", PATH) as response:  # every symbol
            assert response.status_code == 200
            stream = events(response.iter_lines())
            read_until(stream, lambda e: e[0] == "quote")
            try:
                server.set_control("paused")
                paused = read_until(stream, lambda e: e[0] == "control")[-1][1]
                assert (paused["state"], paused["trading"]) == ("paused", False)
            finally:
                server.set_control("running")
            running = read_until(stream, lambda e: e[0] == "control")[-1][1]
            assert running["state"] == "running"


def test_a_revoked_token_ends_its_market_stream(server: Server) -> None:
    token = server.new_user(fresh_name("mdrevoked"))
    user_id = server.client(token).user["user_id"]
    with server.http(token).stream("GET", PATH, params={"symbols": "000001"}) as response:
        lines = response.iter_lines()
        read_until(events(lines), lambda e: e[0] == "quote")
        revoked = server.http(server.admin_token).delete(f"/v1/admin/users/{user_id}/token")
        assert revoked.status_code == 200
        ended = read_until(events(lines), lambda e: e[0] == "session.ended")
    assert ended[-1] == ("session.ended", {"reason": "token.revoked"})
