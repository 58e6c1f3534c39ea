"""Replay throughput: how fast the server replays bar files to a bot, end to end.

    .venv/bin/python -m bench.replay                 # the shipped sample, 3 runs
    .venv/bin/python -m bench.replay --data a.csv b.csv --runs 1

Run from the repository root (it uses tests.harness to start the server).

Each run starts the real server (four processes) on the bars at speed `max`, paused; a
ZeroMQ subscriber, as a bot would be, takes the public market data; then the run state
goes to running and the clock starts. It stops when the subscriber has every bar and the
accountant prices each symbol at its last close. Printed: bars, bar times, seconds, bars/s
to the bot, and the time until settled. Figures, not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from actors.controller.bars import SAMPLE, load_bars
from actors.market.rules import Market
from protocol.settings import Settings
from tests.harness import Server


def one_run(data: list[Path], total: int, last: dict[str, str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tradeserver-replay-") as folder:
        market = {"feed": "replay", "replay_speed": "max", "replay_files": [str(p) for p in data]}
        control = {"clock": "market", "sessions": "profile", "initial_state": "paused"}
        with Server(Path(folder), fill_mode="wait", market=market, control=control) as srv:
            bot = srv.market(("md.",))
            http = srv.http(srv.demo_token)
            time.sleep(0.5)  # the subscription is in place
            srv.set_control("running")
            start = time.monotonic()
            bars = 0
            while bars < total:
                got = bot.next(timeout=60)
                assert got is not None, f"only {bars} of {total} bars arrived"
                bars += got[1]["type"] == "bar"
            to_bot = time.monotonic() - start
            for symbol, close in last.items():
                while http.get(f"/v1/quotes/{symbol}").json().get("last") != close:
                    time.sleep(0.01)
            settled = time.monotonic() - start
            return {"to_bot": to_bot, "settled": settled}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", nargs="*", type=Path, default=[SAMPLE], help="bar files")
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    args.data = [path.resolve() for path in args.data]  # the server runs in a temporary folder
    bars = load_bars(args.data, Market.from_settings(Settings()))
    last = {bar.symbol: format(bar.close, "f") for bar in bars}
    times = len({bar.ts for bar in bars})
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {[round(x, 2) for x in os.getloadavg()]}"
    )
    print(f"data: {', '.join(map(str, args.data))}: {len(bars)} bars at {times} bar times")
    runs = [one_run(args.data, len(bars), last) for _ in range(args.runs)]
    for n, run in enumerate(runs, 1):
        print(
            f"run {n}: to the bot {run['to_bot']:.2f} s = {len(bars) / run['to_bot']:.0f} bars/s"
            f" ({times / run['to_bot']:.0f} bar times/s); settled {run['settled']:.2f} s"
        )
    best = statistics.median(run["to_bot"] for run in runs)
    print(f"median: {len(bars) / best:.0f} bars/s to the bot, no orders, speed max")
    print(f"load average after: {[round(x, 2) for x in os.getloadavg()]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
