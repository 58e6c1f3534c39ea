"""The matcher's Router: one Book per symbol; it triggers stops and fills against trades
(wait mode) or at once (instant mode) while trading is on, and tells the accountant each
fill, trigger and answer, tagged with the epoch of the book snapshot it holds.

It runs on the matcher's I/O loop (actors/runtime/bus.py): the loop calls it with each
burst from its inbox and each run of broadcasts, and sends what it answers at the end of
the loop's turn. The fill model is in actors/matcher/book.py and docs/fill-model.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

from actors.market.rules import Market
from actors.matcher.book import Bar, Book, FillModel, Match, Resting, Trade, Trigger
from actors.matcher.exchange import Closed, ExchangeBook, Outcome, Rested
from actors.matcher.gate import StepGate
from actors.runtime import process
from actors.runtime.bus import Bus, Message
from actors.runtime.clock import Clock
from protocol import topics
from protocol.errors import ErrorCode, error_body
from protocol.orders import IMMEDIATE
from protocol.settings import Settings
from protocol.values import iso_time, number

log = logging.getLogger("matcher")
# s between two reports to the controller of the replay.done answered here (a replay's
# timeouts are seconds; a report per bar time would wake it a thousand times a second)
DONES_EVERY = 0.02
CONTINUOUS = "continuous"
CALL_PHASES = frozenset({"opening_call", "closing_call"})
NO_CANCEL = "no_cancel"  # a cancel or replacement refused in a call auction
MAX_RESET_LEVELS = 100_000  # a depth reset carries the whole book


class Router:
    """Routes by symbol to one Book each; fills nothing until the first snapshot arrives."""

    def __init__(self, settings: Settings, clock: Clock, bus: Bus) -> None:
        self.clock = clock
        self.bus = bus
        self.instant = settings.trading.fill_mode == "instant"
        t = settings.trading
        market = Market.from_settings(settings)
        self.models = {
            symbol: FillModel(
                market.rules(symbol), t.participation_rate, t.slippage_ticks, t.slippage_bp
            )
            for symbol in market.symbols
        }
        self.books: dict[str, Book] = {s: new_book(s, m) for s, m in self.models.items()}
        self.exchange_symbols = [s for s, m in self.models.items() if m.profile.exchange]
        # exchange mode: each symbol's depth messages are numbered; after a rebuild the
        # next one carries the whole book (`reset`); prints wait for the end of the turn
        self.depth_seq: dict[str, int] = {}
        self.reset_depth: set[str] = set()
        self.prints: list[list[Any]] = []
        self.depth_out: list[Message] = []
        self.epoch: int | None = None  # None until the accountant's first snapshot
        self.last_order_id = 0  # the newest order received: a triggered stop stands behind it
        # per profile's market, from the controller: its trading day, and whether it trades
        self.trading_day: dict[str, str] = {}
        self.trading: dict[str, bool] = {}
        # exchange mode: each market's trading phase (call auctions), whether the running
        # state lets an auction happen, and whether orders may be canceled now
        self.phase: dict[str, str] = {}
        self.running = False
        self.cancels: dict[str, bool] = {}
        self.prev_closes: dict[str, Decimal] = {}
        self.bar_times: dict[str, int] = {}  # a replay: each symbol's latest bar filled on
        # without a control heartbeat for this long, the run state is unknown: fill nothing
        self.control_expiry = 3 * settings.control.heartbeat_interval + 1.0
        self.replaying = settings.market.feed == "replay"
        self.session_log_level = logging.DEBUG if self.replaying else logging.INFO
        self.control_seen_at = 0.0
        self.handlers: dict[str, Callable[[Message], None]] = {
            "book.snapshot": self.on_snapshot,
            "book.add": self.on_add,
            "book.cancel": self.on_cancel,
            "book.replace": self.on_replace,
            "book.digest": self.on_digest,
            "depth.get": self.on_depth_get,
            "replay.join": self.to_controller,
            "replay.done": self.on_done,
            "replay.step": self.on_gated_step,
            "replay.release": self.on_release,
            "control.applied": self.on_control_set,
        }
        self.gate = StepGate()
        self.dones: list[Message] = []  # replay.done answered here, for the controller

    def on_commands(self, messages: list[Message]) -> None:
        """A burst from the inbox: orders, cancels, replacements and snapshots."""
        for msg in messages:
            handler = self.handlers.get(msg.get("type"))  # type: ignore[arg-type]
            if handler is None:
                log.error("unknown message type %r; ignored", msg.get("type"))
            else:
                handler(msg)

    def on_lost(self, sender: str, _link: str, _count: int) -> None:
        """Commands from the accountant were lost (actors/runtime/streams.py): fill nothing
        until a new book snapshot has come."""
        if sender == topics.ACCOUNTANT:
            self.epoch = None
            self.request_sync()

    def tick(self) -> None:
        """Once a second: ask the accountant for a book snapshot until one has arrived,
        and stop filling when the controller's heartbeat has gone quiet."""
        if self.epoch is None:
            self.request_sync()
        quiet = time.monotonic() - self.control_seen_at
        if any(self.trading.values()) and quiet > self.control_expiry:
            log.warning("no control state for %.1fs; trading off until it returns", quiet)
            self.trading = {}

    def request_sync(self) -> None:
        self.bus.send(topics.ACCOUNTANT, {"type": "book.sync"})

    def book(self, symbol: str) -> Book:
        book = self.books.get(symbol)
        if book is None:  # the accountant checks symbols; a new one still gets a book
            model = next(iter(self.models.values()))
            book = self.books[symbol] = Book(symbol, model)
        return book

    def answer(self, kind: str, **fields: Any) -> None:
        self.bus.send(topics.ACCOUNTANT, {"type": kind, "epoch": self.epoch, **fields})

    # COMMANDS --------------------------------------------------------------------------

    def on_digest(self, msg: Message) -> None:
        books = book_part(self.books.values())
        self.bus.send(topics.ACCOUNTANT, {**msg, "type": "book.digested", "books": books})

    def on_snapshot(self, msg: Message) -> None:
        self.epoch = msg["epoch"]
        for symbol, book in self.books.items():  # the last trade stays, its volume is used up
            self.books[symbol] = new_book(symbol, book.model, book)
            if isinstance(book, ExchangeBook):
                self.reset_depth.add(symbol)
        self.last_order_id = max([self.last_order_id, *(o["order_id"] for o in msg["orders"])])
        for order in msg["orders"]:
            self.book(order["symbol"]).add(resting(order))
        log.info("book snapshot epoch=%d: %d open orders", self.epoch, len(msg["orders"]))
        for order_id in msg["cancels"]:
            self.cancel(order_id)
        self.expire_day_orders()
        self.fill_all_books({name for name, on in self.trading.items() if on})

    def expire_day_orders(self) -> None:
        """DAY orders end with their trading day. The matcher takes them out as it learns
        the day has turned, before the trades of the next day reach it."""
        if self.epoch is None:
            return
        for book in self.books.values():
            day = self.day(book) if len(book) else ""  # an empty book has none to expire
            for order in book.expire(day) if day else ():
                self.answer("book.expired", order_id=order.order_id)

    def day(self, book: Book) -> str:
        """The trading day of the book's market ("" until the controller said)."""
        return self.trading_day.get(book.model.profile.name, "")

    def trades(self, book: Book) -> bool:
        """Whether the book's market trades now: running and in session; an exchange book
        only in continuous trading (not in a call auction)."""
        name = book.model.profile.name
        if not self.trading.get(name, False):
            return False
        return not isinstance(book, ExchangeBook) or self.phase.get(name, CONTINUOUS) == CONTINUOUS

    def cancelable(self, book: Book) -> bool:
        """Whether the book's orders may be canceled now (not in parts of a call auction)."""
        return not isinstance(book, ExchangeBook) or self.cancels.get(book.model.profile.name, True)

    def on_add(self, msg: Message) -> None:
        if self.epoch is None or msg["epoch"] != self.epoch:
            return  # sent before the snapshot we hold; that snapshot has it if it is open
        order = resting(msg["order"])
        self.last_order_id = max(self.last_order_id, order.order_id)
        book = self.book(msg["order"]["symbol"])
        if order.time_in_force == "day" and not order.day:
            order.day = self.day(book)
        if isinstance(book, ExchangeBook):
            self.emit_outcome(book, book.submit(order, self.trades(book)))
            return
        if order.post_only:
            self.post_only(book, order)
            return
        if order.time_in_force in IMMEDIATE:
            self.fill_or_kill(book, order)
            return
        book.add(order)
        if self.trades(book):
            self.fill_new(book, order)

    def paper_takes(self, book: Book, order: Resting) -> bool:
        """Paper mode: whether `order` would fill at once, so taking liquidity (instant
        mode fills everything at once; wait mode what the latest trade reaches)."""
        return self.trades(book) and (self.instant or book.takes(order))

    def post_only(self, book: Book, order: Resting) -> None:
        """Paper mode: a post-only order that would fill at once (instant mode, or a limit
        the latest trade reaches) is refused; otherwise it rests, and is answered so."""
        if self.paper_takes(book, order):
            self.answer("book.killed", order_id=order.order_id, reason="post_only")
            return
        book.add(order)
        self.answer("book.rested", order_id=order.order_id)

    def fill_new(self, book: Book, order: Resting) -> None:
        if self.instant:
            match = book.fill_instantly(order.order_id)
            self.emit(book, [], [match] if match else [])
        else:
            self.emit(book, [], book.match())

    def fill_or_kill(self, book: Book, order: Resting) -> None:
        """IOC and FOK never rest: fill what the latest trade allows (FOK: all or nothing),
        then answer `book.canceled` for an IOC's rest or `book.killed` for a FOK, with why."""
        fok = order.time_in_force == "fok"
        kind = "book.killed" if fok else "book.canceled"
        if not self.trades(book):
            self.answer(kind, order_id=order.order_id, reason="market_closed")
            return
        if fok and not self.instant and book.fillable(order) < order.leaves_qty:
            self.answer(kind, order_id=order.order_id, reason="fok")
            return
        book.add(order)
        self.fill_new(book, order)
        if book.remove(order.order_id) is not None:
            self.answer(kind, order_id=order.order_id, reason="fok" if fok else "ioc")

    def on_cancel(self, msg: Message) -> None:
        if self.epoch is None or msg["epoch"] != self.epoch:
            return  # the next snapshot lists it among the cancels
        book = self.books.get(msg.get("symbol", ""))
        if book is not None and msg["order_id"] in book and not self.cancelable(book):
            self.answer("book.cancel_rejected", order_id=msg["order_id"], reason=NO_CANCEL)
            return
        self.cancel(msg["order_id"], msg.get("symbol"))

    def cancel(self, order_id: int, symbol: str | None = None) -> None:
        books = [self.books[symbol]] if symbol in self.books else list(self.books.values())
        found = any(book.remove(order_id) is not None for book in books)
        self.answer("book.canceled" if found else "book.cancel_rejected", order_id=order_id)

    def on_replace(self, msg: Message) -> None:
        """Swap an order for its replacement, only if it has not filled since the accountant
        looked (`cum_qty`) nor triggered since (`triggered`, which moves its bound and its
        reservation); otherwise the replacement is refused and the order stays."""
        if self.epoch is None or msg["epoch"] != self.epoch:
            return  # the accountant refuses replacements pending when it sends a snapshot
        new = resting(msg["order"])
        book = self.book(msg["order"]["symbol"])
        if new.time_in_force == "day" and not new.day:
            new.day = self.day(book)
        old = book.get(msg["old_id"])
        if old is not None and not self.cancelable(book):
            self.answer(
                "book.replace_rejected",
                old_id=old.order_id,
                order_id=new.order_id,
                reason=NO_CANCEL,
            )
            return
        changed = old is None or (old.cum_qty, old.triggered) != (
            Decimal(msg["cum_qty"]),
            msg["triggered"],
        )
        if changed:
            self.answer("book.replace_rejected", old_id=msg["old_id"], order_id=new.order_id)
            return
        self.last_order_id = max(self.last_order_id, new.order_id)
        if isinstance(book, ExchangeBook):
            kept_place, outcome = book.replace_order(old.order_id, new, self.trades(book))
            if (new.order_id, "post_only") in outcome.killed:
                self.refuse_post_only_replacement(old.order_id, new.order_id)
                return
            self.answer(
                "book.replaced", old_id=old.order_id, order_id=new.order_id, kept_place=kept_place
            )
            self.emit_outcome(book, outcome)
            return
        if new.post_only and self.paper_takes(book, new):
            self.refuse_post_only_replacement(old.order_id, new.order_id)
            return
        kept_place = book.replace(old.order_id, new)
        self.answer(
            "book.replaced", old_id=old.order_id, order_id=new.order_id, kept_place=kept_place
        )
        if self.trades(book):
            self.fill_new(book, new)

    def refuse_post_only_replacement(self, old_id: int, new_id: int) -> None:
        self.answer("book.replace_rejected", old_id=old_id, order_id=new_id, reason="post_only")

    # MARKET ----------------------------------------------------------------------------

    def on_broadcast(self, topic: str, messages: list[Message]) -> None:
        """The controller's public control state and quotes. A replay's control states
        and bars come with its steps instead (on_step), in order with the orders: here
        its control states only say the controller is alive."""
        if topic == topics.CONTROL:
            self.control_seen_at = time.monotonic()
            if self.replaying:
                return
            self.clock.advance(messages[-1]["ts"])  # market time, if that is the clock
            for state in messages:
                self.on_control(state)
        elif topic.startswith(topics.MARKET_PREFIX) and not self.replaying:
            self.clock.advance(messages[-1]["ts"])
            for quote in messages:  # every trade: each one's volume counts
                self.on_trade(quote)

    def on_step(self, step: Message) -> None:
        """A replay's bar time (actors/controller/replayer.py): fill on its bars at their
        last instant with the control state of that instant, take the control state at
        the bar time, and pass the step on to the accountant behind the fills."""
        fill, close = step["fill"], step["close"]
        self.control_seen_at = time.monotonic()
        self.clock.advance(fill["ts"])
        self.on_control(fill)
        ts = step["ts"]
        for bar in step["bars"]:
            self.on_bar(ts, *bar)
        self.clock.advance(close["ts"])
        self.on_control(close)
        self.bus.send(topics.ACCOUNTANT, step)

    def on_gated_step(self, step: Message) -> None:
        for released in self.gate.step(step):
            self.on_step(released)

    def on_done(self, msg: Message) -> None:
        """A bot's replay.done: its orders are in the books, and the next bar time may go
        if it waited for this bot. The controller hears of it (it times bots out). A bot
        that takes its steps on its connection is answered here, in the frame that brings
        its next step, and the controller hears of it on the next `tell_dones` (at once
        when no step was waiting for it, as at the end of the replay)."""
        steps = msg.get("steps")
        if steps:
            answer = {"type": "replay.ok", "ts": msg["ts"], "rid": msg["rid"], "gw": msg["gw"]}
            self.bus.send(topics.ACCOUNTANT, answer)
        released = self.gate.done(msg["user_id"], msg["ts"])
        if steps and released:
            self.dones.append(msg)
        else:  # at once when it lets nothing go: the end of the replay waits for it
            self.to_controller(msg)
        for step in released:
            self.on_step(step)

    def tell_dones(self) -> None:
        """The bots' answers the controller has not heard of yet (DONES_EVERY)."""
        for msg in self.dones:
            self.to_controller(msg)
        self.dones = []

    def on_release(self, msg: Message) -> None:
        for released in self.gate.let_go(msg["users"], msg["ts"]):
            self.on_step(released)

    def to_controller(self, msg: Message) -> None:
        """A bot's replay.join or replay.done: on to the controller, after the orders the
        accountant sent before it are in the books."""
        self.bus.send(topics.CONTROLLER, msg)

    def on_trade(self, quote: Message) -> None:
        book = self.book(quote["symbol"])
        if isinstance(book, ExchangeBook):  # its own prints, published back: no fills
            self.prev_closes[book.symbol] = Decimal(quote["prev_close"])  # for its auctions
            return
        if book.see(trade(quote)) and self.trades(book) and self.epoch is not None:
            triggers = book.trigger()
            self.emit(book, triggers, book.fill_everything() if self.instant else book.match())

    def fill_all_books(self, markets: set[str]) -> None:
        """These profiles' markets trade again (or the books were rebuilt while they do).
        Instant mode fills what rests; wait mode waits for the next trade: the trades
        before were printed while nothing could fill, maybe yesterday."""
        if self.epoch is None or not markets:
            return
        for book in self.books.values():
            if book.model.profile.name not in markets:
                continue
            if isinstance(book, ExchangeBook):
                if self.trades(book):  # not in a call auction: it trades when the call ends
                    self.emit_outcome(book, book.uncross())
            elif self.instant:
                self.emit(book, [], book.fill_everything())
            else:
                book.exhaust()

    def on_control_set(self, msg: Message) -> None:
        """A run state an admin set, taken here before its answer goes on (through the
        accountant) to the gateway: orders sent after the answer find it in force."""
        state = msg["reply"]
        self.control_seen_at = time.monotonic()
        self.clock.advance(state["ts"])
        self.on_control(state)
        self.bus.send(topics.ACCOUNTANT, msg)

    def on_control(self, state: Message) -> None:
        markets = state["markets"]
        self.call_auctions(state)
        days = {name: m["trading_day"] for name, m in markets.items()}
        if days != self.trading_day:
            self.trading_day = days
            self.expire_day_orders()
        resumed = set()
        for name, market in markets.items():
            trading = bool(market["trading"])
            if trading != self.trading.get(name, False):
                # twice a bar time in a replay of daily bars: a line to ask for there
                log.log(self.session_log_level, "%s trading %s", name, "on" if trading else "off")
                if trading:
                    resumed.add(name)
            self.trading[name] = trading
        self.fill_all_books(resumed)

    def call_auctions(self, state: Message) -> None:
        """A call auction ends when its phase does: its exchange books trade at one price
        each (docs/market-rules.md 1.9), before DAY orders expire at the close."""
        running = state["state"] == "running"
        for name, market in state["markets"].items():
            phase = market.get("phase", CONTINUOUS)
            ended = self.phase.get(name)
            self.phase[name] = phase
            self.cancels[name] = market.get("cancels", True)
            if ended not in CALL_PHASES or ended == phase or not (self.running and running):
                continue
            for book in self.exchange_books() if self.epoch is not None else ():
                if book.model.profile.name == name:
                    prev_close = self.prev_closes.get(book.symbol)
                    outcome = book.auction(prev_close, shanghai=book.symbol.startswith("6"))
                    log.info("%s %s auction: %d trades", book.symbol, ended, len(outcome.prints))
                    self.emit_outcome(book, outcome)
        self.running = running

    def exchange_books(self) -> Iterator[ExchangeBook]:
        for symbol in self.exchange_symbols:
            book = self.books[symbol]
            if isinstance(book, ExchangeBook):
                yield book

    def on_bar(
        self,
        ts: int,
        symbol: str,
        open_: str,
        high: str,
        low: str,
        close: str,
        volume: int | str,
        _prev_close: str,
    ) -> None:
        """A replayed bar (a StepBar, protocol/messages.py; docs/fill-model.md section 16):
        fill on it while its market trades; otherwise it only becomes the latest price."""
        if ts <= self.bar_times.get(symbol, 0):
            return  # sent again after a restart: it filled once already
        self.bar_times[symbol] = ts
        book = self.book(symbol)
        if isinstance(book, ExchangeBook):
            return  # the book's own prints are its prices
        if not self.instant and not len(book):  # nothing to fill: only the latest price
            book.trade = Trade(Decimal(close), Decimal(volume))
            book.exhaust()
            return
        bar = Bar(*(Decimal(v) for v in (open_, high, low, close, volume)))
        if self.epoch is None or not self.trades(book):
            book.trade = Trade(bar.close, bar.volume)
            book.exhaust()
        elif self.instant:
            book.see(Trade(bar.close, bar.volume))
            self.emit(book, book.trigger(), book.fill_everything())
        else:
            self.emit(book, *book.see_bar(bar))

    def emit(self, book: Book, triggers: list[Trigger], matches: list[Match]) -> None:
        trailed = book.take_trailed()
        if not matches and not triggers and not trailed:
            return
        now = self.clock.now_ns()
        out = self.trailed_message(trailed, now)
        out += [(topics.ACCOUNTANT, None, self.trigger_message(t, now)) for t in triggers]
        out += [(topics.ACCOUNTANT, None, self.exec_message(book, m, now)) for m in matches]
        self.bus.send_many(out)
        for t in triggers:
            process.activity("matcher", f"trigger order={t.order_id} stop={t.stop_price}")
        for m in matches:
            process.activity("matcher", f"fill order={m.order_id} qty={m.qty} price={m.price}")

    def emit_outcome(self, book: ExchangeBook, outcome: Outcome) -> None:
        """What an exchange book did, in the order it happened; its prints go to the
        controller at the end of the turn (flush_market)."""
        now = self.clock.now_ns()
        out = self.trailed_message(book.take_trailed(), now)
        for event in outcome.events:
            if isinstance(event, Match):
                message = self.exec_message(book, event, now)
            elif isinstance(event, Trigger):
                message = self.trigger_message(event, now)
            elif isinstance(event, Closed):
                kind = "book.killed" if event.killed else "book.canceled"
                message = {"type": kind, "order_id": event.order_id, "reason": event.reason}
            else:
                assert isinstance(event, Rested)
                message = {"type": "book.rested", "order_id": event.order_id}
            out.append((topics.ACCOUNTANT, None, {"epoch": self.epoch, **message}))
        if out:
            self.bus.send_many(out)
        for p in outcome.prints:
            self.prints.append([book.symbol, number(p.price), number(p.qty), p.taker_side, now])
            process.activity("matcher", f"print {book.symbol} {p.qty}@{p.price}")

    def trailed_message(
        self, trailed: list[tuple[int, Decimal]], now: int
    ) -> list[tuple[str, str | None, Message]]:
        """Trailing stops that moved, before any trigger: a stop may move and trigger on
        one trade."""
        if not trailed:
            return []
        stops = [[order_id, str(stop)] for order_id, stop in trailed]
        trail = {"type": "book.trailed", "epoch": self.epoch, "stops": stops, "ts": now}
        return [(topics.ACCOUNTANT, None, trail)]

    def trigger_message(self, t: Trigger, now: int) -> Message:
        return {
            "type": "book.triggered",
            "epoch": self.epoch,
            "order_id": t.order_id,
            "after": self.last_order_id,  # it joins its level behind these
            "stop_price": str(t.stop_price),
            "price": str(t.price),
            "ts": now,
        }

    def exec_message(self, book: Book, m: Match, now: int) -> Message:
        return {
            "type": "exec",
            "epoch": self.epoch,
            "order_id": m.order_id,
            "qty": str(m.qty),
            "price": str(m.price),
            "cum_qty": str(m.cum_qty),
            "liquidity": m.liquidity,
            "trading_day": self.day(book),  # T+1 counts from it
            "ts": now,
        }

    # EXCHANGE MARKET DATA --------------------------------------------------------------

    def on_depth_get(self, msg: Message) -> None:
        """A client asks for an exchange book's depth (levels best first), numbered as the
        depth messages are: it applies those numbered above `seq` (docs/protocol.md)."""
        book = self.books.get(msg.get("symbol", ""))
        if not isinstance(book, ExchangeBook):
            code, text = (
                (ErrorCode.REQUEST_UNKNOWN_SYMBOL, f"no symbol {msg.get('symbol')!r}")
                if book is None
                else (ErrorCode.REQUEST_NOT_EXCHANGE, f"{book.symbol} trades in paper mode")
            )
            body = dict(error_body(code, text))
        else:
            self.flush_depth(book)  # its changes so far go out numbered, before the answer
            bids, asks = book.depth(int(msg.get("levels", 10)))
            now = self.clock.now_ns()
            body = {
                "type": "depth",
                "symbol": book.symbol,
                "seq": self.depth_seq.get(book.symbol, 0),
                "bids": _levels(bids),
                "asks": _levels(asks),
                **best(book),
                "last": None if book.last is None else number(book.last),
                "ts": now,
                "time": iso_time(now),
            }
        self.bus.send(topics.GATEWAY, {**body, "rid": msg["rid"], "gw": msg["gw"]})

    def flush_market(self) -> None:
        """At the end of each turn: the turn's prints and depth changes to the controller,
        which publishes them (trades as quotes on md.<symbol>, depth on depth.<symbol>)."""
        for book in self.exchange_books():
            if book.symbol in self.reset_depth or book.depth_changed:
                self.flush_depth(book)
        if self.prints or self.depth_out:
            for p in self.prints:  # the best bid and ask once the turn is done
                quote = best(self.books[p[0]])
                p += [quote["bid"], quote["ask"]]
            self.bus.send(
                topics.CONTROLLER,
                {"type": "exchange.md", "trades": self.prints, "depth": self.depth_out},
            )
            self.prints, self.depth_out = [], []

    def flush_depth(self, book: ExchangeBook) -> None:
        """The book's depth changes since the last, as its next numbered depth message."""
        symbol = book.symbol
        reset = symbol in self.reset_depth and self.epoch is not None
        if reset:
            self.reset_depth.discard(symbol)
            book.forget_shown()
            bids, asks = book.depth(MAX_RESET_LEVELS)
        elif book.depth_changed:
            bids, asks = book.take_depth_changes()
            if not bids and not asks:
                return
        else:
            return
        seq = self.depth_seq[symbol] = self.depth_seq.get(symbol, 0) + 1
        self.depth_out.append(
            {
                "symbol": symbol,
                "seq": seq,
                "reset": reset,
                "bids": _levels(bids),
                "asks": _levels(asks),
                **best(book),
                "ts": self.clock.now_ns(),
            }
        )


