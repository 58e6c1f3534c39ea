"""The ZeroMQ client API: a ROUTER for requests and private events, a PUB for public data.

A client connects a DEALER (or REQ) socket, sends `session.login` with its token, then
any request; each request frame holds one msgpack map, or a list of maps answered one
reply frame each. Logged-in DEALER connections also receive the user's private events.
REQ sockets get replies only (an unsolicited frame would break their strict alternation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import zmq
import zmq.asyncio
from pydantic import ValidationError

from gateway.core import Gateway, Reply, hash_token, to_command
from protocol import codec, topics
from protocol.codec import PROTOCOL_VERSION, Limits
from protocol.errors import ErrorCode, RejectError, error_body
from protocol.messages import REQUESTS, Login
from protocol.settings import Settings

log = logging.getLogger("gateway")

MAX_SESSIONS = 100_000
_DRAIN = 1000  # frames taken per wake-up before yielding to the loop


@dataclass(slots=True)
class ZmqSession:
    user_id: int
    auth: str  # token hash
    envelope: list[bytes]
    events: bool


def validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "message"
    return f"{where}: {first['msg']} ({exc.error_count()} problem(s))"


class ClientEndpoint:
    def __init__(self, settings: Settings, gateway: Gateway) -> None:
        self.settings = settings
        self.gateway = gateway
        self.limits = Limits(max_message_bytes=settings.limits.max_message_bytes)
        self.sessions: OrderedDict[bytes, ZmqSession] = OrderedDict()
        self.by_user: dict[int, set[bytes]] = {}
        self._task: asyncio.Task[None] | None = None

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
        self.pub = self.gateway.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.bind(e.client_pub)
        self.gateway.on_event(self.deliver_event)
        self.gateway.on_broadcast(self.republish)
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _serve(self) -> None:
        while True:
            frames = await self.router.recv_multipart()
            self._handle_frames(frames)
            for _ in range(_DRAIN):
                future = self.router.recv_multipart(zmq.NOBLOCK)
                if future.exception() is not None:
                    break
                self._handle_frames(future.result())

    def _handle_frames(self, frames: list[bytes]) -> None:
        if len(frames) < 2:
            return  # a bare identity: nothing to answer
        envelope, payload = frames[:-1], frames[-1]
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
                self._handle(envelope, raw)
            except RejectError as rej:
                self._send(envelope, {**error_body(rej.code, rej.message), "rid": _rid(raw)})

    def _handle(self, envelope: list[bytes], raw: dict[str, Any]) -> None:
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
            self._login(envelope, request)
        else:
            session = self.sessions.get(envelope[0])
            if session is None:
                raise RejectError(ErrorCode.AUTH_LOGIN_REQUIRED, "send session.login first")
            command = to_command(request, kind)
            self.gateway.submit(
                command, session.auth, lambda r: self._send(envelope, {**r, "rid": rid})
            )

    def _login(self, envelope: list[bytes], request: Login) -> None:
        auth = hash_token(request.token)

        def ready(reply: Reply) -> None:
            if reply.get("type") == "session.ready":
                # REQ peers put an empty delimiter before the payload; they cannot take events
                wants_events = request.events and envelope[-1] != b""
                self._bind(envelope, ZmqSession(reply["user_id"], auth, envelope, wants_events))
            else:
                self._unbind(envelope[0])  # a failed login logs the connection out
            self._send(envelope, {**reply, "rid": request.rid})

        self.gateway.submit({"type": "session.login"}, auth, ready)

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
        future = self.router.send_multipart([*envelope, codec.encode(body)], zmq.NOBLOCK)
        if future.done() and future.exception() is not None:
            self._unbind(envelope[0])  # the peer is gone (ROUTER_MANDATORY) or not keeping up
            return False
        return True

    # PUSHED MESSAGES -------------------------------------------------------------------

    def deliver_event(self, user_id: int, event: Reply) -> None:
        for identity in list(self.by_user.get(user_id, ())):
            session = self.sessions[identity]
            if session.events:
                self._send(session.envelope, dict(event))

    def republish(self, topic: str, messages: list[Reply]) -> None:
        if topic != topics.CONTROL and not topic.startswith(topics.MARKET_PREFIX):
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
