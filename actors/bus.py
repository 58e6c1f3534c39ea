"""The I/O loop of one process: owns its ZeroMQ sockets, feeds actors, batches what they send.

Only the thread that calls `run()` touches sockets. Actors hand outgoing messages to
`send()` from any thread; the loop wakes, groups them by peer and topic, and sends each
group as one msgpack list per frame. Incoming frames are drained in bursts and given to
the handler of their socket as one list, so actors receive batches, not single messages.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from protocol import codec
from protocol.errors import RejectError

log = logging.getLogger(__name__)

Message = dict[str, Any]
BatchHandler = Callable[[list[Message]], None]
TopicHandler = Callable[[str, list[Message]], None]

_DRAIN_LIMIT = 2000  # frames read from one socket before looking at the others
_HWM = 1_000_000  # internal links: deep queues rather than silent drops


class Bus:
    """Sockets and timers of one process, driven by `run()` in one thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._ctx = zmq.Context()
        self._poller = zmq.Poller()
        self._pull: dict[zmq.Socket, BatchHandler] = {}
        self._untrusted: set[zmq.Socket] = set()
        self._subs: dict[zmq.Socket, TopicHandler] = {}
        self._out: dict[str, tuple[zmq.Socket, bool]] = {}  # peer -> (socket, is_pub)
        self._droppable: set[str] = set()
        self._timers: list[tuple[float, int, float, Callable[[], None]]] = []
        self._timer_ids = 0
        self._lock = threading.Lock()
        self._outbox: list[tuple[str, str | None, Message]] = []
        self._woken = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._poller.register(self._wake_r, zmq.POLLIN)
        self._stopping = False

    # WIRING (before run) -------------------------------------------------------------

    def _socket(self, kind: int) -> zmq.Socket:
        sock = self._ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 2000)
        sock.setsockopt(zmq.SNDHWM, _HWM)
        sock.setsockopt(zmq.RCVHWM, _HWM)
        return sock

    def pull(self, endpoint: str, handler: BatchHandler, untrusted: bool = False) -> None:
        """Bind this process's inbox; `handler` gets each burst of messages as one list.

        An `untrusted` inbox (fed by programs that are not ours) decodes with the client
        limits and drops, with a log line, frames that break them.
        """
        sock = self._socket(zmq.PULL)
        if untrusted:
            sock.setsockopt(zmq.MAXMSGSIZE, codec.CLIENT_LIMITS.max_message_bytes)
            self._untrusted.add(sock)
        sock.bind(endpoint)
        self._pull[sock] = handler
        self._poller.register(sock, zmq.POLLIN)

    def subscribe(self, endpoint: str, topics: tuple[str, ...], handler: TopicHandler) -> None:
        """Connect a SUB socket; `handler(topic, messages)` is called for each run of
        one topic in a burst, in the order they were published."""
        sock = self._socket(zmq.SUB)
        for topic in topics:
            sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
        sock.connect(endpoint)
        self._subs[sock] = handler
        self._poller.register(sock, zmq.POLLIN)

    def push_to(self, peer: str, endpoint: str, drop_when_full: bool = False) -> None:
        """Connect a PUSH socket to a peer's inbox; `send(peer, msg)` then reaches it.

        While the peer is away, messages queue up to the high-water mark; past it, sending
        blocks (backpressure) or, with `drop_when_full`, the batch is dropped and logged.
        """
        sock = self._socket(zmq.PUSH)
        sock.connect(endpoint)
        self._out[peer] = (sock, False)
        if drop_when_full:
            self._droppable.add(peer)

    def publish_as(self, peer: str, endpoint: str) -> None:
        """Bind a PUB socket; `send(peer, msg, topic)` broadcasts on it."""
        sock = self._socket(zmq.PUB)
        sock.bind(endpoint)
        self._out[peer] = (sock, True)

    def every(self, seconds: float, callback: Callable[[], None]) -> None:
        """Call `callback` in the loop thread every `seconds` (first call after one period)."""
        self._timer_ids += 1
        heapq.heappush(
            self._timers, (time.monotonic() + seconds, self._timer_ids, seconds, callback)
        )

    # ANY THREAD ----------------------------------------------------------------------

    def send(self, peer: str, message: Message, topic: str | None = None) -> None:
        """Queue a message for a peer (thread-safe); the loop sends it in the next batch."""
        self.send_many([(peer, topic, message)])

    def send_many(self, items: list[tuple[str, str | None, Message]]) -> None:
        """Queue several (peer, topic, message) at once, keeping their order."""
        if not items:
            return
        with self._lock:
            self._outbox.extend(items)
            if self._woken:
                return
            self._woken = True
        os.write(self._wake_w, b"!")

    def stop(self) -> None:
        """Ask the loop to flush what is queued and return (thread- and signal-safe)."""
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    # LOOP ----------------------------------------------------------------------------

    def run(self, on_stop: Callable[[], None] | None = None) -> None:
        """Poll until stop(); call `on_stop` (actors flush), send what is queued, close."""
        try:
            while not self._stopping:
                timeout = self._run_due_timers()
                for sock, _ in self._poller.poll(timeout):
                    if sock == self._wake_r:
                        self._drain_wake()
                    elif sock in self._pull:
                        self._read_pull(sock)
                    else:
                        self._read_sub(sock)
                self._flush()
            if on_stop is not None:
                on_stop()
            self._flush()
        finally:
            self._close()

    def _run_due_timers(self) -> int:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            due, ident, period, callback = heapq.heappop(self._timers)
            callback()
            heapq.heappush(self._timers, (max(due + period, now), ident, period, callback))
        if not self._timers:
            return 1000
        return max(0, int((self._timers[0][0] - time.monotonic()) * 1000) + 1)

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _read_pull(self, sock: zmq.Socket) -> None:
        batch: list[Message] = []
        for _ in range(_DRAIN_LIMIT):
            try:
                frame = sock.recv(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                break
            if sock not in self._untrusted:
                _extend(batch, codec.decode_internal(frame))
                continue
            try:
                batch.extend(codec.decode_untrusted(frame))
            except RejectError as rej:
                log.warning("dropped a frame from an external sender: %s", rej)
        if batch:
            self._pull[sock](batch)

    def _read_sub(self, sock: zmq.Socket) -> None:
        handler = self._subs[sock]
        runs: list[tuple[str, list[Message]]] = []  # in arrival order: ctl before the bars
        for _ in range(_DRAIN_LIMIT):
            try:
                topic_frame, payload = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            topic = topic_frame.decode()
            if not runs or runs[-1][0] != topic:
                runs.append((topic, []))
            _extend(runs[-1][1], codec.decode_internal(payload))
        for topic, batch in runs:
            handler(topic, batch)

    def _flush(self) -> None:
        with self._lock:
            pending, self._outbox = self._outbox, []
            self._woken = False
        if not pending:
            return
        # runs of one peer and topic, in the order sent: a PUB's topics stay in order
        groups: list[tuple[tuple[str, str | None], list[Message]]] = []
        for peer, topic, message in pending:
            if not groups or groups[-1][0] != (peer, topic):
                groups.append(((peer, topic), []))
            groups[-1][1].append(message)
        for (peer, topic), messages in groups:
            sock, is_pub = self._out[peer]
            payload = codec.encode(messages)
            if is_pub:
                sock.send_multipart([(topic or "").encode(), payload])
            elif peer in self._droppable:
                try:
                    sock.send(payload, zmq.NOBLOCK)
                except zmq.Again:
                    log.warning("%s is not taking messages; dropped %d", peer, len(messages))
            else:
                sock.send(payload)

    def _close(self) -> None:
        for sock in [*self._pull, *self._subs, *(s for s, _ in self._out.values())]:
            sock.close()
        self._ctx.term()
        os.close(self._wake_r)
        os.close(self._wake_w)


def _extend(batch: list[Message], decoded: Any) -> None:
    if isinstance(decoded, list):
        batch.extend(decoded)
    else:
        batch.append(decoded)
