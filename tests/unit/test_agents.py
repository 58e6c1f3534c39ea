"""The liquidity agents' arithmetic (actors/agents): round lots and agent ticks from the
symbols reply, the market maker's ladder with its skew, limits, band and the book it must
not cross, how a requote turns open orders into the ladder, the noise trader's side and
the momentum signal; and that the same seed and inputs give the same orders."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal as D
from typing import Any

from actors.agents.base import Agent, MarketState, Resting
from actors.agents.link import Refused
from actors.agents.market_maker import MarketMaker, Quote, ladder, plan_requote
from actors.agents.momentum import NS, momentum_signal
from actors.agents.noise import NoiseTrader, pick_side
from actors.agents.pricing import SymbolInfo
from actors.agents.runner import Runner, connectable, traded_symbols
from actors.agents.users import AgentSpec, KeptFile, plan
from protocol.settings import AgentSettings, Settings

CN_A = {
    "symbol": "600000",
    "profile": "cn_a",
    "prev_close": "8.50",
    "tick_size": "0.01",
    "lot_size": 100,
    "qty_step": 1,
    "min_notional": "0",
    "limit_down": "7.65",
    "limit_up": "9.35",
}
US = {
    **CN_A,
    "symbol": "AAPL",
    "profile": "us_equity",
    "prev_close": "230.00",
    "lot_size": 1,
    "limit_down": None,
    "limit_up": None,
}
CRYPTO = {
    **US,
    "symbol": "BTC-USDT",
    "profile": "crypto",
    "prev_close": "43000.00",
    "lot_size": "0.00001",
    "qty_step": "0.00001",
    "min_notional": "10",
}
PARAMS = AgentSettings(levels=3, spread_ticks=1, level_ticks=1, skew_ticks=2, inventory_limit=10)


def info(row: dict[str, Any] = CN_A) -> SymbolInfo:
    return SymbolInfo.from_reply(row)


def prices(quotes: list[Quote], side: str) -> list[str]:
    return [str(q.price) for q in quotes if q.side == side]


# ROUND LOTS AND AGENT TICKS ------------------------------------------------------------


def test_a_round_lot_is_the_feeds_volume_unit_in_each_profile() -> None:
    assert info(CN_A).round_lot == 100
    assert info(US).round_lot == 100
    assert info(CRYPTO).round_lot == D("0.01")  # 0.01 x 43000 = 430, the first worth 100


def test_an_agent_tick_is_the_symbols_tick_or_tick_bp_of_the_price_when_more() -> None:
    assert info(CN_A).step(D("8.50"), D(10)) == D("0.01")  # 10 bp of 8.50 is under a tick
    assert info(US).step(D("230.00"), D(10)) == D("0.23")
    assert info(US).step(D("230.00"), D(0)) == D("0.01")


# THE LADDER ----------------------------------------------------------------------------


def test_a_flat_maker_quotes_levels_either_side_of_the_reference() -> None:
    quotes = ladder(info(), PARAMS, D("8.50"), D(0))
    assert prices(quotes, "buy") == ["8.49", "8.48", "8.47"]
    assert prices(quotes, "sell") == ["8.51", "8.52", "8.53"]


def test_a_long_maker_quotes_lower_and_a_short_one_higher() -> None:
    long = ladder(info(), PARAMS, D("8.50"), D(5))  # half the limit: 1 tick of skew
    assert prices(long, "buy") == ["8.48", "8.47", "8.46"]
    assert prices(long, "sell") == ["8.50", "8.51", "8.52"]
    short = ladder(info(), PARAMS, D("8.50"), D(-9))  # 0.9 of the limit: 2 ticks
    assert prices(short, "buy") == ["8.51", "8.50", "8.49"]
    assert prices(short, "sell") == ["8.53", "8.54", "8.55"]


def test_at_its_inventory_limit_a_maker_quotes_one_side_only() -> None:
    long = ladder(info(), PARAMS, D("8.50"), D(10))
    assert prices(long, "buy") == [] and prices(long, "sell") == ["8.49", "8.50", "8.51"]
    short = ladder(info(), PARAMS, D("8.50"), D(-12))
    assert prices(short, "sell") == [] and prices(short, "buy") == ["8.51", "8.50", "8.49"]


def test_quotes_outside_the_days_band_are_left_out() -> None:
    quotes = ladder(info(), PARAMS, D("9.34"), D(0))
    assert prices(quotes, "sell") == ["9.35"]  # the limit up
    assert prices(quotes, "buy") == ["9.33", "9.32", "9.31"]


def test_quotes_that_would_cross_the_book_are_left_out() -> None:
    quotes = ladder(info(), PARAMS, D("8.50"), D(0), best_bid=D("8.51"), best_ask=D("8.48"))
    assert prices(quotes, "buy") == ["8.47"]
    assert prices(quotes, "sell") == ["8.52", "8.53"]


def test_a_wide_price_quotes_in_agent_ticks_on_the_symbols_tick() -> None:
    quotes = ladder(info(US), AgentSettings(levels=2, tick_bp=D(10)), D("230.05"), D(0))
    assert prices(quotes, "buy") == ["229.82", "229.59"]
    assert prices(quotes, "sell") == ["230.28", "230.51"]


# REQUOTES ------------------------------------------------------------------------------


def quotes(side: str, *ps: str) -> list[Quote]:
    return [Quote(side, D(p)) for p in ps]


def test_a_requote_keeps_what_is_in_place_and_moves_the_rest_to_the_touch() -> None:
    open_orders = {
        1: Resting("buy", D("8.49"), D(100)),
        2: Resting("buy", D("8.48"), D(100)),
        3: Resting("buy", D("8.47"), D(100)),
        4: Resting("sell", D("8.51"), D(100)),
    }
    wanted = quotes("buy", "8.51", "8.50", "8.49") + quotes("sell", "8.53", "8.54", "8.55")
    plan = plan_requote(open_orders, wanted, levels=3)
    assert plan.replace == [
        (2, Quote("buy", D("8.51"))),
        (3, Quote("buy", D("8.50"))),
        (4, Quote("sell", D("8.53"))),
    ]
    assert plan.place == quotes("sell", "8.54", "8.55")
    assert plan.cancel == []


def test_a_side_with_nothing_wanted_is_canceled_and_a_thin_one_waits() -> None:
    open_orders = {
        1: Resting("buy", D("8.49"), D(100)),
        2: Resting("buy", D("8.48"), D(100)),
        3: Resting("sell", D("8.51"), D(100)),
        4: Resting("sell", D("8.52"), D(100)),
    }
    plan = plan_requote(open_orders, quotes("sell", "8.52"), levels=3)
    assert sorted(plan.cancel) == [1, 2]  # past the limit: no bids
    assert plan.replace == [] and plan.place == []  # 3 stays for the next requote
    crowded = {**open_orders, 5: Resting("sell", D("8.60"), D(100))}
    crowded[6] = Resting("sell", D("8.61"), D(100))
    assert plan_requote(crowded, quotes("sell", "8.52"), levels=3).cancel == [1, 2, 3]


# NOISE AND MOMENTUM --------------------------------------------------------------------


def test_a_noise_trader_leans_against_its_inventory() -> None:
    assert pick_side(0.49, D(0), 10) == "buy" and pick_side(0.5, D(0), 10) == "sell"
    assert pick_side(0.2, D(5), 10) == "buy" and pick_side(0.3, D(5), 10) == "sell"
    assert pick_side(0.0, D(10), 10) == "sell"  # at the limit long: sells only
    assert pick_side(0.999, D(-15), 10) == "buy"


def test_the_momentum_signal_follows_the_trades_of_the_lookback() -> None:
    now = 100 * NS
    trades = [(80 * NS, D("9.00")), (91 * NS, D("8.50")), (95 * NS, D("8.52"))]
    assert momentum_signal(trades, now, 10 * NS, D("0.02")) == 1  # 8.50 to 8.52
    assert momentum_signal(trades, now, 10 * NS, D("0.03")) == 0
    assert momentum_signal(trades, now, 30 * NS, D("0.03")) == -1  # 9.00 to 8.52
    assert momentum_signal(trades[-1:], now, 30 * NS, D("0.01")) == 0  # one trade: none


# DETERMINISM ---------------------------------------------------------------------------


class Recorder:
    """Stands in for a Link: answers each request as the server would, without a market,
    passes the orders in its replies to the agent, and keeps what was sent."""

    signed_in_again = False

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.orders: dict[int, dict[str, Any]] = {}

    async def request(self, type: str, **fields: Any) -> dict[str, Any]:
        self.sent.append((type, fields))
        reply: dict[str, Any] = {"type": "ok"}
        if type == "order.new":
            reply["order"] = self.rest(fields)
        elif type == "order.cancel":
            reply["order"] = {**self.orders.pop(fields["order_id"]), "status": "canceled"}
        elif type == "order.replace":
            old = self.orders.pop(fields["order_id"])
            reply["replaced"] = {**old, "status": "replaced"}
            reply["order"] = self.rest({**old, **fields})
        self.agent.on_message(reply)
        return reply

    def rest(self, fields: dict[str, Any]) -> dict[str, Any]:
        order_id = len(self.sent)
        order = {**fields, "id": order_id, "status": "new", "filled_qty": "0"}
        order.setdefault("limit_price", None)
        self.orders[order_id] = order
        return order


def orders_of(kind: type[MarketMaker | NoiseTrader], seed: int) -> list[Any]:
    """What an agent sends on the same inputs: a market that trades, a reference path."""
    agent = kind("agent-x-600000-1", info(), AgentSettings(seed=seed), Counter())
    link = Recorder(agent)
    agent.link = link  # type: ignore[assignment]
    agent.market = MarketState(trading=True, phase="continuous")

    async def drive() -> None:
        for n, price in enumerate(("8.50", "8.51", "8.55", "8.49", "8.60")):
            agent.on_reference(D(price), n)
            if isinstance(agent, NoiseTrader):
                agent.next_at = 0.0
            await agent.act()

    asyncio.run(drive())
    return link.sent


def test_the_same_seed_and_inputs_give_the_same_orders() -> None:
    assert orders_of(NoiseTrader, 1) == orders_of(NoiseTrader, 1)
    assert orders_of(NoiseTrader, 1) != orders_of(NoiseTrader, 2)
    assert orders_of(MarketMaker, 1) == orders_of(MarketMaker, 1)
    sent = orders_of(MarketMaker, 1)
    placed = [f for t, f in sent if t == "order.new"]
    assert len(placed) == 10 and all(f["post_only"] for f in placed)
    # 8.50 to 8.51 is within requote_ticks; to 8.55, 8.49 and 8.60 the ladder moves
    assert [t for t, _ in sent[10:]] == ["order.replace"] * 30


# USERS AND SETTINGS --------------------------------------------------------------------


def test_each_symbol_gets_its_makers_noise_and_momentum_traders_by_name() -> None:
    specs = plan(AgentSettings(market_makers=2, noise_traders=1), ["600000", "BTC/USD"])
    assert [s.name for s in specs] == [
        "agent-mm-600000-1",
        "agent-mm-600000-2",
        "agent-noise-600000-1",
        "agent-momentum-600000-1",
        "agent-mm-BTC_USD-1",
        "agent-mm-BTC_USD-2",
        "agent-noise-BTC_USD-1",
        "agent-momentum-BTC_USD-1",
    ]
    assert AgentSpec("mm", "AAPL", 3).name == "agent-mm-AAPL-3"


def test_tokens_are_kept_readable_by_their_owner_only(tmp_path: Any) -> None:
    tokens = KeptFile(tmp_path / "agent_tokens.json")
    tokens.save("agent-mm-AAPL-1", "secret")
    assert (tmp_path / "agent_tokens.json").stat().st_mode & 0o777 == 0o600
    assert KeptFile(tmp_path / "agent_tokens.json").entries == {"agent-mm-AAPL-1": "secret"}


def test_agents_trade_exchange_mode_symbols_only_and_only_when_enabled() -> None:
    exchange = Settings.model_validate(
        {"market": {"mode": "exchange"}, "profiles": {"cn_a": {"mode": "paper"}}}
    )
    assert traded_symbols(exchange) == ["AAPL", "MSFT", "SPY"]
    picked = exchange.model_copy(update={"agents": AgentSettings(symbols=("SPY", "600000"))})
    assert traded_symbols(picked) == ["SPY"]
    off = exchange.model_copy(update={"agents": AgentSettings(enabled=False)})
    assert traded_symbols(off) == [] and traded_symbols(Settings()) == []


def test_a_wildcard_endpoint_is_reached_on_loopback() -> None:
    assert connectable("tcp://*:5555") == "tcp://127.0.0.1:5555"
    assert connectable("tcp://0.0.0.0:5555") == "tcp://127.0.0.1:5555"
    assert connectable("tcp://10.0.0.5:5555") == "tcp://10.0.0.5:5555"


def test_an_agent_out_of_sellable_shares_gets_more_and_counts_its_inventory_from_them(
    tmp_path: Any,
) -> None:
    """Under T+1 what it bought today is locked: its sells are refused until a deposit."""
    settings = Settings.model_validate({"server": {"data_dir": str(tmp_path)}})
    runner = Runner(settings)
    agent = NoiseTrader("agent-noise-600000-1", info(), AgentSettings(shares=50), Counter())
    agent.position = D(5300)  # 3 lots bought since its deposit of 50
    assert agent.inventory == 3
    agent.refused(Refused("RISK_T_PLUS_ONE", "RISK_T_PLUS_ONE: ..."), "sell")
    assert agent.wants_shares and not agent.side_ok("sell")

    class Admin:
        def __init__(self) -> None:
            self.sent: list[tuple[str, dict[str, Any]]] = []

        async def request(self, type: str, **fields: Any) -> dict[str, Any]:
            self.sent.append((type, fields))
            return {"type": "account.deposited"}

    admin = Admin()
    runner.admin_link = admin  # type: ignore[assignment]
    agent.link = Recorder(agent)  # type: ignore[assignment]
    agent.link.user = {"user_id": 7}
    asyncio.run(runner.top_up(agent))
    assert admin.sent == [("account.deposit", {"user_id": 7, "symbol": "600000", "qty": "5000"})]
    # as many again as it had: 50 lots
    assert agent.deposited == 10000 and agent.side_ok("sell")
    assert KeptFile(tmp_path / "agent_deposits.json").entries == {agent.name: "10000"}
    agent.position += 5000  # the deposit's event
    assert agent.inventory == 3


def test_market_makers_quote_in_continuous_trading_leave_quotes_in_a_call_and_withdraw_after() -> (
    None
):
    maker = MarketMaker("agent-mm-600000-1", info(), AgentSettings(levels=2), Counter())
    link = Recorder(maker)
    maker.link = link  # type: ignore[assignment]
    maker.on_reference(D("8.50"), 1)

    def phase(name: str, trading: bool, cancels: bool = True) -> list[str]:
        link.sent.clear()
        maker.market = MarketState(trading=trading, phase=name, cancels=cancels)
        maker.on_reference(D("8.60"), 2)  # moved: a requote is due
        asyncio.run(maker.act())
        return [type for type, _ in link.sent]

    assert phase("continuous", True) == ["order.new"] * 4
    assert phase("closing_call", True, cancels=False) == []  # into the auction as they are
    assert phase("opening_call", False) == []
    assert phase("closed", False) == ["order.cancel"] * 4
