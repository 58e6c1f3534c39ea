"""The controller process: run/stop/pause state, trading sessions, the clock and market data.

`SessionControl` owns the run state (kept in <data_dir>/control.json across restarts)
and whether the market is in session; it broadcasts both on topic `ctl` when they change
and every heartbeat. `MarketFeed` owns the quotes and broadcasts each trade on
`md.<symbol>`. Both answer requests the accountant forwards after authenticating them.

Run states: `running` (quotes flow, orders fill), `paused` (quotes flow, nothing fills),
`stopped` (no quotes, nothing fills). In every state orders are accepted and rest.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pykka

from actors import process
from actors.bus import Bus, Message
from actors.clock import Clock, LiveClock
from actors.feeds import SyntheticFeed
from protocol import topics
from protocol.errors import ErrorCode, error_body
from protocol.settings import Settings
from protocol.values import iso_time

log = logging.getLogger("controller")
CALENDAR_DEPRECATION = r".*\.values returning an ndarray that drops timezone"
PUB = "pub"  # the controller's one PUB socket


@dataclass(frozen=True, slots=True)
class Request:
    message: Message


class Heartbeat:
    """Timer: re-check the session and broadcast the control state."""


class FeedTick:
    """Timer: the synthetic feed takes one step."""


def session_checker(settings: Settings) -> Callable[[int], bool]:
    """A function telling whether the market is in session at a time (ns since epoch)."""
    if settings.control.sessions == "always":
        return lambda _ts: True
    import exchange_calendars  # a second or two of pandas import: only when asked for
    import pandas as pd

    # exchange-calendars still reads Series.values, which pandas 3 deprecates; harmless here
    warnings.filterwarnings("ignore", message=CALENDAR_DEPRECATION)

    calendar = exchange_calendars.get_calendar("XSHG")

    def in_session(ts_ns: int) -> bool:
        minute = pd.Timestamp(ts_ns, unit="ns", tz=UTC).floor("min")
        if not calendar.first_minute <= minute <= calendar.last_minute:
            return False
        return bool(calendar.is_open_on_minute(minute, ignore_breaks=False))

    return in_session


class SessionControl(pykka.ThreadingActor):
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        bus: Bus,
        feed: pykka.ActorRef[Any],
        in_session: Callable[[int], bool],
    ) -> None:
        super().__init__()
        self.clock = clock
        self.bus = bus
        self.feed = feed
        self.in_session = in_session
        self.state_file = Path(settings.server.data_dir) / "control.json"
        self.state = self._load_state(settings.control.initial_state)
        self.session_open = False
        self.seq = 0

    def _load_state(self, default: str) -> str:
        try:
            return str(json.loads(self.state_file.read_text())["state"])
        except (OSError, ValueError, KeyError):
            return default

    def on_start(self) -> None:
        self.session_open = self.in_session(self.clock.now_ns())
        self.broadcast()

    def on_failure(self, *_exc: object) -> None:
        process.die("session control failed")

    def on_receive(self, message: Any) -> None:
        if isinstance(message, Heartbeat):
            session_open = self.in_session(self.clock.now_ns())
            if session_open != self.session_open:
                log.info("session %s", "open" if session_open else "closed")
            self.session_open = session_open
            self.broadcast()
        elif isinstance(message, Request):
            msg = message.message
            if msg["type"] == "control.set" and msg["state"] != self.state:
                log.info("run state %s -> %s (user %s)", self.state, msg["state"], msg["user_id"])
                self.state = msg["state"]
                tmp = self.state_file.with_suffix(".tmp")
                tmp.write_text(json.dumps({"state": self.state}))
                tmp.replace(self.state_file)
                self.broadcast()
            reply = {**self.view(), "rid": msg["rid"], "gw": msg["gw"]}
            self.bus.send(topics.GATEWAY, reply)

    def view(self) -> Message:
        now = self.clock.now_ns()
        return {
            "type": "control",
            "state": self.state,
            "session_open": self.session_open,
            "trading": self.state == "running" and self.session_open,
            "ts": now,
            "time": iso_time(now),
            "seq": self.seq,
        }

    def broadcast(self) -> None:
        self.seq += 1
        state = self.view()
        self.bus.send(PUB, state, topics.CONTROL)
        self.feed.tell(state)


class MarketFeed(pykka.ThreadingActor):
    def __init__(self, settings: Settings, clock: Clock, bus: Bus) -> None:
        super().__init__()
        self.clock = clock
        self.bus = bus
        self.source = SyntheticFeed(settings)
        self.state_file = Path(settings.server.data_dir) / "feed.json"
        with contextlib.suppress(OSError, ValueError):
            self.source.resume(json.loads(self.state_file.read_text()))
        self.quotes: dict[str, Message] = {}
        self.flowing = False
        self.seq = 0
        now = clock.now_ns()
        for symbol, last in self.source.prices().items():
            self.quotes[symbol] = self._quote(symbol, last, 0, now)

    def on_failure(self, *_exc: object) -> None:
        process.die("market feed failed")

    def _save_prices(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.source.prices()))
        tmp.replace(self.state_file)

    def _quote(self, symbol: str, last: str, volume: int, ts: int) -> Message:
        self.seq += 1
        return {
            "type": "quote",
            "symbol": symbol,
            "last": last,
            "volume": volume,
            "ts": ts,
            "time": iso_time(ts),
            "seq": self.seq,
        }

    def on_receive(self, message: Any) -> None:
        if isinstance(message, FeedTick) and self.flowing:
            now = self.clock.now_ns()
            for tick in self.source.step():
                quote = self._quote(tick.symbol, str(tick.last), tick.volume, now)
                self.quotes[tick.symbol] = quote
                self.bus.send(PUB, quote, topics.market(tick.symbol))
        elif isinstance(message, dict) and message.get("type") == "control":
            self._save_prices()  # once a heartbeat: a restart resumes the walk from here
            flowing = message["state"] != "stopped" and message["session_open"]
            if flowing and not self.flowing:
                for symbol, quote in self.quotes.items():  # late joiners get a price at once
                    self.bus.send(PUB, quote, topics.market(symbol))
            self.flowing = flowing
        elif isinstance(message, Request):
            msg = message.message
            quote = self.quotes.get(msg.get("symbol", ""))
            if quote is None:
                body = dict(
                    error_body(ErrorCode.REQUEST_UNKNOWN_SYMBOL, f"no symbol {msg.get('symbol')!r}")
                )
            else:
                body = {"type": "quote", "quote": {k: v for k, v in quote.items() if k != "type"}}
            body["rid"] = msg["rid"]
            body["gw"] = msg["gw"]
            self.bus.send(topics.GATEWAY, body)


def main(settings: Settings) -> None:
    """Wire the controller: PUB out first, then the actors, then the request inbox and timers."""
    process.setup_logging(settings, "controller")
    clock = LiveClock()
    bus = Bus("controller")
    # 1. control state and quotes go out on one PUB socket; replies to the gateway's inbox
    bus.publish_as(PUB, settings.endpoints.control_pub)
    bus.push_to(topics.GATEWAY, settings.endpoints.gateway_in, drop_when_full=True)
    feed = MarketFeed.start(settings, clock, bus)
    control = SessionControl.start(settings, clock, bus, feed, session_checker(settings))

    # 2. requests forwarded by the accountant: control to SessionControl, quotes to the feed
    owners = {"control.get": control, "control.set": control, "quote.get": feed}

    def route(messages: list[Message]) -> None:
        for msg in messages:
            owner = owners.get(msg.get("type"))  # type: ignore[arg-type]
            if owner is None:
                log.error("unknown message type %r; ignored", msg.get("type"))
            else:
                owner.tell(Request(msg))

    bus.pull(settings.endpoints.controller_in, route)
    bus.every(settings.control.heartbeat_interval, lambda: control.tell(Heartbeat()))
    bus.every(settings.market.tick_interval, lambda: feed.tell(FeedTick()))
    log.info("controller up at %s", datetime.now(UTC).isoformat())
    process.run(bus, [control, feed])


if __name__ == "__main__":
    main(process.settings_from_argv(sys.argv))
