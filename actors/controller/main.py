"""The controller process: run/stop/pause state, trading sessions, the clock and market data.

Everything runs on the process's I/O loop (actors/runtime/bus.py), on timers and on the
requests the accountant forwards: SessionControl (actors/controller/control.py) owns the
run state and the sessions, MarketFeed (quotes.py) the quotes, BarHistory (history.py)
the bars it serves, and a replay's Replayer (replayer.py) sends its bar times down the
processes in flow order.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

from actors.controller.bars import replay_bars
from actors.controller.control import PUB, SessionControl, load_control
from actors.controller.history import BarHistory
from actors.controller.quotes import MarketFeed
from actors.controller.replayer import TICK, Replayer
from actors.controller.sessions import market_sessions
from actors.runtime import process
from actors.runtime.bus import Message
from actors.runtime.clock import clock_for
from protocol import topics
from protocol.errors import ErrorCode, error_body
from protocol.settings import Settings

log = logging.getLogger("controller")
LOCKSTEP_MESSAGES = frozenset({"replay.join", "replay.done"})


def main(settings: Settings) -> None:
    """Wire the controller: PUB out first, then state, then the request inbox and timers."""
    process.setup_logging(settings, "controller")
    market_time = load_control(settings).get("market_time", 0)
    clock = clock_for(settings.control.clock, market_time if isinstance(market_time, int) else 0)
    bus = process.bus_for(settings, "controller")
    # 1. control state and quotes go out on one PUB socket; replies to the gateway's inbox;
    #    a replay's bar times to the matcher, the head of the processes' flow
    bus.publish_as(PUB, settings.endpoints.control_pub)
    bus.push_to(topics.GATEWAY, settings.endpoints.gateway_in, drop_when_full=True)
    bus.push_to(topics.MATCHER, settings.endpoints.matcher_in)  # steps, run-state changes
    feed = MarketFeed(settings, clock, bus)
    control = SessionControl(settings, clock, bus, market_sessions(settings))
    control.listeners.append(feed.on_control)
    history = BarHistory(feed.market)
    replayer = None
    if settings.market.feed == "replay":  # bars from files, on their own time
        bars = replay_bars(settings)
        replayer = Replayer(settings, control, feed, bus, bars)
        history.load_replay(bars, replayer.present)
    else:
        feed.trade_listeners.append(history.on_trade)

    # 2. requests forwarded by the accountant: control to SessionControl, quotes to the feed,
    #    bars to the history;
    #    a replay's joins and dones (through the matcher) and settled bar times (from the
    #    accountant) to the replayer
    def route(messages: list[Message]) -> None:
        for msg in messages:
            kind = msg.get("type")
            if kind in ("control.get", "control.set"):
                control.request(msg)
            elif kind == "quote.get":
                feed.request(msg)
            elif kind == "exchange.md":
                feed.on_exchange(msg)
            elif kind in ("bars.get", "bars.latest"):
                bus.send(
                    topics.GATEWAY, {**history.answer(msg), "rid": msg["rid"], "gw": msg["gw"]}
                )
            elif replayer is not None and kind == "replay.settled":
                replayer.on_settled(msg)
            elif replayer is not None and kind in LOCKSTEP_MESSAGES:
                replayer.on_lockstep(msg)
            elif kind in LOCKSTEP_MESSAGES and "gw" in msg:
                error = error_body(ErrorCode.REQUEST_NOT_REPLAYING, "this server does not replay")
                bus.send(topics.GATEWAY, {**error, "rid": msg["rid"], "gw": msg["gw"]})
            else:
                log.error("unknown message type %r; ignored", kind)

    bus.pull(settings.endpoints.controller_in, route)

    def heartbeat() -> None:
        control.heartbeat()
        feed.save()

    bus.every(settings.control.heartbeat_interval, heartbeat)
    if replayer is not None:  # 3. the replay's timer
        bus.every(TICK, replayer.tick)
    elif settings.market.feed == "synthetic":
        bus.every(settings.market.tick_interval, feed.tick)
    else:  # 3. an external program pushes trades in
        # in market time the session control sees each trade's time first
        if settings.control.clock == "market":
            bus.pull(
                settings.endpoints.quotes_in,
                lambda msgs: feed.on_pushed_in_market_time(msgs, control),
                untrusted=True,
            )
        else:
            bus.pull(settings.endpoints.quotes_in, feed.on_pushed, untrusted=True)
    control.start()
    log.info("controller up at %s", datetime.now(UTC).isoformat())
    process.run(bus, [])


if __name__ == "__main__":
    main(process.settings_from_argv(sys.argv))
