"""Order throughput and acknowledgement latency of the real server, against a bare baseline.

    .venv/bin/python -m bench.orders                 # from the repository root
    .venv/bin/python bench/orders.py --orders 50000 --window 2000 --json out.json

Starts run.py (all four processes) in a temporary folder with fill mode `instant`, then:

1. ZeroMQ: one pipelined DEALER sends `--orders` buy orders (600000, 100 @ 8.50) keeping
   `--window` requests outstanding; per order, the time from send to its `order.accepted`.
   Private events (order.accepted, order.filled) are counted, and the run waits for the
   last fill event so that the settle path is measured too.
2. ZeroMQ serial: `--serial` orders one at a time (window 1): unloaded round-trip latency.
3. HTTP: `--http-orders` POST /v1/orders over `--http-concurrency` keep-alive connections,
   from a minimal asyncio HTTP/1.1 client (`--http-client httpx` or `both` for httpx: on a
   small busy machine httpx's own CPU per request caps the figure well below the server's).
4. Baseline: a bare msgpack/ZeroMQ pipeline of the same shape, three Python processes
   (client DEALER -> A ROUTER -> PUSH -> B PULL -> PUSH -> C PULL -> PUSH -> A PULL ->
   ROUTER -> client), once one message per internal frame and once batched (a list per
   frame, as actors.runtime.bus does), driven by the same client with the same count and window.

Each phase stops sending after `--budget` seconds. It prints figures, not verdicts; with
`--profile DIR` it also samples the gateway, accountant and matcher with py-spy during the
ZeroMQ and HTTP phases and prints their hottest functions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: bench/orders.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import zmq

from protocol import codec
from tests.harness import PROCESSES, Server, free_port

SYMBOL = "600000"
PRICE = "8.50"
QTY = "100"
CASH = "10000000000"  # the most one user may hold (accountant.MAX_CASH)
ORDER = {"v": 1, "type": "order.new", "symbol": SYMBOL, "side": "buy", "qty": QTY, "price": PRICE}
PROFILED = ("gateway", "accountant", "matcher")


# FIGURES -------------------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


@dataclass
class Run:
    """One measured phase."""

    name: str
    requested: int
    sent: int = 0
    acked: int = 0
    seconds: float = 0.0
    errors: int = 0
    lost: int = 0  # requests without any reply by the end
    unexpected: int = 0  # replies with an unknown or repeated rid
    error_codes: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    settled_seconds: float | None = None  # until the last order.filled event
    latency_ms: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # first few transport errors
    repeat_rates: list[float] = field(default_factory=list)  # baseline: every repeat's rate
    cpu_ms_per_order: dict[str, float] = field(default_factory=dict)  # by process

    @property
    def rate(self) -> float:
        return self.acked / self.seconds if self.seconds > 0 else 0.0

    def set_latencies(self, values_ms: list[float]) -> None:
        values_ms.sort()
        self.latency_ms = {
            "p50": percentile(values_ms, 50),
            "p90": percentile(values_ms, 90),
            "p99": percentile(values_ms, 99),
            "max": values_ms[-1] if values_ms else 0.0,
        }

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "per_second": round(self.rate, 1)}

    def line(self) -> str:
        lat = self.latency_ms
        text = (
            f"{self.name:<26} {self.acked:>7} in {self.seconds:6.2f}s = {self.rate:>8.0f}/s"
            f"   p50 {lat.get('p50', 0):7.2f}  p90 {lat.get('p90', 0):7.2f}"
            f"  p99 {lat.get('p99', 0):7.2f}  max {lat.get('max', 0):7.2f} ms"
            f"   errors {self.errors}"
        )
        if self.lost or self.unexpected:
            text += f"  LOST {self.lost}  UNEXPECTED {self.unexpected}"
        return text


# THE PIPELINED ZEROMQ CLIENT -----------------------------------------------------------


def pipeline(
    endpoint: str,
    name: str,
    count: int,
    window: int,
    token: str | None = None,
    events: bool = True,
    frame_batch: int = 1,
    timeout: float = 20.0,
    wait_fills: bool = False,
    budget: float = 0.0,
    batch: bool = False,
) -> Run:
    """Send `count` orders over one DEALER with up to `window` outstanding; time each reply.

    With `token`, logs in first (asking for private events when `events`, and for replies
    and events in array frames when `batch`: protocol.md 2.6). With
    `wait_fills`, keeps reading after the last reply until one `order.filled` event per
    accepted order has arrived (or `timeout` passes without any message). With `budget`
    (seconds), stops sending new orders once it has passed, and waits for the rest.
    """
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(endpoint)
    run = Run(name, count, count)
    try:
        if token is not None:
            login = {"v": 1, "type": "session.login", "rid": 0, "token": token, "events": events}
            if batch:
                login["batch"] = True
            sock.send(codec.encode(login))
            if not sock.poll(int(timeout * 1000)):
                raise TimeoutError("no reply to session.login")
            reply = _messages(sock.recv())[0]
            if reply.get("type") != "session.ready":
                raise RuntimeError(f"login failed: {reply}")
        _pump(sock, run, count, window, frame_batch, timeout, wait_fills, budget)
    finally:
        sock.close(linger=0)
        ctx.term()
    return run


def _pump(
    sock: zmq.Socket[bytes],
    run: Run,
    count: int,
    window: int,
    frame_batch: int,
    timeout: float,
    wait_fills: bool,
    budget: float,
) -> None:
    clock = time.perf_counter_ns
    sent_at = [0] * (count + 1)  # by rid; 0: not sent or already answered
    latencies: list[float] = []
    codes: Counter[str] = Counter()
    seen_events: Counter[str] = Counter()
    next_rid = 1
    answered = 0
    outstanding = 0
    encode = codec.encode
    start = clock()
    stop_at = start + int(budget * 1e9) if budget > 0 else None
    last_reply = start
    while answered < count:
        if stop_at is not None and next_rid <= count and clock() > stop_at:
            count = next_rid - 1  # out of time: send no more, wait for what is in flight
            run.sent = count
            if answered >= count:
                break
        while outstanding < window and next_rid <= count:
            k = min(frame_batch, count - next_rid + 1, window - outstanding)
            if k == 1:
                payload = encode({**ORDER, "rid": next_rid})
            else:
                payload = encode([{**ORDER, "rid": r} for r in range(next_rid, next_rid + k)])
            now = clock()
            for rid in range(next_rid, next_rid + k):
                sent_at[rid] = now
            sock.send(payload)
            next_rid += k
            outstanding += k
        if not sock.poll(int(timeout * 1000)):
            break  # whatever is still outstanding is lost
        while True:
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            now = clock()
            for msg in _messages(frame):
                kind = msg.get("type")
                if kind == "event":
                    seen_events[str(msg.get("event"))] += 1
                    continue
                rid = msg.get("rid")
                if not isinstance(rid, int) or not 0 < rid <= count or sent_at[rid] == 0:
                    run.unexpected += 1
                    continue
                latencies.append((now - sent_at[rid]) / 1e6)
                sent_at[rid] = 0
                answered += 1
                outstanding -= 1
                last_reply = now
                if kind == "error":
                    codes[str(msg.get("code"))] += 1
                elif kind != "order.accepted":
                    codes[f"unexpected reply {kind}"] += 1
    run.seconds = (last_reply - start) / 1e9
    run.errors = sum(codes.values())
    run.acked = answered - run.errors
    run.lost = count - answered
    if run.lost:
        lost = [rid for rid in range(1, count + 1) if sent_at[rid]]
        run.failures.append(f"no reply within {timeout}s to {len(lost)} rids, e.g. {lost[:5]}")
    if wait_fills:
        while seen_events["order.filled"] < run.acked and sock.poll(int(timeout * 1000)):
            while True:
                try:
                    frame = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                for msg in _messages(frame):
                    if msg.get("type") == "event":
                        seen_events[str(msg.get("event"))] += 1
                    else:
                        run.unexpected += 1
        run.settled_seconds = (clock() - start) / 1e9
    run.error_codes = dict(codes)
    run.events = dict(seen_events)
    run.set_latencies(latencies)


# HTTP ----------------------------------------------------------------------------------


async def _http_orders(
    url: str, token: str, count: int, concurrency: int, budget: float = 0.0
) -> Run:
    run = Run(f"http httpx (x{concurrency})", count, count)
    latencies: list[float] = []
    codes: Counter[str] = Counter()
    failures: list[str] = []
    body = {"symbol": SYMBOL, "side": "buy", "qty": QTY, "price": PRICE}
    issued = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=30.0
    ) as client:

        async def worker() -> None:
            nonlocal issued
            while issued < count and (stop_at is None or time.perf_counter() < stop_at):
                issued += 1
                t0 = time.perf_counter_ns()
                try:
                    r = await client.post("/v1/orders", json=body)
                except httpx.HTTPError as exc:
                    took = (time.perf_counter_ns() - t0) / 1e6
                    codes[f"{type(exc).__name__}: {exc!r}"[:120]] += 1
                    failures.append(f"{type(exc).__name__} after {took:.0f} ms at t={_t(start)}")
                    continue
                latencies.append((time.perf_counter_ns() - t0) / 1e6)
                if r.status_code != 200:
                    codes[f"{r.status_code} {r.text[:80]}"] += 1

        await client.get("/v1/health")  # one connection up before the clock starts
        start = time.perf_counter()
        stop_at = start + budget if budget > 0 else None
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        run.seconds = time.perf_counter() - start
    run.sent = issued
    run.errors = sum(codes.values())
    run.acked = issued - run.errors
    run.failures = failures[:20]
    run.error_codes = dict(codes)
    run.set_latencies(latencies)
    return run


async def _raw_http_orders(
    url: str,
    token: str,
    count: int,
    concurrency: int,
    budget: float = 0.0,
    path: str = "/v1/orders",
    name: str = "",
) -> Run:
    """The same load from a minimal HTTP/1.1 keep-alive client (asyncio streams), one
    connection per worker: far less client CPU per request than httpx, so on a small,
    busy machine it measures the server rather than the client."""
    run = Run(name or f"http (x{concurrency})", count, count)
    latencies: list[float] = []
    codes: Counter[str] = Counter()
    failures: list[str] = []
    host, _, port = url.removeprefix("http://").partition(":")
    body = json.dumps({"symbol": SYMBOL, "side": "buy", "qty": QTY, "price": PRICE}).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    request = head.encode() + body
    issued = 0
    start = time.perf_counter()
    stop_at = start + budget if budget > 0 else None

    async def worker() -> None:
        nonlocal issued
        reader, writer = await asyncio.open_connection(host, int(port))
        served = 0  # requests answered on this connection
        while issued < count and (stop_at is None or time.perf_counter() < stop_at):
            issued += 1
            t0 = time.perf_counter_ns()
            try:
                writer.write(request)
                await writer.drain()
                status, length = _response_head(await reader.readuntil(b"\r\n\r\n"))
                payload = await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                took = (time.perf_counter_ns() - t0) / 1e6
                codes[type(exc).__name__] += 1
                failures.append(
                    f"{type(exc).__name__} {exc} after {took:.0f} ms, request {served + 1} "
                    f"on its connection, at t={_t(start)}"
                )
                writer.close()
                reader, writer = await asyncio.open_connection(host, int(port))
                served = 0
                continue
            served += 1
            latencies.append((time.perf_counter_ns() - t0) / 1e6)
            if status != 200:
                codes[f"{status} {payload[:80].decode(errors='replace')}"] += 1
        writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    run.seconds = time.perf_counter() - start
    run.sent = issued
    run.errors = sum(codes.values())
    run.acked = issued - run.errors
    run.error_codes = dict(codes)
    run.failures = failures[:20]
    run.set_latencies(latencies)
    return run


def _response_head(head: bytes) -> tuple[int, int]:
    """Status and Content-Length of an HTTP/1.1 response head (ValueError if unusable)."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return status, int(value)
    raise ValueError(f"no Content-Length in {lines[0]!r}")


