"""Backtest throughput of `run.py backtest` beside backtrader, and the trades of both compared.

    .venv/bin/python -m bench.backtest                # the shipped sample, 3 runs of each
    .venv/bin/python -m bench.backtest --runs 2 --data a.csv

Run from the repository root. Each of our runs is `python run.py backtest --json` in a
fresh temporary data folder (the real four processes, their own ledger), as a subprocess:

1. no bot, speed max: bars/s as the run's JSON gives it (bars over the wall time of the
   replay from its first bar time to its end; start-up and report not counted);
2. lock-step with the example bot (`--bot "python examples/ma_cross.py"`): bars/s, trades,
   final equity, and whether every run wrote the same fills and ledger (their digests);
3. backtrader (`bench.backtrader_ma.run_backtrader`) on the same CSV with the same strategy
   and costs: bars/s of `cerebro.run()` alone (data loading not counted).

The medians of both sides make the ratio ours/backtrader, printed for both of our modes
against the target of 5x. Then the fills of our first lock-step run (its report.json) are
set against backtrader's, matched on (date, symbol, side, qty, price, commission, tax).

Conventions that make the two comparable: the strategy is the fast SMA 5 / slow SMA 20 of
closes per symbol, buy 1000 at market on a cross up with no position, sell it all on a
cross down with one. Both fill a market order placed after a bar's close at the next bar's
open of that symbol. Our fills are stamped with that bar's last instant (its end T - 1 ns,
e.g. 14:59:59.999999999 Shanghai time for a cn_a day) and so are dated by the bar's day;
backtrader dates them by the bar they executed on, the same day. A time in UTC ("Z") is
dated in the market's zone (Asia/Shanghai, the server's default cn_a). Costs are charged
per order, as the server's cn_a defaults: commission 0.001 of the value rounded half-up
to the cent, at least 5.00; stamp tax 0.001 on sells.

Figures, not a test; the exit status is 1 only when a run did not finish.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

if __package__ in (None, ""):  # run as a script: bench/backtest.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import backtrader

from bench.backtrader_ma import SAMPLE, run_backtrader

ROOT = Path(__file__).resolve().parent.parent
BOT = "python examples/ma_cross.py"
TARGET = 5.0  # ours / backtrader, bars per second
ZONE = ZoneInfo("Asia/Shanghai")  # the market zone of cn_a, the server's default profile
KEY = ("date", "symbol", "side", "qty", "price", "commission", "tax")
SHOW = 5  # differences printed


class RunFailed(Exception):
    """A backtest that did not end with status "finished"."""


# OUR SERVER ----------------------------------------------------------------------------


def ours(
    data: Path, bot: str | None, timeout: float, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One `run.py backtest --json` in a temporary data folder (with `extra` options): its
    summary, plus the fills of its report.json and the wall time of the whole command
    (`process_seconds`)."""
    with tempfile.TemporaryDirectory(
        prefix="tradeserver-bench-backtest-", ignore_cleanup_errors=True
    ) as folder:
        cmd = [sys.executable, "run.py", "backtest", "--json", "--data-dir", folder]
        cmd += ["--data", str(data)]
        if bot:
            cmd += ["--bot", bot]
        cmd += list(extra)
        start = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its server processes can be ended with it on a timeout
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            out, err = proc.communicate()
            raise RunFailed(f"no end after {timeout:.0f}s: {_tail(err)}") from None
        process_seconds = time.monotonic() - start
        lines = [line for line in out.splitlines() if line.strip()]
        try:
            summary = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            raise RunFailed(f"exit {proc.returncode}, no JSON: {_tail(out + err)}") from None
        report_json = Path(summary["report"]).parent / "report.json"
        if summary.get("status") != "finished":
            why = f"status {summary.get('status')!r}: {json.dumps(summary)}"
            raise RunFailed(why + diagnosis(report_json))
        report = json.loads(report_json.read_text())
        return {**summary, "fills": report["fills"], "process_seconds": process_seconds}


