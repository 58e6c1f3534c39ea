"""The accountant process: users, cash, positions, pre-trade checks and the ledger.

The gateway pushes client requests here; the matcher pushes fills and cancel answers.
`Accountant` (an actor over the plain `Accounts`) checks, reserves and settles; the
`Ledger` actor commits each burst and only then releases replies, events and the orders
forwarded to the matcher; the `Reader` actor answers history queries from the database.
"""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pykka
from sqlalchemy import Engine

from actors.accountant.accounts import Account, Accounts, Fill, Order, Rejection, User
from actors.accountant.digest import ledger_parts, summary
from actors.accountant.ledger import (
    AccountRow,
    EquitySnapshotRow,
    FillRow,
    Ledger,
    OperationRow,
    OrderRow,
    PositionRow,
    UserRow,
    Work,
    make_engine,
)
from actors.accountant.queries import Reader, latest_time, load_accounts
from actors.accountant.views import account_view, fill_view, order_view, position_view
from actors.market.rules import TAKER, Market
from actors.runtime import process
from actors.runtime.bus import Bus, Message
from actors.runtime.clock import Clock, clock_for
from protocol import topics
from protocol.errors import ErrorCode, RejectError, error_body
from protocol.messages import ADMIN_REQUESTS, CONTROLLER_REQUESTS, REPLAY_REQUESTS, OrderView
from protocol.orders import IMMEDIATE, PRICE_FIELDS, STOP_FIELDS, check_fits_type
from protocol.settings import Settings
from protocol.tokens import hash_token, new_token, revoked_hash
from protocol.values import money, number, parse_decimal, wire_qty

log = logging.getLogger("accountant")

MAX_CASH = Decimal("10000000000")  # 1e10 per user: far beyond paper needs, far inside NUMERIC


