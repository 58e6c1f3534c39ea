"""The controller process: run/stop/pause state, trading sessions, the clock and market data.

`SessionControl` owns the run state (kept in <data_dir>/control.json across restarts)
and whether the market is in session; it broadcasts both on topic `ctl` when they change
and every heartbeat. `MarketFeed` owns the quotes and broadcasts each trade on
`md.<symbol>`. Both answer requests the accountant forwards after authenticating them.

Run states: `running` (quotes flow, orders fill), `paused` (quotes flow, nothing fills),
`stopped` (no quotes, nothing fills). In every state orders are accepted and rest.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import pykka
from pydantic import ValidationError

from actors.controller.feeds import SyntheticFeed
from actors.controller.replay import (
    Listen,
    LockStep,
    ReplayBar,
    Replayer,
    ReplayStatus,
    ReplayStep,
    ReplaySteps,
    ReplayTick,
    replay_bars,
)
from actors.controller.sessions import Sessions, market_sessions
from actors.market.rules import ZERO, Market
from actors.runtime import process
from actors.runtime.bus import Bus, Message
from actors.runtime.clock import Clock, clock_for
from actors.runtime.statefile import StateFile
from protocol import topics
from protocol.errors import ErrorCode, RejectError, error_body
from protocol.messages import PushedQuote, validation_message
from protocol.settings import Settings
from protocol.values import iso_time, number, parse_decimal, wire_qty

MAX_VOLUME = 10**15

log = logging.getLogger("controller")
PUB = "pub"  # the controller's one PUB socket
REPLAY_TICK = 0.02  # s between a replay's timer ticks
LOCKSTEP_MESSAGES = frozenset({"replay.join", "replay.done", "replay.settled"})


@dataclass(frozen=True, slots=True)
class Request:
    message: Message


class Heartbeat:
    """Timer: re-check the session and broadcast the control state."""


class FeedTick:
    """Timer: the synthetic feed takes one step."""


class Close(NamedTuple):
    """A symbol's previous close, its latest trade, and the trading day of that trade."""

    prev_close: str
    last: str
    day: str


def control_file(settings: Settings) -> Path:
    return Path(settings.server.data_dir) / "control.json"


def load_control(settings: Settings) -> dict[str, Any]:
    """What control.json kept: the run state, and the market time reached."""
    return StateFile(control_file(settings)).load()


@dataclass(frozen=True, slots=True)
class Pushed:
    """A burst of quotes from an external feed (untrusted: checked one by one)."""

    messages: list[Message]


@dataclass(frozen=True, slots=True)
class Sync:
    """A lock-step replay's marker, published after what came before it (controller/replay.py)."""

    id: int


@dataclass(frozen=True, slots=True)
class Publish:
    """Control states, replay steps and markers for the feed to send out, in this order."""

    items: list[Message | ReplayStep | Sync]


@dataclass(frozen=True, slots=True)
class Checked:
    """Pushed trades the session control checked and timed (market time)."""

    trades: list[PushedTrade]


