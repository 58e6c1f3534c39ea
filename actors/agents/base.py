"""What every agent kind shares: its user's connection, its symbol, its position and open
orders as the server's replies and events say, the market's state, and how it takes a
refusal (backs off, never crashes). The runner feeds it market data; a kind's `run()`
decides what to send."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from actors.agents.link import Link, Message, Refused
from actors.agents.pricing import SymbolInfo
from protocol.settings import AgentSettings

log = logging.getLogger("agents")
OPEN = frozenset({"new", "partially_filled"})
# the phases of a call auction: orders rest without trading; quotes are left as they are
CALL_PHASES = frozenset({"opening_call", "pre_open", "closing_call"})
BUSY_BACKOFF = 1.0  # s an agent waits after SYSTEM_BUSY, a timeout or an unavailable peer
SIDE_BACKOFF = 5.0  # s a side rests after the cash or the shares for it ran out
TOP_UP_EVERY = 10.0  # s at least between two deposits of more shares into one agent
# refusals that are part of the game: counted, not logged
EXPECTED = frozenset(
    {
        "MATCH_POST_ONLY_WOULD_TAKE",
        "MATCH_NOT_CANCELABLE",
        "MATCH_REPLACE_TOO_LATE",
        "MATCH_FOK_NOT_FILLED",
        "MATCH_SELF_TRADE",
        "REQUEST_ORDER_NOT_OPEN",
        "REQUEST_CANCEL_PENDING",
        "REQUEST_REPLACE_PENDING",
        "REQUEST_UNKNOWN_ORDER",
        "REQUEST_PRICE_LIMIT",
        "RISK_INSUFFICIENT_CASH",
        "RISK_INSUFFICIENT_SHARES",
        "RISK_T_PLUS_ONE",
        "REQUEST_RATE_LIMITED",
        "SYSTEM_BUSY",
        "SYSTEM_TIMEOUT",
        "SYSTEM_UNAVAILABLE",
    }
)


@dataclass
class Resting:
    """One of the agent's open orders: its side, limit and what is left to fill."""

    side: str
    price: Decimal | None
    left: Decimal


@dataclass
class MarketState:
    """The agent's market in the latest control state (protocol.md 4.9)."""

    trading: bool = False
    phase: str = "closed"
    cancels: bool = True

    @classmethod
    def from_control(cls, control: Message, profile: str) -> MarketState:
        market = control.get("markets", {}).get(profile, control)
        return cls(
            trading=bool(market.get("trading")),
            phase=str(market.get("phase", "continuous")),
            cancels=bool(market.get("cancels", True)),
        )


