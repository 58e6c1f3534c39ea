"""Every hostile value of issue 5 in every field of an order, over both APIs, plus raw
frames that are not msgpack at all: each refused with a coded error, no process
crashes, nothing is written (the state digest does not move), the gateway's memory
stays bounded. Prints how many inputs were tried."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import msgpack
import pytest

from protocol.errors import ErrorCode
from tests.harness import Server

pytestmark = pytest.mark.hostile

CODES = {code.value for code in ErrorCode}
FIELDS = ("symbol", "side", "qty", "price", "stop_price", "trail_percent", "time_in_force")
OPTIONAL = {"stop_price", "trail_percent", "time_in_force"}  # null there means "not given"
# (JSON text for HTTP, the msgpack value, or None where msgpack cannot carry it)
VALUES: list[tuple[str, Any]] = [
    ("NaN", float("nan")),
    ("Infinity", float("inf")),
    ("-Infinity", float("-inf")),
    ('"NaN"', "NaN"),
    ('"Infinity"', "Infinity"),
    ("1e999", None),
    ('"1e999"', "1e999"),
    ("-0", -0.0),
    ('"-0"', "-0"),
    ("0", 0),
    ("-1", -1),
    ('"-100"', "-100"),
    (str(2**64), 2**64 - 1),
    (str(-(2**64)), -(2**63)),
    ("9" * 5000, None),
    ('"' + "9" * 5000 + '"', "9" * 5000),
    ('"1.' + "1" * 40 + '"', "1." + "1" * 40),
    ("true", True),
    ("null", None),
    ("[]", []),
    ("{}", {}),
    ('"' + "x" * 60_000 + '"', "x" * 60_000),
    ("[" + ",".join(["1"] * 900) + "]", [1] * 900),
    ("[" * 40 + "]" * 40, None),
    # digits of other scripts: Python's int() and Decimal() read each of these as 100
    ('"\u0661\u0660\u0660"', "\u0661\u0660\u0660"),  # Arabic-Indic
    ('"\uff11\uff10\uff10"', "\uff11\uff10\uff10"),  # fullwidth
    ('"\U0001d7cf\U0001d7ce\U0001d7ce"', "\U0001d7cf\U0001d7ce\U0001d7ce"),  # math bold
    ('"\u2003100"', "\u2003100"),  # an em space before ASCII digits
]
BASE = {"symbol": "600000", "side": "buy", "qty": 100, "price": "1.00"}


@pytest.fixture(scope="module")
def server(unlimited_server: Server) -> Server:
    """Hundreds of requests from one token: no rate limit (conftest)."""
    return unlimited_server


def rss_kb(server: Server, process: str) -> int:
    status = Path(f"/proc/{server.pid(process)}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def raw_frames(rng: random.Random) -> list[bytes]:
    order = {"v": 1, "type": "order.new", "rid": 1, **BASE}
    packed = msgpack.packb(order)
    return [
        packed[: len(packed) // 2],  # truncated
        msgpack.packb({**order, "qty": msgpack.ExtType(1, b"x")}),  # ext type
        msgpack.packb({**order, 5: "x"}),  # non-string key
        msgpack.packb({**order, "price": b"\x00\x01"}, use_bin_type=True),  # bin
        msgpack.packb({**order, "price": deep(50)}),  # deep nesting
        msgpack.packb([order] * 1001),  # batch too long
        msgpack.packb({**order, "pad": "x" * 70_000}),  # over the frame limit
        b"",
        b"\xc1",  # never used in msgpack
        *(rng.randbytes(rng.randint(1, 300)) for _ in range(40)),  # random bytes
    ]


def test_every_hostile_input_is_refused_and_changes_nothing(server: Server) -> None:
    token = server.new_user("hostile", "1000000")
    admin = server.client(server.admin_token)
    before = admin.digest()
    rss_before = rss_kb(server, "gateway")
    http = server.http(token)
    zmq = server.client(token, events=False)
    tried: Counter[str] = Counter()
    answers: Counter[str] = Counter()

    def refused_http(body: str) -> None:
        reply = http.post("/v1/orders", content=body, headers={"content-type": "application/json"})
        code = reply.json().get("error", {}).get("code")
        assert reply.status_code >= 400 and code in CODES, (body[:200], reply.text[:300])
        answers[code] += 1
        tried["http"] += 1

    def refused_zmq(frame: bytes) -> None:
        zmq.send_raw(frame)
        reply = zmq.recv(10)
        assert reply is not None, frame[:100]
        assert reply["type"] == "error" and reply["code"] in CODES, (frame[:100], reply)
        answers[reply["code"]] += 1
        tried["zmq"] += 1

    for field in FIELDS:
        for text, value in VALUES:
            if text == "null" and field in OPTIONAL:
                continue
            fields = {**BASE, field: None}  # the field under test, in its place or last
            body = ", ".join(
                f'"{k}": {text if k == field else json.dumps(v)}' for k, v in fields.items()
            )
            refused_http("{" + body + "}")
            if value is not None or text == "null":
                message = {"v": 1, "type": "order.new", "rid": 1, **fields, field: value}
                refused_zmq(msgpack.packb(message))
    for frame in raw_frames(random.Random(5)):
        refused_zmq(frame)
    for body in ("{", "[", "", '{"symbol": "600000"' + "," * 1000 + "}", "\xff\xfe"):
        refused_http(body)

    after = admin.digest()
    assert (after["digest"], after["counters"]) == (before["digest"], before["counters"])
    growth = rss_kb(server, "gateway") - rss_before
    assert growth < 50_000, f"the gateway grew by {growth} kB"
    print(f"\nhostile inputs tried: {dict(tried)}; answers: {dict(answers)}; gateway +{growth} kB")
    assert sum(tried.values()) >= 300