class SessionControl(pykka.ThreadingActor):
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        bus: Bus,
        feed: pykka.ActorRef[Any],
        sessions: dict[str, Sessions],
    ) -> None:
        super().__init__()
        self.clock = clock
        self.bus = bus
        self.feed = feed
        self.sessions = sessions  # per profile in use (sessions.market_sessions)
        self.default_profile = settings.market.profile
        self.state_file = StateFile(control_file(settings))
        self.market_time = settings.control.clock == "market"
        self.market = Market.from_settings(settings)
        self.state = str(load_control(settings).get("state", settings.control.initial_state))
        self.saved_time = self.clock.now_ns()
        self.session: dict[str, tuple[bool, str]] = {}  # profile -> (open, trading day)
        self.seq = 0
        self.listeners: list[pykka.ActorRef[Any]] = [feed]  # told every control state
        self.replay: Message | None = None  # a replay's progress (Replayer.status)

    def _save(self) -> None:
        self.state_file.save({"state": self.state, "market_time": self.clock.now_ns()})
        self.saved_time = self.clock.now_ns()

    def on_start(self) -> None:
        self.check_session()
        self.broadcast()

    def on_failure(self, *_exc: object) -> None:
        process.die("session control failed")

    def check_session(self) -> bool:
        """Whether a session opened or closed, or a trading day turned, since last time."""
        now = self.clock.now_ns()
        session = {name: (s(now), s.trading_day(now)) for name, s in self.sessions.items()}
        if session == self.session:
            return False
        for name, (open_, day) in session.items():
            if open_ != self.session.get(name, (False, ""))[0]:
                log.info("%s session %s (%s)", name, "open" if open_ else "closed", day)
        self.session = session
        return True

    def on_receive(self, message: Any) -> None:
        if isinstance(message, Heartbeat):
            self.check_session()
            self.broadcast()
            if self.market_time and self.clock.now_ns() != self.saved_time:
                self._save()  # a restart resumes market time from here
        elif isinstance(message, Pushed):
            self.on_pushed(message.messages)
        elif isinstance(message, ReplaySteps):
            self.replay = message.status
            return self.on_replay(message.steps, message.sync)
        elif isinstance(message, ReplayStatus):
            self.replay = message.status
            if message.stop and self.state != "stopped":
                log.warning("run state %s -> stopped: a bot did not answer in time", self.state)
                self.state = "stopped"
                self._save()
            self.broadcast()
        elif isinstance(message, Listen):
            self.listeners.append(message.actor)
            message.actor.tell(self.view())
        elif isinstance(message, Request):
            msg = message.message
            if msg["type"] == "control.set" and msg["state"] != self.state:
                log.info("run state %s -> %s (user %s)", self.state, msg["state"], msg["user_id"])
                self.state = msg["state"]
                self._save()
                self.broadcast()
            reply = {**self.view(), "rid": msg["rid"], "gw": msg["gw"]}
            self.bus.send(topics.GATEWAY, reply)

    def on_pushed(self, messages: list[Message]) -> None:
        """Market time: each valid pushed trade's `ts` moves the clock. When that opens or
        closes the session, or turns the day, the control state goes out before the trade,
        so everyone sees the new session first; the feed publishes the trades."""
        batch: list[PushedTrade] = []
        for raw in messages:
            try:
                pushed = parse_pushed(raw, self.market, market_time=True)
            except RejectError as exc:
                log.warning("external quote dropped: %s", exc.message)
                continue
            if pushed.ts > self.clock.now_ns():
                self.clock.advance(pushed.ts)
                if self.check_session():
                    self.feed.ask(Checked(batch))  # out before the new control state
                    batch = []
                    self.broadcast()
            batch.append(pushed)
        self.feed.tell(Checked(batch))

    def on_replay(self, steps: list[ReplayStep], sync: int = 0) -> int:
        """A chunk of a replay. For each step the clock moves to its time, and a session
        change makes a control state; the feed publishes the states and the bars in that
        order (one ask for the chunk: nothing overtakes), then the time reached is saved,
        so a restart resumes after it. Stops at a bar time when the run state is not
        running any more; returns how many steps it took. With all taken, a `sync` marker
        follows them (lock-step)."""
        items: list[Message | ReplayStep | Sync] = []
        done, previous = 0, "close"
        for step in steps:
            starts_bar_time = step.phase == "fill" or previous == "close"
            if starts_bar_time and self.state != "running":
                break
            done, previous = done + 1, step.phase
            self.clock.advance(step.ts)
            if not self.check_session():
                items.append(step)
                continue
            self.seq += 1
            # bars that open a session fill in it; bars that close one are out before it
            # closes, so the session-close snapshots value positions at their closes
            items += [self.view(), step] if step.phase == "fill" else [step, self.view()]
        if sync and done == len(steps):
            if not steps:  # a marker alone: with the control state now, for a baseline
                self.seq += 1
                items.append(self.view())
            items.append(Sync(sync))
        if items:
            self.feed.ask(Publish(items))
            self._save()
        return done

    def view(self) -> Message:
        now = self.clock.now_ns()
        markets = {
            name: {
                "session_open": open_,
                "trading": self.state == "running" and open_,
                "trading_day": day,
                "last_close": self.sessions[name].last_close(now),
            }
            for name, (open_, day) in self.session.items()
        }
        view = {
            "type": "control",
            "state": self.state,
            **markets[self.default_profile],  # the default profile's market, as before
            "markets": markets,
            "ts": now,
            "time": iso_time(now),
            "seq": self.seq,
        }
        if self.replay is not None:
            view["replay"] = self.replay
        return view

    def broadcast(self) -> None:
        self.seq += 1
        state = self.view()
        self.bus.send(PUB, state, topics.CONTROL)
        for listener in self.listeners:
            listener.tell(state)