def diagnosis(report_json: Path) -> str:
    """What a failed run's folder says, read before the folder goes: the note, how far the
    replay got, each bot's exit code and last log lines, and the server's WARNING+ lines."""
    try:
        report = json.loads(report_json.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return f"\n  (no report.json: {exc})"
    text = (
        f"\n  note: {report.get('note')!r}; bar times replayed "
        f"{report.get('bar_times_replayed')} of {report.get('bar_times')}"
    )
    for bot in report.get("bots") or []:
        log = Path(bot["log"])
        tail = _tail(log.read_text(errors="replace")) if log.exists() else "(no log)"
        text += f"\n  bot {bot['command']!r} exit code {bot['exit_code']}; its log ends:\n{tail}"
    for log in sorted((report_json.parent / "logs").glob("*.log")):
        worse = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if any(level in line for level in ("WARNING", "ERROR", "CRITICAL"))
        ]
        if worse:
            text += f"\n  {log.name}, WARNING+ ({len(worse)}):\n" + "\n".join(worse[-10:])
    return text


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(nothing printed)"


def fill_date(stamp: str) -> str:
    """The market day of a fill time: the date part of a time with an offset
    ("2023-02-10T14:59:59.999999999+08:00"); a UTC time ("...Z") is dated in ZONE."""
    if not stamp.endswith("Z"):
        return stamp[:10]
    moment = datetime.fromisoformat(stamp[:26]).replace(tzinfo=UTC)  # to microseconds
    return moment.astimezone(ZONE).date().isoformat()


