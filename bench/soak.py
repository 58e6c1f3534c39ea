"""The gateway's memory over many sessions and streams that open and close (issue 14).

    .venv/bin/python -m bench.soak                    # 2 rounds of 10,000, about a minute
    .venv/bin/python -m bench.soak --rounds 3 --batch 500 --json soak.json

Starts the real server in a temporary folder and, each round, opens and closes
`--per-round` sessions and streams in batches of `--batch` held open at once, a quarter
of each kind: ZeroMQ sessions (a DEALER that logs in), HTTP private event streams
(`GET /v1/events`), HTTP market streams (`GET /v1/market/events`) and web console
sign-ins that open an event stream with their cookie and sign out. It prints the
gateway's RSS before, at its peak (sampled after each batch is open) and after each
round, once everything is closed and the gateway has had a few seconds.

Reading it: if the RSS after the second round is about the RSS after the first, what
stays is the allocator keeping the memory it once needed (its high-water mark), not a
leak; a leak grows with every round.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import zmq

from protocol import codec
from tests.harness import Server

SETTLE_S = 3.0  # after a round: time for the gateway to drop what it closed
# one symbol's quotes: the streams are never read, and all symbols' would have the
# gateway busy writing to them (and closing them as too slow) rather than opening more
MARKET = "/v1/market/events?symbols=600000"


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))
    return int(kb) / 1024


def open_stream(server: Server, path: str, headers: dict[str, str]) -> socket.socket:
    """An SSE request on a socket of its own, its answer's first bytes read."""
    port = int(server.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(15)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode())
    got = sock.recv(4096)
    if not got.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{path}: {got[:200]!r}")
    return sock


def zmq_sessions(ctx: zmq.Context[Any], server: Server, token: str, count: int) -> list[Any]:
    socks = []
    for rid in range(count):
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(server.api)
        login = {"v": 1, "type": "session.login", "rid": rid, "token": token, "events": True}
        sock.send(codec.encode(login))
        socks.append(sock)
    for sock in socks:
        if not sock.poll(15_000):
            raise RuntimeError("a ZeroMQ login got no answer")
        reply = codec.decode_internal(sock.recv())
        if reply.get("type") != "session.ready":
            raise RuntimeError(f"login: {reply}")
    return socks


def http_once(server: Server, head: str, body: bytes = b"") -> bytes:
    """One HTTP request in one write on a fresh connection, and its answer's first bytes
    (httpx costs ~30 ms a request here, the server ~2 ms)."""
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(f"{head}Host: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        return sock.recv(8192)


def console_streams(server: Server, token: str, count: int) -> list[tuple[Any, str]]:
    """Console sign-ins, each with an event stream its cookie opens."""
    opened = []
    body = json.dumps({"token": token}).encode()
    for _ in range(count):
        head = "POST /v1/session HTTP/1.1\r\nContent-Type: application/json\r\n"
        answer = http_once(server, head, body)
        session_id = answer.split(b"ts_session=", 1)[1].split(b";", 1)[0].decode()
        stream = open_stream(server, "/v1/events", {"Cookie": f"ts_session={session_id}"})
        opened.append((stream, session_id))
    return opened


def sign_out(server: Server, session_id: str) -> None:
    http_once(server, f"DELETE /v1/session HTTP/1.1\r\nCookie: ts_session={session_id}\r\n")


def soak(per_round: int, batch: int, rounds: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="tradeserver-soak-"))
    with Server(folder, limits={"rate_per_user": 0}) as server:
        tokens = [server.new_user(f"soak{i}") for i in range(4)]
        for token in tokens:  # accepted once: a burst of logins with an unknown token
            server.client(token, events=False).close()  # counts against the address
        pid = server.pid("gateway")
        ctx: zmq.Context[Any] = zmq.Context()
        result: dict[str, Any] = {"before_mb": round(rss_mb(pid), 1), "rounds": []}
        print(f"gateway RSS before: {result['before_mb']:.1f} MB", flush=True)
        auth = {"Authorization": f"Bearer {tokens[1]}"}
        for number in range(1, rounds + 1):
            started, peak, done = time.monotonic(), 0.0, 0
            while done < per_round:
                n = min(batch, per_round - done) // 4 or 1
                socks = zmq_sessions(ctx, server, tokens[0], n)
                events = [open_stream(server, "/v1/events", auth) for _ in range(n)]
                market = [open_stream(server, MARKET, auth) for _ in range(n)]
                consoles = console_streams(server, tokens[2], n)
                peak = max(peak, rss_mb(pid))
                for sock in socks:
                    sock.close()
                for stream in events + market:
                    stream.close()
                for stream, session_id in consoles:
                    sign_out(server, session_id)
                    stream.close()
                done += 4 * n
            time.sleep(SETTLE_S)
            after = rss_mb(pid)
            row = {
                "round": number,
                "opened_and_closed": done,
                "seconds": round(time.monotonic() - started, 1),
                "peak_mb": round(peak, 1),
                "after_mb": round(after, 1),
            }
            result["rounds"].append(row)
            print(
                f"round {number}: {done} sessions and streams in {row['seconds']} s; "
                f"gateway RSS peak {peak:.1f} MB, after {after:.1f} MB",
                flush=True,
            )
        ctx.destroy(linger=0)
        server.assert_no_crash()
    first, last = result["rounds"][0]["after_mb"], result["rounds"][-1]["after_mb"]
    result["growth_after_first_round_mb"] = round(last - first, 1)
    verdict = (
        "flat: allocator high-water, not a leak"
        if last - first < 0.1 * first
        else ("growing round after round: look for a leak")
    )
    print(f"after round 1 -> after round {rounds}: {first:.1f} -> {last:.1f} MB ({verdict})")
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--per-round", type=int, default=10_000, help="opened and closed per round")
    p.add_argument("--batch", type=int, default=1_000, help="held open at once")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    result = soak(args.per_round, args.batch, args.rounds)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
