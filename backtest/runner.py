"""`run.py backtest`: a named replay run with its own ledger, its bots, and a report.

A run gets a folder `<data_dir>/backtests/<run id>/` holding its own SQLite ledger, logs
and sockets, and, at the end, `report.json`, `report.html` and `equity.png`. The four
processes run as for a live server, on free loopback ports, with the replay feed; each
`--bot` command runs as a child process with its own user (docs/backtest.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from actors.accountant.offline import bootstrap, prepare
from actors.controller.bars import SAMPLE, ReplayBar, replay_bars, symbols_in_data
from actors.runtime.supervisor import no_server, supervised, wait_for_port
from backtest.report import (
    EquityPoint,
    FillRecord,
    equity_png,
    fill_rows,
    fills_digest,
    metrics,
    report_html,
    round_trip_rows,
    round_trips,
)
from protocol.settings import Settings, resolve
from protocol.tokens import hash_token, key_id
from protocol.values import iso_time, money

ROOT = Path(__file__).resolve().parents[1]  # protocol.client for Python bots
RUNS_FOLDER = "backtests"
RUN_LOG = "run.log"  # a run started over HTTP: its output
INTERNAL_ENDPOINTS = ("controller_in", "matcher_in", "accountant_in", "gateway_in", "control_pub")
POLL = 0.05  # s between two looks at the replay's progress
BOT_GRACE = 5.0  # s a bot has to exit after the replay ends
USER_CREATED_BEFORE = 10**9  # ns: users exist a second before the first bar time
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class BacktestOptions:
    data: tuple[str, ...] = ()  # bar files; empty: those of the configuration, or the sample
    start: date | None = None
    end: date | None = None
    speed: str = ""  # max | lockstep | xN; empty: lockstep with bots, max without
    cash: Decimal = Decimal("1000000")
    bots: tuple[str, ...] = ()
    name: str = ""
    step_timeout: float | None = None
    on_timeout: str | None = None
    progress: bool = False  # draw a progress bar on stderr
    run_id: str = ""  # given when its folder was made for it (POST /v1/backtests)


@dataclass
class Bot:
    command: str
    user_id: int
    name: str
    token: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    exit_code: int | None = None


@dataclass
class Outcome:
    status: str = "finished"  # finished | stopped (a bot timed out) | stalled | failed
    note: str = ""
    bar_times: int = 0
    closed: int = 0
    timeouts: int = 0
    seconds: float = 0.0
    bots: list[Bot] = field(default_factory=list)


# SETTING UP ----------------------------------------------------------------------------


def new_run_id(now: datetime | None = None) -> str:
    """`20261127-061500-3fa2`: the wall time it started (UTC) and 4 random hex digits."""
    return f"{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def free_port() -> int:
    """A loopback TCP port free now (another program could take it before we bind it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_settings(base: Settings, options: BacktestOptions, run_dir: Path) -> Settings:
    """The base configuration's market and rules, in the run's own folder: its own SQLite
    ledger and sockets, free loopback ports, the replay feed on market time."""
    tree = base.model_dump(mode="json")
    tree["server"].update(data_dir=str(run_dir), database_url="")
    endpoints = tree["endpoints"]
    endpoints.update({role: "" for role in INTERNAL_ENDPOINTS})
    endpoints.update(
        http_host="127.0.0.1",
        http_port=free_port(),
        client_api=f"tcp://127.0.0.1:{free_port()}",
        client_pub=f"tcp://127.0.0.1:{free_port()}",
        quotes_in="",
    )
    market = tree["market"]
    market.update(feed="replay", replay_bots=len(options.bots))
    if options.data:
        market["replay_files"] = [str(Path(p).expanduser().resolve()) for p in options.data]
    # symbols the data has and the table lacks trade under the default profile
    known = {s["symbol"] for s in market["symbols"]}
    files = [Path(p) for p in market["replay_files"]] or [SAMPLE]
    for symbol, (prev_close, _source) in sorted(symbols_in_data(files, known).items()):
        market["symbols"].append({"symbol": symbol, "name": symbol, "prev_close": str(prev_close)})
    speed = options.speed or ("lockstep" if options.bots else "max")
    market.update(
        replay_speed=speed,
        replay_start=options.start.isoformat() if options.start else market["replay_start"],
        replay_end=options.end.isoformat() if options.end else market["replay_end"],
    )
    if options.step_timeout is not None:
        market["replay_step_timeout"] = options.step_timeout
    if options.on_timeout is not None:
        market["replay_on_timeout"] = options.on_timeout
    tree["control"].update(clock="market", sessions="profile", initial_state="running")
    tree["demo"]["create_user"] = False
    # a run's ledger is rebuilt by running it again: no fsync on each commit (WAL + NORMAL
    # stays consistent after a crash, it may only lose the last commits)
    tree["ledger"]["sqlite_synchronous"] = "NORMAL"
    return resolve(Settings.model_validate(tree))


def create_bot_users(
    settings: Settings, commands: Sequence[str], cash: Decimal, now: int
) -> list[Bot]:
    """One user per bot (`bot1`, `bot2`, ...) with `cash`, written into the run's fresh
    ledger before the processes start, stamped `now` (market time: the same every run)."""
    from actors.accountant.admin import new_user_rows
    from actors.accountant.journal import write_offline
    from actors.accountant.ledger import make_engine
    from protocol.tokens import new_token

    engine = make_engine(settings.database_url, settings.ledger.sqlite_synchronous)
    bots = []
    rows = []
    for n, command in enumerate(commands, start=1):
        token = new_token()
        user, user_rows = new_user_rows(n + 1, f"bot{n}", token, cash, False, now)
        rows += user_rows
        log = settings.data_dir / "logs" / f"bot{n}.log"
        bots.append(Bot(command, user.id, user.name, token, log))
    write_offline(engine, rows)
    engine.dispose()
    return bots


def bot_environment(settings: Settings, bot: Bot, run_id: str) -> dict[str, str]:
    """What a bot is told (docs/backtest.md): where to connect, and as whom."""
    e = settings.endpoints
    python = str(Path(sys.executable).parent)  # `python` is the interpreter running us
    http = f"http://{e.http_host}:{e.http_port}"
    ws = f"ws://{e.http_host}:{e.http_port}"
    return {
        **os.environ,
        "PATH": python + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "TRADESERVER_API": e.client_api,
        "TRADESERVER_PUB": e.client_pub,
        "TRADESERVER_HTTP": http,
        "TRADESERVER_TOKEN": bot.token,
        "TRADESERVER_RUN_ID": run_id,
        "TRADESERVER_SPEED": settings.market.replay_speed,
        # the same, as a bot written for Alpaca's API reads them (docs/alpaca.md)
        "APCA_API_KEY_ID": key_id(hash_token(bot.token)),
        "APCA_API_SECRET_KEY": bot.token,
        "APCA_API_BASE_URL": http,
        "APCA_API_DATA_URL": http,
        "APCA_API_TRADING_STREAM_URL": ws + "/stream",
        "APCA_API_DATA_STREAM_URL": ws + "/v2/iex",
    }


def start_bots(settings: Settings, bots: list[Bot], run_id: str) -> None:
    for bot in bots:
        bot.log.parent.mkdir(parents=True, exist_ok=True)
        with bot.log.open("ab") as log:
            bot.proc = subprocess.Popen(  # a shell command line, as the user typed it
                bot.command,
                shell=True,
                env=bot_environment(settings, bot, run_id),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its children end with it (stop_bots)
            )


def stop_bots(bots: list[Bot]) -> None:
    """Give each bot BOT_GRACE seconds to end on its own, then end its process group."""
    deadline = time.monotonic() + BOT_GRACE
    for bot in bots:
        if bot.proc is None:
            continue
        with contextlib.suppress(subprocess.TimeoutExpired):
            bot.proc.wait(max(0.0, deadline - time.monotonic()))
        if bot.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(bot.proc.pid, 15)
            try:
                bot.proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(bot.proc.pid, 9)
                bot.proc.wait()
        bot.exit_code = bot.proc.returncode


# RUNNING -------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on a terminal; nothing when stderr is not one."""

    def __init__(self, stream: IO[str] | None) -> None:
        self.stream = stream
        self.shown = ""

    def show(self, closed: int, total: int, market_time: str) -> None:
        if self.stream is None or not total:
            return
        width = 30
        filled = width * closed // total
        line = (
            f"\r[{'#' * filled}{'.' * (width - filled)}] {closed}/{total} bar times  "
            f"{market_time[:10]}"
        )
        if line != self.shown:
            self.stream.write(line)
            self.stream.flush()
            self.shown = line

    def end(self) -> None:
        if self.stream is not None and self.shown:
            self.stream.write("\n")
            self.stream.flush()


def watch(settings: Settings, supervisor: Any, bots: list[Bot], progress: Progress) -> Outcome:
    """Follow the replay through the admin API until it finishes, stops or stalls."""
    from protocol.client import TradeClient, TradeError

    outcome = Outcome(bots=bots)
    token = (settings.data_dir / "admin_token").read_text().strip()
    stall_limit = max(60.0, 3 * settings.market.replay_step_timeout)
    started = moved = time.monotonic()
    first_step: float | None = None
    with TradeClient(settings.endpoints.client_api, token, timeout=10, events=False) as admin:
        while True:
            supervisor.watch()
            now = time.monotonic()
            try:
                state = admin.control()
            except (TimeoutError, TradeError):
                state = {"replay": {"closed": outcome.closed, "bar_times": outcome.bar_times}}
            replay = state.get("replay") or {}
            closed = int(replay.get("closed", 0))
            if closed != outcome.closed:
                outcome.closed, moved = closed, now
                first_step = first_step or now - POLL / 2
            outcome.bar_times = int(replay.get("bar_times", 0))
            outcome.timeouts = int(replay.get("timeouts", 0))
            progress.show(closed, outcome.bar_times, state.get("time", ""))
            if replay.get("finished"):
                break
            if state.get("state") == "stopped":
                outcome.status = "stopped"
                outcome.note = "a bot did not answer in time (replay_on_timeout = stop)"
                break
            if now - moved > stall_limit:
                outcome.status = "stalled"
                outcome.note = f"no progress for {stall_limit:.0f}s"
                break
            time.sleep(POLL)
    progress.end()
    outcome.seconds = time.monotonic() - (first_step or started)
    return outcome


def run(base: Settings, options: BacktestOptions) -> dict[str, Any]:
    """Run a backtest to its end and write its report; returns the report."""
    run_id = options.run_id or new_run_id()
    run_dir = base.data_dir / RUNS_FOLDER / run_id
    settings = run_settings(base, options, run_dir)
    bars = replay_bars(settings)  # checked before anything is written (BarFileError)
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=bool(options.run_id))
    try:
        known = {s.symbol for s in base.market.symbols}
        added = {s.symbol for s in settings.market.symbols} - known
        return _run(settings, options, run_id, bars, added)
    except BaseException as exc:  # Ctrl-C, SIGTERM, a bug: the run ends failed, not running
        failed = {"run_id": run_id, "name": options.name or run_id, "status": "failed"}
        failed["note"] = f"{type(exc).__name__}: {exc}"[:500]
        (run_dir / "report.json").write_text(json.dumps(failed))
        raise