class MarketFeed(pykka.ThreadingActor):
    def __init__(self, settings: Settings, clock: Clock, bus: Bus) -> None:
        super().__init__()
        self.clock = clock
        self.bus = bus
        self.state_file = StateFile(Path(settings.server.data_dir) / "feed.json")
        self.market = Market.from_settings(settings)
        self.market_time = settings.control.clock == "market"
        saved = self._load()
        # each symbol's previous close, and its latest trade and that trade's trading day
        self.closes: dict[str, Close] = {
            s.symbol: Close(str(s.prev_close), str(s.prev_close), "")
            for s in settings.market.symbols
        }
        with contextlib.suppress(TypeError, AttributeError):  # a damaged file: start afresh
            for symbol, close in saved.get("closes", {}).items():
                if symbol in self.closes:
                    self.closes[symbol] = Close(*map(str, close))
        self.source: SyntheticFeed | None = None
        prices = {symbol: close.last for symbol, close in self.closes.items()}
        if settings.market.feed == "synthetic":
            self.source = SyntheticFeed(settings)
            with contextlib.suppress(TypeError, ValueError, ArithmeticError, AttributeError):
                self.source.resume(saved.get("prices", {}))
            prices = self.source.prices()
        self.profile_of = {s: self.market.rules(s).name for s in self.market.symbols}
        self.trading_days: dict[str, str] = {}  # per profile, from the control state
        self.flowing: dict[str, bool] = {}  # per profile: quotes flow (not stopped, in session)
        self.last_ts = clock.now_ns() if self.market_time else 0  # market time never goes back
        self.quotes: dict[str, Message] = {}
        self.closed_bars: list[Message] = []  # a replay's last bar time, to announce
        self.seq = 0
        now = clock.now_ns()
        for symbol, last in prices.items():
            self.quotes[symbol] = self._quote(symbol, last, ZERO, now)

    def on_failure(self, *_exc: object) -> None:
        process.die("market feed failed")

    def _load(self) -> dict[str, Any]:
        saved = self.state_file.load()
        if saved and "closes" not in saved and "prices" not in saved:
            return {"prices": saved}  # written before closes were kept: the walk's prices
        return saved

    def _save(self) -> None:
        state: dict[str, Any] = {"closes": {s: list(c) for s, c in self.closes.items()}}
        if self.source is not None:
            state["prices"] = self.source.prices()
        self.state_file.save(state)

    def _quote(
        self, symbol: str, last: str, volume: Decimal, ts: int, extra: Message | None = None
    ) -> Message:
        self.seq += 1
        return {
            "type": "quote",
            "symbol": symbol,
            "last": last,
            "volume": wire_qty(volume),
            **(extra or {}),
            "prev_close": str(self.prev_close_today(symbol)),
            "ts": ts,
            "time": iso_time(ts),
            "seq": self.seq,
        }

    def day(self, symbol: str) -> str:
        """The trading day of the symbol's market ("" until the control state said)."""
        return self.trading_days.get(self.profile_of[symbol], "")

    def flows(self, symbol: str) -> bool:
        return self.flowing.get(self.profile_of[symbol], False)

    def repeat_prices(self, profiles: set[str], now: int) -> None:
        """The last price of every symbol of these profiles' markets, with volume 0 (a
        price, not a trade): late joiners get a price at once, and everyone a new day's
        previous close before its first trade. Stamped `now`, the control state's time."""
        for symbol, quote in self.quotes.items():
            if self.profile_of[symbol] not in profiles:
                continue
            extra = {side: quote[side] for side in ("bid", "ask") if side in quote}
            repeat = self._quote(symbol, quote["last"], ZERO, now, extra)
            self.bus.send(PUB, repeat, topics.market(symbol))

    def prev_close_today(self, symbol: str) -> Decimal:
        """The previous close for today's trading: the last trade, if it was on an earlier day."""
        close = self.closes[symbol]
        if close.day and close.day != self.day(symbol):
            return Decimal(close.last)
        return Decimal(close.prev_close)

    def trade(
        self, symbol: str, last: str, volume: Decimal, ts: int, extra: Message | None = None
    ) -> None:
        """Publish a trade; the first of a trading day makes the day before's last trade
        the previous close."""
        self.record(symbol, last)
        quote = self._quote(symbol, last, volume, ts, extra)
        self.quotes[symbol] = quote
        self.bus.send(PUB, quote, topics.market(symbol))

    def record(self, symbol: str, last: str) -> None:
        """The symbol's latest trade, on its market's trading day."""
        close = self.closes[symbol]
        if close.day != self.day(symbol):
            prev_close = close.last if close.day else close.prev_close
            self.closes[symbol] = Close(prev_close, last, self.day(symbol))
        else:
            self.closes[symbol] = close._replace(last=last)

    def on_replay(self, step: ReplayStep) -> None:
        """A replay's bars. Fill step (the bars' last instant, on their trading day): the
        close is the symbol's latest trade, and the matcher gets the bars to fill on. Close
        step: everyone gets them, complete, each on its symbol's topic, then (unless a
        lock-step replay announces them later: phase "announce") all of them in one
        `replay.step` message (topic `step`) that says this bar time is out."""
        if step.phase == "announce":
            closed = self.closed_bars
            if not closed or closed[0]["ts"] != step.ts:  # closed before a restart
                closed = [self._bar(bar, step.ts) for bar in step.bars]
            self.announce(step, closed)
            return
        published = []
        for bar in step.bars:
            close = number(bar.close)
            if step.phase == "fill":
                self.record(bar.symbol, close)
                self.quotes[bar.symbol] = self._quote(bar.symbol, close, bar.volume, step.ts)
                self.bus.send(PUB, self._bar(bar, step.ts), topics.replay(bar.symbol))
            else:
                if self.quotes[bar.symbol]["last"] != close:  # its fill step was before a restart
                    self.record(bar.symbol, close)
                    self.quotes[bar.symbol] = self._quote(bar.symbol, close, bar.volume, step.ts)
                published.append(self._bar(bar, step.ts))
                self.bus.send(PUB, published[-1], topics.market(bar.symbol))
        self.closed_bars = published
        if published and step.announce:
            self.announce(step, published)

    def announce(self, step: ReplayStep, bars: list[Message]) -> None:
        message = {
            "type": "replay.step",
            "ts": step.ts,
            "time": iso_time(step.ts),
            "index": step.index,
            "count": step.count,
            "bars": bars,
        }
        self.bus.send(PUB, message, topics.STEP)

    def _bar(self, bar: ReplayBar, ts: int) -> Message:
        self.seq += 1
        return {
            "type": "bar",
            "symbol": bar.symbol,
            "open": number(bar.open),
            "high": number(bar.high),
            "low": number(bar.low),
            "close": number(bar.close),
            "volume": wire_qty(bar.volume),
            "prev_close": str(self.prev_close_today(bar.symbol)),
            "ts": ts,
            "time": iso_time(ts),
            "seq": self.seq,
        }

    def on_receive(self, message: Any) -> None:
        if isinstance(message, FeedTick) and self.source is not None:
            now = self.clock.now_ns()
            bands = {
                symbol: self.market.price_band(symbol, self.prev_close_today(symbol))
                for symbol in self.closes
                if self.flows(symbol)
            }
            for tick in self.source.step(bands):
                self.trade(tick.symbol, str(tick.last), tick.volume, now)
        elif isinstance(message, Pushed):
            self.on_pushed(message.messages)
        elif isinstance(message, Checked):
            self.on_checked(message.trades)
        elif isinstance(message, dict) and message.get("type") == "control":
            self._save()  # once a heartbeat: a restart resumes the walk and closes from here
            self.on_control(message)
        elif isinstance(message, Publish):
            for item in message.items:
                if isinstance(item, ReplayStep):
                    self.on_replay(item)
                elif isinstance(item, Sync):
                    marker = {"type": "replay.sync", "id": item.id, "ts": self.clock.now_ns()}
                    self.bus.send(PUB, marker, topics.SYNC)
                else:
                    self.bus.send(PUB, item, topics.CONTROL)
                    self.on_control(item)
            self._save()
        elif isinstance(message, Request):
            msg = message.message
            quote = self.quotes.get(msg.get("symbol", ""))
            if quote is None:
                body = dict(
                    error_body(ErrorCode.REQUEST_UNKNOWN_SYMBOL, f"no symbol {msg.get('symbol')!r}")
                )
            else:
                body = {"type": "quote", "quote": {k: v for k, v in quote.items() if k != "type"}}
            body["rid"] = msg["rid"]
            body["gw"] = msg["gw"]
            self.bus.send(topics.GATEWAY, body)

    def on_control(self, message: Message) -> None:
        """A control state: each market's trading day, and whether its quotes flow."""
        repeat = set()
        for name, market in message["markets"].items():
            new_day = market["trading_day"] != self.trading_days.get(name)
            flowing = message["state"] != "stopped" and market["session_open"]
            # a new day's previous close goes out when the day turns, for the orders
            # placed overnight; the prices again when quotes start flowing
            if message["state"] != "stopped" and (
                new_day or (flowing and not self.flowing.get(name))
            ):
                repeat.add(name)
            self.trading_days[name] = market["trading_day"]
            self.flowing[name] = flowing
        if repeat:
            self.repeat_prices(repeat, message["ts"])

    def on_pushed(self, messages: list[Message]) -> None:
        """Wall time: check the trades of an external feed and publish them."""
        trades = []
        for raw in messages:
            try:
                trades.append(parse_pushed(raw, self.market))
            except RejectError as exc:
                log.warning("external quote dropped: %s", exc.message)
        self.on_checked(trades)

    def on_checked(self, trades: list[PushedTrade]) -> None:
        """Publish checked trades; while quotes do not flow (stopped, or out of session)
        drop them, and on market time drop those stamped before the last one published."""
        for pushed in trades:
            ts = pushed.ts if self.market_time else self.clock.now_ns()
            if not self.flows(pushed.symbol) or ts < self.last_ts:
                continue
            self.last_ts = ts
            self.trade(pushed.symbol, pushed.last, pushed.volume, ts, pushed.extra)


