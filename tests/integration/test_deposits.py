"""Share deposits over the real four processes, over HTTP and ZeroMQ (account.deposit, and
user.create with positions): the shares are held at once at their value, returns stay 0,
they sell, refusals change nothing, and the ledger balances across a kill -9, a restart
and the command line with and without a server."""

from __future__ import annotations

import importlib.util
import json
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

CENT = D("0.01")


@contextmanager
def feed_stopped(server: Server) -> Iterator[None]:
    """No trades print while stopped: the prices the accountant knows stay as they are."""
    server.set_control("stopped")
    time.sleep(0.3)  # trades already on their way arrive
    try:
        yield
    finally:
        server.set_control("running")


def user_id(server: Server, token: str) -> int:
    return int(server.http(token).get("/v1/account").json()["user_id"])


def last_price(server: Server, symbol: str) -> D:
    return D(str(server.client(server.demo_token).quote(symbol)["last"]))


def test_a_user_created_with_shares_over_http_holds_them_at_their_value_with_no_return(
    server: Server,
) -> None:
    admin = server.http(server.admin_token)
    name = fresh_name("dep")
    with feed_stopped(server):
        prices = {s: last_price(server, s) for s in ("600000", "AAPL")}
        reply = admin.post(
            "/v1/admin/users",
            json={"name": name, "cash": "20000", "positions": {"600000": "5000", "AAPL": 10}},
        )
        assert reply.status_code == 201, reply.text
        created = reply.json()
        values = {"600000": prices["600000"] * 5000, "AAPL": prices["AAPL"] * 10}
        deposited = sum(values.values(), D(0))
        assert (created["name"], created["cash"]) == (name, "20000.00")
        assert created["deposited_value"] == str(deposited.quantize(CENT))
        assert [(p["symbol"], p["qty"], D(p["cost_basis"])) for p in created["positions"]] == [
            ("600000", "5000", values["600000"]),
            ("AAPL", "10", values["AAPL"]),
        ]
        http = server.http(created["token"])
        account = http.get("/v1/account").json()
        assert (account["cash"], account["available_cash"], account["initial_cash"]) == (
            "20000.00",
            "20000.00",
            "20000.00",
        )
        assert D(account["deposited_value"]) == deposited
        assert D(account["equity"]) == D(20000) + deposited
        assert (account["unrealized_pnl"], account["total_return"]) == ("0.00", "0.000000")
        positions = http.get("/v1/positions").json()
        assert positions == created["positions"]
        assert all(p["available_qty"] == p["qty"] for p in positions)
        stats = http.get("/v1/stats").json()
        assert (stats["deposited_value"], stats["total_return"]) == (
            account["deposited_value"],
            "0.000000",
        )
        assert stats["max_drawdown"] == "0.000000"
        assert all(p["return"] == "0.000000" for p in stats["equity_curve"])
    history = http.get("/v1/history").json()["entries"]
    assert [(e["seq"], e["kind"], e["symbol"], e["qty"]) for e in history] == [
        (1, "account.deposited", "600000", "5000"),
        (2, "account.deposited", "AAPL", "10"),
    ]
    assert history[0]["price"] == str(prices["600000"]) and history[0]["cash"] == "20000.00"
    assert "deposit of 5000 600000" in history[0]["detail"]
    listed = {u["name"]: u for u in admin.get("/v1/admin/users").json()}
    assert listed[name]["deposited_value"] == account["deposited_value"]


