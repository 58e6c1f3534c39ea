"""Starts the four processes (and the optional agents process), restarts any that dies,
and stops them in flow order: the supervisor behind `run.py` and `run.py backtest`, and
the locks that say whether a server holds a data dir.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import logging
import multiprocessing
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from actors.agents.runner import traded_symbols
from actors.runtime import process
from actors.runtime.process import LEDGER_LOCK, exclusive_lock
from protocol import settings as settings_module
from protocol.settings import Settings, ipc_paths

ROOT = Path(__file__).resolve().parents[2]
# Flow order: the accountant first so that it is ready for the matcher's sync request.
CHILDREN = {
    "accountant": "actors.accountant.main",
    "matcher": "actors.matcher.main",
    "controller": "actors.controller.main",
    "gateway": "gateway.sessions",
}
# Optional: a client of the public API that none of the four depends on, started beside
# the accountant (whose host writes the admin token it signs in with) when its settings
# ask for it: the liquidity agents, when some symbol is in exchange mode (docs/agents.md).
OPTIONAL = {"agents": "actors.agents.main"}
# The agents first: they cancel their quotes through the gateway on the way out.
STOP_ORDER = ("agents", "gateway", "controller", "matcher", "accountant")
SUPERVISOR_LOCK = "supervisor.lock"


@contextlib.contextmanager
def no_server(settings: Settings, supervisor_lock_held: bool = False) -> Iterator[bool]:
    """True (and the locks held for the block) when no server runs on the data dir, so the
    ledger may be written directly; False when a supervisor holds the data dir."""
    with contextlib.ExitStack() as stack:
        if not supervisor_lock_held:
            free = stack.enter_context(exclusive_lock(settings.data_dir / SUPERVISOR_LOCK))
            if not free:
                yield False
                return
        with exclusive_lock(settings.data_dir / LEDGER_LOCK) as writable:
            if not writable:
                raise SystemExit(
                    f"an accountant still writes the ledger in {settings.data_dir} without its "
                    "supervisor; stop that process first"
                )
            yield True


def private_folder(path: Path) -> None:
    """Create `path` for this user only; refuse one another user owns or that is a link."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise SystemExit(f"{path} is not a folder of this user's; refusing to put sockets there")
    path.chmod(0o700)


