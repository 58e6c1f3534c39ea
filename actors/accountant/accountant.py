"""The accountant's dispatch: each message from its inbox or the controller's broadcasts to
its handler, on the I/O loop, one burst at a time.

Client requests come through the gateway with the hash of the client's token; the user
is resolved here, and admin requests need the admin token. Orders go to the OrderDesk,
users and tokens to the AdminDesk; account, positions and symbols are answered from
memory; orders, fills, history and stats from the ledger's tables (the Projector).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from actors.accountant.accounts import User
from actors.accountant.admin import AdminDesk
from actors.accountant.core import Core, Message
from actors.accountant.orders import OrderDesk
from actors.accountant.views import position_view
from protocol import topics
from protocol.errors import ErrorCode, RejectError
from protocol.messages import ADMIN_REQUESTS, CONTROLLER_REQUESTS, REPLAY_REQUESTS
from protocol.values import number, wire_qty

log = logging.getLogger("accountant")


class Accountant:
    """Routes each message to its handler; the handlers fill `core.work`."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.accounts = core.accounts
        self.orders = OrderDesk(core)
        self.admin = AdminDesk(core)
        self.control: tuple[str, dict[str, bool]] | None = None  # run state, sessions open
        # a lock-step replay's markers: the last seen published, through the matcher, answered
        self.synced_here = self.synced_by_matcher = self.settled = 0
        self.handlers: dict[str, Callable[[Message], None]] = {
            **self.orders.handlers,
            **self.admin.handlers,
            "replay.sync": self.on_replay_sync,
        }
        self.user_handlers: dict[str, Callable[[Message, User], None]] = {
            **self.orders.user_handlers,
            **self.admin.user_handlers,
            "session.login": self.on_login,
            "account.get": self.on_get_account,
            "positions.list": self.on_list_positions,
            "symbols.list": self.on_list_symbols,
            "stats.get": self.on_get_stats,
            "order.get": core.query,
            "orders.list": core.query,
            "fills.list": core.query,
            "history.list": core.query,
            **{t: self.to_controller for t in CONTROLLER_REQUESTS},
            **{t: self.to_replay for t in REPLAY_REQUESTS},
        }

    def handle(self, messages: list[Message]) -> None:
        """A burst from the inbox: requests from gateways, answers from the matcher."""
        for msg in messages:
            self.dispatch(msg)

    def dispatch(self, msg: Message) -> None:
        kind = msg.get("type")
        handler = self.handlers.get(kind)  # type: ignore[arg-type]
        if handler is not None:
            handler(msg)
            return
        user_handler = self.user_handlers.get(kind)  # type: ignore[arg-type]
        if user_handler is None:
            log.error("unknown message type %r; ignored", kind)
            if "gw" in msg:
                self.core.reply_error(msg, ErrorCode.REQUEST_UNKNOWN_TYPE, f"unknown type {kind!r}")
            return
        user = self.accounts.user_for_token(msg.get("auth", ""))
        if user is None:
            self.core.reply_error(msg, ErrorCode.AUTH_INVALID_TOKEN, "no user has this token")
        elif kind in ADMIN_REQUESTS and not user.is_admin:
            self.core.reply_error(msg, ErrorCode.AUTH_NOT_ADMIN, f"{kind} needs the admin token")
        else:
            try:
                user_handler(msg, user)
            except RejectError as rej:
                self.core.reply_error(msg, rej.code, rej.message)

    # ANSWERED FROM MEMORY --------------------------------------------------------------

    def on_login(self, msg: Message, user: User) -> None:
        ready = {
            "type": "session.ready",
            "user_id": user.id,
            "name": user.name,
            "is_admin": user.is_admin,
        }
        self.core.reply(msg, ready)

    def on_get_account(self, msg: Message, user: User) -> None:
        self.core.reply(msg, {"type": "account", "account": self.core.current_account(user)})

    def on_list_positions(self, msg: Message, user: User) -> None:
        last = self.core.last_prices
        views = [
            position_view(p, last.get(p.symbol), self.accounts.sellable(p))
            for p in self.accounts.user_positions(user.id)
        ]
        self.core.reply(msg, {"type": "positions", "positions": views})

    def on_list_symbols(self, msg: Message, _user: User) -> None:
        symbols = []
        for s in self.core.symbols.values():
            p = self.core.market.rules(s.symbol)
            prev_close = self.core.prev_closes[s.symbol]
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
        self.core.reply(msg, {"type": "symbols", "symbols": symbols})

    def on_get_stats(self, msg: Message, user: User) -> None:
        account = self.core.current_account(user)
        self.core.query({**msg, "account": account, "now": self.core.clock.now_ns()}, user)

    # PASSED ON -------------------------------------------------------------------------

    def to_controller(self, msg: Message, user: User) -> None:
        self.core.send(topics.CONTROLLER, {**msg, "auth": None, "user_id": user.id})

    def to_replay(self, msg: Message, user: User) -> None:
        """Through the matcher: it passes the request on once the orders before it are in."""
        self.core.send(topics.MATCHER, {**msg, "auth": None, "user_id": user.id})

    def on_replay_sync(self, msg: Message) -> None:
        """A lock-step marker passed on by the matcher, after everything it sent on what
        the controller published before the marker."""
        self.synced_by_matcher = max(self.synced_by_matcher, msg["id"])
        self.settle()

    def settle(self) -> None:
        """Once a marker came both ways (published, and through the matcher), all the
        controller published before it is settled here: say so when this work commits."""
        settled = min(self.synced_by_matcher, self.synced_here)
        if settled > self.settled:
            self.settled = settled
            self.core.send(topics.CONTROLLER, {"type": "replay.settled", "id": settled})

    # BROADCASTS ------------------------------------------------------------------------

    def on_broadcast(self, topic: str, messages: list[Message]) -> None:
        core = self.core
        core.clock.advance(messages[-1]["ts"])  # market time, if that is the clock
        if topic == topics.CONTROL:
            for state in messages:
                self.on_control(state)
        elif topic == topics.SYNC:
            self.synced_here = max(self.synced_here, messages[-1]["id"])
            self.settle()
        elif topic.startswith(topics.MARKET_PREFIX):
            last = messages[-1]  # a quote, or a replay's bar
            core.last_prices[last["symbol"]] = Decimal(last.get("last") or last["close"])
            core.prev_closes[last["symbol"]] = Decimal(last["prev_close"])

    def on_control(self, state: Message) -> None:
        markets: dict[str, Any] = state["markets"]
        self.accounts.trading_days = {name: m["trading_day"] for name, m in markets.items()}
        current = (state["state"], {name: m["session_open"] for name, m in markets.items()})
        previous, self.control = self.control, current
        if previous is None or previous == current:
            return
        if previous[0] != current[0]:
            self.core.system_entry(
                f"control.{current[0]}", f"run state {previous[0]} -> {current[0]}"
            )
        closed = False
        for name, open_ in current[1].items():
            if previous[1].get(name) != open_:
                self.core.system_entry("session.open" if open_ else "session.close", name)
                closed = closed or not open_
        if closed:
            self.core.take_snapshots("session_close")