@dataclass(frozen=True, slots=True)
class Inbox:
    """A burst of messages from the accountant's PULL socket (gateways and the matcher)."""

    messages: list[Message]


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A burst of controller broadcasts on one topic (ctl or md.<symbol>)."""

    topic: str
    messages: list[Message]


class SnapshotTick:
    """Timer: take the interval equity snapshot of every account."""


class MatcherLost:
    """Answers from the matcher were lost (actors/runtime/streams.py): give it a new book snapshot,
    under a new epoch, so that nothing decided on the book it had counts."""


# ROW BUILDERS --------------------------------------------------------------------------


def order_row(o: Order) -> dict[str, Any]:
    return {
        "id": o.id,
        "user_id": o.user_id,
        "client_order_id": o.client_order_id,
        "symbol": o.symbol,
        "side": o.side,
        "type": o.order_type,
        "time_in_force": o.time_in_force,
        "qty": o.qty,
        "price": o.price,
        "limit_price": o.limit_price,
        "stop_price": o.stop_price,
        "trail_price": o.trail_price,
        "trail_percent": o.trail_percent,
        "triggered": o.triggered,
        "replaces": o.replaces,
        "replaced_by": o.replaced_by,
        "trading_day": o.trading_day or None,
        "status": o.status,
        "filled_qty": o.filled_qty,
        "filled_value": o.filled_value,
        "commission": o.commission,
        "tax": o.tax,
        "reserved_cash": o.reserved_cash,
        "ts_created": o.ts_created,
        "ts_updated": o.ts_updated,
        "queue_after": o.queue_after or None,
        "queue_ts": o.queue_ts,
    }


def account_row(a: Account, now_ns: int) -> dict[str, Any]:
    return {
        "user_id": a.user_id,
        "initial_cash": a.initial_cash,
        "cash": a.cash,
        "reserved_cash": a.reserved_cash,
        "commission_paid": a.commission_paid,
        "tax_paid": a.tax_paid,
        "realized_pnl": a.realized_pnl,
        "bought_value": a.bought_value,
        "sold_value": a.sold_value,
        "ts_updated": now_ns,
    }


def operation_row(
    ts_event: int,
    kind: str,
    *,
    user_id: int | None = None,
    seq: int = 0,
    order_id: int | None = None,
    symbol: str | None = None,
    side: str | None = None,
    qty: Decimal | None = None,
    price: Decimal | None = None,
    status: str | None = None,
    cash: Decimal | None = None,
    detail: str | None = None,
) -> tuple[type[OperationRow], dict[str, Any]]:
    """An operation-log row with every column: bulk inserts need the same keys in each row.
    System entries have no user and seq 0."""
    return (
        OperationRow,
        {
            "user_id": user_id,
            "seq": seq,
            "ts_event": ts_event,
            "kind": kind,
            "order_id": order_id,
            "symbol": symbol,
            "side": side,
            "qty": qty,
            "price": price,
            "status": status,
            "cash": cash,
            "detail": detail,
        },
    )


def fill_row(f: Fill) -> dict[str, Any]:
    return {
        "id": f.id,
        "order_id": f.order_id,
        "user_id": f.user_id,
        "symbol": f.symbol,
        "side": f.side,
        "qty": f.qty,
        "price": f.price,
        "value": f.value,
        "commission": f.commission,
        "tax": f.tax,
        "realized_pnl": f.realized_pnl,
        "ts_event": f.ts_event,
        "liquidity": f.liquidity,
    }


class Accountant(pykka.ThreadingActor):
    """Checks, reserves and settles; every outcome leaves through the Ledger after commit."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        bus: Bus,
        accounts: Accounts,
        user_seqs: dict[int, int],
        ledger: pykka.ActorRef[Any],
        reader: pykka.ActorRef[Any],
    ) -> None:
        super().__init__()
        self.settings = settings
        self.clock = clock
        self.bus = bus
        self.accounts = accounts
        self.market = accounts.market
        self.symbols = self.market.symbols
        self.user_seqs = user_seqs
        self.ledger = ledger
        self.reader = reader
        self.last_prices: dict[str, Decimal] = {}
        self.prev_closes = {s.symbol: s.prev_close for s in settings.market.symbols}
        self.epoch = 0
        self.cancel_waiters: dict[int, list[Message]] = {}
        # IOC/FOK orders the matcher has not decided yet: the requests waiting on each
        self.pending_replies: dict[int, list[Message]] = {}
        # replacements on their way to the matcher: old order id -> (old order, request)
        self.replacing: dict[int, tuple[Order, Message]] = {}
        self.control: tuple[str, dict[str, bool]] | None = None  # run state, sessions open
        # a lock-step replay's markers: the last seen published, through the matcher, answered
        self.synced_here = self.synced_by_matcher = self.settled = 0
        self.handlers: dict[str, Callable[[Work, Message], None]] = {
            "exec": self.on_exec,
            "book.canceled": self.on_book_canceled,
            "book.cancel_rejected": self.on_cancel_rejected,
            "book.killed": self.on_book_killed,
            "book.expired": self.on_book_expired,
            "book.triggered": self.on_triggered,
            "book.replaced": self.on_book_replaced,
            "book.replace_rejected": self.on_replace_rejected,
            "book.sync": self.on_book_sync,
            "replay.sync": self.on_replay_sync,
            "book.digested": self.on_book_digested,
        }
        self.user_handlers: dict[str, Callable[[Work, Message, User], None]] = {
            "session.login": self.on_login,
            "order.new": self.on_new_order,
            "order.replace": self.on_replace_order,
            "order.cancel": self.on_cancel_order,
            "account.get": self.on_get_account,
            "positions.list": self.on_list_positions,
            "user.create": self.on_create_user,
            "user.list": self.on_list_users,
            "token.rotate": self.on_rotate_token,
            "token.revoke": self.on_revoke_token,
            "state.digest": self.on_digest,
            "order.get": self.to_reader,
            "orders.list": self.to_reader,
            "fills.list": self.to_reader,
            "history.list": self.to_reader,
            "stats.get": self.on_get_stats,
            "symbols.list": self.on_list_symbols,
            **{t: self.to_controller for t in CONTROLLER_REQUESTS},
            **{t: self.to_replay for t in REPLAY_REQUESTS},
        }

    def on_start(self) -> None:
        work = Work()
        self.send_book_snapshot(work)
        self.ledger.tell(work)

    def on_failure(self, *_exc: object) -> None:
        process.die("accountant actor failed")

    def on_receive(self, message: Any) -> None:
        work = Work()
        if isinstance(message, Inbox):
            for msg in message.messages:
                self.dispatch(work, msg)
        elif isinstance(message, Broadcast):
            self.on_broadcast(work, message)
        elif isinstance(message, SnapshotTick):
            self.take_snapshots(work, "interval")
        elif isinstance(message, MatcherLost):
            self.send_book_snapshot(work)
        if work:
            self.ledger.tell(work)

    def dispatch(self, work: Work, msg: Message) -> None:
        kind = msg.get("type")
        handler = self.handlers.get(kind)  # type: ignore[arg-type]
        if handler is not None:
            handler(work, msg)
            return
        user_handler = self.user_handlers.get(kind)  # type: ignore[arg-type]
        if user_handler is None:
            log.error("unknown message type %r; ignored", kind)
            if "gw" in msg:
                self.reply_error(
                    work, msg, ErrorCode.REQUEST_UNKNOWN_TYPE, f"unknown type {kind!r}"
                )
            return
        user = self.accounts.user_for_token(msg.get("auth", ""))
        if user is None:
            self.reply_error(work, msg, ErrorCode.AUTH_INVALID_TOKEN, "no user has this token")
        elif kind in ADMIN_REQUESTS and not user.is_admin:
            self.reply_error(work, msg, ErrorCode.AUTH_NOT_ADMIN, f"{kind} needs the admin token")
        else:
            try:
                user_handler(work, msg, user)
            except RejectError as rej:
                self.reply_error(work, msg, rej.code, rej.message)

    # REPLIES AND EVENTS ----------------------------------------------------------------

    def reply(self, work: Work, request: Message, body: Message) -> None:
        body["rid"] = request["rid"]
        body["gw"] = request["gw"]
        work.outbound.append((topics.GATEWAY, None, body))

    def reply_error(self, work: Work, request: Message, code: ErrorCode, message: str) -> None:
        self.reply(work, request, dict(error_body(code, message)))

    def event(
        self,
        work: Work,
        user_id: int,
        kind: str,
        order: Order,
        fill: Fill | None = None,
        detail: str | None = None,
    ) -> OrderView:
        """One private event for the user and one operation-log row, with the same seq.

        Returns the order's view, for a reply that goes out with the event.
        """
        seq = self.user_seqs.get(user_id, 0) + 1
        self.user_seqs[user_id] = seq
        account = self.accounts.accounts[user_id]
        now = order.ts_updated
        work.inserts.append(
            operation_row(
                now,
                kind,
                user_id=user_id,
                seq=seq,
                order_id=order.id,
                symbol=order.symbol,
                side=order.side,
                qty=fill.qty if fill else order.qty,
                price=fill.price if fill else order.limit_price or order.stop_price,
                status=order.status,
                cash=account.cash,
                detail=detail,
            )
        )
        view = order_view(order)
        body: Message = {
            "type": "event",
            "event": kind,
            "user_id": user_id,
            "seq": seq,
            "order": view,
            "account": {
                "cash": money(account.cash),
                "reserved_cash": money(account.reserved_cash),
                "available_cash": money(account.available_cash),
            },
        }
        if fill is not None:
            body["fill"] = fill_view(fill)
        work.outbound.append((topics.GATEWAY, None, body))
        process.activity("accountant", f"{kind} order={order.id} user={user_id} {order.status}")
        return view

    def system_entry(self, work: Work, kind: str, detail: str) -> None:
        work.inserts.append(operation_row(self.clock.now_ns(), kind, detail=detail))
        log.info("%s %s", kind, detail)

    def store_order(self, work: Work, order: Order, new: bool = False) -> None:
        (work.inserts if new else work.updates).append((OrderRow, order_row(order)))
        account = self.accounts.accounts[order.user_id]
        work.updates.append((AccountRow, account_row(account, order.ts_updated)))

    def store_position(self, work: Work, user_id: int, symbol: str) -> None:
        pos = self.accounts.position(user_id, symbol)
        row = {
            "user_id": user_id,
            "symbol": symbol,
            "qty": pos.qty,
            "reserved_qty": pos.reserved_qty,
            "cost_basis": pos.cost_basis,
            "realized_pnl": pos.realized_pnl,
            "locked_qty": pos.locked_qty,
            "locked_day": pos.locked_day,
        }
        (work.updates if pos.stored else work.inserts).append((PositionRow, row))
        pos.stored = True

    # ORDER COMMANDS --------------------------------------------------------------------

    def reference_price(self, symbol: str) -> Decimal:
        """The price a market order or trailing stop starts from: the last, else prev close."""
        last = self.last_prices.get(symbol)
        if last is not None:
            return last
        listed = self.symbols.get(symbol)
        return listed.prev_close if listed is not None else Decimal(1)

    def on_new_order(self, work: Work, msg: Message, user: User) -> None:
        coid = msg.get("client_order_id")
        if coid is not None and (user.id, coid) in self.accounts.client_ids:
            self.reply_existing_order(work, msg, user, self.accounts.client_ids[(user.id, coid)])
            return
        symbol = msg["symbol"]
        spec = self.market.check_order(
            msg, self.reference_price(symbol), self.prev_closes.get(symbol)
        )
        placed = self.accounts.place(user.id, spec, coid, self.clock.now_ns())
        if isinstance(placed, Rejection):
            self.reply_error(work, msg, placed.code, placed.message)
            return
        if placed.pending:  # IOC or FOK: recorded once the matcher has decided
            self.pending_replies[placed.id] = [msg]
        else:
            self.record_accepted(work, placed)
            self.reply(work, msg, {"type": "order.accepted", "order": order_view(placed)})
        work.outbound.append((topics.MATCHER, None, self.book_add(placed)))

    def record_accepted(self, work: Work, order: Order) -> OrderView:
        self.store_order(work, order, new=True)
        if order.side == "sell":
            self.store_position(work, order.user_id, order.symbol)
        return self.event(work, order.user_id, "order.accepted", order)

    def accept_pending(self, work: Work, order: Order) -> None:
        """The matcher decided an IOC/FOK order: record it as accepted before the outcome."""
        if order.pending:
            order.status = "new"
            self.record_accepted(work, order)

    def answer_pending(self, work: Work, order: Order) -> None:
        """Reply to the requests waiting on an IOC/FOK order, once it is done."""
        if order.is_open:
            return
        view = order_view(order)
        for request in self.pending_replies.pop(order.id, []):
            self.reply(work, request, {"type": "order.accepted", "order": view})

    def reply_existing_order(self, work: Work, msg: Message, user: User, order_id: int) -> None:
        """A retried client_order_id: answer with the order it already created."""
        order = self.accounts.open_orders.get(order_id)
        if order is not None and order.pending:
            self.pending_replies[order.id].append(msg)
        elif order is not None:
            self.reply(work, msg, {"type": "order.accepted", "order": order_view(order)})
        else:
            query = {**msg, "type": "order.get", "order_id": order_id, "as": "order.accepted"}
            self.to_reader(work, query, user)

    def book_add(self, order: Order) -> Message:
        return {"type": "book.add", "epoch": self.epoch, "order": self.book_order(order)}

    @staticmethod
    def book_order(order: Order) -> Message:
        return {
            "order_id": order.id,
            "symbol": order.symbol,
            "side": order.side,
            "order_type": order.order_type,
            "time_in_force": order.time_in_force,
            "price": str(order.price),
            "stop_price": _text(order.stop_price),
            "trail_price": _text(order.trail_price),
            "trail_percent": _text(order.trail_percent),
            "triggered": order.triggered,
            "day": order.trading_day,
            "leaves_qty": str(order.leaves_qty),
            "cum_qty": str(order.filled_qty),
            "seq": order.id,
        }

    def open_order_of(self, work: Work, msg: Message, user: User) -> Order | None:
        """The user's open order `msg` names, not busy with a cancel or replacement; else
        answer why not and return None."""
        order = self.accounts.open_orders.get(msg["order_id"])
        if order is None or order.user_id != user.id:
            self.to_reader(work, {**msg, "type": "order.cancel_closed"}, user)
        elif order.pending:
            self.reply_error(
                work, msg, ErrorCode.REQUEST_ORDER_NOT_OPEN, f"order {order.id} is pending_new"
            )
        elif order.cancel_pending:
            self.reply_error(
                work, msg, ErrorCode.REQUEST_CANCEL_PENDING, f"order {order.id} is being canceled"
            )
        elif order.replacement is not None:
            self.reply_error(
                work, msg, ErrorCode.REQUEST_REPLACE_PENDING, f"order {order.id} is being replaced"
            )
        else:
            return order
        return None

    def on_cancel_order(self, work: Work, msg: Message, user: User) -> None:
        order = self.open_order_of(work, msg, user)
        if order is None:
            return
        self.cancel_waiters.setdefault(order.id, []).append(msg)
        self.send_cancel(work, order)

    def send_cancel(self, work: Work, order: Order) -> None:
        order.cancel_pending = True
        work.outbound.append(
            (
                topics.MATCHER,
                None,
                {
                    "type": "book.cancel",
                    "epoch": self.epoch,
                    "order_id": order.id,
                    "symbol": order.symbol,
                },
            )
        )

    def on_replace_order(self, work: Work, msg: Message, user: User) -> None:
        """A new order takes an open one's place, once the matcher confirms the old one has
        not filled meanwhile. The old one ends `replaced`, the new one keeps its type."""
        coid = msg.get("client_order_id")
        if coid is not None and (user.id, coid) in self.accounts.client_ids:
            self.reply_replacement_retry(work, msg, self.accounts.client_ids[(user.id, coid)])
            return
        old = self.open_order_of(work, msg, user)
        if old is None:
            return
        command = replacement_command(old, msg)
        if command["time_in_force"] in IMMEDIATE:
            raise RejectError(
                ErrorCode.REQUEST_TIF_NOT_ALLOWED, "a replacement rests: day or gtc only"
            )
        check_fits_type(old.order_type, command["time_in_force"], command)
        if old.triggered and any(msg.get(f) is not None for f in STOP_FIELDS):
            raise RejectError(
                ErrorCode.REQUEST_FIELD_NOT_ALLOWED,
                f"order {old.id} has triggered: its stop and trail no longer apply",
            )
        spec = self.market.check_order(
            command, self.reference_price(old.symbol), self.prev_closes[old.symbol]
        )
        new = self.accounts.request_replace(old, spec, coid, self.clock.now_ns())
        if isinstance(new, Rejection):
            self.reply_error(work, msg, new.code, new.message)
            return
        new.triggered = old.triggered  # a triggered stop's replacement works at once
        self.replacing[old.id] = (old, msg)
        replace: Message = {
            "type": "book.replace",
            "epoch": self.epoch,
            "old_id": old.id,
            "cum_qty": str(old.filled_qty),
            "triggered": old.triggered,
            "order": self.book_order(new),
        }
        work.outbound.append((topics.MATCHER, None, replace))

    def reply_replacement_retry(self, work: Work, msg: Message, order_id: int) -> None:
        """A replace whose client_order_id is taken: a retry of this very replace gets its
        replacement again; any other use of the id is refused."""
        order = self.accounts.open_orders.get(order_id)
        if order is not None and order.replaces == msg["order_id"]:
            self.reply(work, msg, {"type": "order.replaced", "order": order_view(order)})
            return
        old, _request = self.replacing.get(msg["order_id"], (None, None))
        if old is not None and old.replacement is not None and old.replacement.id == order_id:
            self.reply_error(
                work,
                msg,
                ErrorCode.REQUEST_REPLACE_PENDING,
                f"order {msg['order_id']} is being replaced",
            )
            return
        self.reply_error(
            work,
            msg,
            ErrorCode.REQUEST_DUPLICATE_CLIENT_ORDER_ID,
            f"client_order_id {msg['client_order_id']!r} belongs to order {order_id}",
        )

    # MATCHER MESSAGES ------------------------------------------------------------------

    def on_exec(self, work: Work, msg: Message) -> None:
        if msg["epoch"] != self.epoch:
            return  # decided on a book the last snapshot replaced; that snapshot reopened it
        order = self.accounts.open_orders.get(msg["order_id"])
        qty, price = Decimal(msg["qty"]), Decimal(msg["price"])
        if order is None or Decimal(msg["cum_qty"]) != order.filled_qty + qty:
            log.warning("stale fill for order %s ignored; resyncing the book", msg["order_id"])
            self.send_book_snapshot(work)
            return
        self.accept_pending(work, order)
        fill = self.accounts.fill(
            order, qty, price, msg["ts"], msg.get("liquidity", TAKER), msg.get("trading_day")
        )
        work.inserts.append((FillRow, fill_row(fill)))
        self.store_order(work, order)
        self.store_position(work, order.user_id, order.symbol)
        kind = "order.filled" if order.status == "filled" else "order.partially_filled"
        self.event(work, order.user_id, kind, order, fill)
        if not order.is_open:
            self.answer_pending(work, order)
            self.refuse_cancels(work, order.id, "filled before it could be canceled")

    def on_triggered(self, work: Work, msg: Message) -> None:
        if msg["epoch"] != self.epoch:
            return
        order = self.accounts.open_orders.get(msg["order_id"])
        if order is None:
            return
        order.ts_updated = msg["ts"]
        order.queue_after, order.queue_ts = msg.get("after", 0), msg["ts"]  # the back of its level
        self.accounts.trigger(order, Decimal(msg["stop_price"]), Decimal(msg["price"]))
        self.store_order(work, order)
        self.event(
            work, order.user_id, "order.triggered", order, detail=f"stop {msg['stop_price']}"
        )

    def on_book_canceled(self, work: Work, msg: Message) -> None:
        if msg["epoch"] != self.epoch:
            return
        order = self.accounts.open_orders.get(msg["order_id"])
        waiters = self.cancel_waiters.pop(msg["order_id"], [])
        if order is None:
            return
        self.cancel(work, order, waiters)

    def cancel(self, work: Work, order: Order, waiters: list[Message]) -> None:
        """Close an order the matcher no longer holds: expired if that is why it left,
        canceled otherwise (a cancel, the rest of an IOC)."""
        self.accept_pending(work, order)
        status = "expired" if order.expiring else "canceled"
        self.accounts.close(order, status, self.clock.now_ns())
        self.store_order(work, order)
        if order.side == "sell":
            self.store_position(work, order.user_id, order.symbol)
        view = self.event(work, order.user_id, f"order.{status}", order)
        for request in waiters:
            self.reply(work, request, {"type": "order.canceled", "order": view})
        self.answer_pending(work, order)

    def on_book_expired(self, work: Work, msg: Message) -> None:
        """A DAY order's trading day is over: the matcher took it out of the book."""
        if msg["epoch"] != self.epoch:
            return
        order = self.accounts.open_orders.get(msg["order_id"])
        waiters = self.cancel_waiters.pop(msg["order_id"], [])
        if order is not None:
            order.expiring = True
            self.cancel(work, order, waiters)

    def on_book_killed(self, work: Work, msg: Message) -> None:
        """A FOK the latest trade could not fill whole: its rejection is all that remains."""
        if msg["epoch"] != self.epoch:
            return
        order = self.accounts.open_orders.get(msg["order_id"])
        if order is not None and order.pending:
            self.kill(work, order, "the market could not fill all of it at once")

    def kill(self, work: Work, order: Order, reason: str) -> None:
        self.accounts.close(order, "rejected", self.clock.now_ns())
        self.store_order(work, order, new=True)
        self.event(work, order.user_id, "order.rejected", order, detail=reason)
        for request in self.pending_replies.pop(order.id, []):
            self.reply_error(
                work, request, ErrorCode.MATCH_FOK_NOT_FILLED, f"order {order.id}: {reason}"
            )

    def on_book_replaced(self, work: Work, msg: Message) -> None:
        if msg["epoch"] != self.epoch or msg["old_id"] not in self.replacing:
            return
        old, request = self.replacing.pop(msg["old_id"])
        new = self.accounts.replace(old, self.clock.now_ns())
        if msg.get("kept_place"):  # same price, no more qty: it stands where the old one stood
            new.queue_after, new.queue_ts = old.queue_key[:2]
        self.store_order(work, old)
        self.store_order(work, new, new=True)
        if new.side == "sell":
            self.store_position(work, new.user_id, new.symbol)
        old_view = self.event(work, old.user_id, "order.replaced", old, detail=f"by {new.id}")
        new_view = self.event(work, new.user_id, "order.accepted", new, detail=f"replaces {old.id}")
        self.reply(
            work, request, {"type": "order.replaced", "order": new_view, "replaced": old_view}
        )

    def on_replace_rejected(self, work: Work, msg: Message) -> None:
        if msg["epoch"] != self.epoch:
            return
        self.refuse_replace(work, msg["old_id"], "filled or closed before it could be replaced")

    def refuse_replace(self, work: Work, old_id: int, reason: str) -> None:
        old, request = self.replacing.pop(old_id, (None, None))
        if old is None or request is None:
            return
        self.accounts.unreplace(old)
        if old.side == "sell":
            self.store_position(work, old.user_id, old.symbol)
        self.reply_error(
            work, request, ErrorCode.MATCH_REPLACE_TOO_LATE, f"order {old_id} {reason}"
        )

    def on_cancel_rejected(self, work: Work, msg: Message) -> None:
        """The matcher no longer holds the order: it filled, or the book lost it."""
        if msg["epoch"] != self.epoch:
            return
        waiters = self.cancel_waiters.pop(msg["order_id"], [])
        order = self.accounts.open_orders.get(msg["order_id"])
        if order is not None:
            # Open here but not in the book: nothing can fill it, so the cancel stands.
            log.warning("order %d open in the ledger but not in the book; canceled", order.id)
            self.cancel(work, order, waiters)
            return
        self.refuse_cancels(work, msg["order_id"], "filled before it could be canceled", waiters)

    def refuse_cancels(
        self, work: Work, order_id: int, reason: str, waiters: list[Message] | None = None
    ) -> None:
        """Answer the cancels waiting on an order that closed some other way."""
        if waiters is None:
            waiters = self.cancel_waiters.pop(order_id, [])
        for request in waiters:
            self.reply_error(
                work, request, ErrorCode.REQUEST_ORDER_NOT_OPEN, f"order {order_id} {reason}"
            )

    def on_book_sync(self, work: Work, _msg: Message) -> None:
        self.send_book_snapshot(work)

    def send_book_snapshot(self, work: Work) -> None:
        """Give the matcher every open order under a new epoch; fills from older epochs are void.

        What was on its way to the old book is settled here: replacements are refused,
        undecided IOC/FOK orders end (canceled or rejected), and an IOC with fills is
        canceled through the new book. Epochs are only compared for equality, so a random
        one is enough and needs no clock.
        """
        previous = self.epoch
        while self.epoch == previous:
            self.epoch = secrets.randbits(62)
        for order_id in list(self.replacing):
            self.refuse_replace(work, order_id, "was not replaced: the matcher restarted")
        for order in list(self.accounts.open_orders.values()):
            if order.pending and order.time_in_force == "fok":
                self.kill(work, order, "the matcher restarted before it could fill")
            elif order.pending:
                self.cancel(work, order, [])
            elif order.time_in_force in IMMEDIATE:
                order.cancel_pending = True
        for order_id in list(self.cancel_waiters):
            if order_id not in self.accounts.open_orders:
                self.refuse_cancels(work, order_id, "closed before it could be canceled")
        orders = sorted(self.accounts.open_orders.values(), key=lambda o: o.queue_key)
        work.outbound.append(
            (
                topics.MATCHER,
                None,
                {
                    "type": "book.snapshot",
                    "epoch": self.epoch,
                    "orders": [self.book_order(o) for o in orders],
                    "cancels": [o.id for o in orders if o.cancel_pending],
                },
            )
        )

    # QUERIES ---------------------------------------------------------------------------

    def on_login(self, work: Work, msg: Message, user: User) -> None:
        self.reply(
            work,
            msg,
            {
                "type": "session.ready",
                "user_id": user.id,
                "name": user.name,
                "is_admin": user.is_admin,
            },
        )

    def current_account(self, user: User) -> Message:
        positions = self.accounts.user_positions(user.id)
        market_value = self.accounts.market_value(user.id, self.last_prices)
        cost = sum((p.cost_basis for p in positions), Decimal(0))
        return dict(account_view(user, self.accounts.accounts[user.id], market_value, cost))

    def on_get_account(self, work: Work, msg: Message, user: User) -> None:
        self.reply(work, msg, {"type": "account", "account": self.current_account(user)})

    def on_list_positions(self, work: Work, msg: Message, user: User) -> None:
        views = [
            position_view(p, self.last_prices.get(p.symbol), self.accounts.sellable(p))
            for p in self.accounts.user_positions(user.id)
        ]
        self.reply(work, msg, {"type": "positions", "positions": views})

    def on_list_symbols(self, work: Work, msg: Message, _user: User) -> None:
        symbols = []
        for s in self.symbols.values():
            p = self.market.rules(s.symbol)
            prev_close = self.prev_closes[s.symbol]
            low, high = p.price_band(s, prev_close)
            symbols.append(
                {
                    "symbol": s.symbol,
                    "name": s.name,
                    "profile": p.name,
                    "prev_close": str(prev_close),
                    "tick_size": str(p.tick_size),
                    "lot_size": wire_qty(p.lot_size),
                    "qty_step": wire_qty(p.qty_step),
                    "min_notional": number(p.min_notional),
                    "st": s.st,
                    "limit_down": str(low) if p.price_limits else None,
                    "limit_up": str(high) if p.price_limits else None,
                }
            )
        self.reply(work, msg, {"type": "symbols", "symbols": symbols})

    def on_get_stats(self, work: Work, msg: Message, user: User) -> None:
        self.to_reader(
            work, {**msg, "account": self.current_account(user), "now": self.clock.now_ns()}, user
        )

    def to_reader(self, work: Work, msg: Message, user: User) -> None:
        """Database queries run after the current batch commits, so they see its effects."""
        request = {**msg, "user_id": user.id}
        work.after.append(lambda: self.reader.tell(request))

    def to_controller(self, work: Work, msg: Message, user: User) -> None:
        work.outbound.append((topics.CONTROLLER, None, {**msg, "auth": None, "user_id": user.id}))

    def to_replay(self, work: Work, msg: Message, user: User) -> None:
        """Through the matcher: it passes the request on once the orders before it are in."""
        work.outbound.append((topics.MATCHER, None, {**msg, "auth": None, "user_id": user.id}))

    def on_replay_sync(self, work: Work, msg: Message) -> None:
        """A lock-step marker passed on by the matcher, after everything it sent on what
        the controller published before the marker."""
        self.synced_by_matcher = max(self.synced_by_matcher, msg["id"])
        self.settle(work)

    def settle(self, work: Work) -> None:
        """Once a marker came both ways (published, and through the matcher), all the
        controller published before it is settled here: say so when this work commits."""
        settled = min(self.synced_by_matcher, self.synced_here)
        if settled > self.settled:
            self.settled = settled
            answer = {"type": "replay.settled", "id": settled}
            work.outbound.append((topics.CONTROLLER, None, answer))

    # ADMIN -----------------------------------------------------------------------------

    def on_create_user(self, work: Work, msg: Message, _admin: User) -> None:
        cash = capital(msg["cash"])
        if msg["name"] in self.accounts.by_name:
            raise RejectError(ErrorCode.REQUEST_NAME_TAKEN, f"a user named {msg['name']!r} exists")
        token = new_token()
        user, rows = new_user_rows(
            max(self.accounts.users, default=0) + 1,
            msg["name"],
            token,
            cash,
            False,
            self.clock.now_ns(),
        )
        self.accounts.add_user(user, _account(user.id, cash))
        work.inserts.extend(rows)
        self.reply(
            work,
            msg,
            {
                "type": "user.created",
                "user_id": user.id,
                "name": user.name,
                "token": token,
                "cash": money(cash),
            },
        )
        log.info("user.created id=%d name=%s", user.id, user.name)

    def on_list_users(self, work: Work, msg: Message, _admin: User) -> None:
        users = []
        for user in sorted(self.accounts.users.values(), key=lambda u: u.id):
            view = self.current_account(user)
            users.append(
                {
                    "user_id": user.id,
                    "name": user.name,
                    "is_admin": user.is_admin,
                    "initial_cash": view["initial_cash"],
                    "cash": view["cash"],
                    "equity": view["equity"],
                }
            )
        self.reply(work, msg, {"type": "users", "users": users})

    def on_digest(self, work: Work, msg: Message, _admin: User) -> None:
        """Ask the matcher for its books behind the orders already sent to it; the digest
        is made when they come back, behind the fills it sent before them."""
        request = {"rid": msg["rid"], "gw": msg["gw"]}
        work.outbound.append((topics.MATCHER, None, {"type": "book.digest", "request": request}))

    def on_book_digested(self, work: Work, msg: Message) -> None:
        parts = {**ledger_parts(self.accounts, self.user_seqs), "books": msg["books"]}
        self.reply(work, msg["request"], {"type": "state.digest", **summary(parts)})

    def on_rotate_token(self, work: Work, msg: Message, caller: User) -> None:
        user = self._token_owner(msg, caller)
        token = new_token()
        self._replace_token(work, user, hash_token(token), "token.rotated")
        reply = {"type": "token.rotated", "user_id": user.id, "name": user.name, "token": token}
        self.reply(work, msg, reply)

    def on_revoke_token(self, work: Work, msg: Message, admin: User) -> None:
        user = self._token_owner(msg, admin)
        if user.is_admin:
            raise RejectError(
                ErrorCode.REQUEST_INVALID, "the admin token can be rotated, not revoked"
            )
        self._replace_token(work, user, revoked_hash(), "token.revoked")
        self.reply(work, msg, {"type": "token.revoked", "user_id": user.id, "name": user.name})

    def _token_owner(self, msg: Message, caller: User) -> User:
        """The user a token request is about: `user_id` (admin only), else the caller."""
        user_id = msg.get("user_id")
        if user_id is None or user_id == caller.id:
            return caller
        if not caller.is_admin:
            raise RejectError(
                ErrorCode.AUTH_NOT_ADMIN, "another user's token needs the admin token"
            )
        user = self.accounts.users.get(user_id)
        if user is None:
            raise RejectError(ErrorCode.REQUEST_NOT_FOUND, f"no user {user_id}")
        return user

    def _replace_token(self, work: Work, user: User, token_hash: str, kind: str) -> None:
        """Store the new hash and end the user's sessions at every gateway once it is
        committed: a session signed in with the old token must not keep its events."""
        self.accounts.set_token_hash(user, token_hash)
        now = self.clock.now_ns()
        work.updates.append((UserRow, {"id": user.id, "token_hash": token_hash}))
        work.inserts.append(operation_row(now, kind, detail=f"user {user.id} {user.name}"))
        ended = {"type": "session.end", "user_id": user.id, "reason": kind}
        work.outbound.append((topics.GATEWAY, None, ended))
        log.info("%s id=%d name=%s", kind, user.id, user.name)

    # BROADCASTS AND TIMERS -------------------------------------------------------------

    def on_broadcast(self, work: Work, message: Broadcast) -> None:
        self.clock.advance(message.messages[-1]["ts"])  # market time, if that is the clock
        if message.topic == topics.CONTROL:
            for state in message.messages:
                self.on_control(work, state)
        elif message.topic == topics.SYNC:
            self.synced_here = max(self.synced_here, message.messages[-1]["id"])
            self.settle(work)
        elif message.topic.startswith(topics.MARKET_PREFIX):
            last = message.messages[-1]  # a quote, or a replay's bar
            self.last_prices[last["symbol"]] = Decimal(last.get("last") or last["close"])
            self.prev_closes[last["symbol"]] = Decimal(last["prev_close"])

    def on_control(self, work: Work, state: Message) -> None:
        markets = state["markets"]
        self.accounts.trading_days = {name: m["trading_day"] for name, m in markets.items()}
        current = (state["state"], {name: m["session_open"] for name, m in markets.items()})
        previous, self.control = self.control, current
        if previous is None or previous == current:
            return
        if previous[0] != current[0]:
            self.system_entry(
                work, f"control.{current[0]}", f"run state {previous[0]} -> {current[0]}"
            )
        closed = False
        for name, open_ in current[1].items():
            if previous[1].get(name) != open_:
                self.system_entry(work, "session.open" if open_ else "session.close", name)
                closed = closed or not open_
        if closed:
            self.take_snapshots(work, "session_close")

    def take_snapshots(self, work: Work, reason: str) -> None:
        now = self.clock.now_ns()
        for user_id, account in self.accounts.accounts.items():
            market_value = self.accounts.market_value(user_id, self.last_prices)
            work.inserts.append(
                (
                    EquitySnapshotRow,
                    {
                        "user_id": user_id,
                        "ts_event": now,
                        "cash": account.cash,
                        "market_value": market_value,
                        "equity": account.cash + market_value,
                        "reason": reason,
                    },
                )
            )


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def replacement_command(old: Order, msg: Message) -> Message:
    """The order.new fields of the order replacing `old`: what `msg` changes, else old's."""
    command: Message = {
        "symbol": old.symbol,
        "side": old.side,
        "order_type": old.order_type,
        "time_in_force": msg.get("time_in_force") or old.time_in_force,
        "qty": msg.get("qty") or str(old.leaves_qty),
    }
    trail_given = any(msg.get(f) is not None for f in ("trail_price", "trail_percent"))
    for field in PRICE_FIELDS:
        if msg.get(field) is not None:
            command[field] = msg[field]
        elif old.order_type == "trailing_stop" and (trail_given or field == "stop_price"):
            continue  # a trailing stop's stop follows its trail; a new trail replaces the old
        else:
            command[field] = _text(getattr(old, field))
    return command


