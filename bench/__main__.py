"""Every performance figure the project tracks, each beside a reference measured in the
same run, in one table (issue 13's targets).

    .venv/bin/python -m bench                       # everything (some 10-15 minutes)
    .venv/bin/python -m bench orders backtest       # some parts: orders, backtest, startup,
                                                    # memory, exchange
    .venv/bin/python -m bench --json figures.json   # and every figure as JSON

Parts:
- orders: ZeroMQ order entry at window 1000 (events on, acked after commit, one order per
  frame) against the bare 3-hop msgpack/ZeroMQ pipeline (one message per frame), with
  replies one per frame and again batched (login batch=true); the serial round trip
  against the bare pipeline's at window 1; p99 at 5,000 orders/s offered; HTTP at 32
  connections against a bare endpoint on the same server (POST /v1/bench/order).
- backtest: the example bot in lock-step and the server at speed max without a bot, on a
  generated universe (bench/universe.py) and on the shipped sample, against backtrader
  on the same bars, strategy and costs; beside the sample, the per-bar-time floor (a
  bare ZeroMQ request and reply to the server).
- startup: run.py ready (HTTP and ZeroMQ answering) on an empty data dir, and on a ledger
  of --ledger-orders orders.
- memory: each process's RSS after --memory-orders/10 and --memory-orders orders.
- exchange: exchange-mode orders and cancels acknowledged per second against the bare
  ExchangeBook on the same stream, and the depth level updates a subscriber gets
  (bench/exchange.py).

The machine is shared and noisy: compare ratios, run twice, read the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import zmq

from bench import orders as ob
from bench.universe import write_universe
from protocol import codec
from tests.harness import ROOT, Server, write_config

PARTS = ("orders", "backtest", "startup", "memory", "exchange")
BOT = "python examples/ma_cross.py"
SAMPLE = ROOT / "examples" / "data" / "sample_daily.csv"


@dataclass
class Figure:
    """One line of the table: ours beside its reference; `ratio` is ours/reference, or
    reference/ours when `lower_is_better`; `target` is the ratio (or the value, with no
    reference) to meet."""

    name: str
    ours: float
    unit: str
    reference: float | None = None
    reference_name: str = ""
    target: float | None = None
    lower_is_better: bool = False

    @property
    def ratio(self) -> float | None:
        if self.reference is None or not self.ours or not self.reference:
            return None
        return self.ours / self.reference

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        value = self.ratio if self.reference is not None else self.ours
        if value is None:
            return False
        return value <= self.target if self.lower_is_better else value >= self.target

    def row(self) -> str:
        ref = f"{self.reference:,.2f} ({self.reference_name})" if self.reference is not None else ""
        ratio = f"{self.ratio:.3f}" if self.ratio is not None else ""
        sign = "<=" if self.lower_is_better else ">="
        target = f"{sign} {self.target:g}" if self.target is not None else ""
        met = {True: "met", False: "NOT met", None: ""}[self.met]
        return (
            f"{self.name:<46} {self.ours:>11,.2f} {self.unit:<9} {ref:<34} {ratio:>7} "
            f"{target:>8} {met}"
        )

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "ratio": self.ratio, "met": self.met}


# ORDERS --------------------------------------------------------------------------------


def part_orders(args: argparse.Namespace) -> list[Figure]:
    figures: list[Figure] = []
    folder = Path(tempfile.mkdtemp(prefix="tradeserver-bench-"))
    server = Server(
        folder,
        fill_mode="instant",
        ledger={"sqlite_synchronous": "NORMAL"},
        market={"tick_interval": 0.5},
        limits={"rate_per_user": 0},
        server={"bench_endpoint": True},
    )
    with server:
        zmq_token = server.new_user("bench_zmq", ob.CASH)
        http_token = server.new_user("bench_http", ob.CASH)
        ob.pipeline(server.api, "warmup", 2000, 1000, zmq_token, True)
        runs = []
        for batch in (False, True):  # replies one per frame, then in array frames
            with ob.CpuMeter(server) as cpu:
                run = ob.pipeline(
                    server.api,
                    f"zmq (window 1000{', batch' if batch else ''})",
                    args.orders,
                    1000,
                    zmq_token,
                    True,
                    wait_fills=True,
                    budget=args.budget,
                    batch=batch,
                )
            run.cpu_ms_per_order = cpu.per_order(run.acked)
            print(run.line(), "\n   CPU ms/order", run.cpu_ms_per_order, flush=True)
            runs.append(run)
        zrun, brun = runs
        serial = ob.pipeline(server.api, "zmq serial", 500, 1, zmq_token, True)
        print(serial.line(), flush=True)
        prun = ob.paced(server.api, zmq_token, 5000, 25_000)
        print(prun.line(), flush=True)
        hrun = ob.http_orders(server.url, http_token, 5000, 32, args.budget)
        print(hrun.line(), flush=True)
        bare_http = ob.http_orders(
            server.url, http_token, 5000, 32, args.budget, path="/v1/bench/order", name="http bare"
        )
        print(bare_http.line(), flush=True)
    base = ob.baseline(args.orders, 1000, 2000, False, 1, repeats=3)
    print(base.line(), flush=True)
    base_serial = ob.baseline(500, 1, 100, False, 1, repeats=3)
    print(base_serial.line(), flush=True)
    figures += [
        Figure(
            "ZeroMQ orders/s, window 1000, events on",
            zrun.rate,
            "orders/s",
            base.rate,
            "bare pipeline",
            0.25,
        ),
        Figure(
            "ZeroMQ orders/s, same, replies batched",
            brun.rate,
            "orders/s",
            base.rate,
            "bare pipeline",
            0.25,
        ),
        Figure(
            "ZeroMQ serial round trip, p50",
            serial.latency_ms.get("p50", 0),
            "ms",
            base_serial.latency_ms.get("p50", 0),
            "bare, window 1",
            1.5,
            lower_is_better=True,
        ),
        Figure(
            "ZeroMQ p99 at 5,000 orders/s offered",
            prun.latency_ms.get("p99", 0),
            "ms",
            target=5.0,
            lower_is_better=True,
        ),
        Figure(
            "HTTP orders/s, 32 connections",
            hrun.rate,
            "orders/s",
            bare_http.rate,
            "bare endpoint",
            0.60,
        ),
    ]
    return figures


# BACKTESTS -----------------------------------------------------------------------------


def backtest_run(data: Path, bot: str | None, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    from bench.backtest import ours

    return ours(data, bot, timeout=1800, extra=extra)


# The universe's 50 positions of 1000 shares would need more than the default cash at
# times: backtrader refuses an order at its fill, we at its placement (we reserve its
# most it can cost), so the trades would part where cash runs out. 100 shares and ten
# million each keep cash out of it, and the trades the same.
UNIVERSE_QTY, UNIVERSE_CASH = 100, 10_000_000


def part_backtest(args: argparse.Namespace) -> list[Figure]:
    from decimal import Decimal

    from bench.backtest import compare, our_trades
    from bench.backtrader_ma import run_backtrader

    universe = Path(tempfile.mkdtemp(prefix="tradeserver-universe-")) / "universe.csv"
    bars = write_universe(universe, args.symbols, args.years)
    print(f"universe: {bars} bars of {args.symbols} symbols over {args.years} years", flush=True)
    figures: list[Figure] = []
    for label, data in (("universe", universe), ("sample", SAMPLE)):
        bot, extra, kwargs = BOT, (), {}
        if label == "universe":
            bot = f"{BOT} --qty {UNIVERSE_QTY}"
            extra = ("--cash", str(UNIVERSE_CASH))
            kwargs = {"qty": UNIVERSE_QTY, "cash": Decimal(UNIVERSE_CASH)}
        lock = [backtest_run(data, bot, extra) for _ in range(args.runs)]
        bt = [run_backtrader(data, **kwargs) for _ in range(args.runs)]
        lock_rate = statistics.median(r["bars_per_s"] for r in lock)
        bt_rate = statistics.median(r["bars_per_s"] for r in bt)
        print(
            f"{label}: lock-step {lock_rate:,.0f} bars/s, backtrader {bt_rate:,.0f} bars/s; "
            f"final equity ours {lock[0]['final_equity']}, backtrader {bt[0]['final_value']}",
            flush=True,
        )
        compare(our_trades(lock[0]["fills"]), bt[0]["trades"])
        target = 1.5 if label == "universe" else 0.25
        figures.append(
            Figure(
                f"backtest {label}, example bot, lock-step",
                lock_rate,
                "bars/s",
                bt_rate,
                "backtrader",
                target,
            )
        )
        if label == "universe":
            fast = [backtest_run(data, None) for _ in range(args.runs)]
            fast_rate = statistics.median(r["bars_per_s"] for r in fast)
            figures.append(
                Figure(
                    "backtest universe, no bot, speed max",
                    fast_rate,
                    "bars/s",
                    bt_rate,
                    "backtrader",
                    5.0,
                )
            )
    floor = request_floor()
    figures.append(
        Figure(
            "per-bar-time floor: a ZeroMQ ping to the server",
            floor,
            "ms",
            target=None,
            lower_is_better=True,
        )
    )
    return figures


def request_floor() -> float:
    """p50 of a bare request and reply to a running server (ping, gateway only), ms."""
    with Server(Path(tempfile.mkdtemp(prefix="tradeserver-floor-"))) as server:
        ctx = zmq.Context.instance()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(server.api)
        times = []
        for n in range(300):
            start = time.perf_counter()
            sock.send(codec.encode({"v": 1, "type": "ping", "rid": n}))
            sock.poll(5000)
            sock.recv()
            times.append((time.perf_counter() - start) * 1000)
        sock.close()
    return statistics.median(times[50:])


# START-UP AND MEMORY -------------------------------------------------------------------


def ready_seconds(folder: Path, config: Path) -> float:
    """From starting run.py until HTTP and ZeroMQ both answer."""
    settings_file = folder / "data" / "settings.json"
    settings_file.unlink(missing_ok=True)
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not settings_file.exists():
            time.sleep(0.01)
        endpoints = json.loads(settings_file.read_text())["endpoints"]
        url = f"http://127.0.0.1:{endpoints['http_port']}/v1/health"
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoints["client_api"])
        http_ok = zmq_ok = False
        while not (http_ok and zmq_ok):
            if not http_ok:
                try:
                    http_ok = httpx.get(url, timeout=0.5).status_code == 200
                except httpx.HTTPError:
                    time.sleep(0.01)
            if not zmq_ok:
                sock.send(codec.encode({"v": 1, "type": "ping", "rid": 1}))
                zmq_ok = bool(sock.poll(100))
                if zmq_ok:
                    sock.recv()
        sock.close()
        return time.monotonic() - start
    finally:
        proc.terminate()
        proc.wait(30)


def build_ledger(folder: Path, config: Path, orders: int) -> None:
    """A ledger holding `orders` filled orders of one user, written offline."""
    from decimal import Decimal

    from actors.accountant.accounts import Account, Fill, Order
    from actors.accountant.journal import write_offline
    from actors.accountant.offline import prepare
    from actors.accountant.rows import account_row, fill_row, operation_row, order_row
    from protocol.settings import build_settings

    settings = build_settings(config)
    engine = prepare(settings)
    price, qty = Decimal("8.50"), Decimal(100)
    account = Account(2, Decimal("1000000.00"), Decimal("1000000.00"))
    chunk = 20_000
    for first in range(1, orders + 1, chunk):
        rows = []
        for n in range(first, min(first + chunk, orders + 1)):
            order = Order(n, 2, None, "600000", "buy", qty, price, n, n, limit_price=price)
            order.status, order.filled_qty, order.filled_value = "filled", qty, qty * price
            fill = Fill(
                n, n, 2, "600000", "buy", qty, price, qty * price, Decimal("5.00"), Decimal(0), n
            )
            rows += [order_row(order), fill_row(fill)]
            rows.append(operation_row(n, "order.accepted", user_id=2, seq=2 * n - 1, order_id=n))
            rows.append(operation_row(n, "order.filled", user_id=2, seq=2 * n, order_id=n))
        rows.append(account_row(account, orders))
        write_offline(engine, rows)
    engine.dispose()


def part_startup(args: argparse.Namespace) -> list[Figure]:
    empty = Path(tempfile.mkdtemp(prefix="tradeserver-start-"))
    config = write_config(empty)
    first = [ready_seconds(empty, config)]  # the first start also makes the ledger
    again = ready_seconds(empty, config)
    print(f"start-up, empty data dir: first {first[0]:.2f}s, again {again:.2f}s", flush=True)
    full = Path(tempfile.mkdtemp(prefix="tradeserver-start-full-"))
    full_config = write_config(full)
    started = time.monotonic()
    build_ledger(full, full_config, args.ledger_orders)
    print(f"ledger of {args.ledger_orders:,} orders built in {time.monotonic() - started:.0f}s")
    loaded = ready_seconds(full, full_config)
    print(f"start-up on it: {loaded:.2f}s", flush=True)
    return [
        Figure(
            "start-up, empty data dir (first start)",
            first[0],
            "s",
            target=2.0,
            lower_is_better=True,
        ),
        Figure(
            f"start-up, ledger of {args.ledger_orders:,} orders",
            loaded,
            "s",
            target=5.0,
            lower_is_better=True,
        ),
    ]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def part_memory(args: argparse.Namespace) -> list[Figure]:
    total = args.memory_orders
    folder = Path(tempfile.mkdtemp(prefix="tradeserver-memory-"))
    with Server(
        folder,
        fill_mode="instant",
        limits={"rate_per_user": 0},
        ledger={"sqlite_synchronous": "NORMAL"},
    ) as server:
        token = server.new_user("bench_memory", ob.CASH)
        done, marks = 0, {}
        for mark in (total // 10, total):
            while done < mark:
                step = min(50_000, mark - done)
                run = ob.pipeline(server.api, "memory", step, 1000, token, True)
                done += run.acked + run.errors
            time.sleep(1.0)  # the projector writes what is pending
            marks[mark] = {name: rss_mb(server.pid(name)) for name in ob.PROCESSES}
            print(f"RSS after {mark:,} orders: {marks[mark]}", flush=True)
    low, high = total // 10, total
    return [
        Figure(
            f"RSS {name}, {high:,} orders",
            marks[high][name],
            "MB",
            marks[low][name],
            f"at {low:,}",
            1.10,
            lower_is_better=True,
        )
        for name in ob.PROCESSES
    ]


# EXCHANGE ------------------------------------------------------------------------------


def part_exchange(args: argparse.Namespace) -> list[Figure]:
    """Exchange-mode matching on the server against the bare book on the same stream
    (bench/exchange.py), and the depth level updates a subscriber gets."""
    from bench import exchange

    ops = exchange.stream(2_000, args.exchange_ops, 16)
    bare = exchange.bare_book(ops, 2_000)
    served = exchange.server_run(ops, 2_000, 200)
    return [
        Figure(
            "exchange mode: orders and cancels acked",
            served["per_second"],
            "/s",
            bare["per_second"],
            "bare ExchangeBook",
        ),
        Figure("exchange mode: depth level updates out", served["depth_levels_per_second"], "/s"),
    ]


# THE TABLE -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("parts", nargs="*", help=f"some of {', '.join(PARTS)} (default: all)")
    p.add_argument("--orders", type=int, default=100_000, help="ZeroMQ orders (100000)")
    p.add_argument("--budget", type=float, default=120.0, help="seconds a phase may send")
    p.add_argument("--runs", type=int, default=1, help="runs of each backtest (median kept)")
    p.add_argument("--symbols", type=int, default=50)
    p.add_argument("--years", type=int, default=5)
    p.add_argument("--ledger-orders", type=int, default=1_000_000)
    p.add_argument("--memory-orders", type=int, default=1_000_000)
    p.add_argument("--exchange-ops", type=int, default=20_000, help="exchange part's stream")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    args = p.parse_args(argv)
    parts = args.parts or list(PARTS)
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        p.error(f"unknown part {unknown[0]!r}: choose from {', '.join(PARTS)}")
    before = [round(x, 2) for x in os.getloadavg()]
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {before}",
        flush=True,
    )
    figures: list[Figure] = []
    runners = {
        "orders": part_orders,
        "backtest": part_backtest,
        "startup": part_startup,
        "memory": part_memory,
        "exchange": part_exchange,
    }
    for part in parts:
        print(f"\n== {part}", flush=True)
        figures += runners[part](args)
    after = [round(x, 2) for x in os.getloadavg()]
    print(f"\n== TradeServer bench: load average {before} -> {after}")
    print(f"{'figure':<46} {'ours':>11} {'unit':<9} {'reference':<34} {'ratio':>7} {'target':>8}")
    for figure in figures:
        print(figure.row())
    if args.json:
        out = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "load_average": {"before": before, "after": after},
            "figures": [f.as_json() for f in figures],
        }
        args.json.write_text(json.dumps(out, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
