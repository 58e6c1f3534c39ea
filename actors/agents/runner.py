"""The agents process: signs in as the admin, makes sure every agent has its user, signs
each agent in on a connection of its own, feeds them the public market data (control
state, reference prices, trades) from one SUB socket, and runs them until SIGTERM, when
it cancels their quotes. A client of the public API only: nothing in the server depends
on it, and it waits for the server as any bot would.

Lock-step replays do not run in exchange mode yet (Settings refuse it). When they do,
this is where the agents become lock-step bots: join the replay with steps
(`replay.join`, protocol.md 3.19), let each agent act on a step's bars instead of on
`ref.<symbol>` and the timers, and answer `replay.done` once their orders are sent, so
that an exchange-mode backtest is deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import zmq
import zmq.asyncio

from actors.accountant.offline import ADMIN_TOKEN_FILE
from actors.agents.base import Agent
from actors.agents.link import Link, Message, Refused
from actors.agents.market_maker import MarketMaker
from actors.agents.momentum import MomentumTrader
from actors.agents.noise import NoiseTrader
from actors.agents.pricing import SymbolInfo, wire
from actors.agents.users import (
    DEPOSITS_FILE,
    TOKENS_FILE,
    AgentSpec,
    KeptFile,
    plan,
    provision,
    renew,
)
from actors.runtime import process
from protocol import codec, topics
from protocol.settings import Settings

log = logging.getLogger("agents")
KINDS: dict[str, type[Agent]] = {
    "mm": MarketMaker,
    "noise": NoiseTrader,
    "momentum": MomentumTrader,
}
REPORT_EVERY = 60.0  # s between two lines of what the agents did
RETRY = 0.5  # s between two tries to reach a server that is not up yet
STOP_GRACE = 3.0  # s to cancel the quotes in when stopping


def traded_symbols(settings: Settings) -> list[str]:
    """The symbols the agents trade: `[agents] symbols` (default every exchange-mode
    symbol), less any that is not in exchange mode; empty when they are off."""
    exchange = settings.exchange_symbols()
    if not settings.agents.enabled:
        return []
    wanted = list(settings.agents.symbols) or exchange
    return [s for s in wanted if s in exchange]


def connectable(endpoint: str) -> str:
    """A bound endpoint as a client reaches it: a wildcard host becomes loopback."""
    for wildcard, loopback in (("*", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("[::]", "[::1]")):
        if endpoint.startswith(f"tcp://{wildcard}:"):
            return endpoint.replace(wildcard, loopback, 1)
    return endpoint


class Runner:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.params = settings.agents
        self.api = connectable(settings.endpoints.client_api)
        self.pub = connectable(settings.endpoints.client_pub)
        self.timeout = settings.limits.request_timeout + 1.0
        self.tally: Counter[str] = Counter()
        self.agents: list[Agent] = []
        self.by_symbol: dict[str, list[Agent]] = {}
        self.trading_days: dict[str, str] = {}
        self.deposits = KeptFile(settings.data_dir / DEPOSITS_FILE)
        self.admin_link: Link | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: start the agents, feed them, report; then cancel quotes."""
        ctx = zmq.asyncio.Context()
        admin: Link | None = None
        try:
            admin = self.admin_link = await self.admin(ctx, stop)
            if admin is None:
                return
            while not await self.start(ctx, admin):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RETRY)
                if stop.is_set():
                    return
            tasks = [asyncio.create_task(a.run(), name=a.name) for a in self.agents]
            tasks += [
                asyncio.create_task(self.feed(ctx, admin)),
                asyncio.create_task(self.report()),
            ]
            waiting = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([*tasks, waiting], return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
            for task in done:
                if task is not waiting:
                    task.result()  # a bug in an agent: raise, and the supervisor restarts us
            await self.withdraw()
        finally:
            self.log_tally("at stop")
            for agent in self.agents:
                if agent.link is not None:
                    agent.link.close()
            if admin is not None:
                admin.close()
            ctx.destroy(linger=0)

    # START -----------------------------------------------------------------------------

    async def admin(self, ctx: zmq.asyncio.Context, stop: asyncio.Event) -> Link | None:
        """A connection signed in as the admin, once the supervisor has written its token
        and the server answers; None if stopped first."""
        path = self.settings.data_dir / ADMIN_TOKEN_FILE
        link: Link | None = None
        while not stop.is_set():
            token = _read(path)
            if token:
                if link is None or link.token != token:
                    if link is not None:
                        link.close()
                    link = Link(ctx, self.api, token, 2.0, events=False)
                try:
                    await link.login()
                    link.timeout = self.timeout
                    return link
                except (Refused, TimeoutError) as exc:
                    log.info("waiting for the server: %r", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RETRY)
        if link is not None:
            link.close()
        return None

    async def start(self, ctx: zmq.asyncio.Context, admin: Link) -> bool:
        """Users made or found, each agent signed in and its account read; False (and
        nothing kept) when the server refused or did not answer, to try again."""
        symbols = traded_symbols(self.settings)
        ignored = set(self.params.symbols) - set(symbols)
        if ignored:
            log.warning("[agents] symbols not in exchange mode, left alone: %s", sorted(ignored))
        agents: list[Agent] = []
        try:
            infos = await self.symbol_infos(admin)
            booked = [s for s in symbols if s in infos and infos[s].mode != "paper"]
            specs = plan(self.params, booked)
            tokens = KeptFile(self.settings.data_dir / TOKENS_FILE)
            await provision(admin, specs, infos, self.params, tokens, self.deposits)
            control = await admin.request("control.get")
            for spec in specs:
                deposited = Decimal(self.deposits.entries[spec.name])
                agent = KINDS[spec.kind](
                    spec.name, infos[spec.symbol], self.params, self.tally, deposited
                )
                agent.top_up = self.top_up
                agents.append(agent)
                await self.connect(ctx, admin, agent, spec, tokens)
                agent.on_control(control)
        except (Refused, TimeoutError) as exc:
            log.warning("agents not started, trying again: %r", exc)
            for agent in agents:
                if agent.link is not None:
                    agent.link.close()
            return False
        self.agents = agents
        for agent in agents:
            self.by_symbol.setdefault(agent.symbol, []).append(agent)
        self.note_days(control)
        log.info(
            "%d agents on %s: %s",
            len(agents),
            ", ".join(self.by_symbol),
            ", ".join(f"{n} {k}" for k, n in Counter(a.kind for a in agents).items()),
        )
        return True

    async def connect(
        self,
        ctx: zmq.asyncio.Context,
        admin: Link,
        agent: Agent,
        spec: AgentSpec,
        tokens: KeptFile,
    ) -> None:
        """Sign the agent in on a connection of its own, with a new token if its kept one
        no longer works (rotated or revoked by the admin)."""
        link = Link(ctx, self.api, tokens.entries[spec.name], self.timeout, agent.on_message)
        try:
            await agent.connect(link)
        except Refused as refused:
            if refused.code != "AUTH_INVALID_TOKEN":
                raise
            link.token = await renew(admin, spec.name, await self.user_id(admin, spec), tokens)
            await agent.connect(link)

    async def top_up(self, agent: Agent) -> None:
        """Deposit into an agent that may sell no more as many shares again as it has had
        deposited: under T+1 what it bought today is locked, so every sell uses up its
        deposit, and doubling it each time it runs out soon covers a day's sells with few
        deposits. Its inventory is counted from the new total, kept before asking (a crash
        between the two leaves it counted from one deposit too many, not too few)."""
        qty = agent.deposited if agent.params.shares else Decimal(0)
        if not qty or self.admin_link is None or agent.link is None:
            return
        before = agent.deposited
        agent.deposited = before + qty
        self.deposits.save(agent.name, wire(agent.deposited))
        try:
            await self.admin_link.request(
                "account.deposit",
                user_id=agent.link.user["user_id"],
                symbol=agent.symbol,
                qty=wire(qty),
            )
        except Refused as refused:
            agent.deposited = before
            self.deposits.save(agent.name, wire(before))
            log.warning("%s: no more shares deposited: %s", agent.name, refused.message)
            return
        except TimeoutError:
            log.warning("%s: a deposit of %s %s got no answer", agent.name, wire(qty), agent.symbol)
            return
        self.tally["account.deposit"] += 1
        agent.side_backoff["sell"] = 0.0
        log.info("%s: deposited %s %s more (T+1)", agent.name, wire(qty), agent.symbol)

    async def symbol_infos(self, admin: Link) -> dict[str, SymbolInfo]:
        rows = (await admin.request("symbols.list"))["symbols"]
        return {row["symbol"]: SymbolInfo.from_reply(row) for row in rows}

    async def user_id(self, admin: Link, spec: AgentSpec) -> int:
        users = (await admin.request("user.list"))["users"]
        return int(next(u["user_id"] for u in users if u["name"] == spec.name))

    # MARKET DATA -----------------------------------------------------------------------

    async def feed(self, ctx: zmq.asyncio.Context, admin: Link) -> None:
        """The public topics, to the agents of each symbol; topics compared exactly."""
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, topics.CONTROL.encode())
        for symbol in self.by_symbol:
            sub.setsockopt(zmq.SUBSCRIBE, topics.reference(symbol).encode())
            sub.setsockopt(zmq.SUBSCRIBE, topics.market(symbol).encode())
        sub.connect(self.pub)
        references = {topics.reference(s): s for s in self.by_symbol}
        markets = {topics.market(s): s for s in self.by_symbol}
        try:
            while True:
                topic_frame, payload = await sub.recv_multipart()
                topic = topic_frame.decode()
                message = codec.decode_internal(payload)
                if topic == topics.CONTROL:
                    for agent in self.agents:
                        agent.on_control(message)
                    if self.note_days(message):
                        await self.refresh(admin)
                elif topic in references:
                    price, ts = Decimal(message["price"]), int(message["ts"])
                    for agent in self.by_symbol[references[topic]]:
                        agent.on_reference(price, ts)
                elif topic in markets:
                    self.on_market(self.by_symbol[markets[topic]], message)
        finally:
            sub.close(linger=0)

    @staticmethod
    def on_market(agents: list[Agent], message: Message) -> None:
        """A depth change or a trade: the book's best prices after it (absent: none),
        and the trade. A quote of volume 0 repeats a price and says nothing of the book."""
        kind = message.get("type")
        trade = kind == "quote" and Decimal(str(message.get("volume", 0))) > 0
        if kind == "depth" or trade:
            bid, ask = _price(message.get("bid")), _price(message.get("ask"))
            for agent in agents:
                agent.on_book(bid, ask)
        if trade:
            price, qty = Decimal(message["last"]), Decimal(str(message["volume"]))
            for agent in agents:
                agent.on_trade(price, qty, int(message["ts"]))

    def note_days(self, control: Message) -> bool:
        """Keep each market's trading day; True when one turned (new price limits)."""
        days = {name: m.get("trading_day", "") for name, m in control.get("markets", {}).items()}
        turned = bool(self.trading_days) and days != self.trading_days
        self.trading_days = days
        return turned

    async def refresh(self, admin: Link) -> None:
        """A new trading day: each agent gets its symbol's new previous close and band."""
        try:
            infos = await self.symbol_infos(admin)
        except (Refused, TimeoutError) as exc:
            log.warning("symbols not refreshed on the new day: %r", exc)
            return
        for symbol, agents in self.by_symbol.items():
            for agent in agents:
                agent.on_info(infos[symbol])

    # REPORTS AND STOP ------------------------------------------------------------------

    async def report(self) -> None:
        last = time.monotonic()
        while True:
            for _ in range(int(REPORT_EVERY)):
                await asyncio.sleep(1.0)
                process.flush_logs()
            now = time.monotonic()
            self.log_tally(f"in the last {now - last:.0f} s")
            last = now

    def log_tally(self, when: str) -> None:
        if not self.tally:
            return
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.tally.items()))
        log.info("agents %s: %s", when, counts)
        self.tally.clear()

    async def withdraw(self) -> None:
        """Cancel every agent's open orders, for at most STOP_GRACE seconds."""
        cancels = [a.cancel_all() for a in self.agents if a.link is not None]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*cancels), STOP_GRACE)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _price(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))