def capital(value: Any) -> Decimal:
    """A new user's starting cash: above 0, at most MAX_CASH, in whole cents.

    Raises:
        RejectError: REQUEST_INVALID_AMOUNT.
    """
    cash = parse_decimal(value, "cash", ErrorCode.REQUEST_INVALID_AMOUNT)
    if cash <= 0 or cash > MAX_CASH or cash != cash.quantize(Decimal("0.01")):
        raise RejectError(
            ErrorCode.REQUEST_INVALID_AMOUNT,
            f"cash must be above 0, at most {MAX_CASH}, in whole cents; got {value}",
        )
    return cash


def _account(user_id: int, cash: Decimal) -> Account:
    return Account(user_id=user_id, initial_cash=cash, cash=cash)


def new_user_rows(
    user_id: int, name: str, token: str, cash: Decimal, is_admin: bool, now_ns: int
) -> tuple[User, list[tuple[type, dict[str, Any]]]]:
    """A user, and the ledger rows that create it with its account."""
    user = User(id=user_id, name=name, token_hash=hash_token(token), is_admin=is_admin)
    rows: list[tuple[type, dict[str, Any]]] = [
        (
            UserRow,
            {
                "id": user_id,
                "name": name,
                "token_hash": user.token_hash,
                "is_admin": is_admin,
                "ts_created": now_ns,
            },
        ),
        (AccountRow, account_row(_account(user_id, cash), now_ns)),
        operation_row(now_ns, "user.created", detail=f"user {user_id} {name} with {cash}"),
    ]
    return user, rows