def new_book(symbol: str, model: FillModel, old: Book | None = None) -> Book:
    """An empty book for `symbol`, of its mode; it keeps `old`'s latest trade and print."""
    if model.profile.exchange:
        last = old.last if isinstance(old, ExchangeBook) else None
        return ExchangeBook(symbol, model, trade=old.trade if old else None, last=last)
    return Book(symbol, model, trade=old.trade if old else None)


def best(book: Book) -> dict[str, str | None]:
    bid, ask = book.best_bid(), book.best_ask()
    return {
        "bid": None if bid is None else number(bid),
        "ask": None if ask is None else number(ask),
    }


def _levels(levels: list[tuple[Decimal, Decimal]]) -> list[list[str]]:
    return [[number(price), number(qty)] for price, qty in levels]


def resting(order: Message) -> Resting:
    """A resting order from its wire form (the accountant's book_order)."""
    return Resting(
        order_id=order["order_id"],
        side=order["side"],
        price=Decimal(order["price"]),
        leaves_qty=Decimal(order["leaves_qty"]),
        cum_qty=Decimal(order["cum_qty"]),
        seq=order["seq"],
        order_type=order["order_type"],
        time_in_force=order["time_in_force"],
        stop_price=_decimal(order.get("stop_price")),
        trail_price=_decimal(order.get("trail_price")),
        trail_percent=_decimal(order.get("trail_percent")),
        triggered=order["triggered"],
        day=order.get("day") or "",
        user_id=order.get("user_id", 0),
        post_only=order.get("post_only", False),
        stp=order.get("stp") or "cancel_newest",
    )


def trade(quote: Message) -> Trade:
    volume = quote.get("volume")
    return Trade(
        last=Decimal(quote["last"]),
        volume=None if volume is None else Decimal(volume),
        bid=_decimal(quote.get("bid")),
        ask=_decimal(quote.get("ask")),
    )


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def book_part(books: Iterable[Book]) -> dict[str, Any]:
    """The matcher's part of the state digest (actors/accountant/digest.py): each book's
    working orders side by side in priority order, and its waiting stops."""

    def entry(o: Resting) -> list[Any]:
        return [o.order_id, _text(o.price), _text(o.leaves_qty), _text(o.stop_price)]

    part = {}
    for book in sorted(books, key=lambda b: b.symbol):
        bids, asks, stops = book.priority()
        if bids or asks or stops:
            part[book.symbol] = {
                "bids": [entry(o) for o in bids],
                "asks": [entry(o) for o in asks],
                "stops": [entry(o) for o in sorted(stops, key=lambda o: o.order_id)],
            }
    return part


def _text(value: Decimal | None) -> str | None:
    """A decimal without trailing zeros, so 10.50 and 10.5 hash the same."""
    if value is None:
        return None
    normal = value.normalize()
    return format(normal, "f") if normal == normal.to_integral() else str(normal)
