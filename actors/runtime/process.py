"""What every process does the same way: read Settings, log to its file, run and stop cleanly."""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import logging
import os
import signal
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pykka

from actors.runtime import curve
from actors.runtime.bus import Bus
from actors.runtime.logfile import LogFile, LogHandler
from protocol import settings as settings_module
from protocol import topics
from protocol.settings import Settings
from protocol.values import iso_time

LEDGER_LOCK = "ledger.lock"  # held by the one process that writes the ledger
HEALTH_TYPE = "health"  # a process's report to the gateway, for the operator
HEALTH_EVERY = 1.0  # seconds between two reports
# How many times the supervisor has restarted this process's role; run.py sets it in the
# child it forks (0 for a process started by hand).
restarts = 0


def keep_private(data_dir: Path) -> None:
    """The ledger, its journal, the logs and the reports are this user's alone: from here
    on this process and those it starts create files 0600 and folders 0700 (umask 077),
    the data dir is 0700, and what an older version left readable by others in it (its
    files, logs/ and backtests/) is tightened. Others' files and links are left alone."""
    os.umask(0o077)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    mine = [data_dir]
    for folder in (data_dir, data_dir / "logs", data_dir / "backtests"):
        with contextlib.suppress(OSError):
            mine += folder.iterdir()
    for path in mine:
        with contextlib.suppress(OSError):
            info = path.lstat()
            loose = stat.S_IMODE(info.st_mode) & 0o077
            if loose and info.st_uid == os.getuid() and not stat.S_ISLNK(info.st_mode):
                path.chmod(stat.S_IMODE(info.st_mode) & 0o700)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[bool]:
    """Hold an exclusive flock on `path` for the block; yields False, holding nothing, when
    another process has it. The kernel drops it when the holder dies, however it dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def settings_from_argv(argv: Sequence[str]) -> Settings:
    """For a process started by hand, `python -m actors.<name> <settings.json>`; run.py
    forks its children and calls their main() with the settings instead."""
    if len(argv) != 2:
        raise SystemExit(f"usage: python -m {argv[0]} SETTINGS_JSON")
    settings = settings_module.load(argv[1])
    keep_private(settings.data_dir)
    return settings


_log_file: LogFile | None = None
_log_handler: LogHandler | None = None


def flush_logs() -> None:
    if _log_handler is not None:
        _log_handler.flush()


def activity(name: str, text: str) -> None:
    """One INFO line for a status change or a fill, without the logging module's cost."""
    if _log_file is not None:
        _log_file.line("INFO", name, text)


def setup_logging(settings: Settings, process: str) -> None:
    """One log file per process under <data_dir>/logs, one line per event."""
    global _log_file, _log_handler
    server = settings.server
    _log_file = LogFile(settings.log_path(process), server.log_max_bytes, server.log_backups)
    _log_handler = LogHandler(_log_file)
    root = logging.getLogger()
    root.handlers[:] = [_log_handler]
    root.setLevel(settings.server.log_level)
    logging.getLogger(process).info("starting with settings %s", redacted(settings))


def redacted(settings: Settings) -> str:
    """Settings as JSON for a log line, without the database password."""
    from sqlalchemy.engine import make_url

    shown = settings.model_dump(mode="json")
    if settings.server.database_url:
        url = make_url(settings.server.database_url)
        shown["server"]["database_url"] = url.render_as_string(hide_password=True)
    return json.dumps(shown)


def bus_for(settings: Settings, process: str) -> Bus:
    """The process's Bus, with its internal-link limits and, if configured, CURVE keys."""
    limits = settings.limits
    return Bus(process, limits.internal_hwm, limits.internal_retain, curve.load(settings, process))


def run(
    bus: Bus,
    actors: Sequence[pykka.ActorRef[Any]],
    before_stop: Callable[[], None] | None = None,
) -> None:
    """Run the I/O loop until SIGTERM or SIGINT, then (after `before_stop`, which may
    still tell them something) stop the actors in order and exit.

    Actors stop before the sockets close, so what they flush still goes out.
    """

    def _stop(_signum: int, _frame: object) -> None:
        bus.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    settle_memory()
    bus.every(1.0, flush_logs)
    started = time.time_ns()
    bus.every(HEALTH_EVERY, lambda: bus.send(topics.GATEWAY, health_report(bus, actors, started)))

    def stopping() -> None:
        if before_stop is not None:
            before_stop()
        _stop_actors(actors)

    try:
        bus.run(on_stop=stopping)
    except Exception:
        logging.getLogger(bus.name).critical("I/O loop failed", exc_info=True)
        logging.shutdown()
        os._exit(70)  # actor threads may hold the process open; run.py restarts it
    logging.getLogger(bus.name).info("stopped cleanly")
    logging.shutdown()


def settle_memory() -> None:
    """After start-up: what it loaded is kept out of the collector's way (gc.freeze), and
    the collector runs less often. Messages are short-lived maps without cycles that
    reference counting frees; at the default threshold a burst of a few thousand decoded
    messages alone set off several collections."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def health_report(
    bus: Bus, actors: Sequence[pykka.ActorRef[Any]], started_ns: int
) -> dict[str, Any]:
    """What the operator sees of this process (protocol.md, GET /v1/admin/health): its
    pid, start and restarts, its actors' unread messages, and its links (Bus.health)."""
    return {
        "type": HEALTH_TYPE,
        "process": bus.name,
        "pid": os.getpid(),
        "started": iso_time(started_ns),
        "restarts": restarts,
        "inboxes": {ref.actor_class.__name__: ref.actor_inbox.qsize() for ref in actors},
        **bus.health(),
    }


def die(reason: str) -> None:
    """A broken invariant or a failed write: log and end the process; run.py restarts it.

    Called from an actor's on_failure; os._exit because actor threads would keep a normal
    exit waiting."""
    logging.getLogger("process").critical(
        "%s; exiting so the supervisor restarts this process", reason, exc_info=True
    )
    logging.shutdown()
    os._exit(70)


def _stop_actors(actors: Sequence[pykka.ActorRef[Any]]) -> None:
    for actor in actors:
        with contextlib.suppress(pykka.ActorDeadError):
            actor.stop(timeout=10)
    pykka.ActorRegistry.stop_all(timeout=10)
