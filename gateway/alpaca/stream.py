"""Alpaca's two websockets: `trade_updates` (/stream) and market data (/v2/{feed}).

Both are views of what the gateway already receives: a user's private events (the same
queues as GET /v1/events, gateway/streams.py) and the controller's public broadcasts.
Messages follow Alpaca's shapes; docs/alpaca.md gives them field by field.

- /stream speaks JSON: `{"action": "authenticate", "data": {"key_id", "secret_key"}}`,
  then `{"action": "listen", "data": {"streams": ["trade_updates"]}}`; each order event
  comes as `{"stream": "trade_updates", "data": {"event", "order", ...}}`.
- /v2/iex (or sip, delayed_sip, test) speaks msgpack when the client sends
  `Content-Type: application/msgpack` (as alpaca-py does), else JSON; every frame is an
  array of messages with a `T` type: success, error, subscription, t, q, b.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgpack
from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.alpaca import shapes
from gateway.alpaca.ids import execution_uuid
from gateway.alpaca.lockstep import LockStepBots
from gateway.core import Gateway
from gateway.streams import Sessions, StreamEnd
from protocol import topics
from protocol.tokens import hash_token, key_id

log = logging.getLogger("gateway")
AUTH_TIMEOUT_S = 10.0  # Alpaca closes a connection that does not authenticate in time
MAX_QUEUED = 5_000  # market messages waiting for one slow client, which is then closed
FEEDS = ("iex", "sip", "delayed_sip", "test")
MINUTE_NS = 60_000_000_000
CHANNELS = ("trades", "quotes", "bars")
NOT_SERVED = ("updatedBars", "dailyBars", "statuses", "lulds", "orderbooks")
_ORDER_EVENTS = {
    "order.accepted": "new",
    "order.partially_filled": "partial_fill",
    "order.filled": "fill",
    "order.canceled": "canceled",
    "order.expired": "expired",
    "order.replaced": "replaced",
    "order.rejected": "rejected",
}  # order.triggered has no Alpaca event: the order goes on as it was
JSON = dict[str, Any]


async def _receive(ws: WebSocket, timeout: float | None = None) -> Any:
    """The next message, JSON or msgpack, text or binary; None when it cannot be read."""
    message = await asyncio.wait_for(ws.receive(), timeout)
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    data = message.get("bytes") or message.get("text") or b""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):  # "[[[[..." is too deep
        pass
    try:
        return msgpack.unpackb(data) if isinstance(data, bytes) else None
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return None


async def _login(gateway: Gateway, key: Any, secret: Any, source: str) -> JSON | None:
    """session.ready for a key id and secret that go together, else None."""
    if not isinstance(key, str) or not isinstance(secret, str) or not secret.strip():
        return None
    token_hash = hash_token(secret.strip())
    if gateway.tokens.refusal(token_hash, source, time.monotonic()) is not None:
        return None
    if key.strip() != key_id(token_hash):
        return None
    reply = await gateway.request({"type": "session.login"}, token_hash)
    return reply | {"auth": token_hash} if reply.get("type") == "session.ready" else None


# TRADE UPDATES ---------------------------------------------------------------------


def trade_update(event: JSON, profile: str) -> JSON | None:
    """One of our private events as Alpaca's trade update; None for what Alpaca has no
    event for."""
    kind = _ORDER_EVENTS.get(event.get("event", ""))
    if kind is None:
        return None
    order = event["order"]
    data: JSON = {
        "event": kind,
        "order": shapes.order(order, profile),
        "timestamp": order["updated_at"],
    }
    fill = event.get("fill")
    if fill is not None:
        data |= {
            "execution_id": execution_uuid(fill["id"]),
            "price": fill["price"],
            "qty": fill["qty"],
            "position_qty": event["position_qty"],
            "timestamp": fill["time"],
        }
    return {"stream": "trade_updates", "data": data}


async def trade_updates(ws: WebSocket, gateway: Gateway, sessions: Sessions) -> None:
    """The /stream websocket: authenticate, listen, then the user's order events."""
    await ws.accept()
    source = ws.client.host if ws.client else "unknown"
    try:
        first = await _receive(ws, AUTH_TIMEOUT_S)
    except (TimeoutError, WebSocketDisconnect):
        await _close(ws)
        return
    data = first.get("data") if isinstance(first, dict) else None
    mark = sessions.ends.mark()
    ready = None
    if isinstance(first, dict) and first.get("action") in ("authenticate", "auth"):
        # {"data": {"key_id", "secret_key"}}, or the market-data style {"key", "secret"}
        data = data if isinstance(data, dict) else {}
        key = data.get("key_id", first.get("key"))
        ready = await _login(gateway, key, data.get("secret_key", first.get("secret")), source)
    status = "authorized" if ready else "unauthorized"
    await ws.send_text(
        _json({"stream": "authorization", "data": {"status": status, "action": "authenticate"}})
    )
    if ready is None:
        await _close(ws)
        return
    user_id, auth = ready["user_id"], ready["auth"]
    queue = sessions.subscribe(user_id, mark)
    listening = asyncio.Event()

    async def listen() -> None:
        while True:
            message = await _receive(ws)
            data = message.get("data") if isinstance(message, dict) else None
            streams = data.get("streams") if isinstance(data, dict) else None
            if not isinstance(streams, list):
                await ws.send_text(
                    _json({"stream": "listening", "data": {"error": "invalid syntax"}})
                )
                continue
            chosen = [s for s in streams if s == "trade_updates"]
            (listening.set if chosen else listening.clear)()
            await ws.send_text(_json({"stream": "listening", "data": {"streams": chosen}}))

    async def push() -> None:
        profiles: dict[str, str] = {}
        while True:
            event = await queue.get()
            if isinstance(event, StreamEnd):
                await ws.send_text(_json({"stream": "error", "data": {"reason": event.reason}}))
                return
            if not listening.is_set():
                continue
            symbol = event.get("order", {}).get("symbol")
            if symbol is not None and symbol not in profiles:
                profiles[symbol] = await _profile(gateway, auth, symbol)
            update = trade_update(event, profiles.get(symbol, "us_equity"))
            if update is not None:
                await ws.send_text(_json(update))

    try:
        await _first_done(listen(), push())
    finally:
        sessions.unsubscribe(user_id, queue)
        await _close(ws)


