"""The matcher process: owns the order books and decides fills.

The accountant pushes orders and cancels here; the controller broadcasts run state and
quotes. The `Router` actor keeps one `Book` per symbol, fills against trade prices (wait
mode) or at the limit (instant mode) while trading is on, and pushes each fill and each
cancel answer back to the accountant, tagged with the epoch of the book snapshot it holds.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pykka

from actors import process
from actors.book import Book, Match, Resting
from actors.bus import Bus, Message
from actors.clock import Clock, LiveClock
from protocol import topics
from protocol.settings import Settings

log = logging.getLogger("matcher")


@dataclass(frozen=True, slots=True)
class Commands:
    """A burst from the matcher's inbox (book.add, book.cancel, book.snapshot)."""

    messages: list[Message]


@dataclass(frozen=True, slots=True)
class Broadcast:
    topic: str
    messages: list[Message]


class SyncTick:
    """Timer, once a second: ask the accountant for a book snapshot until one has arrived,
    and stop filling when the controller's heartbeat has gone quiet."""


class Router(pykka.ThreadingActor):
    """Routes by symbol to one Book each; fills nothing until the first snapshot arrives."""

    def __init__(self, settings: Settings, clock: Clock, bus: Bus) -> None:
        super().__init__()
        self.clock = clock
        self.bus = bus
        self.instant = settings.trading.fill_mode == "instant"
        self.books: dict[str, Book] = {s.symbol: Book(s.symbol) for s in settings.market.symbols}
        self.last: dict[str, Decimal] = {}
        self.epoch: int | None = None  # None until the accountant's first snapshot
        self.trading = False
        # without a control heartbeat for this long, the run state is unknown: fill nothing
        self.control_expiry = 3 * settings.control.heartbeat_interval + 1.0
        self.control_seen_at = 0.0
        self.handlers: dict[str, Callable[[Message], None]] = {
            "book.snapshot": self.on_snapshot,
            "book.add": self.on_add,
            "book.cancel": self.on_cancel,
        }

    def on_start(self) -> None:
        self.request_sync()

    def on_failure(self, *_exc: object) -> None:
        process.die("matcher router failed")

    def on_receive(self, message: Any) -> None:
        if isinstance(message, Commands):
            for msg in message.messages:
                handler = self.handlers.get(msg.get("type"))  # type: ignore[arg-type]
                if handler is None:
                    log.error("unknown message type %r; ignored", msg.get("type"))
                else:
                    handler(msg)
        elif isinstance(message, Broadcast):
            self.on_broadcast(message)
        elif isinstance(message, SyncTick):
            if self.epoch is None:
                self.request_sync()
            quiet = time.monotonic() - self.control_seen_at
            if self.trading and quiet > self.control_expiry:
                log.warning("no control state for %.1fs; trading off until it returns", quiet)
                self.trading = False

    def request_sync(self) -> None:
        self.bus.send(topics.ACCOUNTANT, {"type": "book.sync"})

    def book(self, symbol: str) -> Book:
        book = self.books.get(symbol)
        if book is None:  # the accountant checks symbols; a new one still gets a book
            book = self.books[symbol] = Book(symbol)
        return book

    # COMMANDS --------------------------------------------------------------------------

    def on_snapshot(self, msg: Message) -> None:
        self.epoch = msg["epoch"]
        for symbol in self.books:
            self.books[symbol] = Book(symbol)
        for order in msg["orders"]:
            self.book(order["symbol"]).add(_resting(order))
        log.info("book snapshot epoch=%d: %d open orders", self.epoch, len(msg["orders"]))
        for order_id in msg["cancels"]:
            self.cancel(order_id)
        if self.trading:
            self.fill_all_books()

    def on_add(self, msg: Message) -> None:
        if self.epoch is None or msg["epoch"] != self.epoch:
            return  # sent before the snapshot we hold; that snapshot has it if it is open
        order = msg["order"]
        book = self.book(order["symbol"])
        book.add(_resting(order))
        if not self.trading:
            return
        if self.instant:
            match = book.fill_at_limit(order["order_id"])
            self.emit([match] if match else [])
        elif order["symbol"] in self.last:
            self.emit(book.cross(self.last[order["symbol"]]))

    def on_cancel(self, msg: Message) -> None:
        if self.epoch is None or msg["epoch"] != self.epoch:
            return  # the next snapshot lists it among the cancels
        self.cancel(msg["order_id"], msg.get("symbol"))

    def cancel(self, order_id: int, symbol: str | None = None) -> None:
        books = [self.books[symbol]] if symbol in self.books else list(self.books.values())
        found = any(book.remove(order_id) is not None for book in books)
        kind = "book.canceled" if found else "book.cancel_rejected"
        self.bus.send(topics.ACCOUNTANT, {"type": kind, "epoch": self.epoch, "order_id": order_id})

    # MARKET ----------------------------------------------------------------------------

    def on_broadcast(self, message: Broadcast) -> None:
        if message.topic == topics.CONTROL:
            self.control_seen_at = time.monotonic()
            trading = bool(message.messages[-1]["trading"])
            resumed = trading and not self.trading
            if trading != self.trading:
                log.info("trading %s", "on" if trading else "off")
            self.trading = trading
            if resumed:
                self.fill_all_books()
        elif message.topic.startswith(topics.MARKET_PREFIX):
            quote = message.messages[-1]
            symbol = quote["symbol"]
            self.last[symbol] = last = Decimal(quote["last"])
            if self.trading and self.epoch is not None and not self.instant:
                self.emit(self.book(symbol).cross(last))

    def fill_all_books(self) -> None:
        if self.epoch is None:
            return
        for symbol, book in self.books.items():
            if self.instant:
                self.emit(book.fill_everything())
            elif symbol in self.last:
                self.emit(book.cross(self.last[symbol]))

    def emit(self, matches: list[Match]) -> None:
        if not matches:
            return
        now = self.clock.now_ns()
        self.bus.send_many(
            [
                (
                    topics.ACCOUNTANT,
                    None,
                    {
                        "type": "exec",
                        "epoch": self.epoch,
                        "order_id": m.order_id,
                        "qty": str(m.qty),
                        "price": str(m.price),
                        "cum_qty": str(m.cum_qty),
                        "ts": now,
                    },
                )
                for m in matches
            ]
        )
        for m in matches:
            process.activity("matcher", f"fill order={m.order_id} qty={m.qty} price={m.price}")


