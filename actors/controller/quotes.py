"""MarketFeed owns the quotes: each symbol's latest trade and previous close. It publishes
each trade on `md.<symbol>`, from the built-in synthetic feed or an external program's
pushed quotes, turns a replay's bars into their messages, and answers quote requests.

It runs on the controller's I/O loop; SessionControl tells it every control state.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError

from actors.controller.bars import ReplayBar
from actors.controller.control import PUB, SessionControl
from actors.controller.feeds import SyntheticFeed
from actors.market.rules import ZERO, Market
from actors.runtime.bus import Bus, Message
from actors.runtime.clock import Clock
from actors.runtime.statefile import StateFile
from protocol import topics
from protocol.errors import ErrorCode, RejectError, error_body
from protocol.messages import PushedQuote, validation_message
from protocol.settings import Settings
from protocol.values import iso_time, number, parse_decimal, wire_qty

log = logging.getLogger("controller")
MAX_VOLUME = 10**15


class Close(NamedTuple):
    """A symbol's previous close, its latest trade, and the trading day of that trade."""

    prev_close: str
    last: str
    day: str


class MarketFeed:
    def __init__(self, settings: Settings, clock: Clock, bus: Bus) -> None:
        self.clock = clock
        self.bus = bus
        self.state_file = StateFile(Path(settings.server.data_dir) / "feed.json")
        self.market = Market.from_settings(settings)
        self.market_time = settings.control.clock == "market"
        # a replay's bars are its prices, sent with its steps: no repeated quotes then
        self.replaying = settings.market.feed == "replay"
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
        # exchange mode: these symbols' trades are the matcher's prints, never the feed's
        self.exchange = {s for s in self.market.symbols if self.market.rules(s).exchange}
        self.trading_days: dict[str, str] = {}  # per profile, from the control state
        self.flowing: dict[str, bool] = {}  # per profile: quotes flow (not stopped, in session)
        self.last_ts = clock.now_ns() if self.market_time else 0  # market time never goes back
        self.quotes: dict[str, Message] = {}
        # a replay's latest settled bar of each symbol (the replayer puts it here)
        self.bar_quotes: dict[str, Message] = {}
        # told each published trade: symbol, price, volume, ts (the bar history)
        self.trade_listeners: list[Callable[[str, Decimal, Decimal, int], None]] = []
        self.seq = 0
        now = clock.now_ns()
        for symbol, last in prices.items():
            self.quotes[symbol] = self._quote(symbol, last, ZERO, now)

    def _load(self) -> dict[str, Any]:
        saved = self.state_file.load()
        if saved and "closes" not in saved and "prices" not in saved:
            return {"prices": saved}  # written before closes were kept: the walk's prices
        return saved

    def save(self) -> None:
        """Once a heartbeat: a restart resumes the walk and the closes from here."""
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
        price = Decimal(last)
        for listener in self.trade_listeners:
            listener(symbol, price, volume, ts)

    def record(self, symbol: str, last: str) -> None:
        """The symbol's latest trade, on its market's trading day."""
        close = self.closes[symbol]
        if close.day != self.day(symbol):
            prev_close = close.last if close.day else close.prev_close
            self.closes[symbol] = Close(prev_close, last, self.day(symbol))
        else:
            self.closes[symbol] = close._replace(last=last)

    def replay_bars(self, bars: list[ReplayBar], ts: int) -> list[Message]:
        """A replay's bars complete at `ts`, filled on at its last instant: each close is its
        symbol's latest trade on the trading day of that instant (the control state the
        caller gave last); returns the bars' messages (stamped `ts`)."""
        out = []
        time_text = iso_time(ts)
        for bar in bars:
            symbol, close = bar.symbol, number(bar.close)
            self.record(symbol, close)
            self.seq += 1
            message = {
                "type": "bar",
                "symbol": symbol,
                "open": number(bar.open),
                "high": number(bar.high),
                "low": number(bar.low),
                "close": close,
                "volume": wire_qty(bar.volume),
                "prev_close": self._prev_close_text(symbol),
                "ts": ts,
                "time": time_text,
                "seq": self.seq,
            }
            out.append(message)
        return out

    def _prev_close_text(self, symbol: str) -> str:
        """prev_close_today, as the text it was recorded as."""
        close = self.closes[symbol]
        return close.last if close.day and close.day != self.day(symbol) else close.prev_close

    def tick(self) -> None:
        """The synthetic feed takes one step: a trade per symbol whose quotes flow."""
        if self.source is None:
            return
        now = self.clock.now_ns()
        bands = {
            symbol: self.market.price_band(symbol, self.prev_close_today(symbol))
            for symbol in self.closes
            if self.flows(symbol)
        }
        for tick in self.source.step(bands):
            if tick.symbol in self.exchange:  # no trade: the price agents quote around
                self.reference(tick.symbol, str(tick.last), now)
            else:
                self.trade(tick.symbol, str(tick.last), tick.volume, now)

    def reference(self, symbol: str, price: str, ts: int) -> None:
        """Exchange mode: the feed's price of a symbol is no trade but a reference,
        published on ref.<symbol> (docs/protocol.md)."""
        message = {"type": "reference", "symbol": symbol, "price": price, "ts": ts}
        self.bus.send(PUB, {**message, "time": iso_time(ts)}, topics.reference(symbol))

    def request(self, msg: Message) -> None:
        """quote.get: the symbol's latest quote."""
        symbol = msg.get("symbol", "")
        bar = self.bar_quotes.pop(symbol, None) if isinstance(symbol, str) else None
        if bar is not None:  # a replay's latest bar, as a quote
            self.quotes[symbol] = {
                "type": "quote",
                "symbol": symbol,
                "last": bar["close"],
                "volume": bar["volume"],
                "prev_close": bar["prev_close"],
                "ts": bar["ts"],
                "time": bar["time"],
                "seq": bar["seq"],
            }
        quote = self.quotes.get(symbol)
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
        if repeat and not self.replaying:
            self.repeat_prices(repeat, message["ts"])

    def on_exchange(self, message: Message) -> None:
        """Exchange mode: the matcher's prints of one turn, published as trades, and its
        books' depth changes, published on depth.<symbol> (docs/protocol.md)."""
        for symbol, price, qty, taker_side, ts, bid, ask in message["trades"]:
            extra = {"taker_side": taker_side}
            if bid is not None:
                extra["bid"] = bid
            if ask is not None:
                extra["ask"] = ask
            self.trade(symbol, price, Decimal(qty), ts, extra)
        for depth in message["depth"]:
            out = {"type": "depth", **depth, "time": iso_time(depth["ts"])}
            self.bus.send(PUB, out, topics.depth(depth["symbol"]))

    def on_pushed(self, messages: list[Message]) -> None:
        """Wall time: check the trades of an external feed and publish them."""
        trades = []
        for raw in messages:
            try:
                trades.append(parse_pushed(raw, self.market))
            except RejectError as exc:
                log.warning("external quote dropped: %s", exc.message)
        self.on_checked(trades)

    def on_pushed_in_market_time(self, messages: list[Message], control: SessionControl) -> None:
        """Market time: each valid pushed trade's `ts` moves the clock. When that opens or
        closes the session, or turns the day, the control state goes out before the trade,
        so everyone sees the new session first."""
        batch: list[PushedTrade] = []
        for raw in messages:
            try:
                pushed = parse_pushed(raw, self.market, market_time=True)
            except RejectError as exc:
                log.warning("external quote dropped: %s", exc.message)
                continue
            if pushed.ts > self.clock.now_ns():
                self.clock.advance(pushed.ts)
                if control.check_session():
                    self.on_checked(batch)  # out before the new control state
                    batch = []
                    control.broadcast()
            batch.append(pushed)
        self.on_checked(batch)

    def on_checked(self, trades: list[PushedTrade]) -> None:
        """Publish checked trades; while quotes do not flow (stopped, or out of session)
        drop them, and on market time drop those stamped before the last one published."""
        for pushed in trades:
            ts = pushed.ts if self.market_time else self.clock.now_ns()
            if not self.flows(pushed.symbol) or ts < self.last_ts:
                continue
            if pushed.symbol in self.exchange:  # its trades are the exchange's own
                self.reference(pushed.symbol, pushed.last, ts)
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
