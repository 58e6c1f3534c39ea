"""Account resets over the real four processes, over HTTP and ZeroMQ (account.reset).

In instant mode an order still in the matcher's book fills at once when trading runs: the
orders a reset canceled while trading was paused must stay canceled when it resumes.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import httpx
import pytest

from protocol.client import TradeError
from tests.conftest import fresh_name
from tests.harness import Server
from tests.integration.test_cli import run_cli
from tests.integration.test_trading import wait_status


@contextmanager
def paused(server: Server) -> Iterator[None]:
    server.set_control("paused")
    try:
        yield
    finally:
        server.set_control("running")


def place(http: httpx.Client, side: str, qty: int, price: str) -> dict[str, Any]:
    reply = http.post(
        "/v1/orders", json={"symbol": "600000", "side": side, "qty": qty, "price": price}
    )
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def user_id(server: Server, token: str) -> int:
    return int(server.http(token).get("/v1/account").json()["user_id"])


def test_an_own_reset_over_http_cancels_orders_writes_off_shares_and_starts_over(
    server: Server,
) -> None:
    http = server.http(server.new_user(fresh_name("reset"), "100000"))
    bought = place(http, "buy", 200, "8.50")
    wait_status(http, bought["id"], "filled")  # 1700.00 + 5.00 commission
    with paused(server):
        resting_buy = place(http, "buy", 100, "8.40")
        resting_sell = place(http, "sell", 100, "9.00")
        reply = http.post("/v1/account/reset", json={"cash": "50000"})
        assert reply.status_code == 200, reply.text
        done = reply.json()
    reset = done["reset"]
    assert {k: reset[k] for k in reset if k != "time"} == {
        "user_id": done["account"]["user_id"],
        "epoch": 1,
        "capital": "50000.00",
        "previous_cash": "98295.00",
        "capital_change": "-48295.00",
        "canceled_orders": [resting_buy["id"], resting_sell["id"]],
        "written_off": [{"symbol": "600000", "qty": "200", "cost_basis": "1705.00"}],
    }
    account = http.get("/v1/account").json()
    assert account == done["account"]
    assert (account["epoch"], account["reset_at"]) == (1, reset["time"])
    assert {k: account[k] for k in ("cash", "initial_cash", "reserved_cash", "equity")} == {
        "cash": "50000.00",
        "initial_cash": "50000.00",
        "reserved_cash": "0.00",
        "equity": "50000.00",
    }
    assert (account["commission_paid"], account["realized_pnl"]) == ("0.00", "0.00")
    assert http.get("/v1/positions").json() == []

    time.sleep(1.0)  # trading runs again: an order left in a book would fill now
    orders = {o["id"]: o for o in http.get("/v1/orders", params={"status": "all"}).json()}
    assert [orders[i]["status"] for i in (resting_buy["id"], resting_sell["id"])] == [
        "canceled",
        "canceled",
    ]
    assert http.get("/v1/orders").json() == []
    fills = http.get("/v1/fills").json()
    assert [(f["order_id"], f["epoch"]) for f in fills] == [(bought["id"], 0)]  # still readable
    assert http.get("/v1/account").json()["cash"] == "50000.00"

    history = http.get("/v1/history").json()["entries"]
    assert [(e["kind"], e["order_id"]) for e in history] == [
        ("order.accepted", bought["id"]),
        ("order.filled", bought["id"]),
        ("order.accepted", resting_buy["id"]),
        ("order.accepted", resting_sell["id"]),
        ("order.canceled", resting_buy["id"]),
        ("order.canceled", resting_sell["id"]),
        ("account.reset", None),
    ]
    assert history[-1]["cash"] == "50000.00"
    assert "epoch 1" in history[-1]["detail"] and "200 600000" in history[-1]["detail"]
    assert "account.reset" in http.get("/v1/history.csv").text


def test_a_reset_over_zeromq_sends_its_event_and_the_statistics_start_again(
    server: Server,
) -> None:
    client = server.client(server.new_user(fresh_name("reset"), "20000"))
    buy = client.place_order("600000", "buy", 100, "8.50")
    client.wait_for("order.filled", buy["id"])
    sell = client.place_order("600000", "sell", 100, "9.50")
    client.wait_for("order.filled", sell["id"])
    time.sleep(1.2)  # an interval snapshot (every second here) before the reset
    before = client.stats()
    assert (before["fills"], before["sells"], before["win_rate"]) == (2, 1, "1.000000")
    assert D(before["total_return"]) > 0 and before["epoch"] == 0 and before["since"] is None

    done = client.reset_account()  # back to the initial cash, 20000.00
    event = client.wait_for("account.reset")
    assert event["reset"] == done["reset"]
    assert event["account"] == {
        "cash": "20000.00",
        "reserved_cash": "0.00",
        "available_cash": "20000.00",
    }
    [entry] = client.history(after_seq=event["seq"] - 1)["entries"]
    assert (entry["seq"], entry["kind"]) == (event["seq"], "account.reset")
    assert (done["reset"]["capital"], done["reset"]["written_off"]) == ("20000.00", [])
    assert D(done["reset"]["capital_change"]) < 0  # the profit was taken out

    stats = client.stats()
    assert (stats["fills"], stats["sells"], stats["win_rate"]) == (0, 0, None)
    assert (stats["commission_paid"], stats["realized_pnl"]) == ("0.00", "0.00")
    assert (stats["total_return"], stats["max_drawdown"]) == ("0.000000", "0.000000")
    assert (stats["epoch"], stats["since"], stats["initial_cash"]) == (
        1,
        event["reset"]["time"],
        "20000.00",
    )
    curve = stats["equity_curve"]
    assert curve[0]["time"] == event["reset"]["time"]  # the reset's snapshot starts it
    assert all(p["time"] >= event["reset"]["time"] and p["equity"] == "20000.00" for p in curve)

    again = client.place_order("600000", "buy", 100, "8.00")
    client.wait_for("order.filled", again["id"])
    stats = client.stats()
    assert (stats["fills"], stats["commission_paid"]) == (1, "5.00")
    assert [f["epoch"] for f in client.fills()] == [1, 0, 0]


def test_the_admin_resets_any_user_and_a_user_cannot_reset_another(server: Server) -> None:
    alice_token = server.new_user(fresh_name("alice"), "10000")
    bob_token = server.new_user(fresh_name("bob"), "10000")
    bob_id = user_id(server, bob_token)
    bob = server.http(bob_token)
    wait_status(bob, place(bob, "buy", 100, "8.50")["id"], "filled")
    bob_before = bob.get("/v1/account").json()

    alice = server.http(alice_token)
    refused = alice.post(f"/v1/admin/users/{bob_id}/reset", json={"cash": "1"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "AUTH_NOT_ADMIN")
    with pytest.raises(TradeError) as caught:
        server.client(alice_token).reset_account(user_id=bob_id)
    assert caught.value.code == "AUTH_NOT_ADMIN"
    assert bob.get("/v1/account").json()["epoch"] == 0
    assert bob.get("/v1/account").json()["cash"] == bob_before["cash"]
    assert len(bob.get("/v1/positions").json()) == 1

    admin = server.http(server.admin_token)
    reply = admin.post(f"/v1/admin/users/{bob_id}/reset", json={"cash": "2000.50"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["reset"]["user_id"] == bob_id
    assert reply.json()["account"]["name"] == bob_before["name"]  # bob's, not the admin's
    account = bob.get("/v1/account").json()
    assert (account["epoch"], account["cash"], account["initial_cash"]) == (1, "2000.50", "2000.50")
    assert bob.get("/v1/positions").json() == []
    assert admin.get("/v1/account").json()["epoch"] == 0

    # the default capital is the account's initial cash: that of its current epoch
    again = server.client(server.admin_token).reset_account(user_id=bob_id)
    assert (again["reset"]["epoch"], again["reset"]["capital"]) == (2, "2000.50")
    assert again["reset"]["capital_change"] == "0.00"

    missing = admin.post("/v1/admin/users/999999/reset")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "REQUEST_NOT_FOUND")


@pytest.mark.parametrize("cash", ["0", "-5", "0.001", "1e11", "lots"])
def test_a_reset_to_a_bad_capital_is_refused_and_changes_nothing(server: Server, cash: str) -> None:
    http = server.http(server.new_user(fresh_name("reset"), "10000"))
    reply = http.post("/v1/account/reset", json={"cash": cash})
    assert (reply.status_code, reply.json()["error"]["code"]) == (422, "REQUEST_INVALID_AMOUNT")
    account = http.get("/v1/account").json()
    assert (account["epoch"], account["cash"]) == (0, "10000.00")


def test_orders_working_when_a_reset_comes_fill_before_it_or_never(wait_server: Server) -> None:
    """Wait mode, orders through the market: the matcher may fill some before the cancels
    reach it; those fills belong to the old epoch, and nothing fills after the reset."""
    client = wait_server.client(wait_server.new_user(fresh_name("reset"), "1000000"))
    last = D(str(client.quote("600000")["last"]))
    placed = [
        client.place_order("600000", "buy", 5000, str((last * D("1.05")).quantize(D("0.01"))))
        for _ in range(5)
    ]
    done = client.reset_account("300000")
    reset_time = done["reset"]["time"]
    time.sleep(1.5)  # trades go on printing: an order still in the book would fill
    orders = {o["id"]: o for o in client.orders("all")}
    canceled = set(done["reset"]["canceled_orders"])
    for order in placed:  # canceled by the reset, or filled whole before it
        status = orders[order["id"]]["status"]
        assert status == ("canceled" if order["id"] in canceled else "filled")
        assert orders[order["id"]]["updated_at"] <= reset_time
    fills = client.fills()
    assert all(f["epoch"] == 0 and f["time"] <= reset_time for f in fills)
    account = client.account()
    assert (account["cash"], account["reserved_cash"], account["epoch"]) == ("300000.00", "0.00", 1)
    assert client.positions() == []
    written = sum((D(w["qty"]) for w in done["reset"]["written_off"]), D(0))
    assert written == sum((D(f["qty"]) for f in fills), D(0))


def test_a_reset_survives_kill_9_of_the_accountant_and_the_ledger_balances(
    tmp_path: Path,
) -> None:
    """An acknowledged reset is in the journal: the restarted accountant replays it to the
    same digest; and from the ledger's own entries, money and shares add up."""
    with Server(tmp_path / "server") as server:
        tokens = [server.new_user(fresh_name("bal"), "50000") for _ in range(2)]
        clients = [server.client(t) for t in tokens]
        for n, client in enumerate(clients):
            client.wait_for("order.filled", client.place_order("600000", "buy", 300, "8.50")["id"])
            sell = client.place_order("600000", "sell", 100, "9.10")
            client.wait_for("order.filled", sell["id"])
            server.set_control("paused")
            client.place_order("600000", "buy", 100, "8.00")  # rests: canceled by the reset
            client.reset_account(f"{40000 + n * 25000}.25")
            server.set_control("running")
            client.wait_for("order.filled", client.place_order("600000", "buy", 100, "8.20")["id"])
        admin = server.client(server.admin_token)
        admin.reset_account(user_id=clients[0].account()["user_id"])
        digest = admin.digest()
        accounts = [c.account() for c in clients]
        server.kill("accountant")
        admin = server.client(server.admin_token)
        assert admin.digest()["digest"] == digest["digest"]
        assert [server.client(t).account()["epoch"] for t in tokens] == [2, 1]
        assert [server.client(t).account()["cash"] for t in tokens] == [a["cash"] for a in accounts]
        server.stop()
        assert server.ledger_imbalances() == []


