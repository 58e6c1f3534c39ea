"""The order life cycle in the accountant: new orders, cancels and replacements from the
clients, and what the matcher answers (fills, triggers, cancels, expiries), with the book
snapshot that resynchronises the matcher.

The accountant owns both halves: it reserves before an order goes to the matcher and
settles after the matcher has decided (DESIGN.md). An IOC, FOK or post_only order is
recorded only once the matcher has decided it; a replacement takes its order's place only
once the matcher confirms the order has not filled meanwhile.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from decimal import Decimal

from actors.accountant.accounts import DEFAULT_STP, Order, Rejection, User
from actors.accountant.core import Core, Message
from actors.accountant.views import order_view
from actors.market.rules import TAKER
from protocol import codec, topics
from protocol.errors import ErrorCode, RejectError
from protocol.orders import IMMEDIATE, PRICE_FIELDS, STOP_FIELDS, check_fits_type

log = logging.getLogger("accountant")

# book.canceled's `reason`, when the matcher canceled an order on its own: the order's
# cancel_reason, and what its order.canceled event says (docs/protocol.md 5)
CANCEL_DETAILS = {
    "self_trade": "self-trade prevention: it would have traded with another order of yours",
    "ioc": "the rest of an IOC order: an IOC does not rest",
    "no_liquidity": "the book had nothing more to fill it with: a market order does not rest",
    "market_closed": "its market does not trade now: market and IOC orders do not rest",
    "post_only": "post_only: when trading resumed it would have taken liquidity",
}
# book.killed's `reason` (absent: fok): the refusal's code and words
KILLS: dict[str, tuple[ErrorCode, str]] = {
    "fok": (ErrorCode.MATCH_FOK_NOT_FILLED, "the market could not fill all of it at once"),
    "post_only": (
        ErrorCode.MATCH_POST_ONLY_WOULD_TAKE,
        "post_only: it would have traded at once, taking liquidity",
    ),
    "self_trade": (ErrorCode.MATCH_SELF_TRADE, CANCEL_DETAILS["self_trade"]),
    "market_closed": (
        ErrorCode.MATCH_FOK_NOT_FILLED,
        "its market does not trade now: a FOK fills at once or not at all",
    ),
}


# the matcher refuses cancels and replacements in parts of the call auctions
NO_CANCEL = "no_cancel"
NOT_CANCELABLE = (
    "cannot be canceled or replaced now: from 09:20 to the open and in the closing call "
    "auction, orders stay (docs/market-rules.md 1.9)"
)


class OrderDesk:
    """Handlers of order commands (from the gateway) and of the matcher's answers."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.accounts = core.accounts
        self.market = core.market
        self.send = core.send
        self.reply = core.reply
        self.reply_error = core.reply_error
        self.event = core.event
        self.store_order = core.store_order
        self.store_position = core.store_position
        self.to_reader = core.query
        self.epoch = 0  # of the book snapshot the matcher holds
        self.cancel_waiters: dict[int, list[Message]] = {}
        # IOC/FOK/post_only orders the matcher has not decided yet: the requests waiting on each
        self.pending_replies: dict[int, list[Message]] = {}
        # replacements on their way to the matcher: old order id -> (old order, request)
        self.replacing: dict[int, tuple[Order, Message]] = {}
        # users whose account is being reset (resets.py owns it): they may not trade
        self.resetting: Mapping[int, object] = {}
        self.handlers = {
            "exec": self.on_exec,
            "book.canceled": self.on_book_canceled,
            "book.cancel_rejected": self.on_cancel_rejected,
            "book.rested": self.on_book_rested,
            "book.killed": self.on_book_killed,
            "book.expired": self.on_book_expired,
            "book.triggered": self.on_triggered,
            "book.trailed": self.on_trailed,
            "book.replaced": self.on_book_replaced,
            "book.replace_rejected": self.on_replace_rejected,
            "book.sync": self.on_book_sync,
        }
        self.user_handlers = {
            "order.new": self.on_new_order,
            "order.replace": self.on_replace_order,
            "order.cancel": self.on_cancel_order,
        }

    # ORDER COMMANDS --------------------------------------------------------------------

    def refuse_while_resetting(self, user: User) -> None:
        if user.id in self.resetting:
            raise RejectError(
                ErrorCode.REQUEST_RESET_PENDING, "the account is being reset: try again after"
            )

    def on_new_order(self, msg: Message, user: User) -> None:
        self.refuse_while_resetting(user)
        coid = msg.get("client_order_id")
        if coid is not None and (user.id, coid) in self.accounts.client_ids:
            self.reply_existing_order(msg, user, self.accounts.client_ids[(user.id, coid)])
            return
        symbol = msg["symbol"]
        spec = self.market.check_order(
            msg, self.core.reference_price(symbol), self.core.prev_closes.get(symbol)
        )
        now = self.core.clock.now_ns()
        post_only, stp = bool(msg.get("post_only")), msg.get("stp") or DEFAULT_STP
        placed = self.accounts.place(user.id, spec, coid, now, post_only, stp)
        if isinstance(placed, Rejection):
            self.reply_error(msg, placed.code, placed.message)
            return
        if placed.pending:  # IOC, FOK or post_only: recorded once the matcher has decided
            self.pending_replies[placed.id] = [msg]
        else:
            view = self.record_accepted(placed)
            self.reply(msg, {"type": "order.accepted"}, {"order": view})
        self.send(topics.MATCHER, self.book_add(placed))

    def record_accepted(self, order: Order) -> bytes:
        self.store_order(order)
        if order.side == "sell":
            self.store_position(order.user_id, order.symbol)
        return self.event(order.user_id, "order.accepted", order)

    def accept_pending(self, order: Order) -> bytes | None:
        """The matcher decided a pending order: record it as accepted before the outcome;
        returns its view then (None if it was not pending)."""
        if not order.pending:
            return None
        order.status = "new"
        return self.record_accepted(order)

    def answer_pending(self, order: Order) -> None:
        """Reply to the requests waiting on an IOC/FOK order, once it is done."""
        if order.is_open or order.id not in self.pending_replies:
            return
        view = codec.encode(order_view(order))
        for request in self.pending_replies.pop(order.id):
            self.reply(request, {"type": "order.accepted"}, {"order": view})

    def reply_existing_order(self, msg: Message, user: User, order_id: int) -> None:
        """A retried client_order_id: answer with the order it already created."""
        order = self.accounts.open_orders.get(order_id)
        if order is not None and order.pending:
            self.pending_replies[order.id].append(msg)
        elif order is not None:
            self.reply(msg, {"type": "order.accepted", "order": order_view(order)})
        else:
            query = {**msg, "type": "order.get", "order_id": order_id, "as": "order.accepted"}
            self.to_reader(query, user)

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
            "user_id": order.user_id,
            "post_only": order.post_only,
            "stp": order.stp,
        }

    def open_order_of(self, msg: Message, user: User) -> Order | None:
        """The user's open order `msg` names, not busy with a cancel or replacement; else
        answer why not and return None."""
        order = self.accounts.open_orders.get(msg["order_id"])
        if order is None or order.user_id != user.id:
            self.to_reader({**msg, "type": "order.cancel_closed"}, user)
        elif order.pending:
            self.reply_error(
                msg, ErrorCode.REQUEST_ORDER_NOT_OPEN, f"order {order.id} is pending_new"
            )
        elif order.cancel_pending:
            self.reply_error(
                msg, ErrorCode.REQUEST_CANCEL_PENDING, f"order {order.id} is being canceled"
            )
        elif order.replacement is not None:
            self.reply_error(
                msg, ErrorCode.REQUEST_REPLACE_PENDING, f"order {order.id} is being replaced"
            )
        else:
            return order
        return None

    def on_cancel_order(self, msg: Message, user: User) -> None:
        order = self.open_order_of(msg, user)
        if order is None:
            return
        self.cancel_waiters.setdefault(order.id, []).append(msg)
        self.send_cancel(order)

    def send_cancel(self, order: Order) -> None:
        order.cancel_pending = True
        self.send(
            topics.MATCHER,
            {
                "type": "book.cancel",
                "epoch": self.epoch,
                "order_id": order.id,
                "symbol": order.symbol,
            },
        )

    def on_replace_order(self, msg: Message, user: User) -> None:
        """A new order takes an open one's place, once the matcher confirms the old one has
        not filled meanwhile. The old one ends `replaced`, the new one keeps its type."""
        self.refuse_while_resetting(user)
        coid = msg.get("client_order_id")
        if coid is not None and (user.id, coid) in self.accounts.client_ids:
            self.reply_replacement_retry(msg, self.accounts.client_ids[(user.id, coid)])
            return
        old = self.open_order_of(msg, user)
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
            command, self.core.reference_price(old.symbol), self.core.prev_closes[old.symbol]
        )
        new = self.accounts.request_replace(old, spec, coid, self.core.clock.now_ns())
        if isinstance(new, Rejection):
            self.reply_error(msg, new.code, new.message)
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
        self.send(topics.MATCHER, replace)

    def reply_replacement_retry(self, msg: Message, order_id: int) -> None:
        """A replace whose client_order_id is taken: a retry of this very replace gets its
        replacement again; any other use of the id is refused."""
        order = self.accounts.open_orders.get(order_id)
        if order is not None and order.replaces == msg["order_id"]:
            self.reply(msg, {"type": "order.replaced", "order": order_view(order)})
            return
        old, _request = self.replacing.get(msg["order_id"], (None, None))
        if old is not None and old.replacement is not None and old.replacement.id == order_id:
            self.reply_error(
                msg,
                ErrorCode.REQUEST_REPLACE_PENDING,
                f"order {msg['order_id']} is being replaced",
            )
            return
        self.reply_error(
            msg,
            ErrorCode.REQUEST_DUPLICATE_CLIENT_ORDER_ID,
            f"client_order_id {msg['client_order_id']!r} belongs to order {order_id}",
        )

    # MATCHER MESSAGES ------------------------------------------------------------------

    def on_exec(self, msg: Message) -> None:
        if msg["epoch"] != self.epoch:
            return  # decided on a book the last snapshot replaced; that snapshot reopened it
        order = self.accounts.open_orders.get(msg["order_id"])
        qty, price = Decimal(msg["qty"]), Decimal(msg["price"])
        if order is None or Decimal(msg["cum_qty"]) != order.filled_qty + qty:
            log.warning("stale fill for order %s ignored; resyncing the book", msg["order_id"])
            self.send_book_snapshot()
            return
        self.accept_pending(order)
        fill = self.accounts.fill(
            order, qty, price, msg["ts"], msg.get("liquidity", TAKER), msg.get("trading_day")
        )
        self.store_order(order)
        self.store_position(order.user_id, order.symbol)
        kind = "order.filled" if order.status == "filled" else "order.partially_filled"
        self.event(order.user_id, kind, order, fill)
        if not order.is_open:
            self.answer_pending(order)
            self.refuse_cancels(order.id, "filled before it could be canceled")

    def on_triggered(self, msg: Message) -> None:
        if msg["epoch"] != self.epoch:
            return
        order = self.accounts.open_orders.get(msg["order_id"])
        if order is None:
            return
        order.ts_updated = msg["ts"]
        order.queue_after, order.queue_ts = msg.get("after", 0), msg["ts"]  # the back of its level
        self.accounts.trigger(order, Decimal(msg["stop_price"]), Decimal(msg["price"]))
        self.store_order(order)
        self.event(order.user_id, "order.triggered", order, detail=f"stop {msg['stop_price']}")

    def on_trailed(self, msg: Message) -> None:
        """Trailing stops whose stop the market moved: the ledger keeps each stop, so a
        restarted matcher trails on from it (no event: the order view shows it)."""
        if msg["epoch"] != self.epoch:
            return
        work = self.core.work
        for order_id, stop in msg["stops"]:
            order = self.accounts.open_orders.get(order_id)
            if order is not None and not order.triggered:
                order.stop_price = Decimal(stop)
                order.ts_updated = msg["ts"]
                work.orders[order_id] = order
                work.order_rows.pop(order_id, None)  # a row made earlier in the burst is old

    def on_book_canceled(self, msg: Message) -> None:
        if msg["epoch"] != self.epoch:
            return
        order = self.accounts.open_orders.get(msg["order_id"])
        waiters = self.cancel_waiters.pop(msg["order_id"], [])
        if order is None:
            return
        reason = msg.get("reason")
        if reason is not None and reason not in CANCEL_DETAILS:
            log.warning("order %d canceled for an unknown reason %r", order.id, reason)
        self.cancel(order, waiters, reason)

    def cancel(self, order: Order, waiters: list[Message], reason: str | None = None) -> None:
        """Close an order the matcher no longer holds: expired if that is why it left,
        canceled otherwise (a cancel, the rest of an IOC, self-trade prevention: `reason`,
        a key of CANCEL_DETAILS, when the matcher canceled it on its own)."""
        self.accept_pending(order)
        status = "expired" if order.expiring else "canceled"
        self.accounts.close(order, status, self.core.clock.now_ns())
        detail = CANCEL_DETAILS.get(reason or "") if status == "canceled" else None
        if detail is not None:
            order.cancel_reason = reason
        self.store_order(order)
        if order.side == "sell":
            self.store_position(order.user_id, order.symbol)
        view = self.event(order.user_id, f"order.{status}", order, detail=detail)
        for request in waiters:
            self.reply(request, {"type": "order.canceled"}, {"order": view})
        self.answer_pending(order)

    def on_book_expired(self, msg: Message) -> None:
        """A DAY order's trading day is over: the matcher took it out of the book."""
        if msg["epoch"] != self.epoch:
            return
        order = self.accounts.open_orders.get(msg["order_id"])
        waiters = self.cancel_waiters.pop(msg["order_id"], [])
        if order is not None:
            order.expiring = True
            self.cancel(order, waiters)

    def on_book_rested(self, msg: Message) -> None:
        """A post_only order is in the book, taking nothing: it is accepted, and the
        requests waiting on it are answered as a limit order's would have been."""
        if msg["epoch"] != self.epoch:
            return
        order = self.accounts.open_orders.get(msg["order_id"])
        if order is None:
            return
        view = self.accept_pending(order)
        waiting = self.pending_replies.pop(order.id, [])
        if waiting and view is None:  # a fill came first and accepted it: as it is now
            view = codec.encode(order_view(order))
        for request in waiting:
            self.reply(request, {"type": "order.accepted"}, {"order": view})

    def on_book_killed(self, msg: Message) -> None:
        """An order that never rested, refused (`reason`, KILLS): a FOK the market could
        not fill whole, a post_only that would have taken; its rejection is all that remains."""
        if msg["epoch"] != self.epoch:
            return
        order = self.accounts.open_orders.get(msg["order_id"])
        if order is not None and order.pending:
            reason = msg.get("reason") or "fok"
            if reason not in KILLS:
                log.warning("order %d killed for an unknown reason %r", order.id, reason)
            code, words = KILLS.get(reason, KILLS["fok"])
            self.kill(order, words, code)

    def kill(
        self, order: Order, reason: str, code: ErrorCode = ErrorCode.MATCH_FOK_NOT_FILLED
    ) -> None:
        self.accounts.close(order, "rejected", self.core.clock.now_ns())
        self.store_order(order)
        self.event(order.user_id, "order.rejected", order, detail=reason)
        for request in self.pending_replies.pop(order.id, []):
            self.reply_error(request, code, f"order {order.id}: {reason}")

    def on_book_replaced(self, msg: Message) -> None:
        if msg["epoch"] != self.epoch or msg["old_id"] not in self.replacing:
            return
        old, request = self.replacing.pop(msg["old_id"])
        new = self.accounts.replace(old, self.core.clock.now_ns())
        if msg.get("kept_place"):  # same price, no more qty: it stands where the old one stood
            new.queue_after, new.queue_ts = old.queue_key[:2]
        self.store_order(old)
        self.store_order(new)
        if new.side == "sell":
            self.store_position(new.user_id, new.symbol)
        old_view = self.event(old.user_id, "order.replaced", old, detail=f"by {new.id}")
        new_view = self.event(new.user_id, "order.accepted", new, detail=f"replaces {old.id}")
        self.reply(request, {"type": "order.replaced"}, {"order": new_view, "replaced": old_view})

    def on_replace_rejected(self, msg: Message) -> None:
        """The old order filled or closed meanwhile, or (`reason` "post_only") the
        replacement of a post_only order would have taken: the old one stays as it is."""
        if msg["epoch"] != self.epoch:
            return
        if msg.get("reason") == "post_only":
            self.refuse_replace(
                msg["old_id"],
                "was not replaced: post_only, and the replacement would have traded at once",
                ErrorCode.MATCH_POST_ONLY_WOULD_TAKE,
            )
            return
        if msg.get("reason") == NO_CANCEL:
            self.refuse_replace(msg["old_id"], NOT_CANCELABLE, ErrorCode.MATCH_NOT_CANCELABLE)
            return
        self.refuse_replace(msg["old_id"], "filled or closed before it could be replaced")

    def refuse_replace(
        self, old_id: int, reason: str, code: ErrorCode = ErrorCode.MATCH_REPLACE_TOO_LATE
    ) -> None:
        old, request = self.replacing.pop(old_id, (None, None))
        if old is None or request is None:
            return
        self.accounts.unreplace(old)
        if old.side == "sell":
            self.store_position(old.user_id, old.symbol)
        self.reply_error(request, code, f"order {old_id} {reason}")

    def on_cancel_rejected(self, msg: Message) -> None:
        """The matcher no longer holds the order: it filled, or the book lost it."""
        if msg["epoch"] != self.epoch:
            return
        waiters = self.cancel_waiters.pop(msg["order_id"], [])
        order = self.accounts.open_orders.get(msg["order_id"])
        if order is not None and msg.get("reason") == NO_CANCEL:  # a call auction's rule
            order.cancel_pending = False
            code = ErrorCode.MATCH_NOT_CANCELABLE
            self.refuse_cancels(order.id, NOT_CANCELABLE, waiters, code)
            return
        if order is not None:
            # Open here but not in the book: nothing can fill it, so the cancel stands.
            log.warning("order %d open in the ledger but not in the book; canceled", order.id)
            self.cancel(order, waiters)
            return
        self.refuse_cancels(msg["order_id"], "filled before it could be canceled", waiters)

    def refuse_cancels(
        self,
        order_id: int,
        reason: str,
        waiters: list[Message] | None = None,
        code: ErrorCode = ErrorCode.REQUEST_ORDER_NOT_OPEN,
    ) -> None:
        """Answer the cancels waiting on an order that closed some other way (or that the
        matcher may not cancel now)."""
        if waiters is None:
            waiters = self.cancel_waiters.pop(order_id, [])
        for request in waiters:
            self.reply_error(request, code, f"order {order_id} {reason}")

    def on_book_sync(self, _msg: Message) -> None:
        self.send_book_snapshot()

    def send_book_snapshot(self) -> None:
        """Give the matcher every open order under a new epoch; fills from older epochs are void.

        What was on its way to the old book is settled here: replacements are refused,
        undecided IOC/FOK/post_only orders end (canceled or rejected), and an IOC with
        fills is canceled through the new book. Epochs are only compared for equality, so a random
        one is enough and needs no clock.
        """
        previous = self.epoch
        while self.epoch == previous:
            self.epoch = secrets.randbits(62)
        for order_id in list(self.replacing):
            self.refuse_replace(order_id, "was not replaced: the matcher restarted")
        for order in list(self.accounts.open_orders.values()):
            if order.pending and order.time_in_force == "fok":
                self.kill(order, "the matcher restarted before it could fill")
            elif order.pending and order.post_only:
                self.kill(
                    order,
                    "the matcher restarted before it could rest; nothing was done, place it again",
                    ErrorCode.SYSTEM_UNAVAILABLE,
                )
            elif order.pending:
                self.cancel(order, [])
            elif order.time_in_force in IMMEDIATE:
                order.cancel_pending = True
        for order_id in list(self.cancel_waiters):
            if order_id not in self.accounts.open_orders:
                self.refuse_cancels(order_id, "closed before it could be canceled")
        orders = sorted(self.accounts.open_orders.values(), key=lambda o: o.queue_key)
        self.send(
            topics.MATCHER,
            {
                "type": "book.snapshot",
                "epoch": self.epoch,
                "orders": [self.book_order(o) for o in orders],
                "cancels": [o.id for o in orders if o.cancel_pending],
            },
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