def http_orders(
    url: str,
    token: str,
    count: int,
    concurrency: int,
    budget: float = 0.0,
    client: str = "raw",
    path: str = "/v1/orders",
    name: str = "",
) -> Run:
    if client == "httpx":
        return asyncio.run(_http_orders(url, token, count, concurrency, budget))
    return asyncio.run(_raw_http_orders(url, token, count, concurrency, budget, path, name))


def paced(endpoint: str, token: str, rate: float, count: int, timeout: float = 20.0) -> Run:
    """`count` orders at `rate` a second from one DEALER (events on), each timed from the
    moment it was due to its order.accepted: latency at a load the server keeps up with."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    run = Run(f"zmq paced ({rate:,.0f}/s)", count, count)
    try:
        sock.send(codec.encode({"v": 1, "type": "session.login", "rid": 0, "token": token}))
        if not sock.poll(int(timeout * 1000)):
            raise TimeoutError("no reply to session.login")
        sock.recv()
        due = [0.0] * (count + 1)
        latencies: list[float] = []
        start = time.perf_counter()
        sent = answered = 0
        last = start
        while answered < count:
            now = time.perf_counter()
            while sent < count and start + sent / rate <= now:
                sent += 1
                due[sent] = start + (sent - 1) / rate
                sock.send(codec.encode({**ORDER, "rid": sent}))
            wait = start + sent / rate - time.perf_counter() if sent < count else timeout
            if not sock.poll(max(0, int(wait * 1000))):
                if sent >= count:
                    break
                continue
            while True:
                try:
                    msg = codec.decode_internal(sock.recv(zmq.NOBLOCK))
                except zmq.Again:
                    break
                rid = msg.get("rid")
                if msg.get("type") == "event" or not isinstance(rid, int) or not due[rid]:
                    continue
                last = time.perf_counter()
                latencies.append((last - due[rid]) * 1000)
                due[rid] = 0.0
                answered += 1
                if msg.get("type") == "error":
                    run.errors += 1
        run.seconds = last - start
        run.acked = answered - run.errors
        run.lost = count - answered
        run.set_latencies(latencies)
    finally:
        sock.close(linger=0)
        ctx.term()
    return run


def _t(start: float) -> str:
    return f"{time.perf_counter() - start:.2f}s"


# BASELINE: THREE BARE PROCESSES --------------------------------------------------------


def _drain(sock: zmq.Socket[bytes], limit: int = 2000) -> list[bytes]:
    frames = []
    for _ in range(limit):
        try:
            frames.append(sock.recv(zmq.NOBLOCK))
        except zmq.Again:
            break
    return frames


def _messages(frame: bytes) -> list[dict[str, Any]]:
    decoded = codec.decode_internal(frame)
    return decoded if isinstance(decoded, list) else [decoded]


def _internal_socket(ctx: zmq.Context[Any], kind: int) -> zmq.Socket[bytes]:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 1_000_000)
    sock.setsockopt(zmq.RCVHWM, 1_000_000)
    return sock


def _send(sock: zmq.Socket[bytes], messages: list[dict[str, Any]], batched: bool) -> None:
    if batched:
        if messages:
            sock.send(codec.encode(messages))
    else:
        for message in messages:
            sock.send(codec.encode(message))


def baseline_front(client_ep: str, out_ep: str, in_ep: str, batched: bool) -> None:
    """Process A: the client's ROUTER; forwards requests to B, replies from C to the client."""
    ctx: zmq.Context[Any] = zmq.Context()
    router = _internal_socket(ctx, zmq.ROUTER)
    router.bind(client_ep)
    push = _internal_socket(ctx, zmq.PUSH)
    push.connect(out_ep)
    pull = _internal_socket(ctx, zmq.PULL)
    pull.bind(in_ep)
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    poller.register(pull, zmq.POLLIN)
    pending: dict[int, tuple[bytes, Any]] = {}
    seq = 0
    while True:
        for sock, _ in poller.poll():
            if sock is router:
                out: list[dict[str, Any]] = []
                for _ in range(2000):
                    try:
                        identity, payload = router.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    for msg in _messages(payload):
                        seq += 1
                        pending[seq] = (identity, msg.get("rid"))
                        out.append({**msg, "gw": "a", "rid": seq, "auth": "x" * 64})
                _send(push, out, batched)
            else:
                for frame in _drain(pull):
                    for msg in _messages(frame):
                        identity, rid = pending.pop(msg["rid"])
                        reply = {"type": "order.accepted", "order": msg["order"], "rid": rid}
                        router.send_multipart([identity, codec.encode(reply)])