def test_user_reset_on_the_command_line_resets_by_name(server: Server) -> None:
    name = fresh_name("cli")
    token = server.new_user(name, "7000")
    client = server.client(token)
    client.wait_for("order.filled", client.place_order("600000", "buy", 100, "8.50")["id"])
    done = run_cli(server.config, "user", "reset", "--name", name, "--cash", "6500.5", "--json")
    assert done.returncode == 0, done.stderr
    reset = json.loads(done.stdout)
    assert (reset["name"], reset["epoch"], reset["capital"]) == (name, 1, "6500.50")
    assert reset["written_off"] == [{"symbol": "600000", "qty": "100", "cost_basis": "855.00"}]
    assert client.account()["cash"] == "6500.50"
    text = run_cli(server.config, "user", "reset", "--name", name)
    assert text.returncode == 0, text.stderr
    assert "epoch 2, cash 6500.50" in text.stdout
    missing = run_cli(server.config, "user", "reset", "--name", "nobody-at-all")
    assert missing.returncode == 1 and "no user named" in missing.stderr


def test_nothing_is_placed_replaced_or_reset_while_a_reset_waits_for_the_matcher(
    server: Server,
) -> None:
    """The matcher is stopped, so the reset's cancel cannot come back: it waits, and the
    user's new orders, replacements and resets are refused until it is done."""
    client = server.client(server.new_user(fresh_name("reset"), "10000"))
    with paused(server):
        resting = client.place_order("600000", "buy", 100, "8.00")
        matcher = server.pid("matcher")
        os.kill(matcher, signal.SIGSTOP)
        try:
            rid = client.send("account.reset", cash="9000")
            time.sleep(0.5)
            assert client.take_replies() == {}  # not before the matcher let the order go
            for refused in (
                lambda: client.place_order("600000", "buy", 100, "8.10"),
                lambda: client.replace_order(resting["id"], qty=200),
                lambda: client.reset_account(),
            ):
                with pytest.raises(TradeError) as caught:
                    refused()
                assert caught.value.code == "REQUEST_RESET_PENDING"
        finally:
            os.kill(matcher, signal.SIGCONT)
        deadline = time.monotonic() + 10
        replies: dict[Any, dict[str, Any]] = {}
        while rid not in replies and time.monotonic() < deadline:
            replies.update(client.take_replies())
            time.sleep(0.02)
    assert replies[rid]["type"] == "account.reset"
    assert replies[rid]["reset"]["canceled_orders"] == [resting["id"]]
    assert client.get_order(resting["id"])["status"] == "canceled"
    assert client.orders() == [] and client.account()["cash"] == "9000.00"
