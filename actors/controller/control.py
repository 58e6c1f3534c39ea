"""SessionControl owns the run state (kept in <data_dir>/control.json across restarts) and
whether each market is in session; it publishes both on topic `ctl` when they change and
every heartbeat, and answers control requests the accountant forwards.

Run states: `running` (quotes flow, orders fill), `paused` (quotes flow, nothing fills),
`stopped` (no quotes, nothing fills). In every state orders are accepted and rest.

It runs on the controller's I/O loop. A replay moves the clock through its bar times with
`at()`, which gives the control state at each one for the replay's steps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors.controller.sessions import Sessions
from actors.runtime.bus import Bus, Message
from actors.runtime.clock import Clock
from actors.runtime.statefile import StateFile
from protocol import topics
from protocol.settings import Settings
from protocol.values import iso_time

log = logging.getLogger("controller")
PUB = "pub"  # the controller's one PUB socket


def control_file(settings: Settings) -> Path:
    return Path(settings.server.data_dir) / "control.json"


def load_control(settings: Settings) -> dict[str, Any]:
    """What control.json kept: the run state, and the market time reached."""
    return StateFile(control_file(settings)).load()


class SessionControl:
    def __init__(
        self, settings: Settings, clock: Clock, bus: Bus, sessions: dict[str, Sessions]
    ) -> None:
        self.clock = clock
        self.bus = bus
        self.sessions = sessions  # per profile in use (sessions.market_sessions)
        self.default_profile = settings.market.profile
        self.fill_mode = settings.trading.fill_mode
        self.state_file = StateFile(control_file(settings))
        self.market_time = settings.control.clock == "market"
        self.state = str(load_control(settings).get("state", settings.control.initial_state))
        self.saved_time = self.clock.now_ns()
        # profile -> (open, trading day, phase, cancels allowed)
        self.session: dict[str, tuple[bool, str, str, bool]] = {}
        self.seq = 0
        self.listeners: list[Callable[[Message], None]] = []  # told every control state
        self.replay: Callable[[], Message] | None = None  # a replay's progress, when asked

    def save(self, market_time: int | None = None) -> None:
        """The run state and the market time reached (a replay: its last bar time settled),
        for a restart."""
        if market_time is not None:
            self.saved_time = market_time
        elif self.replay is None:
            self.saved_time = self.clock.now_ns()
        self.state_file.save({"state": self.state, "market_time": self.saved_time})

    def start(self) -> None:
        self.check_session()
        self.broadcast()

    def check_session(self) -> bool:
        """Whether a session opened or closed, or a trading day turned, since last time."""
        now = self.clock.now_ns()
        session = {
            name: (s(now), s.trading_day(now), s.phase(now), s.cancels(now))
            for name, s in self.sessions.items()
        }
        if session == self.session:
            return False
        level = logging.INFO if self.replay is None else logging.DEBUG  # a replay: each bar
        for name, (open_, day, _phase, _cancels) in session.items():
            if open_ != self.session.get(name, (False,))[0]:
                log.log(level, "%s session %s (%s)", name, "open" if open_ else "closed", day)
        self.session = session
        return True

    def heartbeat(self) -> None:
        self.check_session()
        self.broadcast()
        if self.market_time and self.clock.now_ns() != self.saved_time and self.replay is None:
            self.save()  # a restart resumes market time from here (a replay saves its own)

    def request(self, msg: Message) -> None:
        """control.get, control.set (admin, checked by the accountant)."""
        if msg["type"] == "control.set" and msg["state"] != self.state:
            log.info("run state %s -> %s (user %s)", self.state, msg["state"], msg["user_id"])
            self.set_state(msg["state"])
        reply = {**self.view(), "rid": msg["rid"], "gw": msg["gw"]}
        if msg["type"] == "control.set" and self.replay is None:
            # through the matcher, which takes the state first: an order sent after this
            # answer cannot reach the matcher before the state it answers for
            self.bus.send(topics.MATCHER, {"type": "control.applied", "reply": reply})
        else:
            self.bus.send(topics.GATEWAY, reply)

    def set_state(self, state: str) -> None:
        self.state = state
        self.save()
        self.broadcast()

    def at(self, ts: int) -> Message:
        """A replay's clock moves to `ts`: the control state then (the sessions checked)."""
        self.clock.advance(ts)
        if self.check_session():
            self.seq += 1
        return self.view()

    def view(self) -> Message:
        now = self.clock.now_ns()
        markets = {
            name: {
                "session_open": open_,
                "trading": self.state == "running" and open_,
                "trading_day": day,
                "last_close": self.sessions[name].last_close(now),
                "phase": phase,
                "cancels": cancels,
            }
            for name, (open_, day, phase, cancels) in self.session.items()
        }
        view = {
            "type": "control",
            "state": self.state,
            "fill_mode": self.fill_mode,
            **markets[self.default_profile],  # the default profile's market, as before
            "markets": markets,
            "ts": now,
            "time": iso_time(now),
            "seq": self.seq,
        }
        if self.replay is not None:
            view["replay"] = self.replay()
        return view

    def broadcast(self) -> None:
        self.seq += 1
        state = self.view()
        self.bus.send(PUB, state, topics.CONTROL)
        for listener in self.listeners:
            listener(state)
