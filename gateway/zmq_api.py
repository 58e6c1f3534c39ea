"""The ZeroMQ client API: a ROUTER for requests and private events, a PUB for public data.

A client connects a DEALER (or REQ) socket, sends `session.login` with its token, then
any request; each request frame holds one msgpack map, or a list of maps answered one
reply frame each. Logged-in DEALER connections also receive the user's private events.
REQ sockets get replies only (an unsolicited frame would break their strict alternation).

A session belongs to one TCP connection, not only to a routing id, which a client may
choose: a socket monitor tells which connection each frame came from (its file
descriptor and a generation counted per accept) and when a connection closes, and the
session dies with its connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import zmq
from pydantic import ValidationError
from zmq.utils.monitor import parse_monitor_message

from gateway.core import Gateway, Reply, essential_callback, to_command, unpacked
from protocol import codec, topics
from protocol.codec import PROTOCOL_VERSION, Limits
from protocol.errors import ErrorCode, RejectError, error_body
from protocol.messages import REQUESTS, JoinReplay, Login, validation_message
from protocol.settings import Settings
from protocol.tokens import hash_token

log = logging.getLogger("gateway")

MAX_SESSIONS = 100_000
# sent when replies or events from the accountant were lost on the way to this gateway
EVENTS_LOST = {"type": "event", "event": "events.lost"}
# Frames are taken in bursts, each ended by whichever limit comes first, before the loop
# gives HTTP, replies and timers their turn: a flooding connection delays an HTTP request
# by a few bursts, whatever the machine's speed.
_BURST_FRAMES = 1000
_BURST_SECONDS = 0.005
# a batching connection's frame holds at most this many messages (protocol.md 2.6)
MAX_BATCH = 1000


Connection = tuple[int, int]  # (file descriptor, generation of that descriptor)


@dataclass(slots=True)
class ZmqSession:
    user_id: int
    auth: str  # token hash
    envelope: list[bytes]
    events: bool
    connection: Connection
    steps: bool = False  # a replay's steps on this connection too (replay.join steps=true)
    batch: bool = False  # what it gets in one loop turn goes in one frame (login batch=true)


class ClientEndpoint:
    def __init__(self, settings: Settings, gateway: Gateway) -> None:
        self.settings = settings
        self.gateway = gateway
        self.limits = Limits(max_message_bytes=settings.limits.max_message_bytes)
        self.sessions: OrderedDict[bytes, ZmqSession] = OrderedDict()
        self.by_user: dict[int, set[bytes]] = {}
        self.generations: dict[int, int] = {}  # open connections: descriptor -> generation
        self._accepted = 0
        self._reading = False  # a read of the ROUTER is scheduled or running
        # batching connections: identity -> (envelope, packed messages) of this loop turn
        self._batches: dict[bytes, tuple[list[bytes], list[bytes]]] = {}
        self._last_frame: zmq.Frame | None = None

    async def start(self) -> None:
        e = self.settings.endpoints
        self.router = self.gateway.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.SNDHWM, 100_000)
        self.router.setsockopt(zmq.RCVHWM, 100_000)
        # Frames up to this size get a REQUEST_TOO_LARGE reply; far bigger ones cut the link.
        self.router.setsockopt(zmq.MAXMSGSIZE, 16 * self.limits.max_message_bytes)
        self.router.bind(e.client_api)
        self._watch_connections()
        # an XPUB: it tells which topics someone subscribed to, and the others are not
        # even encoded (a replay at full speed with no bot publishes nothing)
        self.pub = self.gateway.ctx.socket(zmq.XPUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.setsockopt(zmq.XPUB_VERBOSER, 1)  # every subscribe and unsubscribe, counted
        self.pub.setsockopt(zmq.RCVHWM, 100_000)
        self.pub.bind(e.client_pub)
        self.subscriptions: dict[bytes, int] = {}  # prefix -> subscribers
        self.wanted: dict[str, bool] = {}  # topic -> someone takes it (cleared on changes)
        self.gateway.on_event(self.deliver_event)
        self.gateway.on_session_end(self.end_sessions)
        self.gateway.on_lost(self.events_lost)
        self.gateway.on_broadcast(self.republish, wants_steps=lambda: bool(self.subscriptions))
        self.gateway.on_step(self.deliver_step)
        self.gateway.on_burst(self._check_readable)
        self.loop = asyncio.get_running_loop()
        self._read = essential_callback(self._read)  # type: ignore[method-assign]
        self._handle_burst = essential_callback(self._handle_burst)  # type: ignore[method-assign]
        self.loop.add_reader(self.router.FD, self._read)
        self._read_subscriptions = essential_callback(self._read_subscriptions)  # type: ignore[method-assign]
        self.loop.add_reader(self.pub.FD, self._read_subscriptions)
        self._read()

    async def stop(self) -> None:
        self.loop.remove_reader(self.router.FD)
        self.loop.remove_reader(self.pub.FD)
        self.loop.remove_reader(self._monitor.FD)
        self._monitor.close(linger=0)

    def _watch_connections(self) -> None:
        address = f"inproc://client-monitor-{id(self)}"
        self.router.monitor(address, zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self._monitor = self.gateway.ctx.socket(zmq.PAIR)
        self._monitor.connect(address)
        asyncio.get_running_loop().add_reader(self._monitor.FD, self._read_monitor)

    def _read_monitor(self) -> None:
        """Connections accepted and closed so far; a closed one takes its sessions along."""
        while self._monitor.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            event = parse_monitor_message(self._monitor.recv_multipart())
            fd = int(event["value"])
            if event["event"] == zmq.EVENT_ACCEPTED:
                self._accepted += 1
                self.generations[fd] = self._accepted
            else:
                connection = (fd, self.generations.pop(fd, 0))
                for identity, session in list(self.sessions.items()):
                    if session.connection == connection:
                        self._unbind(identity)

    def _read(self) -> None:
        """Client frames in a burst, ended by _BURST_FRAMES or _BURST_SECONDS; the rest on
        the next loop turn, after HTTP, replies and timers had theirs."""
        self._reading = False
        recv = self.router.recv_multipart
        burst = []
        more = True
        for _ in range(_BURST_FRAMES):
            try:
                burst.append(recv(zmq.NOBLOCK, copy=False))
            except zmq.Again:
                more = False
                break
        if not burst:
            return
        self._read_monitor()  # every connection these frames came on is known now
        self._handle_burst(burst, [self._connection(frames[-1]) for frames in burst], more)

    def _handle_burst(
        self, burst: list[list[zmq.Frame]], sources: list[Connection], more: bool
    ) -> None:
        deadline = time.monotonic() + _BURST_SECONDS
        for index, frames in enumerate(burst):
            self._handle_frames(frames, sources[index])
            if index + 1 < len(burst) and time.monotonic() > deadline:
                rest = burst[index + 1 :], sources[index + 1 :]
                self.loop.call_soon(self._handle_burst, *rest, more)
                return
        if more:
            self._schedule_read()
        else:
            self._check_readable()

    def _schedule_read(self) -> None:
        if not self._reading:
            self._reading = True
            self.loop.call_soon(self._read)

    def _check_readable(self) -> None:
        """After sends on the ROUTER: frames that arrived meanwhile may not wake the loop
        (ZeroMQ's descriptor signals edges), so look."""
        if not self._reading and self.router.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            self._schedule_read()
        if self.pub.getsockopt(zmq.EVENTS) & zmq.POLLIN:  # the same for subscriptions
            self._read_subscriptions()

    def _connection(self, frame: zmq.Frame) -> Connection:
        fd = frame.get(zmq.SRCFD)
        return (fd, self.generations.get(fd, -1))

    def _handle_frames(self, frames: list[zmq.Frame], connection: Connection) -> None:
        if len(frames) < 2:
            return  # a bare identity: nothing to answer
        envelope, payload = [f.bytes for f in frames[:-1]], frames[-1].bytes
        self._last_frame = frames[-1]  # its sender's address, should it log in
        try:
            messages = codec.decode_untrusted(payload, self.limits)
        except RejectError as rej:
            self._send(envelope, {**error_body(rej.code, rej.message), "rid": None})
            return
        if len(messages) > 1 and envelope[-1] == b"":
            # a REQ socket takes exactly one reply per request: a batch would desynchronise it
            rej = RejectError(ErrorCode.REQUEST_INVALID, "batches need a DEALER socket, not REQ")
            self._send(envelope, {**error_body(rej.code, rej.message), "rid": None})
            return
        for raw in messages:
            try:
                self._handle(envelope, connection, raw)
            except RejectError as rej:
                self._send(envelope, {**error_body(rej.code, rej.message), "rid": _rid(raw)})

    def _handle(self, envelope: list[bytes], connection: Connection, raw: dict[str, Any]) -> None:
        kind = raw.get("type")
        model = REQUESTS.get(kind) if isinstance(kind, str) else None
        version = raw.get("v", PROTOCOL_VERSION)
        if type(version) is not int or version != PROTOCOL_VERSION:  # True == 1.0 == 1
            raise RejectError(
                ErrorCode.REQUEST_UNSUPPORTED_VERSION, f"protocol version {PROTOCOL_VERSION} only"
            )
        if model is None:
            raise RejectError(ErrorCode.REQUEST_UNKNOWN_TYPE, f"unknown type {str(kind)[:40]!r}")
        try:
            request = model.model_validate(raw)
        except ValidationError as exc:
            raise RejectError(ErrorCode.REQUEST_INVALID, validation_message(exc)) from None
        rid = request.rid
        if kind == "ping":
            self._send(envelope, {"type": "pong", "rid": rid})
        elif isinstance(request, Login):
            self._login(envelope, connection, request)
        else:
            session = self.sessions.get(envelope[0])
            if session is None or session.connection != connection:
                raise RejectError(ErrorCode.AUTH_LOGIN_REQUIRED, "send session.login first")
            command = to_command(request, kind)
            if kind == "replay.done" and session.steps:
                command["steps"] = True  # answered with its next step (matcher/router.py)
            if isinstance(request, JoinReplay) and request.steps and session.events:
                # Steps from now on, not from the answer: the controller answers straight
                # to the gateway and sends the first step through the matcher and the
                # accountant, and a link still connecting can hold the answer back
                # behind that step (seen once in ~30 runs under load: the bot never had
                # the first bar time). A refused join puts it back.
                took_steps, session.steps = session.steps, True

                def joined(reply: Reply, session: ZmqSession = session) -> None:
                    if unpacked(reply).get("type") != "replay.joined":
                        session.steps = took_steps
                    self._reply(envelope, reply, rid)

                self.gateway.submit(command, session.auth, joined)
                return
            self.gateway.submit(command, session.auth, lambda r: self._reply(envelope, r, rid))

    def _login(self, envelope: list[bytes], connection: Connection, request: Login) -> None:
        auth = hash_token(request.token)

        def ready(packed: Reply) -> None:
            reply = unpacked(packed)
            still_open = self.generations.get(connection[0]) == connection[1]
            if reply.get("type") == "session.ready" and still_open:
                # REQ peers put an empty delimiter before the payload; they cannot take events
                events = request.events and envelope[-1] != b""
                session = ZmqSession(reply["user_id"], auth, envelope, events, connection)
                session.batch = request.batch and envelope[-1] != b""
                self._bind(envelope, session)
            elif str(reply.get("code", "")).startswith("AUTH_"):
                self._unbind(envelope[0])  # a refused login logs the connection out
            self._send(envelope, {**reply, "rid": request.rid})

        self.gateway.submit({"type": "session.login"}, auth, ready, self._source(connection))

    def _source(self, connection: Connection) -> str:
        """Who sends the frame being handled, for TokenGuard: its TCP address (every
        connection from there shares one allowance), or its process over ipc."""
        try:
            peer = self._last_frame.get("Peer-Address") if self._last_frame else ""
            return str(peer) or f"fd {connection}"
        except (zmq.ZMQError, AttributeError):
            return f"fd {connection}"

    def _bind(self, envelope: list[bytes], session: ZmqSession) -> None:
        identity = envelope[0]
        self._unbind(identity)
        self.sessions[identity] = session
        self.by_user.setdefault(session.user_id, set()).add(identity)
        while len(self.sessions) > MAX_SESSIONS:
            self._unbind(next(iter(self.sessions)))

    def _unbind(self, identity: bytes) -> None:
        old = self.sessions.pop(identity, None)
        if old is not None:
            peers = self.by_user.get(old.user_id)
            if peers is not None:
                peers.discard(identity)
                if not peers:
                    del self.by_user[old.user_id]

    def _send(self, envelope: list[bytes], body: dict[str, Any]) -> bool:
        body["v"] = PROTOCOL_VERSION
        return self._send_packed(envelope, codec.encode(body))

    def _send_packed(self, envelope: list[bytes], payload: bytes) -> bool:
        session = self.sessions.get(envelope[0])
        if (session is not None and session.batch) or envelope[0] in self._batches:
            self._queue(envelope, payload)  # behind what is queued, also once logged out
            return True
        return self._send_frame(envelope, payload)

    def _send_frame(self, envelope: list[bytes], payload: bytes) -> bool:
        try:
            self.router.send_multipart([*envelope, payload], zmq.NOBLOCK)
        except zmq.ZMQError:  # the peer is gone (ROUTER_MANDATORY) or not keeping up
            self._unbind(envelope[0])
            return False
        return True

    def _queue(self, envelope: list[bytes], payload: bytes) -> None:
        """A message for a batching connection: sent with the others of this loop turn,
        in order, as one frame (an array of the packed maps, joined as they are)."""
        if not self._batches:
            self.loop.call_soon(self._send_batches)
        entry = self._batches.get(envelope[0])
        if entry is None:
            entry = self._batches[envelope[0]] = (envelope, [])
        entry[1].append(payload)
        if len(entry[1]) >= MAX_BATCH:
            del self._batches[envelope[0]]
            self._send_batch(*entry)

    def _send_batches(self) -> None:
        batches, self._batches = self._batches, {}
        for envelope, payloads in batches.values():
            self._send_batch(envelope, payloads)

    def _send_batch(self, envelope: list[bytes], payloads: list[bytes]) -> None:
        n = len(payloads)
        head = bytes((0x90 | n,)) if n < 16 else b"\xdc" + n.to_bytes(2, "big")
        self._send_frame(envelope, head + b"".join(payloads))

    def _reply(self, envelope: list[bytes], reply: Reply, rid: Any) -> None:
        """A reply with the client's request id: packed by the accountant (bytes, its `v`
        in), or made here."""
        if isinstance(reply, bytes):
            self._send_packed(envelope, codec.with_fields(reply, {"rid": rid}))
        else:
            self._send(envelope, {**reply, "rid": rid})

    # PUSHED MESSAGES -------------------------------------------------------------------

    def deliver_event(self, user_id: int, event: Reply) -> None:
        identities = self.by_user.get(user_id)
        if not identities:
            return
        payload = event if isinstance(event, bytes) else None
        for identity in list(identities):
            session = self.sessions[identity]
            if not session.events:
                continue
            if payload is not None:
                self._send_packed(session.envelope, payload)
            else:
                self._send(session.envelope, dict(event))  # type: ignore[arg-type]

    def deliver_step(self, _ts: int, packed: bytes) -> None:
        """A replay's step to the connections that asked for it, behind their events."""
        for session in self.sessions.values():
            if session.steps:
                self._send_packed(session.envelope, packed)

    def end_sessions(self, user_id: int, reason: str) -> None:
        """Log the user's connections out (its token was rotated or revoked); those taking
        events are told with a last `session.ended` event."""
        for identity in list(self.by_user.get(user_id, ())):
            session = self.sessions[identity]
            if session.events:
                self._send(
                    session.envelope, {"type": "event", "event": "session.ended", "reason": reason}
                )
            self._unbind(identity)

    def events_lost(self) -> None:
        """Tell every connection that takes events that some may be missing (2.6)."""
        for session in list(self.sessions.values()):
            if session.events:
                self._send(session.envelope, dict(EVENTS_LOST))

    def _read_subscriptions(self) -> None:
        """Subscriptions to the public PUB as they come and go: `\x01prefix` or
        `\x00prefix` (a subscriber that disconnects takes its own back)."""
        changed = False
        for _ in range(10_000):
            try:
                frame = self.pub.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if not frame:
                continue
            prefix, count = frame[1:], self.subscriptions.get(frame[1:], 0)
            count += 1 if frame[0] == 1 else -1
            if count > 0:
                self.subscriptions[prefix] = count
            else:
                self.subscriptions.pop(prefix, None)
            changed = True
        if changed:
            self.wanted.clear()

    def _subscribed(self, topic: str) -> bool:
        wanted = self.wanted.get(topic)
        if wanted is None:
            raw = topic.encode()
            wanted = self.wanted[topic] = any(raw.startswith(p) for p in self.subscriptions)
        return wanted

    def republish(self, topic: str, messages: list[Reply]) -> None:
        """Public broadcasts to the clients that subscribed; an exchange book's depth goes
        out on its symbol's md.<symbol> topic, beside its trades."""
        if topic.startswith(topics.DEPTH_PREFIX):
            topic = topics.market(topic[len(topics.DEPTH_PREFIX) :])
        elif topic not in (topics.CONTROL, topics.STEP) and not topic.startswith(
            (topics.MARKET_PREFIX, topics.REFERENCE_PREFIX)
        ):
            return
        if not self._subscribed(topic):
            return
        for message in messages:
            self.pub.send_multipart(
                [topic.encode(), codec.encode({**message, "v": PROTOCOL_VERSION})]
            )


def _rid(raw: Any) -> Any:
    """The client's request id to echo in an error, if it is one we could have accepted."""
    rid = raw.get("rid") if isinstance(raw, dict) else None
    if isinstance(rid, str) and len(rid) <= 64:
        return rid
    if isinstance(rid, int) and not isinstance(rid, bool) and -(2**63) <= rid < 2**63:
        return rid
    return None