def test_a_deposit_over_zeromq_sends_its_event_and_the_shares_sell_at_once(
    wait_server: Server,
) -> None:
    """Wait mode: a sell at 0.01 fills on the synthetic feed's next print; the shares came
    in a moment before and were never bought."""
    token = wait_server.new_user(fresh_name("dep"), "1000")
    client = wait_server.client(token)
    admin = wait_server.client(wait_server.admin_token)
    done = admin.deposit(client.account()["user_id"], "000725", 2000)
    assert done["type"] == "account.deposited"
    assert (done["symbol"], done["qty"]) == ("000725", "2000")
    value = D(done["price"]) * 2000
    assert D(done["value"]) == value
    assert done["position"]["qty"] == done["position"]["available_qty"] == "2000"
    assert D(done["position"]["cost_basis"]) == value

    event = client.wait_for("account.deposited")
    assert event["deposit"] == {k: done[k] for k in event["deposit"]}
    assert set(event["deposit"]) == {"user_id", "symbol", "qty", "price", "value", "time"}
    assert event["position"]["qty"] == "2000"
    assert event["account"] == {
        "cash": "1000.00",
        "reserved_cash": "0.00",
        "available_cash": "1000.00",
    }
    [entry] = client.history(after_seq=event["seq"] - 1)["entries"]
    assert (entry["kind"], entry["symbol"], entry["qty"]) == ("account.deposited", "000725", "2000")

    sell = client.place_order("000725", "sell", 2000, "0.01")
    assert client.wait_for("order.filled", sell["id"])["position_qty"] == "0"
    fills = client.fills()  # wait mode: in parts, each at most a quarter of a print
    assert {f["order_id"] for f in fills} == {sell["id"]}
    sold = sum((D(f["value"]) for f in fills), D(0))
    fees = sum((D(f["commission"]) + D(f["tax"]) for f in fills), D(0))
    account = client.account()
    assert D(account["cash"]) == D(1000) + sold - fees
    assert D(account["realized_pnl"]) == sold - fees - value  # against the deposit's value
    assert account["deposited_value"] == done["value"]  # still the capital put in
    assert client.positions() == []
    # the epoch's identity holds without the deposit: cash + fees - sold = initial cash
    paid = D(account["commission_paid"]) + D(account["tax_paid"])
    assert paid == fees
    assert D(account["cash"]) + paid - sold == D(account["initial_cash"])


def test_bad_deposits_are_refused_with_their_codes_and_change_nothing(server: Server) -> None:
    token = server.new_user(fresh_name("dep"), "5000")
    target = user_id(server, token)
    admin_http = server.http(server.admin_token)
    admin = server.client(server.admin_token)
    before = admin.digest()["digest"]
    route = f"/v1/admin/users/{target}/deposit"
    refusals: list[tuple[str, dict[str, Any], int, str]] = [
        (route, {"symbol": "NOPE", "qty": 100}, 422, "REQUEST_UNKNOWN_SYMBOL"),
        (route, {"symbol": "600000", "qty": 0}, 422, "REQUEST_INVALID_QTY"),
        (route, {"symbol": "600000", "qty": "-100"}, 422, "REQUEST_INVALID_QTY"),
        (route, {"symbol": "600000", "qty": "100.5"}, 422, "REQUEST_INVALID_QTY"),
        (route, {"symbol": "AAPL", "qty": "0.5"}, 422, "REQUEST_INVALID_QTY"),
        (route, {"symbol": "600000", "qty": "100000001"}, 422, "REQUEST_INVALID_QTY"),
        (route, {"symbol": "600000", "qty": "lots"}, 422, "REQUEST_INVALID_QTY"),
        (route, {"symbol": "600000", "qty": True}, 422, "REQUEST_INVALID"),
        (route, {"symbol": "600000"}, 422, "REQUEST_INVALID"),
        (route, {"symbol": "600000", "qty": 1, "price": "1"}, 422, "REQUEST_INVALID"),
        (
            "/v1/admin/users/999999/deposit",
            {"symbol": "600000", "qty": 1},
            404,
            "REQUEST_NOT_FOUND",
        ),
    ]
    for path, body, status, code in refusals:
        reply = admin_http.post(path, json=body)
        assert (reply.status_code, reply.json()["error"]["code"]) == (status, code), (
            body,
            reply.text,
        )
    own = server.http(token).post(route, json={"symbol": "600000", "qty": 100})
    assert (own.status_code, own.json()["error"]["code"]) == (403, "AUTH_NOT_ADMIN")

    with pytest.raises(TradeError) as caught:  # the same over ZeroMQ
        admin.deposit(target, "600000", "0.5")
    assert caught.value.code == "REQUEST_INVALID_QTY"
    with pytest.raises(TradeError) as caught:
        server.client(token).deposit(target, "600000", 100)
    assert caught.value.code == "AUTH_NOT_ADMIN"
    with pytest.raises(TradeError) as caught:
        admin.deposit(999999, "600000", 100)
    assert caught.value.code == "REQUEST_NOT_FOUND"

    # a user.create with one bad position creates nothing at all
    name = fresh_name("dep")
    creates: list[tuple[dict[str, Any], int, str]] = [
        ({"600000": 100, "NOPE": 100}, 422, "REQUEST_UNKNOWN_SYMBOL"),
        ({"600000": 100, "AAPL": "1.5"}, 422, "REQUEST_INVALID_QTY"),
        ({"600000": "x"}, 422, "REQUEST_INVALID_QTY"),
        ({"600000": None}, 422, "REQUEST_INVALID"),
        ({f"S{n}": 1 for n in range(101)}, 422, "REQUEST_INVALID"),  # at most 100 symbols
    ]
    for positions, status, code in creates:
        body = {"name": name, "cash": "1000", "positions": positions}
        reply = admin_http.post("/v1/admin/users", json=body)
        assert (reply.status_code, reply.json()["error"]["code"]) == (status, code), reply.text
    with pytest.raises(TradeError) as caught:
        admin.create_user(name, "1000", {"600000": 100, "NOPE": 1})
    assert caught.value.code == "REQUEST_UNKNOWN_SYMBOL"
    assert name not in {u["name"] for u in admin.users()}
    assert admin.digest()["digest"] == before  # nothing was written
    assert server.http(token).get("/v1/positions").json() == []
    # and the name is still free
    assert admin.create_user(name, "1000", {"600000": 100})["positions"][0]["qty"] == "100"