def _run(
    settings: Settings,
    options: BacktestOptions,
    run_id: str,
    bars: list[ReplayBar],
    data_symbols: set[str],
) -> dict[str, Any]:
    created = bars[0].ts - USER_CREATED_BEFORE
    bootstrap(settings, now=created)
    bots = create_bot_users(settings, options.bots, options.cash, created)
    progress = Progress(sys.stderr if options.progress and sys.stderr.isatty() else None)
    # all settled at the end: they stop together
    with supervised(settings, bootstrap, stop_together=True) as supervisor:
        assert supervisor is not None  # a fresh folder: nobody else holds it
        e = settings.endpoints
        if not wait_for_port(e.http_host, e.http_port, 60):
            outcome = Outcome(status="failed", note="the gateway did not start; see logs/")
        else:
            try:
                start_bots(settings, bots, run_id)
                outcome = watch(settings, supervisor, bots, progress)
            finally:
                stop_bots(bots)
    with no_server(settings) as free:  # the ledger's tables caught up with its journal
        if free:
            prepare(settings).dispose()
    report = build_report(settings, options, run_id, bars, outcome, data_symbols)
    write_report(settings, report)
    return report


# THE REPORT ----------------------------------------------------------------------------


def read_fills(settings: Settings, user_ids: set[int]) -> list[FillRecord]:
    """The bots' fills from the run's ledger, in the order they were recorded."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from actors.accountant.ledger import FillRow, make_engine

    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        rows = session.scalars(
            select(FillRow).where(FillRow.user_id.in_(user_ids)).order_by(FillRow.id)
        ).all()
        fills = [
            FillRecord(
                ts=r.ts_event,
                symbol=r.symbol,
                side=r.side,
                qty=r.qty,
                price=r.price,
                commission=r.commission,
                tax=r.tax,
                order_id=r.order_id,
                user_id=r.user_id,
            )
            for r in rows
        ]
    engine.dispose()
    return fills


def equity_curve(
    initial_cash: Decimal, bars: Sequence[ReplayBar], fills: Sequence[FillRecord]
) -> list[EquityPoint]:
    """The bots' cash and equity at each bar time: cash after the fills up to it, and the
    positions valued at each symbol's latest close. Exact, from the ledger's fills."""
    cash = initial_cash
    held: dict[str, Decimal] = {}
    closes: dict[str, Decimal] = {}
    curve: list[EquityPoint] = []
    pending = iter(sorted(fills, key=lambda f: f.ts))
    fill = next(pending, None)
    n = 0
    while n < len(bars):
        ts = bars[n].ts
        while fill is not None and fill.ts <= ts:
            value = fill.qty * fill.price
            sign = 1 if fill.side == "buy" else -1
            cash -= sign * value + fill.commission + fill.tax
            held[fill.symbol] = held.get(fill.symbol, ZERO) + sign * fill.qty
            fill = next(pending, None)
        while n < len(bars) and bars[n].ts == ts:
            closes[bars[n].symbol] = bars[n].close
            n += 1
        value = sum((qty * closes.get(s, ZERO) for s, qty in held.items()), ZERO)
        curve.append(EquityPoint(ts, cash, cash + value))
    return curve


def ledger_digest(settings: Settings) -> str:
    """SHA-256 of every ledger table, rows in key order, but the users' token hashes (new
    random tokens each run): equal for two runs that wrote the same ledger."""
    import hashlib

    from sqlalchemy import select

    from actors.accountant.ledger import Base, make_engine

    digest = hashlib.sha256()
    engine = make_engine(settings.database_url)
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            if table.name == "ledger_state":  # where the journal was written up to: timing
                continue
            columns = [c for c in table.columns if c.name != "token_hash"]
            query = select(*columns).order_by(*table.primary_key.columns)
            digest.update(f"# {table.name}\n".encode())
            for row in connection.execute(query):
                digest.update(("|".join(map(str, row)) + "\n").encode())
    engine.dispose()
    return digest.hexdigest()


def build_report(
    settings: Settings,
    options: BacktestOptions,
    run_id: str,
    bars: Sequence[ReplayBar],
    outcome: Outcome,
    data_symbols: set[str] = frozenset(),  # type: ignore[assignment]
) -> dict[str, Any]:
    """The report: the run, its figures from the ledger's fills, the equity curve. Symbols
    taken from the data (not in the symbol table) are named, with their previous close."""
    bots = outcome.bots
    fills = read_fills(settings, {bot.user_id for bot in bots})
    initial = options.cash * len(bots)
    if outcome.status != "finished":  # the curve ends where the replay did
        times = sorted({bar.ts for bar in bars})[: outcome.closed]
        bars = [bar for bar in bars if times and bar.ts <= times[-1]]
    curve = equity_curve(initial, bars, fills) if bots else []
    m = settings.market
    added = [s for s in m.symbols if s.symbol in data_symbols]
    return {
        "run_id": run_id,
        "name": options.name or run_id,
        "folder": str(settings.data_dir),
        "status": outcome.status,
        "note": outcome.note,
        "data": list(m.replay_files) or ["(the shipped sample)"],
        "start": iso_time(bars[0].ts),
        "end": iso_time(bars[-1].ts),
        "speed": m.replay_speed,
        "symbols_from_data": ", ".join(
            f"{s.symbol} ({m.profile}, previous close {s.prev_close})" for s in added
        )
        or None,
        "cash_per_bot": money(options.cash),
        "bars": len(bars) if outcome.status == "finished" else None,
        "bar_times": outcome.bar_times,
        "bar_times_replayed": outcome.closed,
        "seconds": round(outcome.seconds, 3),
        "bars_per_s": round(len(bars) / outcome.seconds, 1)
        if outcome.status == "finished" and outcome.seconds > 0
        else None,
        "timeouts": outcome.timeouts,
        "bots": [
            {"command": b.command, "user": b.name, "exit_code": b.exit_code, "log": str(b.log)}
            for b in bots
        ],
        "metrics": metrics(initial, curve, fills),
        "fills_digest": fills_digest(fills),
        "ledger_digest": ledger_digest(settings),
        "round_trips": round_trip_rows(round_trips(fills)),
        "fills": fill_rows(fills),
        "equity_curve": [
            {"time": iso_time(p.ts), "cash": money(p.cash), "equity": money(p.equity)}
            for p in curve
        ],
        "_curve": curve,  # for the chart; not written
    }


def write_report(settings: Settings, report: dict[str, Any]) -> None:
    """report.json, equity.png and report.html in the run's folder."""
    folder = settings.data_dir
    curve = report.pop("_curve")
    zone = {"cn_a": "Asia/Shanghai", "us_equity": "America/New_York"}.get(
        settings.market.profile, "UTC"
    )
    png = None
    if curve:
        equity_png(curve, folder / "equity.png", f"Backtest {report['name']}", zone)
        png = "equity.png"
    report_html(report, png, folder / "report.html")
    tmp = folder / "report.json.tmp"
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(folder / "report.json")


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The one JSON object `--json` prints."""
    m = report["metrics"]
    return {
        "run_id": report["run_id"],
        "name": report["name"],
        "status": report["status"],
        "bars": report["bars"],
        "trades": m["trades"],
        "final_equity": m["final_equity"],
        "total_return": m["total_return"],
        "max_drawdown": m["max_drawdown"],
        "sharpe": m["sharpe"],
        "fills_digest": report["fills_digest"],
        "ledger_digest": report["ledger_digest"],
        "seconds": report["seconds"],
        "bars_per_s": report["bars_per_s"],
        "timeouts": report["timeouts"],
        "report": str(Path(report["folder"]) / "report.html"),
    }


def lines(report: dict[str, Any]) -> Iterator[str]:
    """The human-readable end of a run."""
    m = report["metrics"]
    yield f"backtest {report['name']} ({report['run_id']}): {report['status']} {report['note']}"
    yield f"  bars {report['bars']} in {report['seconds']}s ({report['bars_per_s']} bars/s)"
    yield f"  trades {m['trades']}, round trips {m['round_trips']}, win rate {m['win_rate']}"
    yield f"  equity {m['initial_cash']} -> {m['final_equity']}, return {m['total_return']}"
    yield f"  max drawdown {m['max_drawdown']}, Sharpe {m['sharpe']}, fees {m['fees']}"
    if report.get("symbols_from_data"):
        yield f"  symbols taken from the data: {report['symbols_from_data']}"
    yield f"  report {Path(report['folder']) / 'report.html'}"