async def _profile(gateway: Gateway, auth: str, symbol: str) -> str:
    reply = await gateway.request({"type": "symbols.list"}, auth)
    rows = {row["symbol"]: row["profile"] for row in reply.get("symbols", [])}
    return rows.get(symbol, "us_equity")


# MARKET DATA -----------------------------------------------------------------------


def _stamp(ns: int, packed: bool) -> Any:
    if packed:
        return msgpack.Timestamp.from_unix_nano(ns)
    moment = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000:09d}Z"


def market_messages(message: JSON, channels: set[str], packed: bool) -> list[JSON]:
    """Alpaca's messages for one broadcast of ours on md.<symbol>: a trade ("t") and a
    quote ("q": the feed's bid and ask, else the last price on both sides, as the REST
    latest quote); a replay's bar is a bar ("b")."""
    symbol, ts = message["symbol"], message["ts"]
    if message.get("type") == "bar":
        if "bars" not in channels:
            return []
        bar = {
            k: float(message[key])
            for k, key in zip("ohlc", ("open", "high", "low", "close"), strict=True)
        }
        return [
            {
                "T": "b",
                "S": symbol,
                **bar,
                "v": float(message["volume"]),
                "t": _stamp(ts, packed),
                "n": None,
                "vw": None,
            }
        ]
    out = []
    trade = str(message["volume"]) not in ("0", "0.0")  # else a price repeated, not a trade
    if "trades" in channels and trade:
        out.append(
            {
                "T": "t",
                "S": symbol,
                "i": message["seq"],
                "x": "V",
                "p": float(message["last"]),
                "s": float(message["volume"]),
                "t": _stamp(ts, packed),
                "c": ["@"],
                "z": "C",
            }
        )
    if "quotes" in channels and (trade or "bid" in message):
        out.append(
            {
                "T": "q",
                "S": symbol,
                "bx": "V",
                "bp": float(message.get("bid", message["last"])),
                "bs": 0,
                "ax": "V",
                "ap": float(message.get("ask", message["last"])),
                "as": 0,
                "t": _stamp(ts, packed),
                "c": ["R"],
                "z": "C",
            }
        )
    return out