def test_a_reset_writes_deposited_shares_off_and_does_not_bring_them_back(server: Server) -> None:
    admin = server.client(server.admin_token)
    created = admin.create_user(fresh_name("dep"), "8000", {"600000": 1000})
    http = server.http(created["token"])
    reply = http.post("/v1/account/reset", json={"cash": "9000"})
    assert reply.status_code == 200, reply.text
    reset = reply.json()
    [written] = reset["reset"]["written_off"]
    assert (written["symbol"], written["qty"]) == ("600000", "1000")
    assert written["cost_basis"] == created["positions"][0]["cost_basis"]
    account = reset["account"]
    assert (account["cash"], account["initial_cash"], account["deposited_value"]) == (
        "9000.00",
        "9000.00",
        "0.00",
    )
    assert (account["equity"], account["total_return"]) == ("9000.00", "0.000000")
    assert http.get("/v1/positions").json() == []
    again = admin.deposit(created["user_id"], "600000", 300)  # the admin deposits again
    assert http.get("/v1/account").json()["deposited_value"] == again["value"]


def test_user_create_with_shares_and_user_deposit_on_the_command_line(server: Server) -> None:
    name = fresh_name("cli")
    done = run_cli(
        server.config,
        *("user", "create", "--name", name, "--cash", "3000"),
        *("--shares", "600000=500", "--shares", "AAPL=2", "--json"),
    )
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    assert [(p["symbol"], p["qty"]) for p in created["positions"]] == [
        ("600000", "500"),
        ("AAPL", "2"),
    ]
    client = server.client(created["token"])
    assert client.account()["deposited_value"] == created["deposited_value"]

    deposit = run_cli(
        server.config, "user", "deposit", "--name", name, "--symbol", "600000", "--qty", "250"
    )
    assert deposit.returncode == 0, deposit.stderr
    assert "deposited 250 600000 at" in deposit.stdout and "now holds 750" in deposit.stdout
    held = {p["symbol"]: p["qty"] for p in client.positions()}
    assert held == {"600000": "750", "AAPL": "2"}

    refused = run_cli(
        server.config, "user", "deposit", "--name", name, "--symbol", "NOPE", "--qty", "1"
    )
    assert refused.returncode == 1 and "REQUEST_UNKNOWN_SYMBOL" in refused.stderr
    missing = run_cli(
        server.config,
        "user",
        "deposit",
        "--name",
        "nobody-at-all",
        "--symbol",
        "600000",
        "--qty",
        "1",
    )
    assert missing.returncode == 1 and "no user named" in missing.stderr
    bad = run_cli(
        server.config,
        "user",
        "create",
        "--name",
        fresh_name("cli"),
        "--cash",
        "1",
        "--shares",
        "600000",
    )
    assert bad.returncode == 2 and "SYMBOL=QTY" in bad.stderr


