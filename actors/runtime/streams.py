"""Sequence numbers on internal links: gaps found, filled by resends, or given up as lost.

ZeroMQ drops without a word: a PUB past its high-water mark, a PUSH told not to block, and
whatever is in flight when a process dies. So each frame a process sends on an internal
link carries a header `[sender, link, life, seq]`: the sending process, the link (its PUB
socket, or the peer it pushes to), a number for this run of the sender (its "life"), and
a count from 1 per link and life.

The sender keeps its last frames per link (`Outgoing`). A receiver (`Incoming`, one per
sender and link) hands frames on in order, drops repeats, holds back those after a gap
and names the missing range, which the process asks the sender to resend. A gap that
makes no progress for a while is given up: the frames held behind it go on, the missing
ones are counted as lost, and the process resynchronises from its peer or the ledger
(actors.runtime.bus, `on_lost`).

A gap is seen when a later frame arrives, so the PUB's heartbeat (control state, every
second) bounds how long a loss at the end of a burst stays unseen.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from protocol import codec

T = TypeVar("T")

RESEND_TYPE = "bus.resend"  # {"type", "link", "life", "first", "last"}: the receiver asks
RESEND_EVERY = 0.5  # seconds between two requests for the same gap
GIVE_UP_AFTER = 5.0  # seconds a gap may make no progress before its frames count as lost


def new_life() -> int:
    """A number for this run of a process: later runs get larger ones (ns since epoch)."""
    return time.time_ns()


def header(sender: str, link: str, life: int, seq: int) -> bytes:
    return codec.encode([sender, link, life, seq])


def read_header(frame: bytes) -> tuple[tuple[str, str], int, int]:
    """((sender, link), life, seq) of a header frame."""
    sender, link, life, seq = codec.decode_internal(frame)
    return (sender, link), life, seq


RETAIN_BYTES = 16 * 1024 * 1024  # per link: a burst of replies can be megabytes


@dataclass
class Outgoing(Generic[T]):
    """One link's sequence and its last `retain` frames (at most `retain_bytes` of them),
    for resends."""

    link: str
    retain: int
    seq: int = 0
    kept: deque[tuple[int, T]] = field(default_factory=deque)
    retain_bytes: int = RETAIN_BYTES
    kept_bytes: int = 0

    def stamp(self, frame: T) -> int:
        """The next sequence number, with `frame` kept under it."""
        self.seq += 1
        self.kept.append((self.seq, frame))
        self.kept_bytes += _size(frame)
        while len(self.kept) > self.retain or (
            self.kept_bytes > self.retain_bytes and len(self.kept) > 1
        ):
            self.kept_bytes -= _size(self.kept.popleft()[1])
        return self.seq

    def since(self, first: int, last: int) -> list[tuple[int, T]]:
        """The kept frames numbered first..last (those not kept any more are left out)."""
        if not self.kept:
            return []
        oldest = self.kept[0][0]
        start, stop = max(first, oldest) - oldest, min(last, self.seq) - oldest + 1
        return [self.kept[i] for i in range(max(start, 0), max(stop, 0))]


@dataclass
class Incoming(Generic[T]):
    """Frames from one sender's link, handed on in order without repeats."""

    hold_max: int = 100_000  # frames held behind a gap before it is given up at once
    life: int | None = None
    next: int = 0  # the sequence number expected next
    held: dict[int, T] = field(default_factory=dict)
    stalled_at: float | None = None  # since when a gap has made no progress
    asked_at: float | None = None
    repeats: int = 0
    gaps: int = 0
    lost: int = 0

    def take(self, life: int, seq: int, frame: T, now: float) -> tuple[list[T], int]:
        """The frames that may go on now, in order, and how many were lost (frames of the
        sender's previous life that a gap kept back are handed on, the gap is lost)."""
        out: list[T] = []
        lost = 0
        if life != self.life:
            if self.life is not None and life < self.life:
                return [], 0  # a resend from a life that ended: its state is gone
            while self.held:
                more, skipped = self.give_up(now)
                out += more
                lost += skipped
            self.life, self.next = life, seq
        if seq < self.next or seq in self.held:
            self.repeats += 1
            return out, lost
        if seq > self.next:
            self.held[seq] = frame
            if self.stalled_at is None:
                self.stalled_at, self.asked_at = now, None
                self.gaps += 1
            if len(self.held) > self.hold_max:
                more, skipped = self.give_up(now)
                return out + more, lost + skipped
            return out, lost
        out.append(frame)
        self.next += 1
        out += self._release()
        if self.held:  # progress on a gap: ask for the rest now, not after RESEND_EVERY
            self.stalled_at, self.asked_at = now, None
        else:
            self.stalled_at = None
        return out, lost

    def missing(self) -> tuple[int, int] | None:
        """The first range of sequence numbers a gap is waiting for."""
        return (self.next, min(self.held) - 1) if self.held else None

    def due(self, now: float) -> Literal["give up", "ask"] | None:
        """What a gap needs now: to be given up (no progress for GIVE_UP_AFTER), to be
        asked for again (not asked for RESEND_EVERY; counted as asked), or nothing."""
        if not self.held or self.stalled_at is None:
            return None
        if now - self.stalled_at >= GIVE_UP_AFTER:
            return "give up"
        if self.asked_at is None or now - self.asked_at >= RESEND_EVERY:
            self.asked_at = now
            return "ask"
        return None

    def resend_request(self, link: str) -> dict[str, Any]:
        """The `bus.resend` message that asks the sender for the first gap's frames."""
        missing = self.missing()
        assert missing is not None, "no gap to ask for"
        first, last = missing
        return {"type": RESEND_TYPE, "link": link, "life": self.life, "first": first, "last": last}

    def give_up(self, now: float) -> tuple[list[T], int]:
        """Skip the first gap: the frames after it go on; returns them and how many were lost."""
        if not self.held:
            return [], 0
        first_held = min(self.held)
        lost = first_held - self.next
        self.lost += lost
        self.next = first_held
        out = self._release()
        self.stalled_at = now if self.held else None
        self.asked_at = None
        return out, lost

    def _release(self) -> list[T]:
        out = []
        while self.next in self.held:
            out.append(self.held.pop(self.next))
            self.next += 1
        return out


def _size(frame: Any) -> int:
    """The bytes of a kept frame: a payload, or (topic, payload); 0 for anything else."""
    if isinstance(frame, tuple):
        frame = frame[-1]
    return len(frame) if isinstance(frame, bytes | str) else 0


def link_health(
    outgoing: dict[str, Outgoing[Any]], incoming: dict[tuple[str, str], Incoming[Any]]
) -> dict[str, Any]:
    """Each link's sequence numbers and trouble counts, for a health report: `sent` the
    last number per link sent on, `received` per sender/link the last number handed on,
    frames held behind a gap, gaps seen, frames lost and repeats dropped."""
    return {
        "sent": {link: out.seq for link, out in outgoing.items()},
        "received": {
            f"{sender}/{link}": {
                "seq": stream.next - 1,
                "held": len(stream.held),
                "gaps": stream.gaps,
                "lost": stream.lost,
                "repeats": stream.repeats,
            }
            for (sender, link), stream in incoming.items()
        },
    }
