"""What every process does the same way: read Settings, log to its file, run and stop cleanly."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Sequence
from typing import Any

import pykka

from actors.bus import Bus
from protocol import settings as settings_module
from protocol.settings import Settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def settings_from_argv(argv: Sequence[str]) -> Settings:
    """Child processes are started as `python -m actors.<name> <settings.json>` by run.py."""
    if len(argv) != 2:
        raise SystemExit(f"usage: python -m {argv[0]} SETTINGS_JSON")
    return settings_module.load(argv[1])


def setup_logging(settings: Settings, process: str) -> None:
    """One log file per process under <data_dir>/logs, one line per event."""
    path = settings.log_path(process)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.server.log_level)
    logging.getLogger(process).info("starting with settings %s", settings.model_dump_json())


def run(bus: Bus, actors: Sequence[pykka.ActorRef[Any]]) -> None:
    """Run the I/O loop until SIGTERM or SIGINT, then stop the actors in order and exit.

    Actors stop before the sockets close, so what they flush still goes out.
    """

    def _stop(_signum: int, _frame: object) -> None:
        bus.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        bus.run(on_stop=lambda: _stop_actors(actors))
    except Exception:
        logging.getLogger(bus.name).critical("I/O loop failed", exc_info=True)
        logging.shutdown()
        os._exit(70)  # actor threads may hold the process open; run.py restarts it
    logging.getLogger(bus.name).info("stopped cleanly")


def _stop_actors(actors: Sequence[pykka.ActorRef[Any]]) -> None:
    for actor in actors:
        with contextlib.suppress(pykka.ActorDeadError):
            actor.stop(timeout=10)
    pykka.ActorRegistry.stop_all(timeout=10)
