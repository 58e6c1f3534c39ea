"""Issue 14, item 2: connections that send half a request and wait (slowloris) took the
gateway down for everyone: 20,600 of them were never closed, the gateway ran out of file
descriptors, new HTTP and ZeroMQ clients both timed out, and gateway.log grew by 70 MB of
tracebacks in 22 s. Now a connection has `http_header_timeout` to send its headers, one
address may hold `http_max_per_address` connections and the server `http_max_connections`
(gateway/connections.py), ZeroMQ clients keep working, and the log stays small.
Loopback only, bounded in count and time."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect

from tests.harness import Server

pytestmark = pytest.mark.hostile

PER_ADDRESS, HEADER_TIMEOUT = 32, 1.5
HALF_REQUEST = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    limits = {
        "http_max_connections": 64,
        "http_max_per_address": PER_ADDRESS,
        "http_header_timeout": HEADER_TIMEOUT,
    }
    with Server(tmp_path_factory.mktemp("slowloris"), limits=limits) as srv:
        yield srv
        srv.assert_no_crash()


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def half_requests(server: Server, count: int, source: str = "127.0.0.1") -> list[socket.socket]:
    made = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port_of(server)))
        sock.sendall(HALF_REQUEST)
        made.append(sock)
    return made


def closed_by_server(sock: socket.socket, wait: float) -> bool:
    sock.settimeout(wait)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_half_sent_requests_are_capped_timed_out_and_do_not_stop_anyone(server: Server) -> None:
    token = server.new_user("patient")
    trader = server.client(token)
    log = server.data_dir / "logs" / "gateway.log"
    log_before = log.stat().st_size
    slow = half_requests(server, 3 * PER_ADDRESS)
    try:
        time.sleep(0.3)  # the gateway has taken them all
        opened = time.monotonic()
        dropped = [closed_by_server(sock, 0.05) for sock in slow]
        # past its per-address allowance, each was closed as soon as it was accepted
        assert dropped.count(True) >= 2 * PER_ADDRESS - 1, dropped.count(True)
        # meanwhile another address gets HTTP answers, and ZeroMQ clients trade
        other = httpx.Client(
            base_url=server.url, transport=httpx.HTTPTransport(local_address="127.0.0.2")
        )
        assert other.get("/v1/health").status_code == 200
        other.close()
        order = trader.place_order("600000", "buy", 100, "1.00")
        assert order["status"] in ("new", "accepted"), order
        assert server.client(token).account()["user_id"] == trader.user["user_id"]
        # the ones it kept are closed once their headers are late
        kept = [sock for sock, gone in zip(slow, dropped, strict=True) if not gone]
        assert kept and all(closed_by_server(sock, HEADER_TIMEOUT + 5) for sock in kept)
        assert time.monotonic() - opened >= HEADER_TIMEOUT - 0.5
    finally:
        for sock in slow:
            sock.close()
    # the address has its allowance back
    assert httpx.get(f"{server.url}/v1/health", timeout=15).status_code == 200
    # a refusal per connection, at most a few written, then counted
    grown = log.stat().st_size - log_before
    assert grown < 20_000, grown


def test_websockets_hold_their_address_slot_only_while_open(server: Server) -> None:
    """A websocket counts against its address's limit while it is open and gives its slot
    back when it closes: more websockets than the limit, opened and closed one after
    another, leave the address free; as many open at once as the limit fill it."""
    url = server.url.replace("http://", "ws://") + "/v2/iex"
    for _ in range(PER_ADDRESS + 8):
        with connect(url) as ws:
            assert json.loads(ws.recv(timeout=10))[0]["msg"] == "connected"
    assert httpx.get(server.url + "/v1/health", timeout=10).status_code == 200
    with contextlib.ExitStack() as held:
        for _ in range(PER_ADDRESS):
            held.enter_context(connect(url))
        with pytest.raises(httpx.TransportError):
            httpx.get(server.url + "/v1/health", timeout=5)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if httpx.get(server.url + "/v1/health", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        raise AssertionError("the address stayed full after its websockets closed")
