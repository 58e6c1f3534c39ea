"""The market maker: a ladder of post-only bids and asks around the reference price,
skewed against its inventory, one side dropped past its inventory limit, moved when the
reference moves or a quote fills. `ladder` and `plan_requote` are the plain arithmetic;
MarketMaker sends what they say."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from actors.agents.base import CALL_PHASES, Agent, Resting
from actors.agents.pricing import SymbolInfo, wire
from protocol.settings import AgentSettings

REFRESH = 5.0  # s between two requotes with nothing changed
RETRY = 0.5  # s before a requote after a quote was refused or left out


@dataclass(frozen=True)
class Quote:
    side: str
    price: Decimal


def ladder(
    info: SymbolInfo,
    params: AgentSettings,
    reference: Decimal,
    inventory: Decimal,
    best_bid: Decimal | None = None,
    best_ask: Decimal | None = None,
) -> list[Quote]:
    """The quotes a market maker wants: `levels` bids below and asks above `reference`,
    the first `spread_ticks` agent ticks away and each next `level_ticks` further, inside
    the day's band. Both sides move down (long) or up (short) by `skew_ticks` times the
    inventory's share of `inventory_limit`; at the limit long it stops bidding, short,
    asking. A quote that would cross the book's best opposite price (`best_bid`,
    `best_ask`) is left out: post-only, the server would refuse it."""
    step = info.step(reference, params.tick_bp)
    limit = params.inventory_limit
    lean = max(Decimal(-1), min(Decimal(1), inventory / limit))
    skew = int((params.skew_ticks * lean).to_integral_value())
    quotes = []
    for k in range(params.levels):
        away = params.spread_ticks + k * params.level_ticks
        if inventory < limit:
            bid = info.floor(reference - (away + skew) * step)
            if info.in_band(bid) and (best_ask is None or bid < best_ask):
                quotes.append(Quote("buy", bid))
        if inventory > -limit:
            ask = info.ceil(reference + (away - skew) * step)
            if info.in_band(ask) and (best_bid is None or ask > best_bid):
                quotes.append(Quote("sell", ask))
    return quotes


@dataclass
class Requote:
    """What to send to turn the open orders into the wanted quotes."""

    replace: list[tuple[int, Quote]] = field(default_factory=list)
    cancel: list[int] = field(default_factory=list)
    place: list[Quote] = field(default_factory=list)


def plan_requote(open_orders: dict[int, Resting], wanted: list[Quote], levels: int) -> Requote:
    """Orders already at a wanted price stay (one per price); the others move to the
    wanted prices left, nearest the touch first; what is missing is placed. An order with
    no price to go to is canceled when its side has none wanted (past the inventory
    limit) or more than `levels` orders; else it waits where it is for the next requote
    (a quote left out for crossing the book comes back soon)."""
    plan = Requote()
    for side in ("buy", "sell"):
        prices = [q.price for q in wanted if q.side == side]
        near = sorted(prices, reverse=side == "buy")
        kept: set[Decimal] = set()
        spare = []
        for order_id, resting in sorted(open_orders.items()):
            if resting.side != side:
                continue
            if resting.price in prices and resting.price not in kept:
                kept.add(resting.price)
            else:
                spare.append(order_id)
        missing = [Quote(side, p) for p in near if p not in kept]
        plan.replace += zip(spare, missing, strict=False)
        plan.place += missing[len(spare) :]
        left = spare[len(missing) :]
        if not prices:
            plan.cancel += left
        else:  # only what is beyond a full ladder
            plan.cancel += left[: max(0, len(kept) + len(spare) - levels)]
    return plan


class MarketMaker(Agent):
    kind = "mm"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.quoted_at: Decimal | None = None  # the reference the ladder is around
        self.dirty = True  # the reference moved, a quote filled, a new day: requote
        self.looked = 0.0  # when it last requoted (monotonic)
        self.retry_at = 0.0  # a quote was left out or refused: requote from then

    def on_reference(self, price: Decimal, ts: int) -> None:
        if self.quoted_at is None or abs(price - self.quoted_at) > (
            self.params.requote_ticks * self.info.step(price, self.params.tick_bp)
        ):
            self.quoted_at = None  # the ladder moves to the new reference
            self.dirty = True
        super().on_reference(price, ts)

    def on_fill(self, fill: dict[str, Any]) -> None:
        self.dirty = True
        self.wake.set()

    def on_info(self, info: SymbolInfo) -> None:
        super().on_info(info)
        self.dirty = True

    def after_refusal(self, code: str) -> None:
        if code == "MATCH_POST_ONLY_WOULD_TAKE":  # the book moved first: requote soon
            self.retry_at = self.retry_at or time.monotonic() + RETRY

    def tick(self) -> float:
        if self.retry_at:
            return max(0.01, min(1.0, self.retry_at - time.monotonic()))
        return 1.0

    async def act(self) -> None:
        if self.market.phase in CALL_PHASES:
            return  # a call auction: the quotes rest as they are, into the uncross
        if not self.active:
            if self.open and self.market.cancels:
                await self.cancel_all()  # out of the market while it does not trade
            self.quoted_at = None
            return
        now = time.monotonic()
        due = self.dirty or (self.retry_at and now >= self.retry_at) or now - self.looked >= REFRESH
        if not due:
            return
        assert self.reference is not None
        self.looked, self.dirty, self.retry_at = now, False, 0.0
        if self.quoted_at is None:
            self.quoted_at = self.reference
        # around the reference of the last move: a fill refills its level, and moves the
        # rest only as far as the skew of the new inventory says
        wanted = ladder(
            self.info, self.params, self.quoted_at, self.inventory, self.best_bid, self.best_ask
        )
        if (
            len(wanted) < 2 * self.params.levels
            and abs(self.inventory) < self.params.inventory_limit
        ):
            self.retry_at = now + RETRY  # some crossed the book, or left the band
        await self.requote(plan_requote(self.open, wanted, self.params.levels))

    async def requote(self, plan: Requote) -> None:
        qty = wire(self.params.size * self.lot)
        sends: list[Awaitable[Any]] = [
            self.send("order.replace", order_id=i, limit_price=wire(q.price), qty=qty)
            for i, q in plan.replace
        ]
        sends += [self.send("order.cancel", order_id=i) for i in plan.cancel]
        sends += [
            self.send(
                "order.new",
                symbol=self.symbol,
                side=q.side,
                qty=qty,
                order_type="limit",
                limit_price=wire(q.price),
                time_in_force="day",
                post_only=True,
            )
            for q in plan.place
            if self.side_ok(q.side)
        ]
        if sends:
            await asyncio.gather(*sends)
