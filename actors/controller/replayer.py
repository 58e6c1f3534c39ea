"""The replay: bars from files, one bar time at a time, through the processes in flow order.

Each bar time T is one `replay.step` message that travels controller -> matcher ->
accountant -> gateway, the same way as everything the bars cause: the matcher fills on
the bars at T's last instant (T - 1 ns) with the control state of that instant, passes on
its fills and then the step; the accountant settles the fills, takes the bars' closes
as prices and the control state at T (sessions closing, the day turning), commits, tells
the controller the step is settled (`replay.settled`), and passes the step to the
gateway, which publishes it to the bots (`replay.step` on topic `step`, each bar on
`md.<symbol>`). No marker goes round: the links are in order, so what arrives after a
step was caused after it.

Speeds (docs/replay.md): `max` keeps up to WINDOW bar times on their way; `xN` paces them
at N times the time between them; `lockstep` gives each bar time to the bots before the
next: the next step goes to the matcher at once, but waits there (actors/matcher/gate.py)
until every bot that joined has answered `replay.done` for this one. A bot's done follows
its orders down the same links, so they are in the books first. A bot that does not
answer in `replay_step_timeout` is let go (or the run stops, `replay_on_timeout`).

Progress survives a restart: the controller saves the time of the last settled bar time
(control.json, as market time) and the bots that joined (replay.json); a restarted replay
sends that bar time again (the matcher does not fill on a bar twice; the bots answer it
again) and goes on after it.
"""

from __future__ import annotations

import logging
import time as wall
from operator import itemgetter
from typing import Any

from actors.controller.bars import ReplayBar
from actors.controller.control import SessionControl
from actors.controller.quotes import MarketFeed
from actors.runtime.bus import Bus, Message
from actors.runtime.statefile import StateFile
from protocol import codec, topics
from protocol.errors import ErrorCode, error_body
from protocol.messages import STEP_BAR_KEYS, ReplayStep
from protocol.settings import Settings
from protocol.values import iso_time

log = logging.getLogger("controller")
_step_bar = itemgetter(*STEP_BAR_KEYS)  # a bar message as a StepBar

NS = 1_000_000_000
WINDOW = 256  # bar times on their way at once at speed max or xN
# lock-step: bar times sent ahead, held in the matcher's gate until the bots answered the
# one before; more than the accountant's SETTLED_EVERY, and few enough that a pause
# holds the replay within a few bar times
LOCKSTEP_WINDOW = 16
SETTLE_TIMEOUT = 10.0  # s a bar time may go unsettled before it is sent again
JOIN_WAIT = 30.0  # s a lock-step replay waits at most for `replay_bots` bots to join
RESTART_GRACE = 30.0  # s more the bots may take to answer just after a restart
TICK = 0.02  # s between two looks at a replay that waits for time (xN) or timeouts
# s between two saves of the progress: a restart sends again what came after the last
SAVE_EVERY = 0.25


