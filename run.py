"""Start and supervise TradeServer's four processes, and run admin commands.

    python run.py                          start on the embedded defaults (SQLite, synthetic feed)
    python run.py --config my.toml         start with a configuration file
    python run.py user create --name N --cash C [--json]
    python run.py user list [--json]
    python run.py user rotate|revoke --name N [--json]
    python run.py digest                   a hash of the trading state (docs/reliability.md)
    python run.py control run|stop|pause
    python run.py backtest [--data CSV] [--start D] [--end D] [--speed max|lockstep|xN]
                           [--cash C] [--bot COMMAND ...] [--json]

Admin commands talk to the running server over ZeroMQ with the admin token; when no
server runs on the data dir, they work on the ledger (or control.json) directly.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib
import json
import logging
import multiprocessing
import os
import re
import signal
import socket
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from actors.controller.feeds import volume_unit
from actors.controller.replay import replay_bars
from actors.market.rules import Market
from actors.runtime import curve, process
from actors.runtime.process import LEDGER_LOCK, exclusive_lock
from protocol import settings as settings_module
from protocol.client import TradeError
from protocol.settings import Settings, build_settings, ipc_paths
from protocol.values import wire_qty

ROOT = Path(__file__).resolve().parent
# Flow order: the accountant first so that it is ready for the matcher's sync request.
CHILDREN = {
    "accountant": "actors.accountant.main",
    "matcher": "actors.matcher.main",
    "controller": "actors.controller.main",
    "gateway": "gateway.sessions",
}
STOP_ORDER = ("gateway", "controller", "matcher", "accountant")
SUPERVISOR_LOCK = "supervisor.lock"
ADMIN_TOKEN_FILE = "admin_token"
DEMO_TOKEN_FILE = "demo_token"


# SETTINGS AND FILES --------------------------------------------------------------------


def settings_from_args(args: argparse.Namespace) -> Settings:
    flags: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        flags.setdefault("server", {})["data_dir"] = args.data_dir
    if getattr(args, "http_port", None):
        flags.setdefault("endpoints", {})["http_port"] = args.http_port
    if getattr(args, "fill_mode", None):
        flags.setdefault("trading", {})["fill_mode"] = args.fill_mode
    return build_settings(getattr(args, "config", None), flags=flags)


def write_secret(path: Path, text: str) -> None:
    """Create a file only its owner can read, holding `text`."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")


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


# LEDGER BOOTSTRAP ----------------------------------------------------------------------


