"""Backtests over HTTP (admin): start one (`run.py backtest` in the background), and read
the reports runs wrote under <data_dir>/backtests/ (docs/backtest.md). Each run writes its
own folder; the gateway only reads them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from backtest.runner import RUN_LOG, RUNS_FOLDER, new_run_id
from protocol.errors import ErrorCode, RejectError
from protocol.messages import BacktestFields
from protocol.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "examples" / "data"

RUN_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{4}$")
SUMMARY_KEYS = ("run_id", "name", "status", "start", "end", "speed", "bars", "seconds")
METRIC_KEYS = ("trades", "final_equity", "total_return", "max_drawdown", "sharpe")
FILES = {"report.html": "text/html; charset=utf-8", "equity.png": "image/png"}
_started: dict[str, subprocess.Popen[bytes]] = {}  # runs this gateway started, until reaped
MAX_RUNNING = 2  # each is four processes and its bots, on this host


def runs_folder(data_dir: Path) -> Path:
    return data_dir / RUNS_FOLDER


def read_report(data_dir: Path, run_id: str) -> dict[str, Any] | None:
    """A run's report.json; for a run without one yet, `running`, or `failed` with the
    error its run.log ends with. None for an unknown id or a name that is not a run id
    (so nothing outside the runs folder is ever read)."""
    if not RUN_ID.fullmatch(run_id):
        return None
    folder = runs_folder(data_dir) / run_id
    try:
        report = json.loads((folder / "report.json").read_text())
    except (OSError, ValueError):
        return _unfinished(folder, run_id)
    return report if isinstance(report, dict) else None


def _unfinished(folder: Path, run_id: str) -> dict[str, Any] | None:
    if not folder.is_dir():
        return None
    try:
        log = (folder / RUN_LOG).read_text(errors="replace").strip().splitlines()
    except OSError:
        log = []
    failed = [
        line
        for line in log
        if line.startswith(("configuration error", "--", "Traceback", "usage:"))
    ]
    if failed:
        return {"run_id": run_id, "status": "failed", "note": failed[-1][:500]}
    return {"run_id": run_id, "status": "running"}


def list_reports(data_dir: Path) -> list[dict[str, Any]]:
    """A summary of every finished run, newest first."""
    folder = runs_folder(data_dir)
    names = sorted((p.name for p in folder.iterdir()), reverse=True) if folder.is_dir() else []
    summaries = []
    for name in names:
        report = read_report(data_dir, name)
        if report is None:
            continue
        metrics = report.get("metrics") or {}
        summaries.append(
            {
                **{key: report.get(key) for key in SUMMARY_KEYS},
                **{key: metrics.get(key) for key in METRIC_KEYS},
                "fills_digest": report.get("fills_digest"),
            }
        )
    return summaries


def report_file(data_dir: Path, run_id: str, name: str) -> tuple[Path, str] | None:
    """The path and media type of a run's report.html or equity.png, if it exists."""
    if name not in FILES or not RUN_ID.fullmatch(run_id):
        return None
    path = runs_folder(data_dir) / run_id / name
    return (path, FILES[name]) if path.is_file() else None


def arguments(settings: Settings, body: BacktestFields) -> list[str]:
    """`run.py backtest` arguments for a request, its files and bots looked up by name.

    Raises:
        RejectError: a file or a bot the server does not have, or a bad amount of cash.
    """
    folder = Path(settings.backtest.data_folder) if settings.backtest.data_folder else SAMPLES
    args = []
    for name in body.data:
        if not (folder / name).is_file():
            raise RejectError(ErrorCode.REQUEST_INVALID, f"data: no bar file {name!r}")
        args.append(f"--data={folder / name}")
    for name in body.bots:
        command = settings.backtest.bots.get(name)
        if command is None:
            known = ", ".join(sorted(settings.backtest.bots)) or "none"
            raise RejectError(ErrorCode.REQUEST_INVALID, f"bots: no bot {name!r} (known: {known})")
        args.append(f"--bot={command}")
    from actors.accountant.admin import capital  # the rule users are created with

    args += [f"--cash={capital(body.cash)}"]
    for flag, value in (
        ("--name", body.name),
        ("--start", body.start and body.start.isoformat()),
        ("--end", body.end and body.end.isoformat()),
        ("--speed", body.speed),
        ("--step-timeout", body.step_timeout and str(body.step_timeout)),
        ("--on-timeout", body.on_timeout),
    ):
        if value:
            args.append(f"{flag}={value}")  # one argument: a value never reads as a flag
    return args


def start(settings: Settings, args: list[str]) -> str:
    """Start `run.py backtest` in the background, in a run folder made now; its output goes
    to run.log there. It goes on if the gateway stops. Returns the run id."""
    for done in [key for key, proc in _started.items() if proc.poll() is not None]:
        del _started[done]  # reaped
    if len(_started) >= MAX_RUNNING:
        raise RejectError(
            ErrorCode.SYSTEM_BUSY, f"{MAX_RUNNING} backtests are running; try again later"
        )
    run_id = new_run_id()
    folder = runs_folder(settings.data_dir) / run_id
    folder.mkdir(mode=0o700, parents=True)
    command = [
        sys.executable,
        str(ROOT / "run.py"),
        "backtest",
        *("--settings", str(settings.data_dir / "settings.json")),
        *("--data-dir", str(settings.data_dir), "--run-id", run_id, "--json", *args),
    ]
    with (folder / RUN_LOG).open("ab") as log:
        _started[run_id] = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return run_id