class Replayer:
    """Drives a replay from the controller's I/O loop: `tick()` on a timer; `on_settled`,
    `on_lockstep` and `on_control` as their messages come."""

    def __init__(
        self,
        settings: Settings,
        control: SessionControl,
        feed: MarketFeed,
        bus: Bus,
        bars: list[ReplayBar],
    ) -> None:
        self.control = control
        self.feed = feed
        self.bus = bus
        self.groups: list[tuple[int, list[ReplayBar]]] = []
        for bar in bars:
            if self.groups and self.groups[-1][0] == bar.ts:
                self.groups[-1][1].append(bar)
            else:
                self.groups.append((bar.ts, [bar]))
        m = settings.market
        self.speed = m.replay_speed
        self.factor = float(self.speed[1:]) if self.speed.startswith("x") else None
        self.lockstep = self.speed == "lockstep"
        self.expected_bots = m.replay_bots
        self.step_timeout = m.replay_step_timeout
        self.stop_on_timeout = m.replay_on_timeout == "stop"
        self.saved = StateFile(settings.data_dir / "replay.json")
        self.bots: set[int] = set(self.saved.load().get("bots", []))  # lock-step: waited for
        after = control.clock.now_ns()  # the last bar time settled before a restart
        self.settled = sum(1 for ts, _ in self.groups if ts <= after)  # bar times settled
        # a restarted lock-step replay sends its last settled bar time again: the bots may
        # not have answered it (and the matcher does not fill on its bars twice)
        self.next = self.settled - 1 if self.lockstep and self.settled else self.settled
        self.unwaited = self.next + 1  # bar times before this one wait for no bot (resent)
        self.life = wall.time_ns()  # this run of the replay: the matcher drops older steps
        self.answered: dict[int, int] = {}  # lock-step: each bot's last bar time answered
        # the bars of bar times sent but not settled, by index: quote.get answers from a
        # bar once it is settled, never from one ahead of the bots
        self.unsettled: dict[int, list[Message]] = {}
        self.let_go: tuple[int, list[int]] | None = None  # timed out while stopping: later
        self.sent_at = 0.0  # when the oldest unsettled bar time went out (or was resent)
        self.saved_at = 0.0
        self.anchor: tuple[float, int] | None = None  # xN: wall time and bar time pacing starts
        self.running = control.state == "running"
        self.pending: set[int] = set()  # lock-step: bots yet to answer done for `at`
        self.at = 0  # lock-step: the bar time the bots are answering
        self.deadline = 0.0
        self.timeouts = 0
        self.ended = bool(self.groups) and self.settled == len(self.groups)
        self.join_until = wall.monotonic() + JOIN_WAIT if self.settled == 0 else 0.0
        # after a restart a bot may still wait for the answer to a replay.done the last
        # controller never sent: its client's timeout, on top of the step timeout
        self.grace_until = wall.monotonic() + RESTART_GRACE if self.settled else 0.0
        if self.ended:
            log.warning(
                "replay: the market time saved in this data dir is past the last bar; "
                "nothing to replay (start from a fresh data dir)"
            )
        control.replay = self.status
        control.listeners.append(self.on_control)
        log.info("replay of %d bar times, speed %s", len(self.groups), self.speed)

    def present(self) -> int:
        """The time of the last bar time settled (0 before the first): what the bots may
        know of the bars."""
        return self.groups[self.settled - 1][0] if self.settled else 0

    def status(self) -> dict[str, Any]:
        """The replay's progress, in the control state (docs/protocol.md)."""
        return {
            "speed": self.speed,
            "bar_times": len(self.groups),
            "closed": self.settled,
            "bots": len(self.bots),
            "timeouts": self.timeouts,
            "finished": self.ended,
        }

    # WHAT MOVES IT ---------------------------------------------------------------------

    def on_control(self, state: Message) -> None:
        running = state["state"] == "running"
        if running and not self.running:
            self.anchor = None  # paced again from now
            if self.pending:  # the bots get their time again after a pause
                self.deadline = wall.monotonic() + self.step_timeout
            if self.let_go is not None:  # the run goes on without the bots that timed out
                self.release(*self.let_go)
                self.let_go = None
        self.running = running
        if running:
            self.pump()

    def tick(self) -> None:
        now = wall.monotonic()
        if self.pending and now >= self.deadline:
            self.time_out()
        elif self.next > self.settled and now - self.sent_at >= SETTLE_TIMEOUT:
            self.resend()
        self.pump()

    def on_settled(self, msg: Message) -> None:
        """The accountant committed everything up to bar time `index` (1-based)."""
        index = int(msg["index"])
        if index <= self.settled:
            return
        self.settled = index
        for n in sorted(n for n in self.unsettled if n <= index):
            for bar in self.unsettled.pop(n):
                self.feed.bar_quotes[bar["symbol"]] = bar  # its quote is made if asked
        self.sent_at = now = wall.monotonic()
        ts = self.groups[index - 1][0]
        if now - self.saved_at >= SAVE_EVERY or index == len(self.groups):
            self.saved_at = now
            self.control.save(ts)  # a restart goes on after it
        if self.lockstep:  # the bots have it now: they have step_timeout to answer
            self.at = ts
            self.pending = {u for u in self.bots if self.answered.get(u, 0) < ts}
            self.deadline = max(now + self.step_timeout, self.grace_until)
        if self.settled == len(self.groups) and not self.pending:
            self.finish()
        else:
            self.pump()

    def on_lockstep(self, msg: Message) -> None:
        """A bot's replay.join or replay.done, through the accountant and the matcher."""
        user_id = msg["user_id"]
        if user_id not in self.bots:
            if self.expected_bots and len(self.bots) >= self.expected_bots:
                refused = error_body(
                    ErrorCode.REQUEST_INVALID,
                    f"this replay waits for its {self.expected_bots} bot(s) only",
                )
                self.reply(msg, dict(refused))
                return
            self.bots.add(user_id)  # a join, or a bot going on after a restart or a timeout
            self.saved.save({"bots": sorted(self.bots)})
            self.publish_status()
        if msg["type"] == "replay.join":
            next_ts = self.groups[self.next][0] if self.next < len(self.groups) else None
            self.reply(msg, {"type": "replay.joined", **self.status(), "next_ts": next_ts})
        else:
            if not msg.get("steps"):  # else the matcher answered it (matcher/router.py)
                self.reply(msg, {"type": "replay.ok", "ts": msg["ts"]})
            if msg["ts"] > self.answered.get(user_id, 0):
                self.answered[user_id] = msg["ts"]
            if self.pending and msg["ts"] >= self.at:
                self.pending.discard(user_id)
                if not self.pending and self.settled == len(self.groups):
                    self.finish()
        self.pump()

    # SENDING ---------------------------------------------------------------------------

    def pump(self) -> None:
        """Send the bar times that may go now."""
        if self.ended or not self.running or self.next >= len(self.groups):
            return
        if self.lockstep:  # a few ahead: the matcher's gate holds them for the bots
            while self.next < len(self.groups) and self.next - self.settled < LOCKSTEP_WINDOW:
                if self.bots_missing():
                    return
                self.send(self.next)
            return
        now = wall.monotonic()
        while self.next < len(self.groups) and self.next - self.settled < WINDOW:
            if self.factor is not None:
                ts = self.groups[self.next][0]
                if self.anchor is None:
                    self.anchor = (now, ts)
                if self.anchor[0] + (ts - self.anchor[1]) / NS / self.factor > now:
                    return
            self.send(self.next)

    def send(self, n: int) -> None:
        """Bar time n (0-based) as one step to the matcher."""
        ts, bars = self.groups[n]
        control = self.control
        fill = control.at(ts - 1)  # the bars' last instant: the matcher fills then
        self.feed.on_control(fill)
        messages = self.feed.replay_bars(bars, ts)
        if n + 1 > self.settled:
            self.unsettled[n + 1] = messages
        close = control.at(ts)  # complete: sessions close, the day may turn
        self.feed.on_control(close)
        after = self.groups[n - 1][0] if n else 0
        wait_for = []
        if self.lockstep and n >= self.unwaited:
            wait_for = sorted(u for u in self.bots if self.answered.get(u, 0) < after)
        step: ReplayStep = {
            "type": "replay.step",
            "ts": ts,
            "time": iso_time(ts),
            "index": n + 1,
            "count": len(self.groups),
            "bars": list(map(_step_bar, messages)),
            "packed_bars": codec.encode(messages),
            "fill": fill,
            "close": close,
            "life": self.life,
            "wait_for": wait_for,  # in the matcher: the bots that must have answered...
            "after": after,  # ...the bar time before
        }
        if self.settled == n:
            self.sent_at = wall.monotonic()
        self.bus.send(topics.MATCHER, step)
        if n == self.next:
            self.next += 1

    def resend(self) -> None:
        """Bar times unsettled for SETTLE_TIMEOUT, lost on the way (a process restarted):
        sent again; the matcher does not fill on a bar twice. In lock-step the bar time the
        bots still owe an answer goes again too: theirs may have been lost as well."""
        log.warning(
            "replay: bar time %d unsettled after %.0fs; sending it again",
            self.settled + 1,
            SETTLE_TIMEOUT,
        )
        first = max(self.settled - 1 if self.lockstep and self.pending else self.settled, 0)
        self.unwaited = max(self.unwaited, first + 1)  # settled already: it waits for nobody
        for n in range(first, self.next):
            self.send(n)
        self.sent_at = wall.monotonic()

    def bots_missing(self) -> bool:
        """Before the first bar time: the run expects more bots than have joined, and they
        still have time to. (One that times out later is not waited for again.)"""
        if len(self.bots) >= self.expected_bots or wall.monotonic() >= self.join_until:
            self.join_until = 0.0
            return False
        return True

    # ENDINGS ---------------------------------------------------------------------------

    def time_out(self) -> None:
        for user_id in sorted(self.pending):
            log.warning(
                "replay: bot user %d did not answer replay.done for %s in %.1fs%s",
                user_id,
                iso_time(self.at),
                self.step_timeout,
                "; stopping" if self.stop_on_timeout else "; going on without it",
            )
        gone = sorted(self.pending)
        self.timeouts += len(gone)
        self.bots -= self.pending
        self.saved.save({"bots": sorted(self.bots)})
        self.pending = set()
        if self.stop_on_timeout:
            self.let_go = (self.at, gone)  # the next bar time waits for them until it runs
            if self.control.state != "stopped":
                log.warning("run state %s -> stopped: a bot did not answer", self.control.state)
                self.control.set_state("stopped")
            return
        self.release(self.at, gone)
        self.publish_status()
        if self.settled == len(self.groups):
            self.finish()

    def release(self, ts: int, users: list[int]) -> None:
        """The matcher's gate stops waiting for these bots' answer to bar time `ts`."""
        self.bus.send(topics.MATCHER, {"type": "replay.release", "ts": ts, "users": users})

    def finish(self) -> None:
        self.ended = True
        log.info("replay done: %d bar times, %d bot timeouts", len(self.groups), self.timeouts)
        self.publish_status()

    def publish_status(self) -> None:
        self.control.broadcast()

    def reply(self, request: Message, body: Message) -> None:
        self.bus.send(topics.GATEWAY, {**body, "rid": request["rid"], "gw": request["gw"]})
