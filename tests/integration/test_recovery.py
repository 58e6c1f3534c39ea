"""Restarts: a clean stop and start, and each process killed, change nothing acknowledged."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protocol.client import TradeClient
from tests.harness import PROCESSES, Server

pytestmark = pytest.mark.crash


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("recovery"), fill_mode="instant") as srv:
        yield srv


def state(client: TradeClient) -> dict[str, Any]:
    """What must survive: account, positions, open orders (minus fields that move with prices)."""
    account = client.account()
    for moving in ("market_value", "equity", "unrealized_pnl", "total_return"):
        account.pop(moving)
    positions = [
        {k: v for k, v in p.items() if k in ("symbol", "qty", "available_qty", "cost_basis")}
        for p in client.positions()
    ]
    return {
        "account": account,
        "positions": positions,
        "open": client.orders(),
        "all": client.orders(status="all"),
        "fills": client.fills(),
        "history": client.history(limit=1000)["entries"],
    }


def trade_and_leave_orders_open(server: Server, client: TradeClient) -> list[int]:
    """Some filled orders, then open ones that rest while trading is paused."""
    bought = client.place_order("600000", "buy", 300, "8.50")
    client.wait_for("order.filled", bought["id"])
    server.set_control("paused")
    open_ids = [
        client.place_order("600000", "buy", 100, "8.00")["id"],
        client.place_order("600000", "sell", 100, "9.00")["id"],
        client.place_order("000001", "buy", 200, "11.00")["id"],
    ]
    return open_ids


def test_a_clean_restart_keeps_cash_positions_and_open_orders(own_server: Server) -> None:
    token = own_server.new_user("restart")
    client = own_server.client(token)
    open_ids = trade_and_leave_orders_open(own_server, client)
    before = state(client)
    assert sorted(o["id"] for o in before["open"]) == sorted(open_ids)

    own_server.restart()
    client = own_server.client(token)
    assert state(client) == before
    assert own_server.client(own_server.admin_token).control()["state"] == "paused"

    # the rebuilt books still fill the open orders once trading runs again
    own_server.set_control("running")
    for order_id in open_ids:
        client.wait_for("order.filled", order_id)
    assert client.orders() == []


@pytest.mark.parametrize("process", PROCESSES)
def test_killing_a_process_loses_nothing_acknowledged(own_server: Server, process: str) -> None:
    token = own_server.new_user(f"kill-{process}")
    client = own_server.client(token)
    open_ids = trade_and_leave_orders_open(own_server, client)
    before = state(client)

    own_server.kill(process)
    client = own_server.client(token)
    assert state(client) == before

    # the matcher's book is rebuilt from the ledger: a cancel and the fills still work
    canceled = client.cancel_order(open_ids[0])
    assert canceled["status"] == "canceled"
    own_server.set_control("running")
    for order_id in open_ids[1:]:
        assert _wait_filled(client, order_id)["status"] == "filled"
    account = client.account()
    assert account["reserved_cash"] == "0.00"


def _wait_filled(client: TradeClient, order_id: int, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        order = client.get_order(order_id)
        if order["status"] == "filled":
            return order
        time.sleep(0.05)
    return client.get_order(order_id)


def test_the_supervisor_stops_every_process_on_sigterm(tmp_path: Path) -> None:
    server = Server(tmp_path, fill_mode="instant").start()
    pids = [server.pid(p) for p in PROCESSES]
    assert server.stop() == 0
    for name in PROCESSES:
        log = (server.data_dir / "logs" / f"{name}.log").read_text()
        assert "stopped cleanly" in log
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_processes_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    server = Server(tmp_path, fill_mode="instant").start()
    pids = [server.pid(p) for p in PROCESSES]
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()
    server.proc = None
    deadline = time.monotonic() + 20
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in pids if _alive(pid)]
        time.sleep(0.1)
    assert alive == [], "processes outlived their supervisor"
    # and the data dir is free for a new server
    with Server(tmp_path, fill_mode="instant") as again:
        assert again.client(again.demo_token).account()["name"] == "demo"


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie (exited, not yet reaped by init)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone, or going while we read
        return False


def test_nothing_fills_while_the_run_state_is_unknown(own_server: Server) -> None:
    """A frozen controller sends no heartbeat: the matcher stops filling until it returns."""
    client = own_server.client(own_server.new_user("frozen"))
    own_server.set_control("running")
    pid = own_server.pid("controller")
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(3)  # heartbeats every 0.2 s in tests: the matcher gives up after 1.6 s
        order = client.place_order("600000", "buy", 100, "8.50")
        time.sleep(1)
        assert client.get_order(order["id"])["status"] == "new"
    finally:
        os.kill(pid, signal.SIGCONT)
    client.wait_for("order.filled", order["id"])


def test_the_state_digest_survives_a_restart_a_crash_and_reads_the_same_offline(
    own_server: Server,
) -> None:
    """`state.digest` is equal after the matcher and the accountant are killed and
    recovered, from `run.py digest` with no server, and after the clean restart.
    The books hold a replacement that kept its place ahead of older orders at its price."""
    server = own_server
    users = [server.client(server.new_user(f"digest{n}")) for n in range(2)]
    bought = users[0].place_order("600000", "buy", 300, "8.50")
    users[0].wait_for("order.filled", bought["id"])
    server.set_control("paused")
    try:
        first = users[0].place_order("600000", "buy", 300, "8.00")
        users[1].place_order("600000", "buy", 200, "8.00")
        users[0].replace_order(first["id"], qty=100)  # keeps its place: same price, less
        users[1].place_order(
            "600000", "buy", 100, "12.00", order_type="stop_limit", stop_price="11.00"
        )
        users[0].place_order("600000", "sell", 100, "9.50")
        admin = server.client(server.admin_token)
        before = admin.digest()
        assert before["books_match_orders"], before
        assert before["counts"]["open_orders"] >= 4

        for process in ("matcher", "accountant"):
            server.kill(process)
            after = server.client(server.admin_token).digest()
            assert after == before, (process, after["parts"], before["parts"])

        server.stop()
        offline = run_digest(server)
        server.start()
        restarted = server.client(server.admin_token).digest()
        for digest in (offline, restarted):
            assert (digest["digest"], digest["parts"]) == (before["digest"], before["parts"])
    finally:
        server.set_control("running")


def run_digest(server: Server) -> dict[str, Any]:
    import json
    import subprocess
    import sys

    from tests.harness import ROOT

    done = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "--config", str(server.config), "digest"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))