class PushedTrade(NamedTuple):
    """A checked trade from an external feed."""

    symbol: str
    last: str
    volume: Decimal
    extra: Message  # bid and ask, when sent
    ts: int


def parse_pushed(raw: Message, market: Market, market_time: bool = False) -> PushedTrade:
    """Check one quote pushed by an external feed (untrusted input).

    Raises:
        RejectError: with what is wrong with it.
    """
    try:
        pushed = PushedQuote.model_validate(raw)
    except ValidationError as exc:
        raise RejectError(ErrorCode.REQUEST_INVALID, validation_message(exc)) from None
    if pushed.symbol not in market:
        raise RejectError(ErrorCode.REQUEST_UNKNOWN_SYMBOL, f"no symbol {pushed.symbol!r}")
    tick = market.rules(pushed.symbol).tick_size
    volume = parse_decimal(pushed.volume, "volume", ErrorCode.REQUEST_INVALID)
    if not 0 <= volume <= MAX_VOLUME:
        raise RejectError(ErrorCode.REQUEST_INVALID, f"volume must be 0 to {MAX_VOLUME}")
    prices = {
        field: _on_tick(value, field, tick)
        for field, value in (("last", pushed.last), ("bid", pushed.bid), ("ask", pushed.ask))
        if value is not None
    }
    if "bid" in prices and "ask" in prices and prices["bid"] > prices["ask"]:
        raise RejectError(ErrorCode.REQUEST_INVALID_PRICE, "bid above ask")
    if market_time and pushed.ts is None:
        raise RejectError(ErrorCode.REQUEST_INVALID, "ts is required on market time")
    extra = {side: number(prices[side]) for side in ("bid", "ask") if side in prices}
    return PushedTrade(pushed.symbol, number(prices["last"]), volume, extra, pushed.ts or 0)


