"""The gateway's link to the other processes: requests out, replies and private events in.

Runs on the gateway's asyncio loop (uvloop), which is its one I/O loop: HTTP handlers and
the ZeroMQ client endpoint call `submit()`, which stamps the request with this gateway's id
and a request id and batches it to the accountant once per loop turn. Replies (stamped
with this gateway's id) and private events come back on the gateway's PULL inbox from the
accountant and the controller; public control state and quotes on the controller's PUB.
The gateway keeps no copy of trading state.

The sockets are plain ZeroMQ sockets whose file descriptors the loop watches
(`add_reader`), drained in bursts: an asyncio future per frame cost several times the
receive itself. The accountant packs each reply and event as the client reads it (a
msgpack map, `bytes` here); the ZeroMQ endpoint passes those bytes on, adding only the
client's request id, and HTTP decodes them (`unpacked`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator

from actors.runtime import curve, process
from actors.runtime.streams import (
    RESEND_TYPE,
    Incoming,
    Outgoing,
    header,
    link_health,
    new_life,
    read_header,
)
from protocol import codec, topics
from protocol.errors import ErrorCode, error_body
from protocol.messages import (
    CONTROLLER_REQUESTS,
    MATCHER_REQUESTS,
    REPLAY_REQUESTS,
    DepositFields,
    NewOrder,
    OrderFields,
    ReplaceFields,
    Request,
    ResetFields,
    UserFields,
)
from protocol.orders import order_command, replace_command
from protocol.settings import Settings
from protocol.values import iso_time, number, parse_decimal

log = logging.getLogger("gateway")
_FLUSH_AT = 1000  # commands queued before they go out without waiting for the loop turn
# answered by the controller or the matcher, not the accountant: load shedding leaves them alone
ANSWERED_ELSEWHERE = CONTROLLER_REQUESTS | REPLAY_REQUESTS | MATCHER_REQUESTS

Reply = dict[str, Any] | bytes  # bytes: packed by the accountant for the client
ReplyCallback = Callable[[Reply], None]
EventCallback = Callable[[int, Reply], None]
_DRAIN = 2000  # frames read from an internal socket before the loop's other work


def unpacked(reply: Reply) -> dict[str, Any]:
    """A reply or event as a map, whether the accountant packed it or not."""
    return codec.decode_internal(reply) if isinstance(reply, bytes) else reply


def public_step(packed: bytes) -> dict[str, Any]:
    """A replay step the accountant packed for the bots, as it is published on `step`
    and served over HTTP: without `v` (protocol.md 4.10)."""
    step: dict[str, Any] = codec.decode_internal(packed)
    del step["v"]
    return step


_NOT_FIELDS = frozenset({"v", "rid", "token", "type"})


def _canonical(value: Any, field: str, code: ErrorCode) -> str:
    return number(parse_decimal(value, field, code))


def to_command(
    request: Request | OrderFields | ReplaceFields | UserFields | ResetFields | DepositFields,
    kind: str,
) -> dict[str, Any]:
    """An internal command from a validated client request; numbers become exact strings.

    Raises:
        RejectError: a bad number or an order whose fields do not fit its type
            (protocol.orders), REQUEST_INVALID_AMOUNT, REQUEST_INVALID_QTY.
    """
    # the validated values themselves: the models are flat, and model_dump cost a third
    # of the gateway's time per order
    fields = {k: v for k, v in request.__dict__.items() if k not in _NOT_FIELDS}
    if isinstance(request, OrderFields):
        fields["order_type"] = request.type
    if isinstance(request, OrderFields | NewOrder):
        fields = order_command(fields)
    elif isinstance(request, ReplaceFields):
        fields = replace_command(fields)
    elif isinstance(request, UserFields | ResetFields) and request.cash is not None:
        fields["cash"] = _canonical(request.cash, "cash", ErrorCode.REQUEST_INVALID_AMOUNT)
        if isinstance(request, UserFields) and request.positions is not None:
            fields["positions"] = {
                symbol: _canonical(qty, f"qty of {symbol}", ErrorCode.REQUEST_INVALID_QTY)
                for symbol, qty in request.positions.items()
            }
    elif isinstance(request, DepositFields):
        fields["qty"] = _canonical(request.qty, "qty", ErrorCode.REQUEST_INVALID_QTY)
    fields["type"] = kind
    return fields


class Admission:
    """Whether one more request may go to the accountant now.

    It may unless the accountant has been silent for half the timeout while requests wait
    (a slow cancel or query among flowing replies does not count), or the requests in
    flight, at the reply rate seen lately, would not be answered within half the timeout.
    The rate is measured over one-second windows and never assumed below `floor_rate`, so
    an idle server admits a burst. The floor is what a slow, busy machine still answers:
    a higher one admitted first bursts there that timed out instead of being refused.
    """

    def __init__(
        self, timeout: float, floor_rate: float = 200.0, start: float | None = None
    ) -> None:
        self.timeout = timeout
        self.floor_rate = floor_rate
        self.rate = floor_rate
        self._window_start = time.monotonic() if start is None else start
        self._replies = 0

    def replied(self, now: float) -> None:
        self._replies += 1
        elapsed = now - self._window_start
        if elapsed >= 1.0:
            seen = self._replies / elapsed
            self.rate = max(self.floor_rate, (self.rate + seen) / 2)
            self._window_start, self._replies = now, 0

    def admits(self, in_flight: int, stalled: float) -> bool:
        """`stalled`: seconds without a reply since the oldest request in flight was sent."""
        budget = self.timeout / 2
        return stalled < budget and in_flight < self.rate * budget


class RateLimit:
    """A token bucket per key (a token's hash): `rate` requests per second on average,
    up to `burst` at once. `rate` 0 lets everything through.

    Buckets that have refilled are forgotten once there are more than `max_keys`, so
    requests with made-up tokens cannot grow it without bound.
    """

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def wait(self, key: str, now: float) -> float:
        """0 and one request counted, or the seconds until `key` may send again."""
        if self.rate <= 0:
            return 0.0
        tokens, at = self._buckets.pop(key, (self.burst, now))  # re-added last: newest
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > self.max_keys:
            self._forget_full(now)
        return 0.0

    def _forget_full(self, now: float) -> None:
        full = [
            key
            for key, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]
        while len(self._buckets) > self.max_keys:  # all busy: the least recent go first
            del self._buckets[next(iter(self._buckets))]


def rate_limited(wait: float, who: str = "with this token") -> dict[str, Any]:
    """The REQUEST_RATE_LIMITED reply, with `retry_after` in seconds."""
    body: dict[str, Any] = dict(
        error_body(
            ErrorCode.REQUEST_RATE_LIMITED,
            f"too many requests {who}; nothing was done, retry in {wait:.3f}s",
        )
    )
    body["retry_after"] = max(0.001, round(wait, 3))  # never 0 for a refusal
    return body


UNVERIFIED = "with tokens not accepted yet from this address"
MAX_VERIFIED = 100_000  # token hashes remembered as accepted, the least recent dropped


class TokenGuard:
    """Requests whose token the accountant has not accepted yet are limited per client
    address before they reach it: a made-up token costs its sender, not every user (a
    per-token limit gives each made-up token a fresh allowance). A token is remembered
    as accepted once an answer to it is anything but a refusal of the token; a user's
    session end (a rotation or revocation) forgets that user's tokens, and those whose
    user the answers did not name."""

    def __init__(self, rate: float, burst: int) -> None:
        self.limit = RateLimit(rate, burst)
        self._accepted: OrderedDict[str, int | None] = OrderedDict()  # -> its user, if named

    def wait(self, auth: str, source: str, now: float) -> float:
        """0 when the request may go on (and it is counted if its token is not known)."""
        if auth in self._accepted:
            return 0.0
        return self.limit.wait(source, now)

    def refusal(self, auth: str, source: str, now: float) -> dict[str, Any] | None:
        """The REQUEST_RATE_LIMITED reply when `source` is past its allowance, else None."""
        wait = self.wait(auth, source, now)
        return rate_limited(wait, UNVERIFIED) if wait else None

    def watch(self, auth: str, callback: ReplyCallback) -> ReplyCallback:
        """`callback`, noting the token as accepted by the answer, when it is not known."""
        if auth in self._accepted or self.limit.rate <= 0:
            return callback

        def noted(reply: Reply) -> None:
            body = unpacked(reply)
            code = str(body.get("code", "")) if body.get("type") == "error" else ""
            if not code or code.startswith("REQUEST_") or code == "AUTH_NOT_ADMIN":
                user_id = body.get("user_id")  # a login's answer names it
                self._accepted[auth] = user_id if isinstance(user_id, int) else None
                if len(self._accepted) > MAX_VERIFIED:
                    self._accepted.popitem(last=False)
            callback(reply)

        return noted

    def forget(self, user_id: int, _reason: str = "") -> None:
        """A Gateway.on_session_end listener: the user's token changed."""
        for auth in [a for a, user in self._accepted.items() if user in (user_id, None)]:
            del self._accepted[auth]


class Gateway:
    """Internal sockets of the gateway, owned by the asyncio loop that calls start()."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.id = secrets.token_hex(4)
        self.ctx = zmq.Context()
        self.curve = curve.load(settings, topics.GATEWAY)  # keys for tcp links, or None
        self._auth: ThreadAuthenticator | None = None
        self.timeout = settings.limits.request_timeout
        self._next_rid = 0
        self._pending: dict[int, tuple[float, ReplyCallback]] = {}
        self._admitted: dict[int, float] = {}  # those load shedding counts: rid -> deadline
        self.admission = Admission(self.timeout)
        self.rate_limit = RateLimit(settings.limits.rate_per_user, settings.limits.rate_burst)
        limits = settings.limits
        self.tokens = TokenGuard(limits.unverified_rate, limits.unverified_burst)
        self._last_reply_at = 0.0
        self._outbox: list[dict[str, Any]] = []
        self._flush_scheduled = False
        self._event_listeners: list[EventCallback] = []
        self._broadcast_listeners: list[Callable[[str, list[Reply]], None]] = []
        self._step_watchers: list[Callable[[], bool]] = []
        self._session_end_listeners: list[Callable[[int, str], None]] = [self.tokens.forget]
        self._lost_listeners: list[Callable[[], None]] = []
        self._burst_listeners: list[Callable[[], None]] = []
        self._step_listeners: list[Callable[[int, bytes], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        # numbered frames (actors/runtime/streams.py): to the accountant, and in from each sender
        self.life = new_life()
        retain = settings.limits.internal_retain
        self.to_accountant_stream: Outgoing[bytes] = Outgoing(topics.ACCOUNTANT, retain)
        self.incoming: dict[tuple[str, str], Incoming[tuple[str, bytes]]] = {}
        self.started = time.time_ns()
        self._health: dict[str, tuple[float, dict[str, Any]]] = {}  # process -> last report

    def on_event(self, callback: EventCallback) -> None:
        """`callback(user_id, event)` for each private event from the accountant."""
        self._event_listeners.append(callback)

    def on_session_end(self, callback: Callable[[int, str], None]) -> None:
        """`callback(user_id, reason)` when a user's token was rotated or revoked."""
        self._session_end_listeners.append(callback)

    def on_lost(self, callback: Callable[[], None]) -> None:
        """`callback()` when replies or events from the accountant were lost for good."""
        self._lost_listeners.append(callback)

    def on_step(self, callback: Callable[[int, bytes], None]) -> None:
        """`callback(ts, packed)` for each bar time of a replay, settled: the step as the
        client reads it, packed once by the accountant."""
        self._step_listeners.append(callback)

    def on_broadcast(
        self,
        callback: Callable[[str, list[Reply]], None],
        wants_steps: Callable[[], bool] | None = None,
    ) -> None:
        """`callback(topic, messages)` for public control state and quotes, and for a
        replay's steps and their bars while `wants_steps()` says someone takes them:
        unpacking a step's bars for nobody cost more than all the rest of a visit."""
        self._broadcast_listeners.append(callback)
        if wants_steps is not None:
            self._step_watchers.append(wants_steps)

    async def start(self) -> None:
        e = self.settings.endpoints
        if self.curve is not None:
            self._auth = self.curve.authenticator(self.ctx)
        self.to_accountant = self.ctx.socket(zmq.PUSH)
        self.to_accountant.setsockopt(zmq.SNDHWM, self.settings.limits.internal_hwm)
        self.to_accountant.setsockopt(zmq.LINGER, 0)
        curve.secure_connect(self.curve, self.to_accountant, e.accountant_in)
        self.inbox = self.ctx.socket(zmq.PULL)
        self.inbox.setsockopt(zmq.RCVHWM, self.settings.limits.internal_hwm)
        self.inbox.setsockopt(zmq.LINGER, 0)
        curve.secure_bind(self.curve, self.inbox, e.gateway_in)
        self.public = self._sub(e.control_pub)
        self.loop = loop = asyncio.get_running_loop()
        self._read_inbox = essential_callback(self._read_inbox)  # type: ignore[method-assign]
        self._read_public = essential_callback(self._read_public)  # type: ignore[method-assign]
        loop.add_reader(self.inbox.FD, self._read_inbox)
        loop.add_reader(self.public.FD, self._read_public)
        self._tasks = [
            essential(loop.create_task(self._expire())),
            essential(loop.create_task(self._check_gaps())),
        ]
        self._read_inbox()  # frames may have come before the reader was added
        self._read_public()

    def _sub(self, endpoint: str) -> zmq.Socket[bytes]:
        """Every topic: the controller numbers all it publishes in one sequence."""
        sock = self.ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, self.settings.limits.internal_hwm)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        curve.secure_connect(self.curve, sock, endpoint)
        return sock

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sock in (self.inbox, self.public):
            self.loop.remove_reader(sock.FD)
        if self._auth is not None:
            self._auth.stop()
        self.ctx.destroy(linger=0)

    # REQUESTS --------------------------------------------------------------------------

    def submit(
        self,
        command: dict[str, Any],
        auth: str,
        callback: ReplyCallback,
        source: str | None = None,
    ) -> None:
        """Send a command to the accountant; `callback(reply)` runs once, with the reply or
        a SYSTEM_TIMEOUT error after `limits.request_timeout` seconds.

        A token over its rate (RateLimit) gets REQUEST_RATE_LIMITED at once. Load
        shedding (see Admission): a request that would likely wait more than half the
        timeout is refused at once with SYSTEM_BUSY and never forwarded, so a client that
        floods the server learns it plainly instead of getting timeouts for orders that
        were in fact placed. It protects the accountant: requests the controller or the
        matcher answers (control, quotes, a replay's join and done, depth) are neither
        counted nor refused, and one they never answered (a restart) does not hold the
        rest back.
        A request from `source` (a client's address) with a token not accepted yet counts
        against that source's allowance (TokenGuard).
        """
        now = time.monotonic()
        refused = None if source is None else self.tokens.refusal(auth, source, now)
        if refused is not None:
            callback(refused)
            return
        wait = self.rate_limit.wait(auth, now)
        if wait:
            callback(rate_limited(wait))
            return
        callback = self.tokens.watch(auth, callback)
        counted = command.get("type") not in ANSWERED_ELSEWHERE
        if counted:
            admitted = self._admitted
            if admitted and next(iter(admitted.values())) <= now:
                self._expire_due(now)  # timed out: no longer a sign the server is behind
            stalled = 0.0
            if admitted:
                oldest_sent = next(iter(admitted.values())) - self.timeout
                stalled = now - max(oldest_sent, self._last_reply_at)
            if not self.admission.admits(len(admitted), stalled):
                message = "the server is behind; nothing was done, retry later"
                callback(dict(error_body(ErrorCode.SYSTEM_BUSY, message)))
                return
        self._next_rid += 1
        rid = self._next_rid
        command["gw"] = self.id
        command["rid"] = rid
        command["auth"] = auth
        self._pending[rid] = (now + self.timeout, callback)
        if counted:
            self._admitted[rid] = now + self.timeout
        self._outbox.append(command)
        if len(self._outbox) >= _FLUSH_AT:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_flush)

    async def request(self, command: dict[str, Any], auth: str) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        def done(reply: Reply) -> None:
            if not future.done():
                future.set_result(unpacked(reply))

        self.submit(command, auth, done)
        return await future

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        batch, self._outbox = self._outbox, []
        if batch:
            self._send_to_accountant(codec.encode(batch))

    def _send_to_accountant(self, payload: bytes, seq: int | None = None) -> None:
        """One numbered frame (a new one, or `seq` again for a resend). While the
        accountant's queue is full, frames wait here in order (admission control keeps
        that short) rather than being dropped."""
        if seq is None:
            seq = self.to_accountant_stream.stamp(payload)
        head = header("gateway", topics.ACCOUNTANT, self.life, seq)
        self.to_accountant.send_multipart([head, payload])

    def _in_order(self, frames: list[bytes], topic: str = "") -> list[tuple[str, bytes]]:
        """The (topic, payload) that may go on after this frame (actors/runtime/streams.py)."""
        if len(frames) < 2:
            return [(topic, frames[-1])]
        (sender, link), life, seq = read_header(frames[0])
        stream = self.incoming.setdefault((sender, link), Incoming())
        ready, lost = stream.take(life, seq, (topic, frames[1]), time.monotonic())
        if lost:
            self._lost(sender, link, lost)
        return ready

    def _lost(self, sender: str, link: str, count: int) -> None:
        log.warning("lost %d frame(s) from %s/%s", count, sender, link)
        if sender == topics.ACCOUNTANT:  # events may be missing: sessions are told
            for listener in self._lost_listeners:
                listener()

    async def _check_gaps(self) -> None:
        """Ask the accountant again for what a gap misses; give up gaps that stay."""
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            for (sender, link), stream in self.incoming.items():
                due = stream.due(now)
                if due == "give up":
                    ready, lost = stream.give_up(now)
                    self._lost(sender, link, lost)
                    if link == topics.GATEWAY:
                        self._take_inbox(ready)
                    else:
                        self._take_public(ready)
                elif due == "ask" and sender == topics.ACCOUNTANT:  # no link to the others
                    self._outbox.append(stream.resend_request(link))
                    self._flush()

    def _resend(self, request: dict[str, Any]) -> None:
        if request.get("life") != self.life or request.get("link") != topics.ACCOUNTANT:
            return
        for seq, payload in self.to_accountant_stream.since(request["first"], request["last"]):
            self._send_to_accountant(payload, seq)

    def _drain(self, sock: zmq.Socket[bytes]) -> tuple[list[list[bytes]], bool]:
        """Frames waiting on a socket, up to _DRAIN; and whether more may be waiting."""
        frames = []
        recv = sock.recv_multipart
        for _ in range(_DRAIN):
            try:
                frames.append(recv(zmq.NOBLOCK))
            except zmq.Again:
                return frames, False
        return frames, True

    def _read_inbox(self) -> None:
        """The accountant's (and others') replies and events, in bursts."""
        frames, more = self._drain(self.inbox)
        for parts in frames:
            self._take_inbox(self._in_order(parts))
        if more:
            self.loop.call_soon(self._read_inbox)  # the descriptor will not signal them
        for listener in self._burst_listeners:
            listener()

    def on_burst(self, callback: Callable[[], None]) -> None:
        """`callback()` after each burst of replies and events has been handed on (the
        ZeroMQ endpoint checks its own socket then: sending may hide a readable state)."""
        self._burst_listeners.append(callback)

    def _take_inbox(self, items: list[tuple[str, bytes]]) -> None:
        for _, payload in items:
            decoded = codec.decode_internal(payload)
            for message in decoded if isinstance(decoded, list) else [decoded]:
                kind = message.get("type")
                if kind == "event":
                    body = message.get("body")
                    event = body if body is not None else message
                    user_id = message.pop("user_id")
                    for listener in self._event_listeners:
                        listener(user_id, event)
                elif kind == RESEND_TYPE:
                    self._resend(message)
                elif kind == "replay.step":  # a replay's bar time, settled: public
                    self._replay_step(message)
                elif message.get("type") == process.HEALTH_TYPE:
                    self._health[message.pop("process")] = (time.monotonic(), message)
                elif message.get("type") == "session.end":
                    for end in self._session_end_listeners:
                        end(message["user_id"], message["reason"])
                elif message.pop("gw", None) == self.id:  # else: for an earlier incarnation
                    rid = message.pop("rid", None)
                    self._admitted.pop(rid, None)
                    entry = self._pending.pop(rid, None)
                    if entry is not None:
                        self._last_reply_at = time.monotonic()
                        self.admission.replied(self._last_reply_at)
                        body = message.get("body")
                        _safely(entry[1], body if body is not None else message)

    def _replay_step(self, message: dict[str, Any]) -> None:
        """To the bots that take steps privately, as packed; public as the controller's
        broadcasts are, the step on `step` and its bars on `md.<symbol>` (each one's own
        topic), unpacked only when a subscriber or a market stream takes them."""
        packed = message["body"]
        for take in self._step_listeners:
            take(message["ts"], packed)
        if not any(wants() for wants in self._step_watchers):
            return
        step = public_step(packed)
        for listener in self._broadcast_listeners:
            listener(topics.STEP, [step])
            for bar in step["bars"]:
                listener(topics.market(bar["symbol"]), [bar])

    def health(self) -> list[dict[str, Any]]:
        """The four processes as the operator sees them: this gateway's own figures, and
        each other's last report (up while reports keep coming)."""
        now = time.monotonic()
        own = {
            "pid": os.getpid(),
            "started": iso_time(self.started),
            "restarts": process.restarts,
            "inboxes": {"requests in flight": len(self._pending)},
            **link_health({topics.ACCOUNTANT: self.to_accountant_stream}, self.incoming),
        }
        processes = []
        for name in topics.PROCESSES:
            if name == topics.GATEWAY:
                processes.append({"process": name, "up": True, "report_age": 0.0, **own})
                continue
            received_at, report = self._health.get(name, (None, {}))
            age = None if received_at is None else round(now - received_at, 3)
            up = age is not None and age < 3 * process.HEALTH_EVERY
            report = {k: v for k, v in report.items() if k not in ("type", "v")}
            processes.append({"process": name, "up": up, "report_age": age, **report})
        return processes

    def _read_public(self) -> None:
        frames, more = self._drain(self.public)
        for topic_frame, *parts in frames:
            self._take_public(self._in_order(parts, topic_frame.decode()))
        if more:
            self.loop.call_soon(self._read_public)

    def _take_public(self, items: list[tuple[str, bytes]]) -> None:
        for topic, payload in items:
            if not topic.startswith(
                (
                    topics.CONTROL,
                    topics.STEP,
                    topics.MARKET_PREFIX,
                    topics.DEPTH_PREFIX,
                    topics.REFERENCE_PREFIX,
                )
            ):
                continue
            decoded = codec.decode_internal(payload)
            messages = decoded if isinstance(decoded, list) else [decoded]
            for listener in self._broadcast_listeners:
                listener(topic, messages)

    async def _expire(self) -> None:
        """Answer requests nobody replied to in time, oldest first (dicts keep insertion order)."""
        while True:
            await asyncio.sleep(1.0)  # timeouts are seconds long; wakeups cost CPU
            self._expire_due(time.monotonic())

    def _expire_due(self, now: float) -> None:
        expired = []
        for rid, (deadline, _) in self._pending.items():
            if deadline > now:
                break
            expired.append(rid)
        for rid in expired:
            _, callback = self._pending.pop(rid)
            self._admitted.pop(rid, None)
            _safely(
                callback,
                dict(
                    error_body(
                        ErrorCode.SYSTEM_TIMEOUT,
                        "no answer in time; the outcome is unknown, query the order",
                    )
                ),
            )


def essential_callback(callback: Callable[..., None]) -> Callable[..., None]:
    """A socket reader the gateway cannot work without: if it fails, end the process
    (run.py restarts it) rather than live on deaf; the loop would only log it."""

    def guarded(*args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            log.critical("%s failed", callback, exc_info=True)
            logging.shutdown()
            os._exit(70)

    return guarded


def essential(task: asyncio.Task[None]) -> asyncio.Task[None]:
    """A loop the gateway cannot work without: if it fails, end the process (run.py
    restarts it) rather than live on deaf."""

    def check(done: asyncio.Task[None]) -> None:
        if not done.cancelled() and done.exception() is not None:
            log.critical("%s failed", done.get_coro(), exc_info=done.exception())
            logging.shutdown()
            os._exit(70)

    task.add_done_callback(check)
    return task


def _safely(callback: ReplyCallback, reply: Reply) -> None:
    try:
        callback(reply)
    except Exception:
        log.exception("reply handler failed")
