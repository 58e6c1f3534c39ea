"""Exchange-mode matching throughput: the server against the bare book, on the same orders.

    .venv/bin/python -m bench.exchange                     # from the repository root
    .venv/bin/python -m bench.exchange --ops 20000 --depth 2000 --json out.json

One seeded stream of operations on one symbol (AAPL, us_equity, tick 0.01) from two users:
first `--depth` passive limit orders that build a deep book (both sides, up to 50 ticks
from the middle), then `--ops` operations: 55 % passive limit orders, 25 % cancels of an
open order, 20 % crossing limit orders (1 to 3 ticks through the best opposite price, so
they sweep a level or more and rest what is left).

1. bare book: actors/matcher/exchange.py's ExchangeBook alone, no I/O: operations/s.
2. server: run.py (all four processes) in exchange mode, in a temporary folder; each user
   a pipelined DEALER (`--window` requests outstanding) sending its half of the stream;
   orders and cancels acknowledged per second, fill events, and the depth messages (and
   the level updates they carry) a SUB on md.AAPL received per second. Cancels of orders
   that filled first are refused (REQUEST_ORDER_NOT_OPEN): the mix races on purpose.

It prints figures beside the reference, not verdicts. The machine is noisy: run it twice.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: bench/exchange.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import zmq

from actors.market.rules import Market
from actors.matcher.book import FillModel, Resting
from actors.matcher.exchange import ExchangeBook
from protocol import codec
from protocol.settings import build_settings

SYMBOL = "AAPL"
MID_TICKS = 23_000  # 230.00
TICK = Decimal("0.01")
SHARES = 10_000_000  # each user's deposit: enough for every sell of the stream
CASH = "10000000000"


@dataclass(frozen=True, slots=True)
class Op:
    """One operation of the stream: a new limit order, or a cancel of an earlier one."""

    user: int  # 0 or 1
    kind: str  # "order" or "cancel"
    side: str = ""
    price_ticks: int = 0
    qty: int = 0
    target: int = 0  # a cancel: the index in the stream of the order it cancels


def stream(depth: int, ops: int, seed: int) -> list[Op]:
    """The operations, with prices in ticks. Crossing orders are priced off a running
    estimate of the best prices, so the stream needs no book to be made."""
    rng = random.Random(seed)
    out: list[Op] = []
    open_orders: list[int] = []
    best_bid, best_ask = MID_TICKS - 1, MID_TICKS + 1
    for i in range(depth + ops):
        user = rng.randrange(2)
        roll = rng.random() if i >= depth else 0.0
        if roll < 0.55:
            side = "buy" if rng.random() < 0.5 else "sell"
            offset = rng.randint(1, 50)
            price = best_bid - offset + 1 if side == "buy" else best_ask + offset - 1
            out.append(Op(user, "order", side, price, rng.randint(1, 10) * 10))
            open_orders.append(i)
        elif roll < 0.80 and open_orders:
            target = open_orders.pop(rng.randrange(len(open_orders)))
            out.append(Op(out[target].user, "cancel", target=target))
        else:
            side = "buy" if rng.random() < 0.5 else "sell"
            through = rng.randint(1, 3)
            price = best_ask + through if side == "buy" else best_bid - through
            out.append(Op(user, "order", side, price, rng.randint(1, 20) * 10))
            open_orders.append(i)
    return out


# 1. THE BARE BOOK ----------------------------------------------------------------------


def bare_book(ops: list[Op], depth: int) -> dict[str, Any]:
    settings = build_settings(None, flags={"market": {"mode": "exchange"}})
    book = ExchangeBook(SYMBOL, FillModel(Market.from_settings(settings).rules(SYMBOL)))
    prices = {t: TICK * t for t in range(MID_TICKS - 200, MID_TICKS + 200)}
    orders = [
        Resting(
            i + 1,
            op.side,
            prices.get(op.price_ticks) or TICK * op.price_ticks,
            Decimal(op.qty),
            Decimal(0),
            i + 1,
            user_id=op.user + 1,
        )
        if op.kind == "order"
        else None
        for i, op in enumerate(ops)
    ]
    prints = 0

    def run(part: range) -> None:
        nonlocal prints
        for i in part:
            op = ops[i]
            if op.kind == "cancel":
                book.cancel(op.target + 1)
            else:
                out = book.submit(orders[i])  # type: ignore[arg-type]
                prints += len(out.prints)
            if i % 64 == 0:
                book.take_depth_changes()  # the router takes them once a turn

    run(range(depth))
    prints = 0
    start = time.perf_counter()
    run(range(depth, len(ops)))
    seconds = time.perf_counter() - start
    bids, asks = book.depth(10_000)
    return {
        "ops": len(ops) - depth,
        "seconds": round(seconds, 4),
        "per_second": round((len(ops) - depth) / seconds),
        "prints": prints,
        "levels_after": [len(bids), len(asks)],
    }


# 2. THE SERVER -------------------------------------------------------------------------


@dataclass
class UserRun:
    sent: int = 0
    acked: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    fills: int = 0
    seconds: float = 0.0


def drive(
    endpoint: str, token: str, ops: list[tuple[int, Op]], window: int, result: UserRun
) -> None:
    """Send one user's operations pipelined; a cancel waits until its order is acked."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    login = {"v": 1, "type": "session.login", "rid": 0, "token": token, "events": True}
    login["batch"] = True
    sock.send(codec.encode(login))
    if not sock.poll(20_000):
        raise TimeoutError("no reply to session.login")
    order_ids: dict[int, int] = {}  # stream index -> order id
    rid_of: dict[int, int] = {}  # rid -> stream index
    outstanding = 0
    pending = list(ops)
    start = time.perf_counter()
    last = start
    position = 0
    sock.recv()
    while position < len(pending) or outstanding:
        batch = []
        while outstanding + len(batch) < window and position < len(pending):
            index, op = pending[position]
            if op.kind == "cancel":
                order_id = order_ids.get(op.target)
                if order_id is None and op.target in rid_of.values():
                    break  # its order is not acked yet: wait for it
                position += 1
                if order_id is None:
                    continue  # the order was refused
                batch.append({"type": "order.cancel", "order_id": order_id, "rid": index + 1})
            else:
                position += 1
                batch.append(
                    {
                        "type": "order.new",
                        "symbol": SYMBOL,
                        "side": op.side,
                        "qty": str(op.qty),
                        "price": str(TICK * op.price_ticks),
                        "time_in_force": "gtc",
                        "rid": index + 1,
                    }
                )
            rid_of[index + 1] = index
        if batch:
            sock.send(codec.encode([{"v": 1, **m} for m in batch]))
            result.sent += len(batch)
            outstanding += len(batch)
        if not sock.poll(20_000):
            break
        while sock.poll(0):
            decoded = codec.decode_internal(sock.recv())
            for msg in decoded if isinstance(decoded, list) else [decoded]:
                if msg.get("type") == "event":
                    if str(msg.get("event", "")).endswith("filled"):
                        result.fills += 1
                    continue
                index = rid_of.pop(msg.get("rid"), None)
                if index is None:
                    continue
                outstanding -= 1
                last = time.perf_counter()
                if msg.get("type") == "error":
                    code = str(msg.get("code"))
                    result.errors[code] = result.errors.get(code, 0) + 1
                    continue
                result.acked += 1
                if msg.get("type") == "order.accepted":
                    order_ids[index] = msg["order"]["id"]
    result.seconds = last - start
    sock.close(0)
    ctx.term()


