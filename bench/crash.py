"""Crash safety under load: random order flow while processes are killed, then checks.

    .venv/bin/python -m bench.crash                     # 200 kills, at least 40 per process
    .venv/bin/python -m bench.crash --kills 40 --json out.json

Users trade at random (new orders of every type and time in force, cancels, replaces,
now and then a reset of their own account) over ZeroMQ and HTTP, recording every answer
(with `--mode exchange` against each other, each starting with shares deposited),
while a killer sends SIGKILL to a random one of the four processes every `--every`
seconds (the supervisor restarts it). Then the flow stops, the server settles, every open
order is canceled, and the checks run:

- every acknowledged order is in the ledger with the id it was acknowledged with, and
  every acknowledged cancel left its order canceled;
- every fill a client was told of is in the ledger; no fill is there twice, and each
  order's fills add up to its filled qty;
- an order whose request went unanswered (a killed gateway or accountant) is either in
  the ledger whole or not at all: found by its client order id, it reconciles;
- for every account, cash = its epoch's capital - bought + sold - commission - tax to the
  cent over the fills since its last reset, positions are the net of those fills, and with
  nothing open nothing stays reserved; its epoch counts the acknowledged resets (and at
  most the unanswered ones besides);
- once the server is stopped, the ledger balances from its own entries
  (actors/accountant/balance.py): over every account's life cash + fees + bought - sold
  is the capital put in, and shares are bought - sold - written off by resets;
- the matcher's books hold exactly the open orders (the state digest), and the digest is
  the same after a clean restart, taken before the open orders are canceled: the books
  a restarted matcher rebuilds (time priority, trailing stops) are the ones it had.

`tests/integration/test_crash.py` runs a short version (about 20 kills) in the suite.
Figures, not a test: the exit status is 1 when a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: bench/crash.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from protocol.client import TradeClient, TradeError
from tests.harness import PROCESSES, Server

SYMBOLS = {"600000": Decimal("8.50"), "000001": Decimal("11.20")}
CASH = "10000000"
TYPES = ("limit", "limit", "limit", "market", "stop", "stop_limit", "trailing_stop")
TIFS = ("day", "gtc", "gtc", "ioc", "fok")


@dataclass
class Record:
    """What one user asked for and what it was told."""

    acked: dict[str, int] = field(default_factory=dict)  # client order id -> order id
    unknown: set[str] = field(default_factory=set)  # client order ids never answered
    refused: set[str] = field(default_factory=set)  # SYSTEM_BUSY: certainly not placed
    cancels_acked: set[int] = field(default_factory=set)
    fills_told: set[int] = field(default_factory=set)  # fill ids in events
    resets_acked: int = 0
    resets_unknown: int = 0  # never answered: done or not
    answers: Counter[str] = field(default_factory=Counter)


def random_order(rng: random.Random, coid: str) -> dict[str, Any]:
    symbol = rng.choice(list(SYMBOLS))
    ref = SYMBOLS[symbol]
    side = rng.choice(("buy", "sell"))
    kind = rng.choice(TYPES)
    off = Decimal(rng.randint(-30, 30)) / 100
    order: dict[str, Any] = {
        "symbol": symbol,
        "side": side,
        "qty": rng.choice((100, 200, 500)),
        "order_type": kind,
        "time_in_force": rng.choice(TIFS) if kind in ("limit", "market") else "gtc",
        "client_order_id": coid,
    }
    if kind in ("limit", "stop_limit"):
        order["limit_price"] = str(ref + off)
    if kind in ("stop", "stop_limit"):
        away = Decimal(rng.randint(5, 40)) / 100
        order["stop_price"] = str(ref + away if side == "buy" else ref - away)
    if kind == "trailing_stop":
        order["trail_price"] = "0.20"
    if kind == "market" and order["time_in_force"] == "gtc":
        order["time_in_force"] = "day"
    return order


class Trader(threading.Thread):
    """One user sending random requests until told to stop, over ZeroMQ or HTTP."""

    def __init__(
        self,
        server: Server,
        name: str,
        api: str,
        seed: int,
        stop: threading.Event,
        shares: dict[str, str] | None = None,
    ):
        super().__init__(daemon=True)
        self.server, self.name, self.api = server, name, api
        self.rng = random.Random(seed)
        self.stop_flag = stop
        self.shares = shares or {}  # deposited when the user is created
        self.token = server.new_user(name, CASH, positions=self.shares)
        self.record = Record()
        self.open: list[int] = []
        self.sent = 0

    def run(self) -> None:
        zmq = TradeClient(self.server.api, self.token, timeout=15) if self.api == "zmq" else None
        http = httpx.Client(base_url=self.server.url, headers=self.server.auth(self.token))
        try:
            while not self.stop_flag.is_set():
                self.step(zmq, http)
                if zmq is not None:
                    self.take_events(zmq)
        finally:
            http.close()
            if zmq is not None:
                self.take_events(zmq)
                zmq.close()

    def take_events(self, zmq: TradeClient) -> None:
        while zmq.events:
            event = zmq.events.popleft()
            if event.get("fill"):
                self.record.fills_told.add(event["fill"]["id"])

    def step(self, zmq: TradeClient | None, http: httpx.Client) -> None:
        roll = self.rng.random()
        if roll < 0.6 or not self.open:
            self.sent += 1
            coid = f"{self.name}-{self.sent}"
            self.new_order(zmq, http, random_order(self.rng, coid))
        elif roll < 0.85:
            self.cancel(zmq, http, self.rng.choice(self.open))
        elif roll < 0.99:
            self.replace(zmq, http, self.rng.choice(self.open))
        else:
            self.reset(zmq, http)

    def ask(self, zmq: TradeClient | None, http: httpx.Client, kind: str, **fields: Any) -> Any:
        """The reply's body, an error code (str), or None when no answer came."""
        try:
            if zmq is not None:
                return zmq.request(kind, **fields)
            method, path, body = _http_call(kind, fields)
            reply = http.request(method, path, json=body, timeout=15)
            data = reply.json()
            return data["error"]["code"] if reply.status_code >= 400 else data
        except TradeError as exc:
            return exc.code
        except (TimeoutError, httpx.HTTPError, ValueError):
            time.sleep(0.2)  # a process is restarting: do not spin on refused connections
            return None

    def new_order(self, zmq: TradeClient | None, http: httpx.Client, order: dict[str, Any]) -> None:
        reply = self.ask(zmq, http, "order.new", **order)
        coid = order["client_order_id"]
        if isinstance(reply, dict):
            placed = reply.get("order", reply)
            self.record.acked[coid] = placed["id"]
            self.record.answers["order.accepted"] += 1
            if placed["status"] in ("new", "partially_filled"):
                self.open.append(placed["id"])
        else:
            self.record.answers[reply or "no answer"] += 1
            if reply is None or reply == "SYSTEM_TIMEOUT":
                self.record.unknown.add(coid)
            elif reply == "SYSTEM_BUSY":
                self.record.refused.add(coid)

    def cancel(self, zmq: TradeClient | None, http: httpx.Client, order_id: int) -> None:
        reply = self.ask(zmq, http, "order.cancel", order_id=order_id)
        if isinstance(reply, dict):
            self.record.cancels_acked.add(order_id)
            self.record.answers["order.canceled"] += 1
        else:
            self.record.answers[reply or "no answer"] += 1
        if reply is not None and reply != "REQUEST_CANCEL_PENDING":
            self.open.remove(order_id)

    def replace(self, zmq: TradeClient | None, http: httpx.Client, order_id: int) -> None:
        reply = self.ask(zmq, http, "order.replace", order_id=order_id, qty=100)
        if isinstance(reply, dict):
            new = reply.get("order", reply)
            self.record.answers["order.replaced"] += 1
            self.open.remove(order_id)
            self.open.append(new["id"])
            if new.get("client_order_id"):
                self.record.acked[new["client_order_id"]] = new["id"]
        else:
            self.record.answers[reply or "no answer"] += 1

    def reset(self, zmq: TradeClient | None, http: httpx.Client) -> None:
        """Reset the own account to its initial cash: its open orders are canceled."""
        reply = self.ask(zmq, http, "account.reset")
        if isinstance(reply, dict):
            self.record.resets_acked += 1
            self.record.answers["account.reset"] += 1
            self.open.clear()
        else:
            self.record.answers[reply or "no answer"] += 1
            if reply is None or reply == "SYSTEM_TIMEOUT":
                self.record.resets_unknown += 1
                self.open.clear()  # maybe canceled: cancels of them are answered either way