def bootstrap(settings: Settings, now: int | None = None) -> None:
    """Migrate the ledger; on first start create the admin user and the demo user, stamped
    `now` (ns; default the wall clock)."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from actors.accountant.ledger import UserRow, Work, make_engine, migrate, write_batch
    from actors.accountant.main import new_user_rows
    from protocol.tokens import new_token

    engine = make_engine(settings.database_url, settings.ledger.sqlite_synchronous)
    migrate(engine)
    with Session(engine) as session, session.begin():
        if session.scalar(select(func.count()).select_from(UserRow).where(UserRow.is_admin)):
            engine.dispose()
            return
        now = time.time_ns() if now is None else now
        admin_token = new_token()
        _, rows = new_user_rows(1, "admin", admin_token, Decimal(0), True, now)
        if settings.demo.create_user:
            demo_token = new_token()
            _, demo_rows = new_user_rows(
                2, settings.demo.name, demo_token, settings.demo.cash, False, now
            )
            rows += demo_rows
        write_batch(session, [Work(inserts=rows)])
    engine.dispose()
    write_secret(settings.data_dir / ADMIN_TOKEN_FILE, admin_token)
    if settings.demo.create_user:
        write_secret(settings.data_dir / DEMO_TOKEN_FILE, demo_token)


# SUPERVISOR ----------------------------------------------------------------------------


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
    """Starts the four processes, restarts any that dies, stops them all on SIGTERM/SIGINT."""

    def __init__(self, settings: Settings, settings_path: Path) -> None:
        self.settings = settings
        self.settings_path = settings_path
        local = settings.server.processes
        self.children = {
            name: Child(name, module) for name, module in CHILDREN.items() if name in local
        }
        self.stopping = False
        self.status_path = settings.data_dir / "supervisor.json"

    def start(self, child: Child) -> None:
        importlib.import_module(child.module)  # the first start imports; forks share it
        logs = self.settings.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        stderr = str(logs / f"{child.name}.stderr")
        child.proc = FORK.Process(
            target=_child_main,
            args=(child.name, child.module, str(self.settings_path), stderr, child.restarts),
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


def banner(settings: Settings) -> str:
    e = settings.endpoints
    url = f"http://{e.http_host}:{e.http_port}"
    demo_file = settings.data_dir / DEMO_TOKEN_FILE
    lines = [
        "TradeServer is running "
        f"(fill mode {settings.trading.fill_mode}, sessions {settings.control.sessions}, "
        f"data in {settings.data_dir})",
        f"  HTTP API     {url}   (OpenAPI docs: {url}/docs)",
        f"  ZeroMQ       requests {e.client_api} (DEALER/REQ), market data {e.client_pub} (SUB)",
        f"  Admin token  in {settings.data_dir / ADMIN_TOKEN_FILE}",
    ]
    if demo_file.exists():
        token = demo_file.read_text().strip()
        symbol = settings.market.symbols[0]
        rules = Market.from_settings(settings).rules(symbol.symbol)
        qty = json.dumps(wire_qty(volume_unit(rules, symbol.prev_close)))  # an order that fits
        lines += [
            f"  Demo user    {settings.demo.name}, token {token}",
            "  Place an order:",
            f"    curl -s -X POST {url}/v1/orders -H 'Authorization: Bearer {token}' "
            "-H 'Content-Type: application/json' "
            f'-d \'{{"symbol":"{symbol.symbol}","side":"buy","qty":{qty},'
            f'"price":"{symbol.prev_close}"}}\'',
        ]
    lines.append("  Stop with Ctrl-C.")
    return "\n".join(lines)


@contextlib.contextmanager
def supervised(settings: Settings, stop_together: bool = False) -> Iterator[Supervisor | None]:
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
                    bootstrap(settings)
                # the ledger lock is free again: the accountant holds it while it runs
                supervisor.start(supervisor.children["accountant"])
            yield supervisor
        finally:
            supervisor.stop_all(together=stop_together)


def serve(settings: Settings) -> int:
    with supervised(settings) as supervisor:
        if supervisor is None:
            print(f"a server is already running on {settings.data_dir}", file=sys.stderr)
            return 1
        signal.signal(signal.SIGTERM, supervisor._on_signal)
        signal.signal(signal.SIGINT, supervisor._on_signal)
        if "gateway" not in settings.server.processes:
            print(f"[supervisor] running {', '.join(supervisor.children)}", flush=True)
        elif wait_for_port(settings.endpoints.http_host, settings.endpoints.http_port, 30):
            print(banner(settings), flush=True)
        else:
            print("[supervisor] the gateway did not open its HTTP port; see logs/", flush=True)
        while not supervisor.stopping:
            supervisor.watch()
            time.sleep(0.1)
    print("[supervisor] stopped", flush=True)
    return 0


# ADMIN COMMANDS ------------------------------------------------------------------------


def _admin_client(settings: Settings) -> Any:
    from protocol.client import TradeClient

    running = settings_module.load(settings.data_dir / "settings.json")
    token = (settings.data_dir / ADMIN_TOKEN_FILE).read_text().strip()
    return TradeClient(running.endpoints.client_api, token, timeout=10, events=False)


def user_create(settings: Settings, name: str, cash: str) -> dict[str, Any]:
    with no_server(settings) as free:
        if not free:
            with _admin_client(settings) as client:
                reply = client.create_user(name, cash)
            return {
                "user_id": reply["user_id"],
                "name": reply["name"],
                "token": reply["token"],
                "cash": reply["cash"],
            }
        return _user_create_offline(settings, name, cash)


def _user_create_offline(settings: Settings, name: str, cash_text: str) -> dict[str, Any]:
    """No server runs on this data dir: write the user straight into the ledger."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from actors.accountant.ledger import UserRow, Work, make_engine, write_batch
    from actors.accountant.main import capital, new_user_rows
    from protocol.errors import RejectError
    from protocol.tokens import new_token

    try:
        cash = capital(cash_text)
    except RejectError as rej:
        raise SystemExit(f"--cash: {rej.message}") from None
    bootstrap(settings)  # migrates the ledger
    engine = make_engine(settings.database_url, settings.ledger.sqlite_synchronous)
    token = new_token()
    with Session(engine) as session, session.begin():
        if session.scalar(select(UserRow.id).where(UserRow.name == name)) is not None:
            raise SystemExit(f"a user named {name!r} exists")
        user_id = (session.scalar(select(func.max(UserRow.id))) or 0) + 1
        _, rows = new_user_rows(user_id, name, token, cash, False, time.time_ns())
        write_batch(session, [Work(inserts=rows)])
    engine.dispose()
    return {"user_id": user_id, "name": name, "token": token, "cash": str(cash)}


