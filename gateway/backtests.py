"""Backtest reports over HTTP (admin): the runs `run.py backtest` wrote under
<data_dir>/backtests/. The gateway only reads these files; each run wrote its own."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

RUN_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{4}$")
SUMMARY_KEYS = ("run_id", "name", "status", "start", "end", "speed", "bars", "seconds")
METRIC_KEYS = ("trades", "final_equity", "total_return", "max_drawdown", "sharpe")
FILES = {"report.html": "text/html; charset=utf-8", "equity.png": "image/png"}


def runs_folder(data_dir: Path) -> Path:
    return data_dir / "backtests"


def read_report(data_dir: Path, run_id: str) -> dict[str, Any] | None:
    """A finished run's report.json; None for an unknown id, a run still going, or a
    name that is not a run id (so nothing outside the runs folder is ever read)."""
    if not RUN_ID.match(run_id):
        return None
    try:
        report = json.loads((runs_folder(data_dir) / run_id / "report.json").read_text())
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def list_reports(data_dir: Path) -> list[dict[str, Any]]:
    """A summary of every finished run, newest first."""
    folder = runs_folder(data_dir)
    names = sorted((p.name for p in folder.iterdir()), reverse=True) if folder.is_dir() else []
    summaries = []
    for name in names:
        report = read_report(data_dir, name)
        if report is None:
            continue
        metrics = report.get("metrics", {})
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
    if name not in FILES or not RUN_ID.match(run_id):
        return None
    path = runs_folder(data_dir) / run_id / name
    return (path, FILES[name]) if path.is_file() else None
