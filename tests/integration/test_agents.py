"""The liquidity agents on the real server (docs/agents.md): with every symbol in exchange
mode they fill each book with bids and asks and trade with each other; a new user buys
from a market maker at market and sells deposited shares; a kill -9 of their process is
followed by a restart that reuses their users; and the ledger balances after it all."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from protocol.client import TradeClient
from tests.conftest import fresh_name
from tests.harness import Server

SYMBOLS = ("600000", "000001", "000725", "600519", "AAPL", "MSFT", "SPY")


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Every symbol in exchange mode, open around the clock, the agents on and quick."""
    with Server(
        tmp_path_factory.mktemp("agents"),
        fill_mode="wait",
        market={"mode": "exchange", "tick_interval": 0.1},
        control={"sessions": "always"},
        agents={"enabled": True, "noise_interval": 0.5, "momentum_interval": 0.5},
    ) as srv:
        yield srv
        restarts = {name: c["restarts"] for name, c in srv.status()["children"].items()}
        assert restarts.pop("agents") <= 1  # the kill's
        assert restarts == dict.fromkeys(("accountant", "matcher", "controller", "gateway"), 0)
        for name, text in srv.logs():
            assert "Traceback" not in text and "CRITICAL" not in text, f"{name}:\n{text[-4000:]}"
        srv.stop()
        assert srv.ledger_imbalances() == []  # cash + fees and shares add up across users


def test_every_exchange_book_has_bids_and_asks(market: Server) -> None:
    admin = market.client(market.admin_token)
    for symbol in SYMBOLS:
        book = until(lambda s=symbol: two_sided(admin, s), f"{symbol} has no two-sided book")
        assert Decimal(book["bids"][0][0]) < Decimal(book["asks"][0][0])


def test_the_agents_trade_with_each_other(market: Server) -> None:
    """Takers (noise and momentum traders) meet the market makers: no one else trades."""
    md = market.market(("md.",))
    traded: set[str] = set()
    deadline = time.monotonic() + 15
    while traded != set(SYMBOLS) and time.monotonic() < deadline:
        item = md.next(1.0)
        if item is not None and item[1]["type"] == "quote" and Decimal(str(item[1]["volume"])):
            traded.add(item[1]["symbol"])
    assert traded == set(SYMBOLS)
    takers = ("agent-noise-AAPL-1", "agent-noise-AAPL-2", "agent-momentum-AAPL-1")
    taken = until(lambda: [f for name in takers for f in agent(market, name).fills()], "none")
    assert {f["liquidity"] for f in taken} == {"taker"}
    makers = agent(market, "agent-mm-AAPL-1").fills() + agent(market, "agent-mm-AAPL-2").fills()
    assert makers and {f["liquidity"] for f in makers} == {"maker"}


def test_a_new_user_buys_at_market_from_a_market_maker(market: Server) -> None:
    client = market.client(market.new_user(fresh_name("buyer"), "1000000"))
    until(lambda: two_sided(client, "600000"), "no asks")
    order = client.place_order("600000", "buy", 100, order_type="market")
    fill = client.wait_for("order.filled", order["id"])["fill"]
    assert fill["liquidity"] == "taker"
    makers = [agent(market, f"agent-mm-600000-{i}").fills() for i in (1, 2)]
    assert any(  # the other side of the trade: a market maker's ask
        (f["side"], f["price"], f["liquidity"], f["time"])
        == ("sell", fill["price"], "maker", fill["time"])
        for fills in makers
        for f in fills
    ), (fill, makers)


def test_a_new_user_sells_deposited_shares(market: Server) -> None:
    client = market.client(market.new_user(fresh_name("seller"), "1000", {"AAPL": "500"}))
    until(lambda: two_sided(client, "AAPL"), "no bids")
    order = client.place_order("AAPL", "sell", 200, order_type="market")
    done = client.wait_for("order.filled", order["id"])
    assert Decimal(done["position_qty"]) == 300
    assert Decimal(client.account()["cash"]) > 1000


def test_killed_agents_come_back_with_the_same_users(market: Server) -> None:
    admin = market.client(market.admin_token)
    before = agent_users(admin)
    tokens = (market.data_dir / "agent_tokens.json").read_text()
    assert len(before) == 35 and json.loads(tokens).keys() == before.keys()
    assert (market.data_dir / "agent_tokens.json").stat().st_mode & 0o777 == 0o600
    takers = [agent(market, f"agent-noise-SPY-{i}") for i in (1, 2)]
    last_fill = max((f["id"] for t in takers for f in t.fills()), default=0)
    market.kill("agents")
    assert market.status()["children"]["agents"]["restarts"] == 1
    log = market.data_dir / "logs" / "agents.log"
    until(lambda: log.read_text().count("35 agents on") == 2, "the agents did not start again")
    # the new process trades: fills after the kill, on the same users
    until(lambda: any(f["id"] > last_fill for t in takers for f in t.fills()), "no new fills")
    for symbol in SYMBOLS:
        until(lambda s=symbol: two_sided(admin, s), f"{symbol} has no two-sided book")
    assert agent_users(admin) == before  # no new users
    assert (market.data_dir / "agent_tokens.json").read_text() == tokens


# HELPERS -------------------------------------------------------------------------------


def until(check: Any, failure: str, timeout: float = 15.0) -> Any:
    """The first true value of `check()`, polled until `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(failure)


def two_sided(client: TradeClient, symbol: str) -> dict[str, Any] | None:
    book = client.depth(symbol, 5)
    return book if book["bids"] and book["asks"] else None


def agent(srv: Server, name: str) -> TradeClient:
    """A connection signed in as one of the agents' users, with its kept token."""
    token = json.loads((srv.data_dir / "agent_tokens.json").read_text())[name]
    return srv.client(token, events=False)


def agent_users(admin: TradeClient) -> dict[str, int]:
    return {u["name"]: u["user_id"] for u in admin.users() if u["name"].startswith("agent-")}