# WIRING --------------------------------------------------------------------------------


def main(settings: Settings) -> None:
    """Build the accountant in flow order: inbox, state from the ledger, actors, sockets."""
    process.setup_logging(settings, "accountant")
    with process.exclusive_lock(settings.data_dir / process.LEDGER_LOCK) as sole_writer:
        if not sole_writer:
            log.critical("another accountant writes this ledger; exiting")
            sys.exit(75)
        _serve(settings)


def _serve(settings: Settings) -> None:
    engine: Engine = make_engine(settings.database_url, settings.ledger.sqlite_synchronous)
    clock = clock_for(settings.control.clock, latest_time(engine))
    accounts, user_seqs = load_accounts(engine, Market.from_settings(settings))
    bus = process.bus_for(settings, "accountant")
    # 1. requests from gateways and answers from the matcher arrive on one inbox
    # 2. checked, reserved and recorded orders go to the matcher
    # 3. replies and private events go back to the gateway, after commit. PUSH, not PUB:
    #    a PUB drops what it sends while a restarted subscriber is still joining, and a
    #    PUSH queues it until the peer is back.
    bus.push_to(topics.MATCHER, settings.endpoints.matcher_in)
    bus.push_to(topics.CONTROLLER, settings.endpoints.controller_in)
    bus.push_to(topics.GATEWAY, settings.endpoints.gateway_in, drop_when_full=True)
    reader = Reader.start(engine, bus, settings)
    ledger = Ledger.start(engine, bus.send_many)
    accountant = Accountant.start(settings, clock, bus, accounts, user_seqs, ledger, reader)
    bus.pull(settings.endpoints.accountant_in, lambda msgs: accountant.tell(Inbox(msgs)))

    def lost(sender: str, _link: str, _count: int) -> None:
        if sender == topics.MATCHER:
            accountant.tell(MatcherLost())

    bus.on_lost(lost)
    bus.subscribe(
        settings.endpoints.control_pub,
        (topics.CONTROL, topics.MARKET_PREFIX, topics.SYNC),
        lambda topic, msgs: accountant.tell(Broadcast(topic, msgs)),
    )
    if settings.market.feed != "replay":  # a replay's snapshots: at each session close only,
        # on its own time, so that the same replay writes the same ledger however fast it runs
        bus.every(settings.stats.snapshot_interval, lambda: accountant.tell(SnapshotTick()))
    log.info(
        "accountant up: %d users, %d open orders, ledger %s",
        len(accounts.users),
        len(accounts.open_orders),
        engine.url.render_as_string(),
    )
    process.run(bus, [accountant, ledger, reader])


if __name__ == "__main__":
    main(process.settings_from_argv(sys.argv))
