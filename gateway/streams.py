"""The HTTP event streams open at this gateway, by user: each an asyncio queue of the
user's private events, ended by a StreamEnd.

Its own module, not the gateway's entry point (run as __main__), so that the app and the
process share one StreamEnd class.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("gateway")

MAX_QUEUED_EVENTS = 10_000  # per stream; a client that stops reading loses its stream


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last item of a stream: why it ends, sent to the client as an SSE event."""

    event: str  # "overflow" (the reader fell behind) or "session.ended"
    reason: str


EventQueue = asyncio.Queue[dict[str, Any] | StreamEnd]


class Sessions:
    """Event queues of open HTTP event streams, by user id."""

    def __init__(self) -> None:
        self._queues: dict[int, set[EventQueue]] = {}

    def subscribe(self, user_id: int) -> EventQueue:
        queue: EventQueue = asyncio.Queue(MAX_QUEUED_EVENTS + 1)
        self._queues.setdefault(user_id, set()).add(queue)
        return queue

    def unsubscribe(self, user_id: int, queue: EventQueue) -> None:
        queues = self._queues.get(user_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._queues[user_id]

    def deliver(self, user_id: int, event: dict[str, Any]) -> None:
        for queue in list(self._queues.get(user_id, ())):
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
        for queue in self._queues.pop(user_id, set()):
            queue.put_nowait(StreamEnd("session.ended", reason))