def user_list(settings: Settings) -> list[dict[str, Any]]:
    with no_server(settings) as free:
        if not free:
            with _admin_client(settings) as client:
                return client.users()
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from actors.accountant.ledger import AccountRow, UserRow, make_engine

        bootstrap(settings)
        engine = make_engine(settings.database_url)
        with Session(engine) as session:
            rows = session.execute(
                select(UserRow, AccountRow).join(AccountRow, AccountRow.user_id == UserRow.id)
            )
            users = [
                {
                    "user_id": u.id,
                    "name": u.name,
                    "is_admin": u.is_admin,
                    "initial_cash": str(a.initial_cash),
                    "cash": str(a.cash),
                    "equity": None,
                }
                for u, a in rows
            ]
        engine.dispose()
        return users


def user_token(settings: Settings, name: str, action: str) -> dict[str, Any]:
    """Rotate (a new token, printed once) or revoke the token of the user `name`; the old
    token stops working and the user's sessions end. The admin's and the demo user's
    token files in the data dir follow."""
    with no_server(settings) as free:
        if free:
            result = _user_token_offline(settings, name, action)
        else:
            with _admin_client(settings) as client:
                user_id = next((u["user_id"] for u in client.users() if u["name"] == name), None)
                if user_id is None:
                    raise SystemExit(f"no user named {name!r}")
                if action == "rotate":
                    result = client.rotate_token(user_id)
                else:
                    result = client.revoke_token(user_id)
    result = {k: result[k] for k in ("user_id", "name", "token") if k in result}
    files = {"admin": ADMIN_TOKEN_FILE, settings.demo.name: DEMO_TOKEN_FILE}
    token_file = settings.data_dir / files[name] if name in files else None
    if token_file is not None and token_file.exists():
        if "token" in result:
            write_secret(token_file, result["token"])
        else:
            token_file.unlink()
    return result