def count_depth(endpoint: str, stop: threading.Event, counts: dict[str, int]) -> None:
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.connect(endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, f"md.{SYMBOL}".encode())
    while not stop.is_set():
        if not sub.poll(100):
            continue
        _topic, payload = sub.recv_multipart()
        message = codec.decode_internal(payload)
        kind = message.get("type")
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "depth":
            levels = len(message["bids"]) + len(message["asks"])
            counts["depth_levels"] = counts.get("depth_levels", 0) + levels
    sub.close(0)
    ctx.term()


def server_run(ops: list[Op], depth: int, window: int) -> dict[str, Any]:
    from tests.harness import Server

    with tempfile.TemporaryDirectory() as folder:
        server = Server(
            Path(folder),
            fill_mode="wait",
            market={"mode": "exchange"},
            control={"heartbeat_interval": 0.2, "sessions": "always"},
            limits={"rate_per_user": 0},
        )
        with server:
            tokens = [
                server.new_user(f"trader{u}", CASH, positions={SYMBOL: str(SHARES)})
                for u in range(2)
            ]
            api, pub = server.api, server.pub
            counts: dict[str, int] = {}
            stop = threading.Event()
            listener = threading.Thread(target=count_depth, args=(pub, stop, counts))
            listener.start()
            time.sleep(0.5)  # the SUB joins
            warm = [UserRun(), UserRun()]
            halves = [[(i, op) for i, op in enumerate(ops[:depth]) if op.user == u] for u in (0, 1)]
            _both(api, tokens, halves, window, warm)
            counts.clear()
            runs = [UserRun(), UserRun()]
            halves = [
                [(i, op) for i, op in enumerate(ops) if i >= depth and op.user == u] for u in (0, 1)
            ]
            start = time.perf_counter()
            _both(api, tokens, halves, window, runs)
            seconds = time.perf_counter() - start
            time.sleep(1.0)  # the last depth messages
            stop.set()
            listener.join()
            server.assert_no_crash()
    acked = sum(r.acked for r in runs)
    errors: dict[str, int] = {}
    for r in runs:
        for code, n in r.errors.items():
            errors[code] = errors.get(code, 0) + n
    return {
        "ops": len(ops) - depth,
        "acked": acked,
        "seconds": round(seconds, 3),
        "per_second": round(acked / seconds) if seconds else 0,
        "fill_events": sum(r.fills for r in runs),
        "errors": errors,
        "md_messages": counts,
        "depth_per_second": round(counts.get("depth", 0) / seconds) if seconds else 0,
        "depth_levels_per_second": (
            round(counts.get("depth_levels", 0) / seconds) if seconds else 0
        ),
    }


