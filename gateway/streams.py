"""The HTTP event streams open at this gateway: each an asyncio queue, ended by a
StreamEnd. `Sessions` holds the private streams, by user (GET /v1/events);
`MarketStreams` the public market-data streams (GET /v1/market/events), fed from the
controller's broadcasts.

Its own module, not the gateway's entry point (run as __main__), so that the app and the
process share one StreamEnd class.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from protocol import codec, topics
from protocol.codec import PROTOCOL_VERSION

log = logging.getLogger("gateway")

MAX_QUEUED_EVENTS = 10_000  # per stream; a client that stops reading loses its stream
# per market stream: minutes of quotes for a few symbols; a reader that stops loses it
MAX_QUEUED_MARKET = 5_000
# fields of a control broadcast that change with every heartbeat, not with the state
_CONTROL_CLOCK = frozenset({"ts", "time", "seq", "v"})


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last item of a stream: why it ends, sent to the client as an SSE event."""

    event: str  # "overflow" (the reader fell behind) or "session.ended"
    reason: str


EventQueue = asyncio.Queue[dict[str, Any] | StreamEnd]
ENDED_WHILE_OPENING = "token.changed"  # rotated or revoked while the stream opened
SIGNED_OUT = "session.closed"  # the console session that opened the stream


class SessionEnds:
    """Which users' sessions ended since a moment: a stream is opened after an `await`
    (its login), and the end of its token can be handled in that gap, before the stream
    is there to be ended. Each stream notes `mark()` before it asks, and is ended at once
    if its user's sessions ended after that mark."""

    def __init__(self) -> None:
        self._count = 0
        self._last: dict[int, int] = {}  # user id -> the number of the user's last end

    def mark(self) -> int:
        return self._count

    def ended(self, user_id: int) -> None:
        self._count += 1
        self._last[user_id] = self._count

    def ended_since(self, user_id: int, mark: int, queue: asyncio.Queue[Any]) -> bool:
        """Whether the user's sessions ended after `mark`; if so `queue`, the new stream's,
        gets its last item."""
        if self._last.get(user_id, 0) <= mark:
            return False
        queue.put_nowait(StreamEnd("session.ended", ENDED_WHILE_OPENING))
        return True


