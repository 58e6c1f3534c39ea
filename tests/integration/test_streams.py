"""Internal links lose nothing a receiver can still get: with a tiny high-water mark, a
process paused for 10 s (SIGSTOP) finds the gaps in what was sent to it meanwhile, gets
the missing frames sent again, and goes on as if nothing had happened (actors/runtime/streams.py).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from protocol.client import TradeClient
from tests.conftest import fresh_name
from tests.harness import Server

pytestmark = pytest.mark.crash

PAUSE = 10.0  # seconds a process stays stopped
SYMBOL = "600000"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Trades pushed in by the test; internal sockets queue 5 messages before a PUB drops
    and a PUSH to the gateway drops; each link keeps 100,000 frames to resend."""
    symbols = [{"symbol": SYMBOL, "name": "Test", "prev_close": "10.00"}]
    market = {"feed": "external", "symbols": symbols}
    limits = {"internal_hwm": 5, "internal_retain": 100_000, "rate_per_user": 0}
    folder = tmp_path_factory.mktemp("streams")
    with Server(folder, fill_mode="wait", market=market, limits=limits) as srv:
        yield srv
        srv.assert_no_crash()


@contextmanager
def paused(server: Server, process: str) -> Iterator[None]:
    pid = server.pid(process)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
        time.sleep(max(0.0, PAUSE - (time.monotonic() - started)))
    finally:
        os.kill(pid, signal.SIGCONT)


started = 0.0


def trades(price: str, count: int, volume: int = 100) -> list[dict[str, object]]:
    return [{"symbol": SYMBOL, "last": price, "volume": volume}] * count


def wait_until_published(client: TradeClient, last: str) -> None:
    deadline = time.monotonic() + 60
    while client.quote(SYMBOL)["last"] != last:
        assert time.monotonic() < deadline, "the controller did not take the trades"
        time.sleep(0.2)


def log_lines(server: Server, name: str, text: str, wait: float = 5.0) -> list[str]:
    """The lines of a process's log holding `text`, waiting up to `wait` seconds for
    one: processes write their logs out once a second."""
    deadline = time.monotonic() + wait
    while True:
        log = (server.data_dir / "logs" / f"{name}.log").read_text(errors="replace")
        found = [line for line in log.splitlines() if text in line]
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)


def test_a_paused_matcher_gets_the_trades_it_missed_sent_again(server: Server) -> None:
    """A buy at 9.00 rests; while the matcher is stopped, 40,000 trades at 10.00 go out
    with one at 8.90 among them. Far more than its queues hold: without resends the one
    trade that fills the order would be dropped."""
    global started
    client = server.client(server.new_user(fresh_name("patient")))
    server.push_quotes(*trades("10.00", 1))
    order = client.place_order(SYMBOL, "buy", 100, "9.00")
    started = time.monotonic()
    with paused(server, "matcher"):
        server.push_quotes(*trades("10.00", 20_000))
        server.push_quotes(*trades("8.90", 1, volume=1000))
        server.push_quotes(*trades("10.00", 20_000))
        server.push_quotes(*trades("10.01", 1))
        wait_until_published(client, "10.01")  # all of it went out while the matcher slept
    filled = client.wait_for("order.filled", order["id"], timeout=60)
    assert filled["fill"]["price"] == "8.90"
    assert log_lines(server, "matcher", "gap from controller"), "no gap: the test proves nothing"
    assert log_lines(server, "controller", "resending")
    assert not log_lines(server, "matcher", "lost", wait=0)


def test_a_paused_gateway_gets_every_event_it_missed(server: Server) -> None:
    """1000 resting buys fill on one trade while the gateway is stopped: the accountant's
    pushes to it overflow and are dropped, then sent again; the client sees every event,
    numbered without a gap."""
    global started
    client = server.client(server.new_user(fresh_name("eventful"), "100000000"))
    server.push_quotes(*trades("10.00", 1))
    count = 1000
    replies, events = [], []
    for chunk in range(0, count, 100):  # what a 5-message queue takes in a few resends
        for _ in range(100):
            client.send("order.new", symbol=SYMBOL, side="buy", qty=100, limit_price="9.50")
        while len(replies) < chunk + 100 and (message := client.recv(timeout=15)) is not None:
            (events if message["type"] == "event" else replies).append(message)
    errors = [r for r in replies if r["type"] != "order.accepted"]
    assert not errors, errors[:3]
    events += drain(client)
    started = time.monotonic()
    with paused(server, "gateway"):
        server.push_quotes(*trades("9.40", 1, volume=10_000_000))
    deadline = time.monotonic() + 60
    filled: set[int] = set()
    while len(filled) < count and time.monotonic() < deadline:
        event = client.next_event(timeout=5)
        if event is None:
            continue
        events.append(event)
        if event["event"] == "order.filled":
            filled.add(event["order"]["id"])
    assert len(filled) == count
    seqs = [e["seq"] for e in events if e.get("seq") is not None]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a gap in the events"
    assert "events.lost" not in {e["event"] for e in events}
    assert log_lines(server, "accountant", "not taking messages"), "no drop: proves nothing"
    assert log_lines(server, "accountant", "resending")


def drain(client: TradeClient) -> list[dict[str, Any]]:
    """The events already here (the acceptances): until a second passes without one,
    for ten seconds at most."""
    taken = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (event := client.next_event(timeout=1)) is not None:
        taken.append(event)
    return taken
