"""One user's connection to the public ZeroMQ API on asyncio: a DEALER that sends
requests, matches replies to them by rid and hands private events to a callback; the
agents' equivalent of protocol/client.py's TradeClient, which blocks."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio

from actors.runtime import process
from protocol import codec
from protocol.client import TradeError
from protocol.codec import PROTOCOL_VERSION

Message = dict[str, Any]
log = logging.getLogger("agents")


class Refused(TradeError):
    """Raised when the server answers a request with an error: `code` is stable, and
    `retry_after` is the seconds to wait after REQUEST_RATE_LIMITED (0 otherwise)."""

    def __init__(self, code: str, message: str, retry_after: float = 0.0) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"Refused({self.code!r}, {self.message!r})"


class Link:
    """A DEALER to `endpoint`, signed in as the user of `token` with events and batches.

    Every message that carries an order (a reply's `order` and `replaced`, an event's
    `order`) goes to `on_message` in the order it arrived, before the request waiting for
    it resumes: a fill event that follows a reply is never applied before the reply."""

    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        endpoint: str,
        token: str,
        timeout: float,
        on_message: Callable[[Message], None] | None = None,
        events: bool = True,
    ) -> None:
        self.token = token
        self.timeout = timeout
        self.on_message = on_message
        self.events = events
        self.user: Message = {}
        self.signed_in_again = False  # the gateway forgot the session: events may be lost
        self._socket = ctx.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(endpoint)
        self._rids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Message]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def login(self) -> Message:
        """Sign in (again); raises Refused, e.g. AUTH_INVALID_TOKEN."""
        fields = {"token": self.token, "events": self.events, "batch": True}
        self.user = await self._call("session.login", fields)
        return self.user

    async def request(self, type: str, **fields: Any) -> Message:
        """Send a request and wait for its reply; signs in again once when the gateway
        has forgotten the session (a restart).

        Raises:
            Refused: the server's error reply.
            TimeoutError: no reply within `timeout`.
        """
        try:
            return await self._call(type, fields)
        except Refused as refused:
            if refused.code != "AUTH_LOGIN_REQUIRED":
                raise
        await self.login()
        self.signed_in_again = True
        return await self._call(type, fields)

    async def _call(self, type: str, fields: dict[str, Any]) -> Message:
        rid = next(self._rids)
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[rid] = waiter
        message = {"v": PROTOCOL_VERSION, "type": type, "rid": rid, **fields}
        try:
            await self._socket.send(codec.encode(message))
            reply = await asyncio.wait_for(waiter, self.timeout)
        finally:
            self._waiting.pop(rid, None)
        if reply.get("type") == "error":
            retry = reply.get("retry_after")
            raise Refused(
                reply.get("code", ""),
                reply.get("message", ""),
                float(retry) if isinstance(retry, int | float) else 0.0,
            )
        return reply

    async def _read(self) -> None:
        while True:
            frame = await self._socket.recv()
            try:
                decoded = codec.decode_internal(frame)
            except Exception:  # not ours to crash on: log and read on
                log.warning("undecodable frame from the gateway dropped", exc_info=True)
                continue
            for message in decoded if isinstance(decoded, list) else [decoded]:
                if not isinstance(message, dict):
                    continue
                if self.on_message is not None and (
                    message.get("type") == "event" or "order" in message
                ):
                    try:
                        self.on_message(message)
                    except Exception:  # a bug: this connection would go deaf
                        process.die("an agent failed on a message from the server")
                waiter = self._waiting.get(message.get("rid"))  # type: ignore[arg-type]
                if message.get("type") != "event" and waiter is not None and not waiter.done():
                    waiter.set_result(message)

    def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(zmq.ZMQError):
            self._socket.close(linger=0)