def _http_call(kind: str, fields: dict[str, Any]) -> tuple[str, str, dict[str, Any] | None]:
    if kind == "account.reset":
        return "POST", "/v1/account/reset", fields
    if kind == "order.new":
        body = {("type" if k == "order_type" else k): v for k, v in fields.items()}
        return "POST", "/v1/orders", body
    order_id = fields.pop("order_id")
    if kind == "order.cancel":
        return "DELETE", f"/v1/orders/{order_id}", None
    return "PATCH", f"/v1/orders/{order_id}", fields


def killer(server: Server, every: float, kills: int, rng: random.Random, log: list[str]) -> None:
    """SIGKILL a random process every `every` seconds, each kind equally often, until
    `kills`; each time wait until the supervisor has started the new one."""
    plan = [PROCESSES[n % len(PROCESSES)] for n in range(kills)]
    rng.shuffle(plan)
    for name in plan:
        time.sleep(every)
        old = server.pid(name)
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.status()["children"][name]["pid"] in (
            None,
            old,
        ):
            time.sleep(0.05)
        log.append(name)


def settle(server: Server) -> TradeClient:
    """Wait until the server answers and the matcher holds its books; pause trading."""
    server.wait_ready(120)
    admin = TradeClient(server.api, server.admin_token, timeout=30)
    for _ in range(3):  # a control.set can meet a process that has just restarted
        with contextlib.suppress(TradeError, TimeoutError):
            admin.set_control("paused")
            break
    else:
        admin.close()
        raise RuntimeError("the server does not take control.set after the kills")
    time.sleep(2)  # fills in flight settle
    return admin


