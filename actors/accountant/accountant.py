"""The accountant's dispatch: each message from its inbox or the controller's broadcasts to
its handler, on the I/O loop, one burst at a time.

Client requests come through the gateway with the hash of the client's token; the user
is resolved here, and admin requests need the admin token. Orders go to the OrderDesk,
users and tokens to the AdminDesk, resets to the ResetDesk, share deposits to the
DepositDesk; account, positions and symbols are answered from memory; orders, fills,
history and stats from the ledger's tables (the Projector).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from actors.accountant.accounts import User
from actors.accountant.admin import AdminDesk
from actors.accountant.core import Core, Message
from actors.accountant.deposits import DepositDesk
from actors.accountant.orders import OrderDesk
from actors.accountant.resets import ResetDesk
from actors.accountant.views import position_view
from protocol import codec, topics
from protocol.codec import PROTOCOL_VERSION
from protocol.errors import ErrorCode, RejectError
from protocol.messages import (
    ADMIN_REQUESTS,
    CONTROLLER_REQUESTS,
    MATCHER_REQUESTS,
    REPLAY_REQUESTS,
)
from protocol.values import number, wire_qty

log = logging.getLogger("accountant")

SETTLED_EVERY = 4  # bar times between two replay.settled (controller/replayer.py)
SETTLED_TIMER = 0.02  # s: the settled bar times not reported yet are, at the latest


class Accountant:
    """Routes each message to its handler; the handlers fill `core.work`."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.accounts = core.accounts
        self.orders = OrderDesk(core)
        self.resets = ResetDesk(core, self.orders)
        self.deposits = DepositDesk(core, self.resets.pending)
        self.admin = AdminDesk(core, self.deposits)
        self.run_state: str | None = None
        self.sessions: dict[str, bool] | None = None  # each market's session, open or not
        # a replay's control states come with its steps, in order with its fills
        self.replaying = core.settings.market.feed == "replay"
        # a replay of daily bars opens and closes a session at each bar time: the entries
        # stay in the ledger, their log lines are asked for with DEBUG
        self.session_log_level = logging.DEBUG if self.replaying else logging.INFO
        self.settled = self.told_settled = 0  # a replay's bar times settled, and reported
        self.handlers: dict[str, Callable[[Message], None]] = {
            **self.orders.handlers,
            **self.admin.handlers,
            "replay.step": self.on_step,
            "replay.ok": self.relay,
            "control.applied": self.on_control_applied,
        }
        self.user_handlers: dict[str, Callable[[Message, User], None]] = {
            **self.orders.user_handlers,
            **self.admin.user_handlers,
            **self.resets.user_handlers,
            **self.deposits.user_handlers,
            "session.login": self.on_login,
            "account.get": self.on_get_account,
            "positions.list": self.on_list_positions,
            "symbols.list": self.on_list_symbols,
            "stats.get": self.on_get_stats,
            "order.get": self.on_get_order,
            "orders.list": core.query,
            "fills.list": core.query,
            "history.list": core.query,
            **{t: self.to_controller for t in CONTROLLER_REQUESTS},
            **{t: self.to_matcher for t in MATCHER_REQUESTS},
            **{t: self.to_replay for t in REPLAY_REQUESTS},
        }

    def handle(self, messages: list[Message]) -> None:
        """A burst from the inbox: requests from gateways, answers from the matcher."""
        for msg in messages:
            self.dispatch(msg)
        if self.resets.pending:
            self.resets.advance_all()

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
            "fill_mode": self.core.settings.trading.fill_mode,  # how orders fill (9.4)
        }
        self.core.reply(msg, ready)

    def on_get_order(self, msg: Message, user: User) -> None:
        """By id, or by client order id: each of a user's is kept with its order's id."""
        coid = msg.get("client_order_id")
        if coid is None:
            self.core.query(msg, user)
            return
        order_id = self.accounts.client_ids.get((user.id, coid))
        if order_id is None:
            message = f"no order with client_order_id {coid!r}"
            self.core.reply_error(msg, ErrorCode.REQUEST_UNKNOWN_ORDER, message)
            return
        self.core.query({**msg, "order_id": order_id}, user)

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
                    "mode": "exchange" if p.exchange else "paper",
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
        fill_mode = self.core.settings.trading.fill_mode
        self.core.reply(msg, {"type": "symbols", "symbols": symbols, "fill_mode": fill_mode})

    def on_get_stats(self, msg: Message, user: User) -> None:
        account = self.core.current_account(user)
        self.core.query({**msg, "account": account, "now": self.core.clock.now_ns()}, user)

    # PASSED ON -------------------------------------------------------------------------

    def relay(self, msg: Message) -> None:
        """The matcher's answer to a bot's replay.done, ahead of the step it let go."""
        self.core.send(topics.GATEWAY, msg)

    def on_control_applied(self, msg: Message) -> None:
        """The answer to a control.set, once the matcher has the new state."""
        self.core.send(topics.GATEWAY, msg["reply"])

    def to_controller(self, msg: Message, user: User) -> None:
        if self.replaying:  # first how far the replay is settled: the controller answers
            self.tell_settled()  # quotes and bars from all the bars the bots may have seen
        self.core.send(topics.CONTROLLER, {**msg, "auth": None, "user_id": user.id})

    def to_matcher(self, msg: Message, _user: User) -> None:
        """depth.get: the matcher holds the books, and answers the gateway itself (an
        unknown symbol is refused here, as orders on it are)."""
        self.core.market.listed(msg["symbol"])  # raises REQUEST_UNKNOWN_SYMBOL
        forwarded = {k: msg[k] for k in ("type", "symbol", "levels", "rid", "gw")}
        self.core.send(topics.MATCHER, forwarded)

    def to_replay(self, msg: Message, user: User) -> None:
        """Through the matcher: it passes the request on once the orders before it are in."""
        self.core.send(topics.MATCHER, {**msg, "auth": None, "user_id": user.id})

    # BROADCASTS ------------------------------------------------------------------------

    def on_broadcast(self, topic: str, messages: list[Message]) -> None:
        """The controller's public control state and quotes; a replay's control states
        and prices come with its steps (on_step), here only its run state."""
        core = self.core
        if topic == topics.CONTROL:
            if not self.replaying:
                core.clock.advance(messages[-1]["ts"])  # market time, if that is the clock
            for state in messages:
                self.on_run_state(state["state"])
                if not self.replaying:
                    self.on_control(state)
        elif topic.startswith(topics.MARKET_PREFIX) and not self.replaying:
            core.clock.advance(messages[-1]["ts"])
            last = messages[-1]  # a quote
            core.last_prices[last["symbol"]] = Decimal(last["last"])
            core.prev_closes[last["symbol"]] = Decimal(last["prev_close"])

    def on_step(self, step: Message) -> None:
        """A replay's bar time, behind the fills the matcher made on it: the control state
        of its last instant, the bars' closes as prices, the control state at the bar
        time (a session closing takes the equity snapshots at those prices). The
        controller hears it is settled, and the gateway gets it for the bots, once this
        burst is committed."""
        core = self.core
        fill, close = step["fill"], step["close"]
        core.clock.advance(fill["ts"])
        self.on_control(fill)
        prices, prev_closes = core.last_prices, core.prev_closes
        for symbol, _open, _high, _low, last, _volume, prev_close in step["bars"]:
            prices[symbol] = Decimal(last)
            prev_closes[symbol] = Decimal(prev_close)
        core.clock.advance(close["ts"])
        self.on_control(close)
        turned = {
            name
            for name, market in close["markets"].items()
            if market["trading_day"] != fill["markets"][name]["trading_day"]
        }
        if turned:  # a new trading day: its previous close is each symbol's last close
            for symbol, last in prices.items():
                if core.market.rules(symbol).name in turned:
                    prev_closes[symbol] = last
        self.settled = step["index"]
        if self.settled - self.told_settled >= SETTLED_EVERY or self.settled == step["count"]:
            self.tell_settled()
        # packed as the bots read it, with the bars the controller packed: the gateway
        # passes the bytes on
        public = {k: step[k] for k in ("type", "ts", "time", "index", "count")}
        packed = codec.with_fields(
            codec.encode(public), {"v": PROTOCOL_VERSION}, {"bars": step["packed_bars"]}
        )
        core.send(topics.GATEWAY, {"type": "replay.step", "ts": step["ts"], "body": packed})

    def tell_settled(self) -> None:
        """The controller hears how far the replay is settled: every SETTLED_EVERY bar
        times, at the last, and on the loop's timer (SETTLED_TIMER) for the rest; not at
        each bar time, which would wake it for each. Called on the loop, so what it
        reports is committed."""
        if self.settled > self.told_settled:
            self.told_settled = self.settled
            self.core.send(topics.CONTROLLER, {"type": "replay.settled", "index": self.settled})

    def on_run_state(self, state: str) -> None:
        previous, self.run_state = self.run_state, state
        if previous is not None and previous != state:
            self.core.system_entry(f"control.{state}", f"run state {previous} -> {state}")

    def on_control(self, state: Message) -> None:
        """Each market's trading day and session: an entry when a session opens or closes,
        and the equity snapshots when one closes."""
        markets: dict[str, Any] = state["markets"]
        self.accounts.trading_days = {name: m["trading_day"] for name, m in markets.items()}
        current = {name: m["session_open"] for name, m in markets.items()}
        previous, self.sessions = self.sessions, current
        if previous is None or previous == current:
            return
        closed = False
        for name, open_ in current.items():
            if previous.get(name) != open_:
                kind = "session.open" if open_ else "session.close"
                self.core.system_entry(kind, name, self.session_log_level)
                closed = closed or not open_
        if closed:
            self.core.take_snapshots("session_close")