def _on_tick(value: Any, field: str, tick: Decimal) -> Decimal:
    """A pushed price: above 0 and on the tick, as every price orders can meet."""
    amount = parse_decimal(value, field, ErrorCode.REQUEST_INVALID_PRICE)
    if amount <= 0 or amount % tick:
        raise RejectError(
            ErrorCode.REQUEST_INVALID_PRICE,
            f"{field} must be above 0 and a multiple of {tick}, got {value}",
        )
    return amount.quantize(tick)


def main(settings: Settings) -> None:
    """Wire the controller: PUB out first, then the actors, then the request inbox and timers."""
    process.setup_logging(settings, "controller")
    market_time = load_control(settings).get("market_time", 0)
    clock = clock_for(settings.control.clock, market_time if isinstance(market_time, int) else 0)
    bus = process.bus_for(settings, "controller")
    # 1. control state and quotes go out on one PUB socket; replies to the gateway's inbox
    bus.publish_as(PUB, settings.endpoints.control_pub)
    bus.push_to(topics.GATEWAY, settings.endpoints.gateway_in, drop_when_full=True)
    feed = MarketFeed.start(settings, clock, bus)
    control = SessionControl.start(settings, clock, bus, feed, market_sessions(settings))
    actors = [control, feed]
    replayer = None
    if settings.market.feed == "replay":  # bars from files, on their own time
        replayer = Replayer.start(settings, control, bus, replay_bars(settings), clock.now_ns())
        actors.insert(0, replayer)  # stops first: no chunk goes to a stopped control

    # 2. requests forwarded by the accountant: control to SessionControl, quotes to the feed;
    #    a lock-step replay's messages to the replayer
    owners = {"control.get": control, "control.set": control, "quote.get": feed}

    def route(messages: list[Message]) -> None:
        for msg in messages:
            kind = msg.get("type")
            owner = owners.get(kind)  # type: ignore[arg-type]
            if owner is not None:
                owner.tell(Request(msg))
            elif kind in LOCKSTEP_MESSAGES and replayer is not None:
                replayer.tell(LockStep(msg))
            elif kind in LOCKSTEP_MESSAGES and "gw" in msg:
                error = error_body(ErrorCode.REQUEST_NOT_REPLAYING, "this server does not replay")
                bus.send(topics.GATEWAY, {**error, "rid": msg["rid"], "gw": msg["gw"]})
            elif kind not in LOCKSTEP_MESSAGES:
                log.error("unknown message type %r; ignored", kind)

    bus.pull(settings.endpoints.controller_in, route)
    bus.every(settings.control.heartbeat_interval, lambda: control.tell(Heartbeat()))
    if replayer is not None:  # 3. the replay's timer
        bus.every(REPLAY_TICK, lambda: replayer.tell(ReplayTick()))
    elif settings.market.feed == "synthetic":
        bus.every(settings.market.tick_interval, lambda: feed.tell(FeedTick()))
    else:  # 3. an external program pushes trades in
        # in market time the session control sees each trade's time first
        taker = control if settings.control.clock == "market" else feed
        bus.pull(
            settings.endpoints.quotes_in, lambda msgs: taker.tell(Pushed(msgs)), untrusted=True
        )
    log.info("controller up at %s", datetime.now(UTC).isoformat())
    process.run(bus, actors)


if __name__ == "__main__":
    main(process.settings_from_argv(sys.argv))