def _user_token_offline(settings: Settings, name: str, action: str) -> dict[str, Any]:
    """No server runs on this data dir: change the token's hash in the ledger."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from actors.accountant.ledger import UserRow, Work, make_engine, write_batch
    from actors.accountant.main import operation_row
    from protocol.tokens import hash_token, new_token, revoked_hash

    bootstrap(settings)
    engine = make_engine(settings.database_url, settings.ledger.sqlite_synchronous)
    with Session(engine) as session, session.begin():
        user = session.execute(
            select(UserRow.id, UserRow.is_admin).where(UserRow.name == name)
        ).first()
        if user is None:
            raise SystemExit(f"no user named {name!r}")
        if action == "revoke" and user.is_admin:
            raise SystemExit("the admin token can be rotated, not revoked")
        result: dict[str, Any] = {"user_id": user.id, "name": name}
        if action == "rotate":
            result["token"] = new_token()
            token_hash = hash_token(result["token"])
        else:
            token_hash = revoked_hash()
        kind = f"token.{action}d"
        row = operation_row(time.time_ns(), kind, detail=f"user {user.id} {name}")
        work = Work(updates=[(UserRow, {"id": user.id, "token_hash": token_hash})], inserts=[row])
        write_batch(session, [work])
    engine.dispose()
    return result


def digest(settings: Settings) -> dict[str, Any]:
    """The state digest (docs/reliability.md): from the running server, or, when none runs,
    from the ledger, with the books a matcher would build from its open orders."""
    with no_server(settings) as free:
        if not free:
            with _admin_client(settings) as client:
                reply = client.digest()
            return {k: v for k, v in reply.items() if k not in ("type", "rid", "v")}
        from actors.accountant.digest import book_part, books_from_orders, ledger_parts, summary
        from actors.accountant.ledger import make_engine
        from actors.accountant.queries import load_accounts
        from actors.market.rules import Market

        bootstrap(settings)
        engine = make_engine(settings.database_url)
        accounts, user_seqs = load_accounts(engine, Market.from_settings(settings))
        engine.dispose()
        parts = ledger_parts(accounts, user_seqs)
        return summary({**parts, "books": book_part(books_from_orders(accounts))})


def control(settings: Settings, state: str) -> dict[str, Any]:
    with no_server(settings) as free:
        if not free:
            with _admin_client(settings) as client:
                return client.set_control(state)
        from actors.runtime.statefile import StateFile

        saved = StateFile(settings.data_dir / "control.json")
        saved.save({**saved.load(), "state": state})  # the market time reached stays
        return {"state": state, "note": "no server running; applies at next start"}


# COMMAND LINE --------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", metavar="FILE", help="TOML configuration file", default=argparse.SUPPRESS
    )
    common.add_argument(
        "--data-dir",
        metavar="DIR",
        help="ledger, logs, tokens (default runtime/)",
        default=argparse.SUPPRESS,
    )
    common.add_argument("--http-port", type=int, metavar="PORT", default=argparse.SUPPRESS)
    common.add_argument("--fill-mode", choices=["wait", "instant"], default=argparse.SUPPRESS)
    p = argparse.ArgumentParser(
        prog="run.py",
        parents=[common],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command")
    sub.add_parser("serve", parents=[common], help="start and supervise the server (default)")
    user = sub.add_parser("user", parents=[common], help="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    create = user_sub.add_parser("create", parents=[common], help="create a user with capital")
    create.add_argument("--name", required=True)
    create.add_argument("--cash", required=True, help="starting capital, e.g. 1000000")
    create.add_argument("--json", action="store_true", help="print one JSON object")
    listing = user_sub.add_parser("list", parents=[common], help="list users")
    listing.add_argument("--json", action="store_true")
    for action, what in (("rotate", "give a user a new token"), ("revoke", "revoke a token")):
        token = user_sub.add_parser(action, parents=[common], help=what)
        token.add_argument("--name", required=True)
        token.add_argument("--json", action="store_true", help="print one JSON object")
    ctl = sub.add_parser("control", parents=[common], help="run, stop or pause trading")
    ctl.add_argument("action", choices=["run", "stop", "pause"])
    backtest_arguments(sub.add_parser("backtest", parents=[common], help="run a backtest"))
    sub.add_parser(
        "digest", parents=[common], help="print a hash of accounts, positions, orders, books"
    )
    keys = sub.add_parser(
        "keys", parents=[common], help="create CURVE key pairs for internal tcp links"
    )
    keys.add_argument(
        "--process",
        action="append",
        choices=list(CHILDREN),
        help="only this process's pair (repeatable; default all four that are missing)",
    )
    return p


def backtest_arguments(bt: argparse.ArgumentParser) -> None:
    bt.description = (
        "Replay bars through the real processes with their own ledger in "
        "<data dir>/backtests/<run id>/, with your bots, and write a report there "
        "(docs/backtest.md)."
    )
    bt.add_argument(
        "--data", action="append", metavar="CSV", help="bar file (repeatable; default the sample)"
    )
    bt.add_argument("--start", type=date.fromisoformat, metavar="YYYY-MM-DD")
    bt.add_argument("--end", type=date.fromisoformat, metavar="YYYY-MM-DD")
    bt.add_argument(
        "--speed",
        metavar="max|lockstep|xN",
        default="",
        help="default: lockstep with bots, max without",
    )
    bt.add_argument("--cash", default="1000000", help="each bot's starting cash")
    bt.add_argument(
        "--bot",
        action="append",
        metavar="COMMAND",
        help="a bot to start, any language (repeatable); see docs/backtest.md",
    )
    bt.add_argument("--name", default="", help="a name for the run")
    bt.add_argument("--step-timeout", type=float, metavar="SECONDS")
    bt.add_argument("--on-timeout", choices=["continue", "stop"])
    bt.add_argument("--json", action="store_true", help="print one JSON object at the end")
    # POST /v1/backtests: the live server's resolved settings, and a run folder made for it
    bt.add_argument("--settings", metavar="JSON", help=argparse.SUPPRESS)
    bt.add_argument("--run-id", default="", help=argparse.SUPPRESS)


def backtest(args: argparse.Namespace, settings: Settings) -> int:
    from actors.accountant.main import capital
    from backtest import runner
    from protocol.errors import RejectError

    try:
        cash = capital(args.cash)
    except RejectError as rej:
        print(f"--cash: {rej.message}", file=sys.stderr)
        return 2
    speed = args.speed
    if speed and not re.fullmatch(settings_module.REPLAY_SPEED, speed):
        print('--speed: "max", "lockstep" or "x" and a factor ("x60")', file=sys.stderr)
        return 2
    options = runner.BacktestOptions(
        data=tuple(args.data or ()),
        start=args.start,
        end=args.end,
        speed=speed,
        cash=cash,
        bots=tuple(args.bot or ()),
        name=args.name,
        step_timeout=args.step_timeout,
        on_timeout=args.on_timeout,
        progress=not args.json,
        run_id=args.run_id,
    )
    # a run started over HTTP is stopped with SIGTERM: the bots and processes stop with it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        report = runner.run(settings, options)
    except (ValidationError, ValueError, OSError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(runner.summary(report)))
    else:
        print("\n".join(runner.lines(report)))
    return 0 if report["status"] == "finished" else 1


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if getattr(args, "settings", None):  # a backtest started over HTTP
            settings = settings_module.load(Path(args.settings))
        else:
            settings = settings_from_args(args)
        if (args.command or "serve") == "serve" and settings.market.feed == "replay":
            replay_bars(settings)  # every file checked before anything starts
        if (args.command or "serve") == "serve" and settings.security.curve:
            curve.create_missing(settings, settings.server.processes)
            curve.check(settings)  # each key the processes here need, before any starts
    except (ValidationError, ValueError, OSError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    command = args.command or "serve"
    try:
        return _dispatch(args, command, settings)
    except TradeError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, command: str, settings: Settings) -> int:
    if command == "serve":
        return serve(settings)
    if command == "user" and args.user_command == "create":
        created = user_create(settings, args.name, args.cash)
        if args.json:
            print(json.dumps(created))
        else:
            print(f"user {created['name']} id {created['user_id']} cash {created['cash']}")
            print(f"token {created['token']}")
        return 0
    if command == "user" and args.user_command == "list":
        users = user_list(settings)
        if args.json:
            print(json.dumps(users))
        else:
            for u in users:
                role = " (admin)" if u["is_admin"] else ""
                print(f"{u['user_id']:>5}  {u['name']:<20} cash {u['cash']:>18}{role}")
        return 0
    if command == "user" and args.user_command in ("rotate", "revoke"):
        changed = user_token(settings, args.name, args.user_command)
        if args.json:
            print(json.dumps(changed))
        elif "token" in changed:
            print(f"user {changed['name']} id {changed['user_id']}: the old token no longer works")
            print(f"token {changed['token']}")
        else:
            print(f"user {changed['name']} id {changed['user_id']}: token revoked")
        return 0
    if command == "digest":
        print(json.dumps(digest(settings), indent=2))
        return 0
    if command == "keys":
        for path in curve.create_missing(settings, args.process or None):
            print(f"created {path} and {path.with_suffix('.key').name}")
        print(f"keys in {settings.keys_dir}: copy the .key files (public) to every host")
        return 0
    if command == "backtest":
        return backtest(args, settings)
    if command == "control":
        state = {"run": "running", "stop": "stopped", "pause": "paused"}[args.action]
        print(json.dumps(control(settings, state)))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
