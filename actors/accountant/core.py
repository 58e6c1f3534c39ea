"""What the accountant's handlers share: its state, and the burst's `Work` they fill.

Handlers run on the accountant's I/O loop, one burst of messages at a time. They change
the plain `Accounts` and record what happened in `core.work`: ledger rows for the journal,
messages to send once the journal entry is committed, queries to run after it. Replies
and private events are msgpack-packed here, once, as the client will read them: the
gateway passes their bytes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from actors.accountant.accounts import Accounts, Fill, Order, Position, User
from actors.accountant.rows import (
    Row,
    account_row,
    fill_row,
    operation_row,
    order_row,
    position_row,
    snapshot_row,
)
from actors.accountant.views import account_view, fill_view_of_row, order_view_of_row
from actors.market.rules import Market
from actors.runtime import process
from actors.runtime.clock import Clock
from protocol import codec, topics
from protocol.codec import PROTOCOL_VERSION
from protocol.errors import ErrorCode, error_body
from protocol.settings import Settings
from protocol.values import money, number

log = logging.getLogger("accountant")
Message = dict[str, Any]
Outbound = tuple[str, str | None, Message]  # (peer, topic, message) for Bus.send_many


@dataclass
class Work:
    """What one burst decided: rows to journal, and what to do once they are committed.

    Orders, accounts and positions the burst changed are noted, and their rows made once,
    as they are at its end (`Core.take_work`): a burst that fills twenty orders of one
    user writes that user's account once."""

    rows: list[Row] = field(default_factory=list)
    outbound: list[Outbound] = field(default_factory=list)
    queries: list[Message] = field(default_factory=list)  # for the Projector, in order
    orders: dict[int, Order] = field(default_factory=dict)
    order_rows: dict[int, Row] = field(default_factory=dict)  # made for an event already
    accounts: dict[int, int] = field(default_factory=dict)  # user id -> time of the change
    positions: dict[tuple[int, str], Position] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.rows or self.outbound or self.queries or self.orders or self.positions)


