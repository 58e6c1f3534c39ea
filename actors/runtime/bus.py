"""The I/O loop of one process: owns its ZeroMQ sockets, feeds actors, batches what they send.

Only the thread that calls `run()` touches sockets. Handlers run on that thread; other
threads (actors) hand outgoing messages to `send()`, which wakes the loop. Each turn of the
loop drains the ready sockets in bursts and gives each handler its messages as one list,
calls the burst-end hooks (the accountant commits there), then sends what is queued: one
msgpack list per frame, one frame per peer (a PUB's topics stay in the order sent).

Every frame on an internal link is numbered (actors/runtime/streams.py): the header frame
`[sender, link, life, seq]` goes before the payload. Receivers hand frames on in order,
ask the sender for what a gap lost (a `bus.resend` message, answered here from the frames
each link keeps), and report what could not be had to `on_lost` handlers.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from itertools import groupby
from typing import Any

import zmq

from actors.runtime.curve import Curve, secure_bind, secure_connect
from actors.runtime.streams import (
    RESEND_EVERY,
    RESEND_TYPE,
    Incoming,
    Outgoing,
    header,
    link_health,
    new_life,
    read_header,
)
from protocol import codec
from protocol.errors import RejectError

log = logging.getLogger(__name__)

Message = dict[str, Any]
BatchHandler = Callable[[list[Message]], None]
TopicHandler = Callable[[str, list[Message]], None]
LostHandler = Callable[[str, str, int], None]  # (sender, link, frames lost)
Published = tuple[str, bytes]  # (topic, payload); a PUSH link's topic is ""

_DRAIN_LIMIT = 2000  # frames read from one socket before looking at the others
_HWM = 1_000_000  # internal links: deep queues rather than silent drops
_RETAIN = 10_000  # frames each link keeps for resends
_CHECK_GAPS_EVERY = 0.1  # seconds
# On close, how long queued frames may wait for their peer: plenty for a live one; a peer
# that has stopped first (the supervisor stops in flow order) would cost all of it.
_LINGER_MS = 500
_EMPTY = codec.encode([])


class Bus:
    """Sockets and timers of one process, driven by `run()` in one thread."""

    def __init__(
        self, name: str, hwm: int = _HWM, retain: int = _RETAIN, curve: Curve | None = None
    ) -> None:
        self.name = name
        self.life = new_life()
        self._hwm = hwm
        self._retain = retain
        self._ctx = zmq.Context()
        self._curve = curve  # keys for tcp links (actors/runtime/curve.py), None: in the clear
        self._auth = curve.authenticator(self._ctx) if curve else None
        self._poller = zmq.Poller()
        self._pull: dict[zmq.Socket, BatchHandler] = {}
        self._untrusted: set[zmq.Socket] = set()
        self._subs: dict[zmq.Socket, TopicHandler] = {}
        self._sub_topics: dict[zmq.Socket, tuple[str, ...]] = {}
        self._out: dict[str, tuple[zmq.Socket, bool]] = {}  # peer -> (socket, is_pub)
        self._outgoing: dict[str, Outgoing[Published]] = {}  # peer -> its numbered frames
        # (sender, link) -> its frames, and the socket whose handler takes them (a PUB's
        # frames sent again come on the inbox, but go where the PUB's frames go)
        self._incoming: dict[tuple[str, str], Incoming[Published]] = {}
        self._origin: dict[tuple[str, str], zmq.Socket] = {}
        self._inbox = ""  # the trusted PULL's endpoint: where a PUB's resends are sent
        self._resend_sockets: dict[str, zmq.Socket] = {}  # inbox endpoint -> PUSH
        self._lost_handlers: list[LostHandler] = []
        self._droppable: set[str] = set()
        self._dropped: set[str] = set()  # droppable peers whose last frame was dropped
        # frames being sent again, as their receiver takes them: socket -> frames left
        self._resending: dict[zmq.Socket, deque[list[bytes]]] = {}
        self._waiting_room: set[zmq.Socket] = set()  # PUSH sockets polled for room
        self._beat_at = 0.0
        self._timers: list[tuple[float, int, float, Callable[[], None]]] = []
        self._timer_ids = 0
        self._lock = threading.Lock()
        self._outbox: list[tuple[str, str | None, Message]] = []
        self._loop_thread: int | None = None  # the thread in run(): sends need no wake-up
        self._burst_end: list[Callable[[], None]] = []
        self._woken = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._poller.register(self._wake_r, zmq.POLLIN)
        self._stopping = False
        self.every(_CHECK_GAPS_EVERY, self._check_gaps)

    # WIRING (before run) -------------------------------------------------------------

    def _socket(self, kind: int) -> zmq.Socket:
        sock = self._ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, _LINGER_MS)
        sock.setsockopt(zmq.SNDHWM, self._hwm)
        sock.setsockopt(zmq.RCVHWM, self._hwm)
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
        else:
            self._inbox = endpoint
            secure_bind(self._curve, sock, endpoint)
        self._pull[sock] = handler
        self._poller.register(sock, zmq.POLLIN)

    def subscribe(self, endpoint: str, topics: tuple[str, ...], handler: TopicHandler) -> None:
        """Connect a SUB socket; `handler(topic, messages)` is called for each run of
        one topic in a burst, in the order they were published.

        It takes every topic and keeps those starting with one of `topics` here: the
        sender numbers all its frames in one sequence, so a gap shows only to a receiver
        that sees them all.
        """
        sock = self._socket(zmq.SUB)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        secure_connect(self._curve, sock, endpoint)
        self._subs[sock] = handler
        self._sub_topics[sock] = topics
        self._poller.register(sock, zmq.POLLIN)

    def push_to(self, peer: str, endpoint: str, drop_when_full: bool = False) -> None:
        """Connect a PUSH socket to a peer's inbox; `send(peer, msg)` then reaches it.

        While the peer is away, messages queue up to the high-water mark; past it, sending
        blocks (backpressure) or, with `drop_when_full`, the batch is dropped and logged.
        """
        sock = self._socket(zmq.PUSH)
        secure_connect(self._curve, sock, endpoint)
        self._out[peer] = (sock, False)
        self._outgoing[peer] = Outgoing(peer, self._retain)
        if drop_when_full:
            self._droppable.add(peer)

    def publish_as(self, peer: str, endpoint: str) -> None:
        """Bind a PUB socket; `send(peer, msg, topic)` broadcasts on it."""
        sock = self._socket(zmq.PUB)
        secure_bind(self._curve, sock, endpoint)
        self._out[peer] = (sock, True)
        self._outgoing[peer] = Outgoing(peer, self._retain)

    def on_lost(self, handler: LostHandler) -> None:
        """`handler(sender, link, count)`, in the loop thread, when frames from a sender
        could not be had again: the process resynchronises what they carried."""
        self._lost_handlers.append(handler)

    def on_burst_end(self, callback: Callable[[], None]) -> None:
        """`callback()` in the loop thread after each turn's bursts were handled, before
        what is queued goes out: where a process commits what the burst decided."""
        self._burst_end.append(callback)

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
        if threading.get_ident() == self._loop_thread:  # a handler: flushed this turn
            self._outbox.extend(items)
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
        self._loop_thread = threading.get_ident()
        try:
            while not self._stopping:
                timeout = self._run_due_timers()
                for sock, _ in self._poller.poll(timeout):
                    self._on_ready(sock)
                self._end_burst()
                self._flush()
            if on_stop is not None:
                on_stop()
            self._end_burst()
            self._flush()
        finally:
            self._close()

    def _end_burst(self) -> None:
        for callback in self._burst_end:
            callback()

    def _on_ready(self, sock: zmq.Socket | int) -> None:
        """One socket the poll found ready. A socket that was waiting for room may have
        finished its resend earlier in the same batch (a newer request sent the rest):
        its readiness is then stale and is let go; reading it would fail (a PUSH or
        PUB cannot receive)."""
        if sock == self._wake_r:
            self._drain_wake()
        elif sock in self._pull:
            self._read_pull(sock)
        elif sock in self._subs:
            self._read_sub(sock)
        elif sock in self._waiting_room:
            self._continue_resend(sock)

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
        ready: list[tuple[zmq.Socket, Published]] = []
        batch: list[Message] = []
        untrusted = sock in self._untrusted
        for _ in range(_DRAIN_LIMIT):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if not untrusted:  # [header, payload], or [header, payload, topic] sent again
                topic = frames[2].decode() if len(frames) == 3 else ""
                ready += self._in_order(sock, frames[:2], topic)
                continue
            try:
                batch.extend(codec.decode_untrusted(frames[-1]))
            except RejectError as rej:
                log.warning("dropped a frame from an external sender: %s", rej)
        if batch:
            self._pull[sock](batch)
        self._deliver(ready)

    def _deliver(self, ready: list[tuple[zmq.Socket, Published]]) -> None:
        """Frames to the handlers of the sockets their streams belong to, in order."""
        for origin, run in groupby(ready, key=lambda item: item[0]):
            frames = [frame for _, frame in run]
            if origin in self._subs:
                self._deliver_sub(origin, frames)
            else:
                self._deliver_pull(origin, [payload for _, payload in frames])

    def _deliver_pull(self, sock: zmq.Socket, payloads: list[bytes]) -> None:
        batch: list[Message] = []
        for payload in payloads:
            _extend(batch, codec.decode_internal(payload))
        for msg in batch:
            if msg.get("type") == RESEND_TYPE:
                self._resend(msg)
        batch = [m for m in batch if m.get("type") != RESEND_TYPE]
        if batch:
            self._pull[sock](batch)

    def _read_sub(self, sock: zmq.Socket) -> None:
        ready: list[tuple[zmq.Socket, Published]] = []
        for _ in range(_DRAIN_LIMIT):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            ready += self._in_order(sock, frames[1:], frames[0].decode())
        self._deliver(ready)

    def _deliver_sub(self, sock: zmq.Socket, published: list[Published]) -> None:
        wanted = self._sub_topics[sock]
        runs: list[tuple[str, list[Message]]] = []  # in arrival order: ctl before the bars
        for topic, payload in published:
            if not topic.startswith(wanted):
                continue
            if not runs or runs[-1][0] != topic:
                runs.append((topic, []))
            _extend(runs[-1][1], codec.decode_internal(payload))
        handler = self._subs[sock]
        for topic, batch in runs:
            handler(topic, batch)

    # NUMBERED FRAMES -------------------------------------------------------------------

    def _in_order(
        self, sock: zmq.Socket, frames: list[bytes], topic: str
    ) -> list[tuple[zmq.Socket, Published]]:
        """What may go on of one frame ([header, payload], or a bare payload from an older
        sender), with the socket whose handler takes it: itself, after the frames a gap
        held back, or nothing yet."""
        if len(frames) < 2:
            return [(sock, (topic, frames[-1]))]
        key, life, seq = read_header(frames[0])
        sender, link = key
        stream = self._incoming.get(key)
        if stream is None:
            stream = self._incoming[key] = Incoming()
            self._origin[key] = sock
        gaps_before = stream.gaps
        ready, lost = stream.take(life, seq, (topic, frames[1]), time.monotonic())
        if stream.gaps != gaps_before:
            log.info("gap from %s/%s at %d; asking for a resend", sender, link, stream.next)
        if lost:
            self._lost(sender, link, lost)
        origin = self._origin[key]
        return [(origin, frame) for frame in ready]

    def health(self) -> dict[str, Any]:
        """Links (sequence numbers, gaps, losses) and frames waiting to be sent again; call
        on the loop's thread (a timer)."""
        return {
            **link_health(self._outgoing, self._incoming),
            "resending": sum(len(frames) for frames in self._resending.values()),
            "dropping_to": sorted(self._dropped),
        }

    def _check_gaps(self) -> None:
        """Ask again for what each gap is missing; give up those that made no progress;
        beat to peers whose last frame was dropped."""
        now = time.monotonic()
        if self._dropped and now - self._beat_at >= RESEND_EVERY:
            self._beat_at = now
            self._beat()
        for (sender, link), stream in self._incoming.items():
            due = stream.due(now)
            if due == "give up":
                ready, lost = stream.give_up(now)
                self._lost(sender, link, lost)
                origin = self._origin[(sender, link)]
                self._deliver([(origin, frame) for frame in ready])
            elif due == "ask":
                route = self._out.get(sender)
                if route is not None and not route[1]:  # we push to the sender: ask it
                    self.send(sender, {**stream.resend_request(link), "inbox": self._inbox})

    def _lost(self, sender: str, link: str, count: int) -> None:
        log.warning("lost %d frame(s) from %s/%s: resynchronising", count, sender, link)
        for handler in self._lost_handlers:
            handler(sender, link, count)

    def _resend(self, request: Message) -> None:
        """Send again the frames a receiver missed, from what the link keeps, as fast as
        it takes them (the loop polls the socket for room). A PUB's frames go straight
        to the asker's inbox, not to every subscriber again. A newer request for the
        same socket replaces what is left of an older one."""
        outgoing = self._outgoing.get(request.get("link", ""))
        if outgoing is None or request.get("life") != self.life:
            return
        link = outgoing.link
        sock, is_pub = self._out[link]
        inbox = request.get("inbox")
        if is_pub and isinstance(inbox, str) and inbox:
            sock = self._resend_socket(inbox)
        frames = outgoing.since(int(request["first"]), int(request["last"]))
        log.info("resending %d frame(s) on %s from %d", len(frames), link, request["first"])
        parts = deque(
            [header(self.name, link, self.life, seq), payload, topic.encode()]
            if is_pub
            else [header(self.name, link, self.life, seq), payload]
            for seq, (topic, payload) in frames
        )
        self._resending[sock] = parts
        self._continue_resend(sock)

    def _resend_socket(self, inbox: str) -> zmq.Socket:
        sock = self._resend_sockets.get(inbox)
        if sock is None:
            sock = self._resend_sockets[inbox] = self._socket(zmq.PUSH)
            secure_connect(self._curve, sock, inbox)
        return sock

    def _continue_resend(self, sock: zmq.Socket) -> None:
        frames = self._resending.get(sock)
        while frames:
            try:
                sock.send_multipart(frames[0], zmq.NOBLOCK)
            except zmq.Again:
                if sock not in self._waiting_room:
                    self._waiting_room.add(sock)
                    self._poller.register(sock, zmq.POLLOUT)
                return
            frames.popleft()
        self._resending.pop(sock, None)
        if sock in self._waiting_room:
            self._waiting_room.discard(sock)
            self._poller.unregister(sock)

    def _flush(self) -> None:
        with self._lock:
            pending, self._outbox = self._outbox, []
            self._woken = False
        if not pending:
            return
        # one frame per pushed-to peer, whatever the interleaving; on a PUB, runs of one
        # topic in the order sent (a subscriber sees ctl before the bars that follow it)
        pushed: dict[str, list[Message]] = {}
        published: list[tuple[str, str, list[Message]]] = []
        for peer, topic, message in pending:
            if topic is None:
                batch = pushed.get(peer)
                if batch is None:
                    batch = pushed[peer] = []
                batch.append(message)
            elif published and published[-1][0] == peer and published[-1][1] == topic:
                published[-1][2].append(message)
            else:
                published.append((peer, topic, [message]))
        for peer, topic, messages in [
            *((peer, None, batch) for peer, batch in pushed.items()),
            *published,
        ]:
            sock, is_pub = self._out[peer]
            payload = codec.encode(messages)
            seq = self._outgoing[peer].stamp((topic or "", payload))
            head = header(self.name, peer, self.life, seq)
            if is_pub:
                sock.send_multipart([(topic or "").encode(), head, payload])
            elif peer in self._droppable:
                self._send_or_drop(peer, [head, payload], len(messages))
            else:
                sock.send_multipart([head, payload])

    def _send_or_drop(self, peer: str, frames: list[bytes], messages: int) -> None:
        sock, _ = self._out[peer]
        try:
            sock.send_multipart(frames, zmq.NOBLOCK)
            self._dropped.discard(peer)
        except zmq.Again:
            if peer not in self._dropped:
                log.warning("%s is not taking messages; dropping (%d now)", peer, messages)
            self._dropped.add(peer)

    def _beat(self) -> None:
        """An empty numbered frame to each peer whose last frame was dropped: a gap at the
        end of a burst shows when it arrives, and the peer asks for the rest."""
        for peer in list(self._dropped):
            seq = self._outgoing[peer].stamp(("", _EMPTY))
            self._send_or_drop(peer, [header(self.name, peer, self.life, seq), _EMPTY], 0)

    def _close(self) -> None:
        others = [*(s for s, _ in self._out.values()), *self._resend_sockets.values()]
        for sock in [*self._pull, *self._subs, *others]:
            sock.close()
        if self._auth is not None:
            self._auth.stop()
        self._ctx.term()
        os.close(self._wake_r)
        os.close(self._wake_w)


def _extend(batch: list[Message], decoded: Any) -> None:
    if isinstance(decoded, list):
        batch.extend(decoded)
    else:
        batch.append(decoded)