def all_pages(client: TradeClient, kind: str, key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    before: int | None = None
    while True:
        fields: dict[str, Any] = {"limit": 1000}
        if kind == "orders.list":
            fields["status"] = "all"
        if before is not None:
            fields["before_id"] = before
        page = client.request(kind, **fields)[key]
        items += page
        if len(page) < 1000:
            return items
        before = page[-1]["id"]


def check(server: Server, traders: list[Trader], restart: bool = True) -> dict[str, Any]:
    """Every check of the module docstring (the digest over a clean restart only with
    `restart`); returns counts and the problems found."""
    admin = settle(server)
    problems: list[str] = []
    counts: Counter[str] = Counter()
    digest = admin.digest()  # with the orders the flow left open, in the books
    if not digest["books_match_orders"]:
        problems.append(f"books and open orders differ: {digest}")
    if restart:
        admin.close()
        server.restart()
        admin = settle(server)
        again = admin.digest()
        if again["digest"] != digest["digest"]:
            changed = [k for k in digest["parts"] if digest["parts"][k] != again["parts"].get(k)]
            problems.append(
                f"digest changed over a restart in {changed}: "
                f"before {digest['parts']}, after {again['parts']}; counters before "
                f"{digest['counters']}, after {again['counters']}"
            )
    for trader in traders:
        client = TradeClient(server.api, trader.token, timeout=30, events=False)
        for _ in range(1000):  # pages of open orders until none is left
            page = client.orders(limit=1000)
            if not page:
                break
            for order in page:
                with contextlib.suppress(TradeError):
                    client.cancel_order(order["id"])
            time.sleep(0.2)
        time.sleep(0.5)
        orders = {o["id"]: o for o in all_pages(client, "orders.list", "orders")}
        by_coid = {o["client_order_id"]: o for o in orders.values() if o["client_order_id"]}
        fills = all_pages(client, "fills.list", "fills")
        rec = trader.record
        for coid, order_id in rec.acked.items():
            counts["acked orders"] += 1
            if order_id not in orders:
                problems.append(f"{trader.name}: acknowledged order {order_id} ({coid}) lost")
        for order_id in rec.cancels_acked:
            counts["acked cancels"] += 1
            if orders.get(order_id, {}).get("status") != "canceled":
                problems.append(f"{trader.name}: acknowledged cancel of {order_id} not kept")
        fill_ids = [f["id"] for f in fills]
        counts["fills"] += len(fills)
        if len(fill_ids) != len(set(fill_ids)):
            problems.append(f"{trader.name}: a fill is in the ledger twice")
        for fill_id in rec.fills_told - set(fill_ids):
            problems.append(f"{trader.name}: fill {fill_id} was told but is not in the ledger")
        counts["fills told"] += len(rec.fills_told)
        per_order: Counter[int] = Counter()
        for f in fills:
            per_order[f["order_id"]] += Decimal(f["qty"])  # type: ignore[assignment]
        for order in orders.values():
            if Decimal(order["filled_qty"]) != per_order.get(order["id"], 0):
                problems.append(f"{trader.name}: order {order['id']} fills != its filled qty")
        for coid in rec.unknown:
            counts["unanswered orders"] += 1
            counts["unanswered, present" if coid in by_coid else "unanswered, absent"] += 1
        for coid in rec.refused:
            counts["refused as busy"] += 1
            if coid in by_coid:
                problems.append(f"{trader.name}: {coid} was refused as busy but was placed")
        account = client.account()
        counts["resets"] += rec.resets_acked
        if not rec.resets_acked <= account["epoch"] <= rec.resets_acked + rec.resets_unknown:
            problems.append(
                f"{trader.name}: epoch {account['epoch']} after {rec.resets_acked} "
                f"acknowledged resets and {rec.resets_unknown} unanswered"
            )
        epoch_fills = [f for f in fills if f["epoch"] == account["epoch"]]
        deposited = trader.shares if account["epoch"] == 0 else {}  # a reset writes them off
        problems += reconcile(trader.name, account, client.positions(), epoch_fills, deposited)
        client.close()
    digest = admin.digest()
    admin.close()
    if not digest["books_match_orders"]:
        problems.append(f"books and open orders differ after canceling: {digest}")
    return {"counts": dict(counts), "problems": problems}


def reconcile(
    name: str,
    account: dict[str, Any],
    positions: list[dict[str, Any]],
    fills: list[dict],
    deposited: dict[str, str] | None = None,
) -> list[str]:
    """Cash and positions follow from the fills (and the shares deposited) to the cent;
    nothing stays reserved."""
    cash = Decimal(account["initial_cash"])
    held: Counter[str] = Counter()
    for symbol, qty in (deposited or {}).items():
        held[symbol] += Decimal(qty)  # type: ignore[assignment]
    for f in fills:
        value, fees = Decimal(f["value"]), Decimal(f["commission"]) + Decimal(f["tax"])
        sign = -1 if f["side"] == "buy" else 1
        cash += sign * value - fees
        held[f["symbol"]] -= sign * Decimal(f["qty"])  # type: ignore[assignment]
    problems = []
    if Decimal(account["cash"]) != cash:
        problems.append(f"{name}: cash {account['cash']} but the fills say {cash}")
    if Decimal(account["reserved_cash"]) != 0:
        problems.append(f"{name}: {account['reserved_cash']} reserved with nothing open")
    shown = {p["symbol"]: Decimal(p["qty"]) for p in positions}
    wanted = {s: q for s, q in held.items() if q}
    if shown != wanted:
        problems.append(f"{name}: positions {shown} but the fills say {wanted}")
    return problems


def run(
    folder: Path,
    kills: int,
    every: float,
    users: int,
    seed: int,
    restart: bool = True,
    mode: str = "paper",
) -> dict[str, Any]:
    """Start a server in `folder`, trade and kill, check; the figures as a dict. In
    exchange mode the users trade with each other, each starting with shares."""
    rng = random.Random(seed)
    market = {"tick_interval": 0.05, "mode": mode}
    limits = {"request_timeout": 5.0, "rate_per_user": 0}
    shares = {symbol: "5000" for symbol in SYMBOLS} if mode == "exchange" else None
    with Server(folder, fill_mode="wait", market=market, limits=limits) as server:
        stop = threading.Event()
        traders = [
            Trader(server, f"crash{n}", "zmq" if n % 2 == 0 else "http", seed + n, stop, shares)
            for n in range(users)
        ]
        started = time.monotonic()
        for trader in traders:
            trader.start()
        killed: list[str] = []
        killer(server, every, kills, rng, killed)
        stop.set()
        for trader in traders:
            trader.join(60)
        seconds = time.monotonic() - started
        result = check(server, traders, restart)
        server.stop()
        result["problems"] += server.ledger_imbalances()
    answers: Counter[str] = Counter()
    for trader in traders:
        answers.update(trader.record.answers)
    return {
        "kills": dict(Counter(killed)),
        "seconds": round(seconds, 1),
        "requests": sum(answers.values()),
        "answers": dict(answers.most_common()),
        **result,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=200, help="kills in all (default 200)")
    p.add_argument("--every", type=float, default=3.0, help="seconds between kills")
    p.add_argument("--users", type=int, default=6)
    p.add_argument("--seed", type=int, default=2017)
    p.add_argument("--mode", choices=["paper", "exchange"], default="paper")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="tradeserver-crash-") as folder:
        figures = run(Path(folder), args.kills, args.every, args.users, args.seed, mode=args.mode)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 1 if figures["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