def _die_with_parent() -> None:
    """In a child: get SIGTERM when the supervisor dies, however it dies, so no process
    runs unsupervised (Linux prctl PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# Children are forked from the supervisor, which has imported their modules: a start or
# restart costs a fork, not a new interpreter importing pydantic, SQLAlchemy and the rest.
# Plain fork, no pickling. The supervisor runs no threads of its own, and each child
# makes its own ZeroMQ context (pyzmq leaves a parent's context alone in a forked child).
FORK = multiprocessing.get_context("fork")


def _child_main(name: str, module: str, settings_path: str, log_path: str, restarts: int) -> None:
    """In a forked child: die with the supervisor, default signals, output to the log."""
    process.restarts = restarts
    if sys.platform == "linux":
        _die_with_parent()
        # `ps -o comm` and top show the process by its role, not as a second run.py
        ctypes.CDLL(None).prctl(15, f"ts-{name}".encode(), 0, 0, 0)  # PR_SET_NAME
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.chdir(ROOT)
    try:
        importlib.import_module(module).main(settings_module.load(settings_path))
    finally:
        logging.shutdown()  # a forked child ends with os._exit: no atexit hooks to flush logs


@dataclass
class Child:
    name: str
    module: str
    proc: multiprocessing.process.BaseProcess | None = None
    restarts: int = 0
    started: float = 0.0
    quick_deaths: int = 0
    next_start: float = 0.0


class Supervisor:
    """Starts the four processes (and the agents), restarts any that dies, stops them all
    on SIGTERM/SIGINT."""

    def __init__(self, settings: Settings, settings_path: Path) -> None:
        self.settings = settings
        self.settings_path = settings_path
        local = settings.server.processes
        self.children = {
            name: Child(name, module) for name, module in CHILDREN.items() if name in local
        }
        if "accountant" in local and traded_symbols(settings):
            self.children["agents"] = Child("agents", OPTIONAL["agents"])
        self.stopping = False
        self.status_path = settings.data_dir / "supervisor.json"

    def start(self, child: Child) -> None:
        importlib.import_module(child.module)  # the first start imports; forks share it
        logs = self.settings.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        stderr = logs / f"{child.name}.stderr"
        # what a process writes outside its log (a crash's traceback): kept with a start's
        # worth of history, the older part as .stderr.1
        with contextlib.suppress(FileNotFoundError):
            if stderr.stat().st_size > self.settings.server.log_max_bytes:
                os.replace(stderr, stderr.with_name(stderr.name + ".1"))
        child.proc = FORK.Process(
            target=_child_main,
            args=(child.name, child.module, str(self.settings_path), str(stderr), child.restarts),
            name=child.name,
        )
        child.proc.start()
        child.started = time.monotonic()
        self.write_status()

    def write_status(self) -> None:
        status = {
            "pid": os.getpid(),
            "children": {
                c.name: {"pid": c.proc.pid if c.proc else None, "restarts": c.restarts}
                for c in self.children.values()
            },
        }
        tmp = self.status_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(status))
        tmp.replace(self.status_path)

    def _on_signal(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    def watch(self) -> None:
        now = time.monotonic()
        for child in self.children.values():
            if child.proc is not None and child.proc.exitcode is not None:
                code = child.proc.exitcode
                quick = now - child.started < 3.0
                child.quick_deaths = child.quick_deaths + 1 if quick else 0
                child.next_start = now + min(0.25 * 2**child.quick_deaths, 10.0) if quick else now
                print(f"[supervisor] {child.name} exited with {code}; restarting", flush=True)
                child.proc = None
            if child.proc is None and now >= child.next_start and not self.stopping:
                child.restarts += 1
                self.start(child)

    def stop_all(self, together: bool = False) -> None:
        """Stop the processes in flow order, each after the one before has exited; or,
        when nothing is in flight any more (a finished backtest), all at once."""
        for group in [STOP_ORDER] if together else [[name] for name in STOP_ORDER]:
            procs = [self.children[n].proc for n in group if n in self.children]
            running = [p for p in procs if p is not None and p.exitcode is None]
            for proc in running:
                proc.terminate()
            for proc in running:
                proc.join(timeout=15)
                if proc.exitcode is None:
                    proc.kill()
                    proc.join()
        self.status_path.unlink(missing_ok=True)


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.1)
    return False


@contextlib.contextmanager
def supervised(
    settings: Settings,
    prepare_ledger: Callable[[Settings], object],
    stop_together: bool = False,
) -> Iterator[Supervisor | None]:
    """Hold the data dir, migrate the ledger and start the four processes; stop them when
    the block ends (Supervisor.stop_all). Yields None when a server already runs there.

    The processes that do not touch the ledger start first and load while it migrates;
    the accountant starts once it has. Each waits for its peers on its own (messages
    queue, the matcher asks for its book until it gets one)."""
    with exclusive_lock(settings.data_dir / SUPERVISOR_LOCK) as free:
        if not free:
            yield None
            return
        for folder in ipc_paths(settings):
            private_folder(folder)
        settings_path = settings.data_dir / "settings.json"
        settings_module.save(settings, settings_path)
        supervisor = Supervisor(settings, settings_path)
        try:
            for child in supervisor.children.values():
                if child.name != "accountant":
                    supervisor.start(child)
            if "accountant" in supervisor.children:
                with no_server(settings, supervisor_lock_held=True):
                    prepare_ledger(settings)
                # the ledger lock is free again: the accountant holds it while it runs
                supervisor.start(supervisor.children["accountant"])
            yield supervisor
        finally:
            supervisor.stop_all(together=stop_together)