class Agent:
    """An agent of one kind on one symbol, signed in as its own user."""

    kind = "agent"

    def __init__(
        self,
        name: str,
        info: SymbolInfo,
        params: AgentSettings,
        tally: Counter[str],
        deposited: Decimal | None = None,
    ) -> None:
        self.name = name
        self.info = info
        self.symbol = info.symbol
        self.params = params
        self.tally = tally
        self.rng = random.Random(f"{params.seed}:{name}")
        self.link: Link | None = None
        self.lot = info.round_lot
        # the shares deposited into its user: its inventory is counted from them
        self.deposited = params.shares * self.lot if deposited is None else deposited
        self.position = self.deposited
        self.open: dict[int, Resting] = {}
        self.market = MarketState()
        self.reference: Decimal | None = None
        self.best_bid: Decimal | None = None  # the book's, as the last depth or trade said
        self.best_ask: Decimal | None = None
        self.now_ns = 0  # the server's time, from the latest control state or trade
        self.wake = asyncio.Event()  # something changed: the run loop looks again
        self.unsynced = True  # position and open orders to read from the server
        self.backoff_until = 0.0
        self.side_backoff = {"buy": 0.0, "sell": 0.0}
        # more shares to sell, asked of the runner (T+1 locks what it bought today)
        self.top_up: Callable[[Agent], Awaitable[None]] | None = None
        self.wants_shares = False
        self.next_top_up = 0.0

    # INPUTS (from the runner and the connection) -----------------------------------------

    def on_control(self, control: Message) -> None:
        self.market = MarketState.from_control(control, self.info.profile)
        self.now_ns = max(self.now_ns, int(control.get("ts", 0)))
        self.wake.set()

    def on_reference(self, price: Decimal, ts: int) -> None:
        self.reference = price
        self.now_ns = max(self.now_ns, ts)
        self.wake.set()

    def on_trade(self, price: Decimal, qty: Decimal, ts: int) -> None:
        self.now_ns = max(self.now_ns, ts)

    def on_book(self, bid: Decimal | None, ask: Decimal | None) -> None:
        self.best_bid, self.best_ask = bid, ask

    def on_info(self, info: SymbolInfo) -> None:
        """A new trading day's symbol row: new previous close and price limits."""
        self.info = info

    def on_message(self, message: Message) -> None:
        """A reply or event of this user's carrying an order, in the order they came."""
        for key in ("order", "replaced"):
            order = message.get(key)
            if isinstance(order, dict) and order.get("symbol") == self.symbol:
                self._track(order)
        if message.get("type") != "event":
            return
        event = message.get("event")
        fill = message.get("fill")
        if isinstance(fill, dict) and fill.get("symbol") == self.symbol:
            self.position = Decimal(str(message["position_qty"]))
            self.tally[f"fills_{fill.get('liquidity', '')}"] += 1
            self.on_fill(fill)
        elif event in ("account.reset", "account.deposited", "events.lost"):
            self.unsynced = True
            self.wake.set()

    def on_fill(self, fill: Message) -> None:
        """A fill of one of its orders (the position is updated already)."""

    def _track(self, order: Message) -> None:
        if order.get("status") in OPEN:
            limit = order.get("limit_price")
            self.open[int(order["id"])] = Resting(
                order["side"],
                None if limit is None else Decimal(limit),
                Decimal(order["qty"]) - Decimal(order["filled_qty"]),
            )
        else:
            self.open.pop(int(order["id"]), None)

    # STATE -----------------------------------------------------------------------------

    @property
    def inventory(self) -> Decimal:
        """Round lots bought (positive) or sold (negative) since the deposit."""
        return (self.position - self.deposited) / self.lot

    @property
    def active(self) -> bool:
        """Its market trades continuously, it has a price to go by and no back-off."""
        return (
            self.market.trading
            and self.market.phase == "continuous"
            and self.reference is not None
            and time.monotonic() >= self.backoff_until
        )

    def side_ok(self, side: str) -> bool:
        return time.monotonic() >= self.side_backoff[side]

    # REQUESTS --------------------------------------------------------------------------

    async def connect(self, link: Link) -> None:
        """Sign in on `link` (raises Refused) and read the account."""
        self.link = link
        await link.login()
        await self.sync()

    async def sync(self) -> None:
        """Read its position and open orders from the server (after a start, a restart of
        its own or of the gateway, a reset or a deposit)."""
        positions = await self.send("positions.list")
        orders = await self.send("orders.list", status="open", limit=1000)
        if positions is None or orders is None:
            return
        held = [p for p in positions["positions"] if p["symbol"] == self.symbol]
        self.position = Decimal(held[0]["qty"]) if held else Decimal(0)
        self.open.clear()
        for order in orders["orders"]:
            if order.get("symbol") == self.symbol:
                self._track(order)
        self.unsynced = False

    async def send(self, type: str, **fields: Any) -> Message | None:
        """A request's reply, or None when refused: the refusal is counted and backed off
        from as its code says (the whole agent, or the side that lacks cash or shares)."""
        assert self.link is not None
        self.tally[type] += 1
        try:
            return await self.link.request(type, **fields)
        except Refused as refused:
            self.refused(refused, fields.get("side"))
        except TimeoutError:
            self.tally["timeouts"] += 1
            self.backoff_until = time.monotonic() + BUSY_BACKOFF
            self.unsynced = True  # the outcome is unknown
        finally:
            if self.link.signed_in_again:  # a gateway restart: events may have been lost
                self.link.signed_in_again = False
                self.unsynced = True
        return None

    def refused(self, refused: Refused, side: str | None) -> None:
        code = refused.code
        self.tally[code] += 1
        now = time.monotonic()
        if code == "REQUEST_RATE_LIMITED":
            self.backoff_until = now + max(refused.retry_after, 0.05)
        elif code.startswith("SYSTEM_"):
            self.backoff_until = now + BUSY_BACKOFF
        elif code == "RISK_INSUFFICIENT_CASH":
            self.side_backoff["buy"] = now + SIDE_BACKOFF
        elif code in ("RISK_INSUFFICIENT_SHARES", "RISK_T_PLUS_ONE"):
            self.side_backoff["sell"] = now + SIDE_BACKOFF
            self.wants_shares = True
        elif code.startswith("AUTH_"):
            self.backoff_until = now + BUSY_BACKOFF
            self.unsynced = True
        if code not in EXPECTED:
            log.warning("%s: %s", self.name, refused.message)
        if side is not None and code == "REQUEST_PRICE_LIMIT":
            self.side_backoff[side] = now + BUSY_BACKOFF  # until the day's band is known
        self.after_refusal(code)

    def after_refusal(self, code: str) -> None:
        """A kind's own reaction to a refusal, beside the back-off."""

    async def cancel_all(self) -> None:
        """Cancel every open order of its own (while cancels are allowed)."""
        if self.market.cancels and self.open:
            await asyncio.gather(*(self.send("order.cancel", order_id=i) for i in list(self.open)))

    # THE LOOP --------------------------------------------------------------------------

    async def run(self) -> None:
        """Wake on every change (or each `tick` s) and act; never ends on a refusal."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.tick())
            self.wake.clear()
            if time.monotonic() < self.backoff_until:
                continue
            if self.unsynced:
                await self.sync()
                continue
            now = time.monotonic()
            if self.wants_shares and self.top_up is not None and now >= self.next_top_up:
                self.wants_shares = False
                self.next_top_up = now + TOP_UP_EVERY
                await self.top_up(self)
            await self.act()

    def tick(self) -> float:
        """Seconds the loop waits at most for a change."""
        return 1.0

    async def act(self) -> None:
        """One look at the market: send what the kind decides."""
        raise NotImplementedError


class TimedAgent(Agent):
    """An agent that looks at the market at intervals (`gap` s apart), and trades (`trade`)
    only while its market trades."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.next_at = time.monotonic() + self.gap()

    def gap(self) -> float:
        """Seconds to the next look."""
        raise NotImplementedError

    def tick(self) -> float:
        return max(0.01, self.next_at - time.monotonic())

    async def act(self) -> None:
        now = time.monotonic()
        if now < self.next_at:
            return
        self.next_at = now + self.gap()
        if self.active:
            await self.trade()

    async def trade(self) -> None:
        """What the kind sends at one look."""
        raise NotImplementedError
