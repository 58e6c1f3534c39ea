"""The matcher process: owns the order books and decides fills.

The accountant pushes orders, cancels and replacements here; the controller broadcasts
run state and trades. The Router (actors/matcher/router.py) runs on the process's I/O
loop and pushes each fill, trigger and answer back to the accountant.
"""

from __future__ import annotations

import logging
import os
import sys

from actors.matcher.router import DONES_EVERY, Router
from actors.runtime import process
from actors.runtime.clock import clock_for
from protocol import topics
from protocol.settings import Settings

log = logging.getLogger("matcher")


def main(settings: Settings) -> None:
    """Wire the matcher in flow order: inbox from the accountant, market data, fills out."""
    process.setup_logging(settings, "matcher")
    bus = process.bus_for(settings, "matcher")
    # 1. fills and cancel answers go to the accountant
    bus.push_to(topics.ACCOUNTANT, settings.endpoints.accountant_in)
    bus.push_to(topics.CONTROLLER, settings.endpoints.controller_in)  # a replay's lock-step
    bus.push_to(topics.GATEWAY, settings.endpoints.gateway_in, drop_when_full=True)  # health
    router = Router(settings, clock_for(settings.control.clock), bus)
    # 2. orders, cancels and snapshots come from the accountant; a replay's bar times from
    #    the controller
    bus.pull(settings.endpoints.matcher_in, router.on_commands)
    bus.on_lost(router.on_lost)
    # 3. run state and quotes come from the controller
    bus.subscribe(
        settings.endpoints.control_pub,
        (topics.CONTROL, topics.MARKET_PREFIX),
        router.on_broadcast,
    )
    bus.on_burst_end(router.flush_market)  # exchange mode's prints and depth, once a turn
    bus.every(1.0, router.tick)
    bus.every(DONES_EVERY, router.tell_dones)
    router.request_sync()
    log.info("matcher up, pid %d, fill mode %s", os.getpid(), settings.trading.fill_mode)
    process.run(bus, [])


if __name__ == "__main__":
    main(process.settings_from_argv(sys.argv))