class Sessions:
    """Event queues of open HTTP event streams, by user id; those opened with a console
    session's cookie also by that session, which ends them when it closes."""

    def __init__(self) -> None:
        self._queues: dict[int, set[EventQueue]] = {}
        self._console: dict[EventQueue, tuple[str, int]] = {}  # -> (session id, user id)
        self.ends = SessionEnds()

    def subscribe(self, user_id: int, mark: int, console: str | None = None) -> EventQueue:
        """A stream for the user, who signed in after `mark` (SessionEnds); `console`: the
        console session whose cookie opened it."""
        queue: EventQueue = asyncio.Queue(MAX_QUEUED_EVENTS + 1)
        if self.ends.ended_since(user_id, mark, queue):
            return queue
        self._queues.setdefault(user_id, set()).add(queue)
        if console is not None:
            self._console[queue] = (console, user_id)
        return queue

    def unsubscribe(self, user_id: int, queue: EventQueue) -> None:
        self._console.pop(queue, None)
        queues = self._queues.get(user_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._queues[user_id]

    def end_console(self, session_id: str) -> None:
        """The console session closed (signed out, or closed for another): its streams end."""
        for queue, (opened_by, user_id) in list(self._console.items()):
            if opened_by == session_id:
                queue.put_nowait(StreamEnd("session.ended", SIGNED_OUT))
                self.unsubscribe(user_id, queue)

    def deliver(self, user_id: int, event: dict[str, Any] | bytes) -> None:
        """An event for the user's streams; packed (bytes) as the accountant sends it, or a
        map."""
        queues = self._queues.get(user_id)
        if not queues:
            return
        if isinstance(event, bytes):
            event = codec.decode_internal(event)
        for queue in list(queues):
            if queue.qsize() < MAX_QUEUED_EVENTS:
                queue.put_nowait(event)
            else:
                log.warning("event stream of user %d is not reading; closing it", user_id)
                queue.put_nowait(StreamEnd("overflow", "too many unread events"))
                self.unsubscribe(user_id, queue)

    def events_lost(self) -> None:
        """Tell every stream that some events may be missing (protocol.md 5)."""
        for user_id in list(self._queues):
            self.deliver(user_id, {"type": "event", "event": "events.lost", "seq": None})

    def end(self, user_id: int, reason: str) -> None:
        """End every stream of the user (its token was rotated or revoked)."""
        self.ends.ended(user_id)
        for queue in self._queues.pop(user_id, set()):
            self._console.pop(queue, None)
            queue.put_nowait(StreamEnd("session.ended", reason))


MarketQueue = asyncio.Queue[bytes | StreamEnd]


@dataclass(eq=False, slots=True)
class _MarketReader:
    user_id: int
    symbols: frozenset[str] | None  # None: every symbol
    queue: MarketQueue
    console: str | None  # the console session whose cookie opened it


class MarketStreams:
    """Public market-data streams: each gets the quotes (or bars) of its symbols and every
    change of the control state, as SSE frames encoded once per broadcast for all of them.

    Only public broadcasts reach it (Gateway.on_broadcast: topics `ctl` and `md.*`), so
    nothing private can. The latest control state is kept to start each new stream with.
    """

    def __init__(self) -> None:
        self._readers: set[_MarketReader] = set()
        self._control: dict[str, Any] | None = None  # the latest, without its clock fields
        self._control_frame: bytes | None = None
        self.ends = SessionEnds()

    def subscribe(
        self,
        user_id: int,
        symbols: frozenset[str] | None,
        mark: int,
        console: str | None = None,
    ) -> MarketQueue:
        """As Sessions.subscribe, for `symbols` (None: all)."""
        queue: MarketQueue = asyncio.Queue(MAX_QUEUED_MARKET + 1)
        if self.ends.ended_since(user_id, mark, queue):
            return queue
        self._readers.add(_MarketReader(user_id, symbols, queue, console))
        if self._control_frame is not None:
            queue.put_nowait(self._control_frame)
        return queue

    def unsubscribe(self, queue: MarketQueue) -> None:
        self._readers = {r for r in self._readers if r.queue is not queue}

    def reading(self) -> bool:
        """Whether any market stream is open (a replay's bars are unpacked for it)."""
        return bool(self._readers)

    def on_broadcast(self, topic: str, messages: list[dict[str, Any]]) -> None:
        """Gateway.on_broadcast listener: `ctl` when the state changed, `md.<symbol>`."""
        if topic == topics.CONTROL:
            for message in messages:
                state = {k: v for k, v in message.items() if k not in _CONTROL_CLOCK}
                if state == self._control:
                    continue  # a heartbeat: the state is the same
                self._control = state
                self._control_frame = sse_frame("control", message)
                self._send(self._control_frame, None)
        elif topic.startswith((topics.MARKET_PREFIX, topics.DEPTH_PREFIX)) and self._readers:
            symbol = topic.split(".", 1)[1]
            if not any(r.symbols is None or symbol in r.symbols for r in self._readers):
                return  # encoded only for a reader that takes it
            for message in messages:
                self._send(sse_frame(str(message.get("type", "quote")), message), symbol)

    def _send(self, frame: bytes, symbol: str | None) -> None:
        for reader in list(self._readers):
            if symbol is not None and reader.symbols is not None and symbol not in reader.symbols:
                continue
            if reader.queue.qsize() < MAX_QUEUED_MARKET:
                reader.queue.put_nowait(frame)
            else:
                log.warning("market stream of user %d is not reading; closing it", reader.user_id)
                reader.queue.put_nowait(StreamEnd("overflow", "too many unread events"))
                self._readers.discard(reader)

    def end(self, user_id: int, reason: str) -> None:
        """End every market stream of the user (its token was rotated or revoked)."""
        self.ends.ended(user_id)
        for reader in [r for r in self._readers if r.user_id == user_id]:
            reader.queue.put_nowait(StreamEnd("session.ended", reason))
            self._readers.discard(reader)

    def end_console(self, session_id: str) -> None:
        for reader in [r for r in self._readers if r.console == session_id]:
            reader.queue.put_nowait(StreamEnd("session.ended", SIGNED_OUT))
            self._readers.discard(reader)

    def __len__(self) -> int:
        return len(self._readers)


def sse_frame(event: str, message: dict[str, Any]) -> bytes:
    """One SSE event: its name, and the message as one line of JSON with `v`."""
    data = json.dumps({**message, "v": PROTOCOL_VERSION}, separators=(",", ":"))
    return f"event: {event}\ndata: {data}\n\n".encode()