class Core:
    """The accountant's state and the helpers that turn changes into rows and messages."""

    def __init__(
        self, settings: Settings, clock: Clock, accounts: Accounts, user_seqs: dict[int, int]
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.accounts = accounts
        self.market: Market = accounts.market
        self.symbols = self.market.symbols
        self.user_seqs = user_seqs
        self.last_prices: dict[str, Decimal] = {}
        self.prev_closes = {s.symbol: s.prev_close for s in settings.market.symbols}
        self.work = Work()

    def take_work(self) -> Work:
        """The burst's work, its changed orders, accounts and positions made rows."""
        work, self.work = self.work, Work()
        rows = work.rows
        made = work.order_rows
        rows += (made.get(key) or order_row(order) for key, order in work.orders.items())
        accounts = self.accounts.accounts
        rows += (account_row(accounts[user], ts) for user, ts in work.accounts.items())
        rows += map(position_row, work.positions.values())
        return work

    # REPLIES AND EVENTS ----------------------------------------------------------------

    def send(self, peer: str, message: Message) -> None:
        self.work.outbound.append((peer, None, message))

    def reply(
        self, request: Message, body: Message, packed_values: dict[str, bytes] | None = None
    ) -> None:
        """The reply to a gateway's request, packed as the client reads it (without its
        request id, which the gateway adds); `packed_values` are fields packed already."""
        body["v"] = PROTOCOL_VERSION
        packed = codec.encode(body)
        if packed_values:
            packed = codec.with_fields(packed, {}, packed_values)
        routed = {"gw": request["gw"], "rid": request["rid"], "body": packed}
        self.work.outbound.append((topics.GATEWAY, None, routed))

    def reply_error(self, request: Message, code: ErrorCode, message: str) -> None:
        self.reply(request, dict(error_body(code, message)))

    def event(
        self,
        user_id: int,
        kind: str,
        order: Order,
        fill: Fill | None = None,
        detail: str | None = None,
    ) -> bytes:
        """One private event for the user and one operation-log row, with the same seq;
        the order's row (and the fill's) is made here, once, for the event and the ledger.

        Returns the order's view, packed, for a reply that goes out with the event.
        """
        seq, body = self._event_body(user_id, kind, {})
        cash = self.accounts.accounts[user_id].cash
        self.work.rows.append(
            operation_row(
                order.ts_updated,
                kind,
                user_id=user_id,
                seq=seq,
                order_id=order.id,
                symbol=order.symbol,
                side=order.side,
                qty=fill.qty if fill else order.qty,
                price=fill.price if fill else order.limit_price or order.stop_price,
                status=order.status,
                cash=cash,
                detail=detail,
            )
        )
        row = order_row(order)
        self.work.order_rows[order.id] = row
        view = codec.encode(order_view_of_row(order, row[1]))
        values = {"order": view}
        if fill is not None:
            held = self.accounts.position(user_id, order.symbol).qty
            body["position_qty"] = number(held)  # after this fill (Alpaca's position_qty)
            made = fill_row(fill)
            self.work.rows.append(made)
            values["fill"] = codec.encode(fill_view_of_row(made[1]))
        packed = codec.with_fields(codec.encode(body), {}, values)
        routed = {"type": "event", "user_id": user_id, "body": packed}
        self.work.outbound.append((topics.GATEWAY, None, routed))
        process.activity("accountant", f"{kind} order={order.id} user={user_id} {order.status}")
        return view

    def _event_body(
        self, user_id: int, kind: str, values: dict[str, Message]
    ) -> tuple[int, dict[str, Any]]:
        """The user's next event seq, and the event with `values` and the account's cash."""
        seq = self.user_seqs.get(user_id, 0) + 1
        self.user_seqs[user_id] = seq
        account = self.accounts.accounts[user_id]
        cash, reserved = account.cash, account.reserved_cash
        body = {
            "type": "event",
            "event": kind,
            "seq": seq,
            **values,
            "account": {
                "cash": money(cash),
                "reserved_cash": money(reserved),
                "available_cash": money(cash - reserved),
            },
            "v": PROTOCOL_VERSION,
        }
        return seq, body

    def account_event(
        self,
        user_id: int,
        kind: str,
        now_ns: int,
        detail: str,
        values: dict[str, Message],
        **entry: Any,
    ) -> None:
        """A private event about the account itself (no order), with its operation-log
        row under the same seq; `values` are fields of the event beside `account`, `entry`
        more fields of the row (symbol, qty, price)."""
        seq, body = self._event_body(user_id, kind, values)
        cash = self.accounts.accounts[user_id].cash
        self.work.rows.append(
            operation_row(now_ns, kind, user_id=user_id, seq=seq, cash=cash, detail=detail, **entry)
        )
        routed = {"type": "event", "user_id": user_id, "body": codec.encode(body)}
        self.work.outbound.append((topics.GATEWAY, None, routed))
        process.activity("accountant", f"{kind} user={user_id}")

    def query(self, msg: Message, user: User) -> None:
        """Answered from the ledger's tables once this burst is committed and written there."""
        self.work.queries.append({**msg, "user_id": user.id})

    def end_sessions(self, user: User, reason: str) -> None:
        """Every gateway ends the user's sessions once this is committed."""
        ended = {"type": "session.end", "user_id": user.id, "reason": reason}
        self.work.outbound.append((topics.GATEWAY, None, ended))

    # LEDGER ROWS -----------------------------------------------------------------------

    def system_entry(self, kind: str, detail: str, log_level: int = logging.INFO) -> None:
        self.work.rows.append(operation_row(self.clock.now_ns(), kind, detail=detail))
        log.log(log_level, "%s %s", kind, detail)

    def store_order(self, order: Order) -> None:
        """The order's row and its account's, as they are at the end of the burst."""
        work = self.work
        work.orders[order.id] = order
        work.accounts[order.user_id] = order.ts_updated

    def store_position(self, user_id: int, symbol: str) -> None:
        self.work.positions[(user_id, symbol)] = self.accounts.position(user_id, symbol)

    def take_snapshots(self, reason: str) -> None:
        now = self.clock.now_ns()
        for user_id in self.accounts.accounts:
            self.take_snapshot(user_id, now, reason)

    def take_snapshot(self, user_id: int, now_ns: int, reason: str) -> None:
        account = self.accounts.accounts[user_id]
        market_value = self.accounts.market_value(user_id, self.last_prices)
        self.work.rows.append(
            snapshot_row(user_id, now_ns, account.cash, market_value, reason, account.epoch)
        )

    # VIEWS -----------------------------------------------------------------------------

    def reference_price(self, symbol: str) -> Decimal:
        """The price a market order or trailing stop starts from: the last, else prev close."""
        last = self.last_prices.get(symbol)
        if last is not None:
            return last
        listed = self.symbols.get(symbol)
        return listed.prev_close if listed is not None else Decimal(1)

    def current_account(self, user: User) -> Message:
        positions = self.accounts.user_positions(user.id)
        market_value = self.accounts.market_value(user.id, self.last_prices)
        cost = sum((p.cost_basis for p in positions), Decimal(0))
        return dict(account_view(user, self.accounts.accounts[user.id], market_value, cost))