def our_trades(fills: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """report.json fills as backtrader_ma's trade records, sorted by date then symbol."""
    trades = [
        {
            "date": fill_date(f["time"]),
            "symbol": f["symbol"],
            "side": f["side"],
            "qty": f["qty"],
            "price": f["price"],
            "commission": f["commission"],
            "tax": f["tax"],
        }
        for f in fills
    ]
    return sorted(trades, key=lambda t: (t["date"], t["symbol"]))


def key(trade: dict[str, Any]) -> tuple[Any, ...]:
    """What two fills must share to match; numbers as decimals (1000 == "1000", 12.6 ==
    "12.60")."""
    date, symbol, side, *numbers = (trade[k] for k in KEY)
    return (date, str(symbol), side, *(Decimal(str(n)) for n in numbers))


def show(trade: tuple[Any, ...]) -> str:
    date, symbol, side, qty, price, commission, tax = trade
    return (
        f"{date} {symbol} {side:4} {qty:>6} @ {price:>8}  commission {commission:>6}  tax {tax:>6}"
    )


# FIGURES -------------------------------------------------------------------------------


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def rates(values: list[float]) -> str:
    return ", ".join(f"{v:,.1f}" for v in values)


def section_ours(title: str, runs: list[dict[str, Any]]) -> float:
    print(title)
    for n, r in enumerate(runs, 1):
        line = (
            f"  run {n}: {r['bars']} bars in {r['seconds']:.3f} s = {r['bars_per_s']:,.1f} bars/s"
            f" (whole command {r['process_seconds']:.1f} s)"
        )
        if r["trades"]:
            line += f", {r['trades']} trades, final equity {r['final_equity']}"
        if r["timeouts"]:
            line += f", TIMEOUTS {r['timeouts']}"
        print(line)
    median = statistics.median(r["bars_per_s"] for r in runs)
    print(f"  bars/s: median {median:,.1f}; all runs {rates([r['bars_per_s'] for r in runs])}")
    return median


def deterministic(runs: list[dict[str, Any]]) -> bool:
    same = all(
        r["fills_digest"] == runs[0]["fills_digest"]
        and r["ledger_digest"] == runs[0]["ledger_digest"]
        for r in runs
    )
    print(
        f"  deterministic: {'yes' if same else 'no'} ({len(runs)} runs; fills_digest "
        f"{', '.join(sorted({r['fills_digest'][:12] for r in runs}))}; ledger_digest "
        f"{', '.join(sorted({r['ledger_digest'][:12] for r in runs}))})"
    )
    return same


def compare(mine: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    a, b = Counter(map(key, mine)), Counter(map(key, theirs))
    matching = sum((a & b).values())
    only_ours, only_bt = sorted((a - b).elements()), sorted((b - a).elements())
    print(
        f"  fills: ours {len(mine)}, backtrader {len(theirs)}; matching {matching}, "
        f"differing {len(only_ours)} ours only + {len(only_bt)} backtrader only"
    )
    if only_ours or only_bt:
        print(f"  first differences (up to {SHOW} of each):")
        for t in only_ours[:SHOW]:
            print(f"    ours only        {show(t)}")
        for t in only_bt[:SHOW]:
            print(f"    backtrader only  {show(t)}")
    elif [key(t) for t in mine] != [key(t) for t in theirs]:
        print("  (the same fills, in another order within a day)")


NOTE = """\
  note: both fill a market order placed after a bar's close at the next bar's open of
  that symbol. Our fills are stamped with that bar's last instant (its end T - 1 ns, e.g.
  14:59:59.999999999 Shanghai time) and dated by that bar's day, as backtrader dates its
  executions. Fees per order: commission 0.001 of the value, half-up to the cent, at least
  5.00 (buy and sell); stamp tax 0.001 on sells."""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=SAMPLE, help="bar file (time,symbol,OHLCV)")
    p.add_argument("--runs", type=int, default=3, help="runs of each of the three (default 3)")
    p.add_argument("--timeout", type=float, default=900, help="seconds one of our runs may take")
    args = p.parse_args()
    data = args.data.resolve()  # our runs start in the repository root, with their own folder
    runs = max(1, args.runs)
    before = load()
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"backtrader {backtrader.__version__}, load average before {before}"
    )
    print(f"data: {data}; {runs} run(s) of each")
    print()
    try:
        fast = [ours(data, None, args.timeout) for _ in range(runs)]
        ours_max = section_ours("1. our server, no bot, speed max", fast)
        print()
        stepped = [ours(data, BOT, args.timeout) for _ in range(runs)]
        ours_lock = section_ours(f'2. our server, lock-step, --bot "{BOT}"', stepped)
        same = deterministic(stepped)
    except RunFailed as exc:
        print(f"a backtest did not finish: {exc}")
        print(f"load average after: {load()}")
        return 1
    print()

    bt = [run_backtrader(data) for _ in range(runs)]
    print("3. backtrader, same bars, strategy and costs (cerebro.run() only)")
    for n, r in enumerate(bt, 1):
        print(
            f"  run {n}: {r['bars']} bars in {r['seconds']:.4f} s = {r['bars_per_s']:,.1f} bars/s"
            f", {len(r['trades'])} trades, final value {r['final_value']}"
        )
    bt_rates = [r["bars_per_s"] for r in bt]
    bt_median = statistics.median(bt_rates)
    print(
        f"  bars/s: best {max(bt_rates):,.1f}, median {bt_median:,.1f} (the median is used "
        f"for the ratio, as for ours); all runs {rates(bt_rates)}"
    )
    print()

    ratio_max, ratio_lock = ours_max / bt_median, ours_lock / bt_median
    print("4. ours / backtrader, medians of bars/s")
    print(f"  no bot, speed max:         {ours_max:,.1f} / {bt_median:,.1f} = {ratio_max:.3f}x")
    print(f"  lock-step, example bot:    {ours_lock:,.1f} / {bt_median:,.1f} = {ratio_lock:.3f}x")
    verdict = {True: "met", False: "not met"}
    print(
        f"  target: >= {TARGET:g}x backtrader: {verdict[ratio_lock >= TARGET]} with the bot "
        f"(lock-step, the like-for-like figure: {ratio_lock:.3f}x); "
        f"{verdict[ratio_max >= TARGET]} without (max: {ratio_max:.3f}x)"
    )
    print()

    print("5. trade by trade: our first lock-step run against backtrader's first run")
    if not same:
        print("  (our runs differ between themselves: this is run 1 only)")
    compare(our_trades(stepped[0]["fills"]), bt[0]["trades"])
    ours_equity, bt_equity = stepped[0]["final_equity"], bt[0]["final_value"]
    equal = "equal" if Decimal(ours_equity) == Decimal(bt_equity) else "DIFFERENT"
    print(f"  final equity: ours {ours_equity}, backtrader {bt_equity} ({equal})")
    print(NOTE)
    print()
    print(f"load average after: {load()} (before {before})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