def _both(
    api: str, tokens: list[str], halves: list[list[tuple[int, Op]]], window: int, runs: list
) -> None:
    threads = [
        threading.Thread(target=drive, args=(api, tokens[u], halves[u], window, runs[u]))
        for u in (0, 1)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.exchange", description=__doc__.split("\n")[0])
    p.add_argument("--ops", type=int, default=20_000)
    p.add_argument("--depth", type=int, default=2_000, help="orders resting before the run")
    p.add_argument("--window", type=int, default=200, help="requests outstanding per user")
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--skip-server", action="store_true")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args(argv)
    ops = stream(args.depth, args.ops, args.seed)
    figures: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        },
        "bare_book": bare_book(ops, args.depth),
    }
    bare = figures["bare_book"]
    print(
        f"bare book   {bare['ops']:>7} ops in {bare['seconds']:7.3f}s = {bare['per_second']:>9}/s"
    )
    print(f"            {bare['prints']} prints, levels after {bare['levels_after']}")
    if not args.skip_server:
        served = figures["server"] = server_run(ops, args.depth, args.window)
        share = served["per_second"] / bare["per_second"] if bare["per_second"] else 0
        print(
            f"server      {served['acked']:>7} acks in {served['seconds']:7.3f}s = "
            f"{served['per_second']:>9}/s  ({share:.1%} of the bare book)"
        )
        print(
            f"            fill events {served['fill_events']}, errors {served['errors']}, "
            f"depth messages {served['md_messages'].get('depth', 0)} "
            f"= {served['depth_per_second']}/s carrying "
            f"{served['depth_levels_per_second']} level updates/s, md {served['md_messages']}"
        )
    machine = figures["machine"]
    machine["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"load average {machine['load_avg_start']} -> {machine['load_avg_end']}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
