"""A synchronous Python client for the ZeroMQ API, for bots, tools and tests.

    from protocol.client import TradeClient
    with TradeClient("tcp://127.0.0.1:5555", token) as client:
        order = client.place_order("600000", "buy", 100, "8.50")
        print(client.next_event(timeout=5))   # e.g. order.filled

Requests wait for their reply; private events that arrive meanwhile are kept, in order,
for `next_event()`, and a replay's steps (`join_replay(steps=True)`) for `next_step()`.
`send()` and `recv()` pipeline many requests without waiting; `send_batch()` sends several
in one frame, and `take_replies()` collects their replies as they come.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import zmq

from protocol import codec
from protocol.codec import PROTOCOL_VERSION

Number = int | str | Decimal


class TradeError(Exception):
    """Raised when the server answers a request with an error; `code` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"TradeError({self.code!r}, {self.message!r})"


class TradeClient:
    def __init__(
        self,
        endpoint: str = "tcp://127.0.0.1:5555",
        token: str | None = None,
        timeout: float = 10.0,
        events: bool = True,
        context: zmq.Context[Any] | None = None,
        batch: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self.token = token
        self.timeout = timeout
        self.want_events = events
        self.batch = batch  # the server may put several messages in one frame (2.6)
        self._ctx = context or zmq.Context.instance()
        self._socket = self._ctx.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(endpoint)
        self._rids = itertools.count(1)
        self.events: deque[dict[str, Any]] = deque()
        self.steps: deque[dict[str, Any]] = deque()  # a replay's, when joined with steps
        self._inbox: deque[dict[str, Any]] = deque()  # received, not yet handed out
        self._replies: dict[Any, dict[str, Any]] = {}
        self.user: dict[str, Any] | None = None
        if token is not None:
            self.login(token)

    def __enter__(self) -> TradeClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._socket.close(linger=0)

    # PIPELINING ------------------------------------------------------------------------

    def send(self, type: str, **fields: Any) -> int:
        """Send one request without waiting; returns its rid."""
        rid = next(self._rids)
        self._socket.send(codec.encode({"v": PROTOCOL_VERSION, "type": type, "rid": rid, **fields}))
        return rid

    def send_batch(self, requests: list[tuple[str, dict[str, Any]]]) -> list[int]:
        """Send several requests in one frame, in order, without waiting; returns their
        rids. Their replies come one frame each (take_replies)."""
        rids = []
        batch = []
        for type, fields in requests:
            rid = next(self._rids)
            rids.append(rid)
            batch.append({"v": PROTOCOL_VERSION, "type": type, "rid": rid, **fields})
        self._socket.send(codec.encode(batch))
        return rids

    def take_replies(self) -> dict[Any, dict[str, Any]]:
        """The replies received so far to requests nobody waited for, by rid (taken)."""
        self._pump(0)
        replies, self._replies = self._replies, {}
        return replies

    def _keep(self, message: dict[str, Any]) -> None:
        """A message no caller waits for now: an event, a step, or another's reply."""
        kind = message.get("type")
        if kind == "event":
            self.events.append(message)
        elif kind == "replay.step":
            self.steps.append(message)
        elif message.get("rid") is not None:
            self._replies[message["rid"]] = message

    def _pump(self, timeout: float) -> bool:
        """Keep what has arrived, waiting up to `timeout` for the first; False if none."""
        message = self.recv(timeout)
        if message is None:
            return False
        self._keep(message)
        while True:
            while self._inbox:
                self._keep(self._inbox.popleft())
            if not self._socket.poll(0):
                return True
            self._read_frame()

    def send_raw(self, payload: bytes) -> None:
        """Send bytes as they are (for tests of what the server does with bad input)."""
        self._socket.send(payload)

    def recv(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next reply or event, or None after `timeout` seconds."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self._inbox:
            if not self._socket.poll(max(0, int((deadline - time.monotonic()) * 1000))):
                return None
            self._read_frame()
        return self._inbox.popleft()

    def _read_frame(self) -> None:
        """One frame's messages into the inbox: a map, or an array of them (a batch)."""
        decoded = codec.decode_internal(self._socket.recv())
        if isinstance(decoded, list):
            self._inbox.extend(decoded)
        else:
            self._inbox.append(decoded)

    # REQUESTS --------------------------------------------------------------------------

    def request(self, type: str, **fields: Any) -> dict[str, Any]:
        """Send a request and return its reply. Raises TradeError or TimeoutError."""
        reply = self._call(type, fields)
        if reply.get("code") == "AUTH_LOGIN_REQUIRED" and self.token and type != "session.login":
            self.login(self.token)  # the gateway restarted and forgot this connection
            reply = self._call(type, fields)
        if reply.get("type") == "error":
            raise TradeError(reply["code"], reply["message"])
        return reply

    def _call(self, type: str, fields: dict[str, Any]) -> dict[str, Any]:
        rid = self.send(type, **fields)
        deadline = time.monotonic() + self.timeout
        while True:
            if rid in self._replies:
                return self._replies.pop(rid)
            left = deadline - time.monotonic()
            message = self.recv(max(left, 0)) if left > 0 else None
            if message is None:
                raise TimeoutError(f"no reply to {type} within {self.timeout}s")
            if message.get("rid") == rid and message.get("type") not in ("event", "replay.step"):
                return message
            self._keep(message)

    def login(self, token: str) -> dict[str, Any]:
        self.token = token
        fields = {"events": self.want_events, **({"batch": True} if self.batch else {})}
        self.user = self.request("session.login", token=token, **fields)
        return self.user

    def ping(self) -> dict[str, Any]:
        return self.request("ping")

    def place_order(
        self,
        symbol: str,
        side: str,
        qty: Number,
        price: Number | None = None,
        client_order_id: str | None = None,
        *,
        order_type: str = "limit",
        time_in_force: str = "day",
        stop_price: Number | None = None,
        trail_price: Number | None = None,
        trail_percent: Number | None = None,
        post_only: bool = False,
        stp: str | None = None,
    ) -> dict[str, Any]:
        """Place an order; `price` is the limit price (limit and stop_limit orders).
        `post_only`: refused rather than take liquidity (a limit order, day or gtc);
        `stp`: self-trade prevention, `cancel_newest` (the server's default),
        `cancel_oldest` or `cancel_both`."""
        fields: dict[str, Any] = {
            "symbol": symbol,
            "side": side,
            "qty": _wire(qty),
            "order_type": order_type,
            "time_in_force": time_in_force,
            "client_order_id": client_order_id,
            "limit_price": price,
            "stop_price": stop_price,
            "trail_price": trail_price,
            "trail_percent": trail_percent,
            "post_only": post_only or None,  # sent only when set
            "stp": stp,
        }
        return self.request("order.new", **_present(fields))["order"]

    def replace_order(self, order_id: int, **changes: Any) -> dict[str, Any]:
        """Replace an open order (qty, time_in_force, limit_price, stop_price, trail_price,
        trail_percent, client_order_id); returns the reply: `order` (new), `replaced` (old)."""
        return self.request("order.replace", order_id=order_id, **_present(changes))

    def cancel_order(self, order_id: int) -> dict[str, Any]:
        return self.request("order.cancel", order_id=order_id)["order"]

    def get_order(self, order_id: int) -> dict[str, Any]:
        return self.request("order.get", order_id=order_id)["order"]

    def orders(self, status: str = "open", limit: int = 100) -> list[dict[str, Any]]:
        return self.request("orders.list", status=status, limit=limit)["orders"]

    def account(self) -> dict[str, Any]:
        return self.request("account.get")["account"]

    def positions(self) -> list[dict[str, Any]]:
        return self.request("positions.list")["positions"]

    def fills(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.request("fills.list", limit=limit)["fills"]

    def history(self, after_seq: int = 0, limit: int = 100) -> dict[str, Any]:
        return self.request("history.list", after_seq=after_seq, limit=limit)

    def stats(self) -> dict[str, Any]:
        return self.request("stats.get")["stats"]

    def quote(self, symbol: str) -> dict[str, Any]:
        return self.request("quote.get", symbol=symbol)["quote"]

    def depth(self, symbol: str, levels: int = 10) -> dict[str, Any]:
        """An exchange-mode symbol's book, `levels` price levels a side: the `depth`
        reply (`seq`, `bids` and `asks` as [price, qty], best first, `bid`, `ask`,
        `last`). A paper-mode symbol is refused: REQUEST_NOT_EXCHANGE."""
        return self.request("depth.get", symbol=symbol, levels=levels)

    def symbols(self) -> list[dict[str, Any]]:
        return self.request("symbols.list")["symbols"]

    def control(self) -> dict[str, Any]:
        return self.request("control.get")

    def set_control(self, state: str) -> dict[str, Any]:
        return self.request("control.set", state=state)

    def join_replay(self, steps: bool = False) -> dict[str, Any]:
        """Lock-step replay: each bar time now waits for this user's `replay_done`. With
        `steps` (a client taking events), each step also comes on this connection, behind
        the events of what came before it: `next_step()`."""
        return self.request("replay.join", **({"steps": True} if steps else {}))

    def replay_done(self, ts: int) -> dict[str, Any]:
        """Lock-step replay: done with the bar time `ts` (its orders acknowledged)."""
        return self.request("replay.done", ts=ts)

    def create_user(
        self, name: str, cash: Number, positions: dict[str, Number] | None = None
    ) -> dict[str, Any]:
        """(admin) A user with `cash` and, deposited as capital, `positions` (symbol ->
        qty): the `user.created` reply, with the token."""
        fields: dict[str, Any] = {"name": name, "cash": _wire(cash)}
        if positions:
            fields["positions"] = {s: _wire(q) for s, q in positions.items()}
        return self.request("user.create", **fields)

    def users(self) -> list[dict[str, Any]]:
        return self.request("user.list")["users"]

    def digest(self) -> dict[str, Any]:
        """(admin) A hash of the trading state, with its parts (docs/reliability.md)."""
        return self.request("state.digest")

    def rotate_token(self, user_id: int | None = None) -> dict[str, Any]:
        """A new token for yourself, or (admin) for `user_id`: `token.rotated` with it.
        The old token stops working and its sessions, this one too if it is yours, end."""
        fields = {} if user_id is None else {"user_id": user_id}
        reply = self.request("token.rotate", **fields)
        if self.user is not None and reply["user_id"] == self.user["user_id"]:
            self.token = reply["token"]  # the next request signs this connection in again
        return reply

    def reset_account(
        self, cash: Number | None = None, user_id: int | None = None
    ) -> dict[str, Any]:
        """Cancel the open orders, write off the positions and start a new account epoch
        with `cash` (default: the account's initial_cash); (admin) of `user_id`. Returns
        the `account.reset` reply: `reset` (what was done) and `account` (after)."""
        fields: dict[str, Any] = {}
        if cash is not None:
            fields["cash"] = _wire(cash)
        if user_id is not None:
            fields["user_id"] = user_id
        return self.request("account.reset", **fields)

    def deposit(self, user_id: int, symbol: str, qty: Number) -> dict[str, Any]:
        """(admin) Put `qty` shares of `symbol` into the account of `user_id` as capital:
        the `account.deposited` reply (`symbol`, `qty`, `price`, `value`, `position`)."""
        return self.request("account.deposit", user_id=user_id, symbol=symbol, qty=_wire(qty))

    def revoke_token(self, user_id: int) -> dict[str, Any]:
        """(admin) `user_id` can no longer sign in until its token is rotated."""
        return self.request("token.revoke", user_id=user_id)

    # EVENTS ----------------------------------------------------------------------------

    def next_event(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """The oldest private event not yet taken, waiting up to `timeout` seconds."""
        return self._next(self.events, timeout)

    def next_step(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """The oldest replay step not yet taken (joined with steps), waiting up to
        `timeout` seconds; the events that came before it are in `events` by then."""
        return self._next(self.steps, timeout)

    def _next(self, kept: deque[dict[str, Any]], timeout: float) -> dict[str, Any] | None:
        """The oldest of `kept` (events or steps), receiving until one is there."""
        deadline = time.monotonic() + timeout
        while not kept:
            left = deadline - time.monotonic()
            if left <= 0 or not self._pump(left):
                return None
        return kept.popleft()

    def wait_for(
        self, event: str, order_id: int | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Take events until one of kind `event` (for `order_id`, if given) arrives.

        Raises:
            TimeoutError: none came in time.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.next_event(max(0.0, deadline - time.monotonic()))
            if found is None:
                raise TimeoutError(f"no {event} event within {timeout}s")
            if found["event"] == event and (order_id is None or found["order"]["id"] == order_id):
                return found


class MarketData:
    """Public quotes and control state from the PUB endpoint."""

    def __init__(
        self,
        endpoint: str = "tcp://127.0.0.1:5556",
        topics: tuple[str, ...] = ("md.", "ctl"),
        context: zmq.Context[Any] | None = None,
    ) -> None:
        self._socket = (context or zmq.Context.instance()).socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        for topic in topics:
            self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self._socket.connect(endpoint)

    def next(self, timeout: float = 10.0) -> tuple[str, dict[str, Any]] | None:
        if not self._socket.poll(int(timeout * 1000)):
            return None
        topic, payload = self._socket.recv_multipart()
        return topic.decode(), codec.decode_internal(payload)

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        while True:
            item = self.next(3600)
            if item is not None:
                yield item

    def close(self) -> None:
        self._socket.close(linger=0)


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields that are set, numbers as wire values."""
    return {key: _wire(value) for key, value in fields.items() if value is not None}


def _wire(value: Number) -> int | str:
    return value if isinstance(value, int | str) else format(value, "f")