class MarketClient:
    """One market-data connection: its subscriptions and its queue of frames to send (an
    int: a lock-step bar time whose bars are all sent; None: too slow, close)."""

    def __init__(self, packed: bool, auth: str) -> None:
        self.packed = packed
        self.auth = auth
        self.lockstep = False  # its bars come with each bar time of a lock-step replay
        self.subscribed: dict[str, set[str]] = {channel: set() for channel in CHANNELS}
        self.queue: asyncio.Queue[bytes | str | int | None] = asyncio.Queue(MAX_QUEUED + 1)

    def channels_for(self, symbol: str) -> set[str]:
        return {c for c, names in self.subscribed.items() if symbol in names or "*" in names}

    def encode(self, messages: list[JSON]) -> bytes | str:
        return msgpack.packb(messages) if self.packed else _json(messages)

    def subscription(self) -> JSON:
        lists = {channel: sorted(names) for channel, names in self.subscribed.items()}
        empty = ("updatedBars", "dailyBars", "statuses", "lulds", "corrections", "cancelErrors")
        return {"T": "subscription", **lists, **{name: [] for name in empty}}


class MarketFeed:
    """The open market-data connections, fed from the gateway's public broadcasts: quotes
    and a replay's bars on `md.<symbol>`; for lock-step bots, each bar time's bars from its
    `step`, followed by a marker that starts its wait for the bot (lockstep.py)."""

    def __init__(self, bots: LockStepBots, gateway: Gateway) -> None:
        self.clients: set[MarketClient] = set()
        self.bots = bots
        self.gateway = gateway
        self.minutes: dict[str, int] = {}  # symbol -> the minute (ns) of its last trade
        self._fetches: set[asyncio.Task[None]] = set()

    def on_broadcast(self, topic: str, messages: list[Any]) -> None:
        if not self.clients:
            return
        if topic == topics.STEP:
            for step in messages:
                self._step(step)
            return
        if not topic.startswith(topics.MARKET_PREFIX):
            return
        symbol = topic[len(topics.MARKET_PREFIX) :]
        for client in list(self.clients):
            channels = client.channels_for(symbol)
            if client.lockstep or not channels:
                continue
            out = [
                m for message in messages for m in market_messages(message, channels, client.packed)
            ]
            if out:
                self._put(client, client.encode(out))
        for message in messages:
            if message.get("type") != "bar" and str(message["volume"]) not in ("0", "0.0"):
                self._trade_at(symbol, message["ts"])

    def _trade_at(self, symbol: str, ts: int) -> None:
        """A live trade: the first of a new minute completes the symbol's last minute, whose
        bar (the controller's, actors/controller/history.py) goes to the bars subscribers."""
        minute = ts - ts % MINUTE_NS
        last = self.minutes.get(symbol)
        self.minutes[symbol] = max(minute, last or 0)
        if last is None or minute <= last:
            return
        wanting = [c for c in self.clients if not c.lockstep and "bars" in c.channels_for(symbol)]
        if wanting:
            task = asyncio.get_running_loop().create_task(
                self._minute_bar(symbol, last, wanting[0].auth)
            )
            self._fetches.add(task)
            task.add_done_callback(self._fetches.discard)

    async def _minute_bar(self, symbol: str, minute: int, auth: str) -> None:
        ask = {
            "type": "bars.get",
            "symbols": [symbol],
            "timeframe": "1Min",
            "start": minute,
            "end": minute,
        }
        reply = await self.gateway.request(ask, auth)
        found = reply.get("bars", {}).get(symbol) if reply.get("type") == "bars" else None
        if not found:
            return
        t, o, h, low, c, v, n, vw = found[0]
        for client in [
            c for c in self.clients if not c.lockstep and "bars" in c.channels_for(symbol)
        ]:
            bar = {
                "T": "b",
                "S": symbol,
                **{"o": float(o), "h": float(h), "l": float(low), "c": float(c)},
                "v": float(v),
                "t": _stamp(t, client.packed),
                "n": n,
                "vw": None if vw is None else float(vw),
            }
            self._put(client, client.encode([bar]))

    def _step(self, step: JSON) -> None:
        for client in [c for c in self.clients if c.lockstep]:
            out = [
                m
                for bar in step["bars"]
                for m in market_messages(bar, client.channels_for(bar["symbol"]), client.packed)
            ]
            if out:
                self._put(client, client.encode(out))
            self._put(client, step["ts"])

    def _put(self, client: MarketClient, item: bytes | str | int) -> None:
        if client.queue.qsize() >= MAX_QUEUED:
            self.clients.discard(client)
            client.queue.put_nowait(None)  # the writer sends 407 and closes
        elif client in self.clients:
            client.queue.put_nowait(item)