def baseline_hop(in_ep: str, out_ep: str, batched: bool, stage: str) -> None:
    """Processes B and C: PULL, add a field, PUSH onwards."""
    ctx: zmq.Context[Any] = zmq.Context()
    pull = _internal_socket(ctx, zmq.PULL)
    pull.bind(in_ep)
    push = _internal_socket(ctx, zmq.PUSH)
    push.connect(out_ep)
    order_id = 0
    while True:
        pull.poll()
        out: list[dict[str, Any]] = []
        for frame in _drain(pull):
            for msg in _messages(frame):
                order_id += 1
                if stage == "b":  # the accountant's part: an order view in the message
                    msg["order"] = {
                        "id": order_id,
                        "symbol": msg["symbol"],
                        "side": msg["side"],
                        "qty": msg["qty"],
                        "price": msg["price"],
                        "status": "new",
                    }
                else:
                    msg["booked"] = True
                out.append(msg)
        _send(push, out, batched)


def baseline(
    count: int, window: int, warmup: int, batched: bool, frame_batch: int, repeats: int = 3
) -> Run:
    """Start A, B, C (spawned, no shared state), warm up, measure `repeats` times, stop
    them; the run with the median rate stands, all rates are kept in `repeat_rates`."""
    name = "baseline " + ("batched" if batched else "1 msg/frame")
    ipc = Path(tempfile.mkdtemp(prefix="tsb-", dir="/tmp"))
    eps = {hop: f"ipc://{ipc}/{hop}" for hop in ("b", "c", "a")}
    client_ep = f"tcp://127.0.0.1:{free_port()}"
    spawn = multiprocessing.get_context("spawn")
    procs = [
        spawn.Process(target=baseline_front, args=(client_ep, eps["b"], eps["a"], batched)),
        spawn.Process(target=baseline_hop, args=(eps["b"], eps["c"], batched, "b")),
        spawn.Process(target=baseline_hop, args=(eps["c"], eps["a"], batched, "c")),
    ]
    for proc in procs:
        proc.daemon = True
        proc.start()
    try:
        deadline = time.monotonic() + 30
        while True:  # until a message goes round the ring
            probe = pipeline(client_ep, "probe", 1, 1, timeout=1.0)
            if probe.acked == 1:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("baseline pipeline did not come up")
        if warmup:
            pipeline(client_ep, "warmup", warmup, window, frame_batch=frame_batch)
        runs = [
            pipeline(client_ep, name, count, window, frame_batch=frame_batch)
            for _ in range(max(1, repeats))
        ]
        runs.sort(key=lambda r: r.rate)
        chosen = runs[len(runs) // 2]
        chosen.repeat_rates = [round(r.rate, 1) for r in runs]
        return chosen
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join(5)
        shutil.rmtree(ipc, ignore_errors=True)


# PROFILING -----------------------------------------------------------------------------

# Leaf functions where a sampled thread is waiting, not working.
IDLE = frozenset(
    {
        "Condition.wait (threading.py)",
        "Poller.poll (sugar/poll.py)",
        "EpollSelector.select (selectors.py)",
        "Event.wait (threading.py)",
        "Thread._wait_for_tstate_lock (threading.py)",
    }
)
ENTRY = ("<module> (", "main (", "run (actors/runtime/process.py)", "Bus.run (", "serve (")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU time each server process (and this client) used during a `with` block."""

    def __init__(self, server: Server) -> None:
        self.pids = {name: server.pid(name) for name in PROCESSES}
        self.used: dict[str, float] = {}
        self._before: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        times = os.times()
        now = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return {**now, "client": times.user + times.system}

    def __enter__(self) -> CpuMeter:
        self._before = self._now()
        return self

    def __exit__(self, *_exc: object) -> None:
        after = self._now()
        self.used = {name: after[name] - self._before[name] for name in after}

    def per_order(self, orders: int) -> dict[str, float]:
        """Milliseconds of CPU per order, by process."""
        if not orders or not any(self.used.values()):
            return {}
        return {name: round(1000 * secs / orders, 3) for name, secs in self.used.items()}


class Profilers:
    """py-spy record on the server's processes for the length of a `with` block."""

    def __init__(self, server: Server, folder: Path | None, rate: int) -> None:
        self.server = server
        self.folder = folder
        self.rate = rate
        self.procs: list[subprocess.Popen[bytes]] = []
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> Profilers:
        exe = py_spy()
        if self.folder is None:
            return self
        if exe is None:
            print("--profile: py-spy not found (pip install py-spy); not profiling")
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in PROFILED:
            cmd = [exe, "record", "--pid", str(self.server.pid(name)), "--rate", str(self.rate)]
            cmd += ["--format", "raw", "--threads", "--nonblocking"]
            cmd += ["-o", str(self.folder / f"{name}.txt")]
            with open(self.folder / f"{name}.py-spy.log", "wb") as log:
                self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
        time.sleep(1.0)  # let py-spy attach before the load starts
        self._start = time.monotonic()
        return self

    def __exit__(self, *_exc: object) -> None:
        if not self.procs:
            return
        self.seconds = time.monotonic() - self._start
        for proc in self.procs:  # SIGINT: py-spy writes its file and exits
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def summaries(self, top: int = 12) -> dict[str, list[str]]:
        if self.folder is None or not self.procs:
            return {}
        return {
            name: summarize_profile(self.folder / f"{name}.txt", top, self.rate, self.seconds)
            for name in PROFILED
        }


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def summarize_profile(path: Path, top: int, rate: int = 0, seconds: float = 0.0) -> list[str]:
    """Hottest functions in a py-spy raw (collapsed stacks) file, waiting leaves set apart.

    Percentages are of the process's busy samples; `cores` is busy samples over the
    samples one fully busy thread would give in `seconds` (how many CPUs it kept busy).
    """
    if not path.exists():
        return [f"  (no {path.name}; see {path.stem}.py-spy.log)"]
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    busy = idle = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        samples = int(n)
        frames = stack.split(";")
        names = [_frame_name(f) for f in frames[1:]]
        if not names or names[-1] in IDLE:
            idle += samples
            continue
        busy += samples
        threads[_thread_name(frames[0])] += samples
        own[names[-1]] += samples
        for name in set(names):
            inclusive[name] += samples
    if not busy:
        return ["  (no busy samples)"]
    head = f"  {busy} busy samples ({idle} waiting)"
    if rate and seconds:
        head += f", {busy / (rate * seconds):.2f} cores busy on average"
    shares = ", ".join(f"{t} {100 * s / busy:.0f}%" for t, s in threads.most_common(4))
    lines = [f"{head}; threads: {shares}", "  self:"]
    lines += [f"    {100 * s / busy:5.1f}%  {f}" for f, s in own.most_common(top)]
    lines.append("  inclusive, our code:")
    mine = [
        (f, s)
        for f, s in inclusive.most_common()
        if any(d in f for d in ("actors/", "gateway/", "protocol/")) and not f.startswith(ENTRY)
    ]
    lines += [f"    {100 * s / busy:5.1f}%  {f}" for f, s in mine[:top]]
    return lines


def _thread_name(frame: str) -> str:
    """`thread (0x7f..): Ledger-1` or `process 12 ...` -> a short thread name."""
    return frame.rsplit(":", 1)[-1].strip()[:24] or frame[:24]


def _frame_name(frame: str) -> str:
    """`func (path/to/file.py:12)` -> `func (to/file.py)`, stable across line numbers."""
    func, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    return f"{func} ({'/'.join(where.split('/')[-2:])})"


# THE RUN -------------------------------------------------------------------------------


def server_health(server: Server) -> dict[str, Any]:
    """Restarts per process, and log lines at WARNING or above, and any stderr output."""
    status = server.status()
    restarts = {name: child["restarts"] for name, child in status["children"].items()}
    problems = []
    for name, text in server.logs():
        if name.endswith(".stderr"):
            if text.strip():
                problems.append(f"{name}: {text.strip()[-300:]}")
            continue
        for line in text.splitlines():
            if any(level in line for level in (" WARNING ", " ERROR ", " CRITICAL ")):
                problems.append(f"{name}: {line[:200]}")
    return {"restarts": restarts, "problems": problems}


def holdings(server: Server, token: str, expected_qty: int) -> dict[str, Any]:
    """The user's position in SYMBOL against the quantity of the orders it had accepted."""
    auth = server.auth(token)
    positions = httpx.get(server.url + "/v1/positions", headers=auth, timeout=30).json()
    held = sum(int(p["qty"]) for p in positions if p["symbol"] == SYMBOL)
    return {"expected_qty": expected_qty, "held_qty": held, "ok": held == expected_qty}


def wait_settled(server: Server, tokens: list[str], timeout: float = 30.0) -> None:
    """Until no open orders are left (instant mode fills everything), or `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        open_orders = 0
        for token in tokens:
            r = httpx.get(server.url + "/v1/orders", headers=server.auth(token), timeout=30)
            open_orders += len(r.json())
        if not open_orders:
            return
        time.sleep(0.2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.orders", description=(__doc__ or "").splitlines()[0]
    )
    p.add_argument("--orders", type=int, default=20_000, help="ZeroMQ orders (20000)")
    p.add_argument("--window", type=int, default=1000, help="outstanding ZeroMQ requests (1000)")
    p.add_argument("--frame-batch", type=int, default=1, help="orders per client frame (1)")
    p.add_argument("--no-events", action="store_true", help="log in with events=false")
    p.add_argument(
        "--batch", action="store_true", help="log in with batch=true: replies in array frames"
    )
    p.add_argument("--serial", type=int, default=300, help="orders at window 1 (300; 0 skips)")
    p.add_argument("--http-orders", type=int, default=5000, help="HTTP orders (5000; 0 skips)")
    p.add_argument("--http-concurrency", type=int, default=32, help="HTTP in flight (32)")
    p.add_argument(
        "--http-client",
        choices=("raw", "httpx", "both"),
        default="raw",
        help="raw: a minimal keep-alive asyncio client (default); httpx: httpx.AsyncClient",
    )
    p.add_argument("--warmup", type=int, default=500, help="unmeasured orders first (500)")
    p.add_argument(
        "--budget", type=float, default=30.0, help="seconds per phase before it stops sending (30)"
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the bare pipeline")
    p.add_argument(
        "--baseline-repeats", type=int, default=3, help="baseline runs per mode; median kept (3)"
    )
    p.add_argument("--sqlite-sync", choices=("NORMAL", "FULL"), default="NORMAL")
    p.add_argument("--tick-interval", type=float, default=0.5, help="market tick (0.5 s)")
    p.add_argument("--json", type=Path, help="also write every figure to this file")
    p.add_argument("--profile", type=Path, help="py-spy the server's processes into this folder")
    p.add_argument("--profile-rate", type=int, default=200, help="py-spy samples/s (200)")
    p.add_argument("--keep", action="store_true", help="keep the server's temporary folder")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "pyzmq": zmq.pyzmq_version(),
        "libzmq": zmq.zmq_version(),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }
    print(
        f"machine: {machine['cpus']} CPUs, Python {machine['python']}, pyzmq {machine['pyzmq']}"
        f" (libzmq {machine['libzmq']}), load average {machine['load_avg_start']}"
    )
    folder = Path(tempfile.mkdtemp(prefix="tradeserver-bench-"))
    server = Server(
        folder,
        fill_mode="instant",
        ledger={"sqlite_synchronous": args.sqlite_sync},
        market={"tick_interval": args.tick_interval},
        limits={"rate_per_user": 0},  # measure the server, not the per-user rate limit
    )
    runs: list[Run] = []
    checks: dict[str, Any] = {}
    profiles: dict[str, dict[str, list[str]]] = {}
    events = not args.no_events
    started = time.monotonic()
    try:
        server.start()
        print(f"server up in {time.monotonic() - started:.1f}s in {folder}")
        zmq_token = server.new_user("bench_zmq", CASH)
        http_token = server.new_user("bench_http", CASH)
        if args.warmup:
            pipeline(server.api, "warmup", args.warmup, args.window, zmq_token, events)
        with (
            Profilers(server, args.profile and args.profile / "zmq", args.profile_rate) as prof,
            CpuMeter(server) as cpu,
        ):
            zrun = pipeline(
                server.api,
                f"zmq (window {args.window}{', batch' if args.batch else ''})",
                args.orders,
                args.window,
                zmq_token,
                events,
                args.frame_batch,
                wait_fills=events,
                budget=args.budget,
                batch=args.batch,
            )
        profiles["zmq"] = prof.summaries()
        zrun.cpu_ms_per_order = cpu.per_order(zrun.acked)
        _report(zrun, runs)
        if zrun.settled_seconds:
            print(
                f"{'':27}all fills in after {zrun.settled_seconds:.2f}s"
                f" = {zrun.acked / zrun.settled_seconds:.0f} orders/s settled; events {zrun.events}"
            )
        if args.serial:
            name = "zmq serial (window 1)"
            srun = pipeline(server.api, name, args.serial, 1, zmq_token, False, budget=args.budget)
            _report(srun, runs)
        clients = ("raw", "httpx") if args.http_client == "both" else (args.http_client,)
        for client in clients if args.http_orders else ():
            phase = "http" if client == "raw" else "http-httpx"
            with (
                Profilers(server, args.profile and args.profile / phase, args.profile_rate) as p,
                CpuMeter(server) as cpu,
            ):
                hrun = http_orders(
                    server.url,
                    http_token,
                    args.http_orders,
                    args.http_concurrency,
                    args.budget,
                    client,
                )
            profiles[phase] = p.summaries()
            hrun.cpu_ms_per_order = cpu.per_order(hrun.acked)
            _report(hrun, runs)
        wait_settled(server, [zmq_token, http_token])
        zmq_orders = args.warmup + sum(r.acked for r in runs if r.name.startswith("zmq"))
        http_done = sum(r.acked for r in runs if r.name.startswith("http"))
        checks["zmq_user"] = holdings(server, zmq_token, zmq_orders * int(QTY))
        checks["http_user"] = holdings(server, http_token, http_done * int(QTY))
        checks["server"] = server_health(server)
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    if not args.no_baseline:
        count = runs[0].sent  # the same count as our ZeroMQ run, even if the budget cut it
        for batched in (False, True):
            brun = baseline(
                count, args.window, args.warmup, batched, args.frame_batch, args.baseline_repeats
            )
            _report(brun, runs)
    machine["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    ratios = summary(args, machine, runs, checks, profiles)
    if args.json:
        report = {
            "machine": machine,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "runs": [r.as_json() for r in runs],
            "zmq_vs_baseline": ratios,
            "checks": checks,
            "profiles": profiles,
        }
        args.json.write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")
    bad = any(r.errors or r.lost or r.unexpected for r in runs)
    bad = bad or not all(c.get("ok", True) for c in checks.values())
    return 1 if bad or checks.get("server", {}).get("problems") else 0


def _report(run: Run, runs: list[Run]) -> None:
    runs.append(run)
    print(run.line())
    if run.sent and run.sent < run.requested:
        print(f"{'':27}stopped by --budget after {run.sent} of {run.requested}")
    if run.error_codes:
        print(f"{'':27}errors: {run.error_codes}")
    if run.cpu_ms_per_order:
        print(f"{'':27}CPU ms per order: {_cpu_text(run.cpu_ms_per_order)}")
    if len(run.repeat_rates) > 1:
        print(f"{'':27}median of {len(run.repeat_rates)} runs at {run.repeat_rates} per s")
    for failure in run.failures[:5]:
        print(f"{'':27}{failure}")


def _cpu_text(cpu: dict[str, float]) -> str:
    server = sum(v for k, v in cpu.items() if k != "client")
    parts = ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
    ceiling = 1000 * (os.cpu_count() or 1) / (server + cpu.get("client", 0.0))
    return f"{parts}; server total {server:.2f} (all CPUs busy would allow ~{ceiling:.0f}/s)"


def summary(
    args: argparse.Namespace,
    machine: dict[str, Any],
    runs: list[Run],
    checks: dict[str, Any],
    profiles: dict[str, dict[str, list[str]]],
) -> dict[str, float]:
    print(
        f"\n== TradeServer orders: {machine['cpus']} CPUs, Python {machine['python']}, "
        f"load average {machine['load_avg_start'][0]} -> {machine['load_avg_end'][0]}; "
        f"fill mode instant, sqlite synchronous={args.sqlite_sync}, "
        f"events {'off' if args.no_events else 'on'}"
    )
    print(
        f"{'phase':<26} {'acked':>7} {'secs':>6} {'per s':>8}   "
        f"{'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}  errors"
    )
    for run in runs:
        lat = run.latency_ms
        print(
            f"{run.name:<26} {run.acked:>7} {run.seconds:6.2f} {run.rate:>8.0f}   "
            f"{lat['p50']:8.2f} {lat['p90']:8.2f} {lat['p99']:8.2f} {lat['max']:8.2f}  "
            f"{run.errors}" + (f"  lost {run.lost}" if run.lost else "")
        )
    for run in runs:
        if run.cpu_ms_per_order:
            print(f"CPU ms/order, {run.name}: {_cpu_text(run.cpu_ms_per_order)}")
    ratios: dict[str, float] = {}
    ours = runs[0].rate
    for run in runs:
        if run.name.startswith("baseline") and run.rate:
            ratios[run.name] = round(ours / run.rate, 4)
            print(f"zmq orders/s as a share of {run.name}: {100 * ours / run.rate:.1f}%")
    for who in ("zmq_user", "http_user"):
        if who in checks:
            c = checks[who]
            print(
                f"holdings {who}: {c['held_qty']} shares, expected {c['expected_qty']}"
                f" {'ok' if c['ok'] else 'MISMATCH'}"
            )
    if "server" in checks:
        health = checks["server"]
        print(f"restarts {health['restarts']}; log warnings/errors: {len(health['problems'])}")
        for line in health["problems"][:10]:
            print(f"    {line}")
    for phase, per_process in profiles.items():
        for name, lines in per_process.items():
            print(f"\n-- py-spy {name} during the {phase} run --")
            print("\n".join(lines))
    return ratios


if __name__ == "__main__":
    sys.exit(main())