def test_deposits_survive_kill_9_and_a_restart_and_the_ledger_balances(tmp_path: Path) -> None:
    """T+1 on: deposited shares sell the same day, shares bought today do not. An
    acknowledged deposit is in the journal: the restarted accountant replays it to the
    same digest; and from the ledger's own entries, money and shares add up, also after
    deposits and a user created with shares by the command line with no server running."""
    profiles = {"cn_a": {"t_plus_one": True}}
    with Server(tmp_path / "server", profiles=profiles) as server:
        admin = server.client(server.admin_token)
        created = admin.create_user(fresh_name("bal"), "50000", {"600000": 2000, "AAPL": 5})
        client = server.client(created["token"])
        uid = created["user_id"]
        buy = client.place_order("600000", "buy", 300, "8.50")
        client.wait_for("order.filled", buy["id"])
        with pytest.raises(TradeError) as caught:  # 2300 held, the 300 bought today locked
            client.place_order("600000", "sell", 2300, "8.00")
        assert caught.value.code == "RISK_T_PLUS_ONE"
        sell = client.place_order("600000", "sell", 1500, "8.00")
        client.wait_for("order.filled", sell["id"])
        admin.deposit(uid, "000725", 1000)
        other = server.client(server.new_user(fresh_name("bal"), "10000"))
        admin.deposit(other.account()["user_id"], "000725", 300)
        other.reset_account("12000")  # its deposit is written off
        admin.deposit(other.account()["user_id"], "600000", 100)
        digest = admin.digest()
        account, positions = client.account(), client.positions()
        assert {p["symbol"]: p["qty"] for p in positions} == {
            "000725": "1000",
            "600000": "800",
            "AAPL": "5",
        }

        server.kill("accountant")
        admin = server.client(server.admin_token)
        assert admin.digest()["digest"] == digest["digest"]
        client = server.client(created["token"])
        assert client.account()["deposited_value"] == account["deposited_value"]
        assert client.positions()[0]["qty"] == "1000"

        server.restart()
        admin = server.client(server.admin_token)
        assert admin.digest()["digest"] == digest["digest"]
        server.stop()
        assert server.ledger_imbalances() == []

        # no server running: the command line writes into the ledger itself
        name = fresh_name("off")
        offline = run_cli(
            server.config,
            *(
                "user",
                "create",
                "--name",
                name,
                "--cash",
                "700",
                "--shares",
                "600000=100",
                "--json",
            ),
        )
        assert offline.returncode == 0, offline.stderr
        made = json.loads(offline.stdout)
        assert made["deposited_value"] == "850.00"  # at the symbol table's previous close, 8.50
        more = run_cli(
            server.config,
            *("user", "deposit", "--name", name, "--symbol", "AAPL", "--qty", "3", "--json"),
        )
        assert more.returncode == 0, more.stderr
        assert json.loads(more.stdout)["value"] == "690.00"  # 3 x 230.00
        assert server.ledger_imbalances() == []

        server.start()
        late = server.client(made["token"])
        account = late.account()
        assert (account["cash"], account["deposited_value"]) == ("700.00", "1540.00")
        held = {p["symbol"]: p["qty"] for p in late.positions()}
        assert held == {"600000": "100", "AAPL": "3"}
        assert [e["kind"] for e in late.history()["entries"]] == ["account.deposited"] * 2
        httpx.get(server.url + "/v1/health", timeout=5).raise_for_status()


@pytest.mark.skipif(
    importlib.util.find_spec("actors.matcher.exchange") is None,
    reason="needs the matcher's exchange mode (issue 16), merged beside this branch",
)
def test_in_exchange_mode_a_user_created_with_shares_sells_them_to_another_user(
    tmp_path: Path,
) -> None:
    """What deposits are for: in exchange mode nobody could sell before somebody bought.
    The seller's resting order is the maker of the buyer's; the ledger balances."""
    with Server(tmp_path / "server", fill_mode="wait", market={"mode": "exchange"}) as server:
        admin = server.client(server.admin_token)
        seller_made = admin.create_user(fresh_name("sell"), "1000", {"600000": 1000})
        cost = D(seller_made["positions"][0]["cost_basis"])
        seller = server.client(seller_made["token"])
        buyer = server.client(server.new_user(fresh_name("buy"), "100000"))
        ask = seller.place_order("600000", "sell", 600, "8.50")
        assert ask["status"] == "new"  # nobody bids yet: it rests in the book
        bid = buyer.place_order("600000", "buy", 600, "8.50")
        bought = buyer.wait_for("order.filled", bid["id"])["fill"]
        sold = seller.wait_for("order.filled", ask["id"])["fill"]
        assert (bought["price"], sold["price"], bought["qty"], sold["qty"]) == (
            "8.50",
            "8.50",
            "600",
            "600",
        )
        assert (bought["liquidity"], sold["liquidity"]) == ("taker", "maker")
        [held] = seller.positions()
        assert (held["qty"], D(held["cost_basis"])) == ("400", cost * 400 / 1000)
        fees = D(sold["commission"]) + D(sold["tax"])
        account = seller.account()
        assert D(account["realized_pnl"]) == D(sold["value"]) - fees - cost * 600 / 1000
        assert D(account["cash"]) == D(1000) + D(sold["value"]) - fees
        assert [p["qty"] for p in buyer.positions()] == ["600"]
        server.stop()
        assert server.ledger_imbalances() == []