async def market_data(ws: WebSocket, gateway: Gateway, feed: MarketFeed) -> None:
    """A /v2/{feed} websocket: connected, auth, subscribe; then trades, quotes and bars."""
    packed = "msgpack" in ws.headers.get("content-type", "")
    await ws.accept()
    send = _sender(ws, packed)
    await send([{"T": "success", "msg": "connected"}])
    source = ws.client.host if ws.client else "unknown"
    headers = ws.headers
    if "apca-api-secret-key" in headers:  # Alpaca also takes the keys on the handshake
        key, secret = headers.get("apca-api-key-id"), headers["apca-api-secret-key"]
    else:
        try:
            first = await _receive(ws, AUTH_TIMEOUT_S)
        except TimeoutError:
            await send([{"T": "error", "code": 404, "msg": "auth timeout"}])
            await _close(ws)
            return
        except WebSocketDisconnect:
            return
        if not isinstance(first, dict) or first.get("action") != "auth":
            await send([{"T": "error", "code": 401, "msg": "not authenticated"}])
            await _close(ws)
            return
        key, secret = first.get("key"), first.get("secret")
    ready = await _login(gateway, key, secret, source)
    if ready is None:
        await send([{"T": "error", "code": 402, "msg": "auth failed"}])
        await _close(ws)
        return
    await send([{"T": "success", "msg": "authenticated"}])
    client = MarketClient(packed, ready["auth"])
    feed.clients.add(client)

    async def read() -> None:
        while True:
            message = await _receive(ws)
            action = message.get("action") if isinstance(message, dict) else None
            if action == "auth":
                await send([{"T": "error", "code": 403, "msg": "already authenticated"}])
                continue
            if action not in ("subscribe", "unsubscribe") or not _symbol_lists(message):
                await send([{"T": "error", "code": 400, "msg": "invalid syntax"}])
                continue
            unserved = sorted(k for k in NOT_SERVED if message.get(k))
            if unserved:
                await send([{"T": "error", "code": 400, "msg": f"not served here: {unserved}"}])
                continue
            for channel in CHANNELS:
                names = set(message.get(channel) or ())
                if action == "subscribe":
                    client.subscribed[channel] |= names
                else:
                    client.subscribed[channel] -= names
            if client.subscribed["bars"] and not client.lockstep:
                await _join_lockstep(gateway, feed.bots, client)
            await send([client.subscription()])

    async def write() -> None:
        while True:
            frame = await client.queue.get()
            if frame is None:
                await send([{"T": "error", "code": 407, "msg": "slow client"}])
                return
            if isinstance(frame, int):
                feed.bots.sent(client.auth, frame)
                continue
            await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_text(frame))

    try:
        await _first_done(read(), write())
    finally:
        feed.clients.discard(client)
        await _close(ws)


async def _join_lockstep(gateway: Gateway, bots: LockStepBots, client: MarketClient) -> None:
    """Bars subscribed during a lock-step replay: the bot joins it (lockstep.py)."""
    reply = await gateway.request({"type": "replay.join"}, client.auth)
    if reply.get("type") == "replay.joined" and reply.get("speed") == "lockstep":
        bots.join(client.auth)
        client.lockstep = True


def _symbol_lists(message: JSON) -> bool:
    lists = [message.get(channel) for channel in CHANNELS if channel in message]
    return all(
        isinstance(names, list) and all(isinstance(n, str) and 0 < len(n) <= 32 for n in names)
        for names in lists
    )


# SHARED ----------------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _sender(ws: WebSocket, packed: bool) -> Callable[[list[JSON]], Awaitable[None]]:
    async def send(messages: list[JSON]) -> None:
        if packed:
            await ws.send_bytes(msgpack.packb(messages))
        else:
            await ws.send_text(_json(messages))

    return send


async def _first_done(*jobs: Awaitable[None]) -> None:
    """Run the jobs until one ends (the client left, or the stream ended); cancel the rest."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and isinstance(task.exception(), Exception):
                error = task.exception()
                if not isinstance(error, WebSocketDisconnect | RuntimeError):
                    log.warning("alpaca stream ended by %r", error)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _close(ws: WebSocket) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await ws.close()
