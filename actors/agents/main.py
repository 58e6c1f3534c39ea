"""The agents process (docs/agents.md): run.py's supervisor starts it beside the four
when some symbol is in exchange mode and `[agents] enabled`, and restarts it when it dies;
nothing else depends on it."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from actors.agents.runner import Runner
from actors.runtime import process
from protocol.settings import Settings

log = logging.getLogger("agents")


def main(settings: Settings) -> None:
    """Run the agents until SIGTERM or SIGINT; they cancel their quotes on the way out."""
    process.setup_logging(settings, "agents")
    log.info("agents up, pid %d", os.getpid())
    asyncio.run(_serve(settings))
    log.info("stopped cleanly")
    logging.shutdown()


async def _serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await Runner(settings).run(stop)