def _resting(order: Message) -> Resting:
    return Resting(
        order_id=order["order_id"],
        side=order["side"],
        price=Decimal(order["price"]),
        leaves_qty=Decimal(order["leaves_qty"]),
        cum_qty=Decimal(order["cum_qty"]),
        seq=order["seq"],
    )


def main(settings: Settings) -> None:
    """Wire the matcher in flow order: inbox from the accountant, market data, fills out."""
    process.setup_logging(settings, "matcher")
    bus = Bus("matcher")
    # 1. fills and cancel answers go to the accountant
    bus.push_to(topics.ACCOUNTANT, settings.endpoints.accountant_in)
    router = Router.start(settings, LiveClock(), bus)
    # 2. orders, cancels and snapshots come from the accountant
    bus.pull(settings.endpoints.matcher_in, lambda msgs: router.tell(Commands(msgs)))
    # 3. run state and quotes come from the controller
    bus.subscribe(
        settings.endpoints.control_pub,
        (topics.CONTROL, topics.MARKET_PREFIX),
        lambda topic, msgs: router.tell(Broadcast(topic, msgs)),
    )
    bus.every(1.0, lambda: router.tell(SyncTick()))
    log.info("matcher up, fill mode %s", settings.trading.fill_mode)
    process.run(bus, [router])


if __name__ == "__main__":
    main(process.settings_from_argv(sys.argv))
