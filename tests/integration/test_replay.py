"""A replay of the shipped sample bars over the real processes (docs/replay.md,
docs/fill-model.md section 16): market time follows the bars, orders fill on the bar
after the one they saw, at the prices the rules say."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgpack
import pytest
import zmq

from protocol.values import iso_time
from tests.harness import Server, write_config

SAMPLE = Path(__file__).parents[2] / "examples" / "data" / "sample_daily.csv"
SHANGHAI = ZoneInfo("Asia/Shanghai")
REPLAY = {"sessions": "profile", "clock": "market"}


def sample_bars(symbol: str) -> list[dict[str, Any]]:
    """The sample's bars of a symbol, each with `ts`: its close, 15:00 in Shanghai."""
    bars = []
    with SAMPLE.open() as fh:
        for row in csv.DictReader(fh):
            if row["symbol"] == symbol:
                close = datetime.fromisoformat(row["time"] + " 15:00").replace(tzinfo=SHANGHAI)
                bars.append({**row, "ts": int(close.timestamp()) * 10**9})
    return bars


BARS = sample_bars("600000")


def bar_after(ts: int) -> dict[str, Any]:
    return next(bar for bar in BARS if bar["ts"] > ts)


def wait(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def paced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """About three bars a second (a trading day in 0.3 s), starting paused."""
    with Server(
        tmp_path_factory.mktemp("paced"),
        fill_mode="wait",
        market={"feed": "replay", "replay_speed": "x288000"},
        control={**REPLAY, "initial_state": "paused"},
    ) as srv:
        yield srv
        srv.assert_no_crash()


def test_orders_fill_on_the_bar_after_the_one_they_saw(paced: Server) -> None:
    http = paced.http(paced.demo_token)
    # before the first bar: a market order fills at the first bar's open
    first = http.post(
        "/v1/orders",
        json={
            "symbol": "600000",
            "side": "buy",
            "qty": 1000,
            "type": "market",
            "time_in_force": "gtc",
        },
    ).json()
    market = paced.market(("md.600000",))
    paced.set_control("running")
    filled = wait(
        lambda: (o := http.get(f"/v1/orders/{first['id']}").json())["status"] == "filled" and o
    )
    assert filled["avg_fill_price"] == f"{BARS[0]['open']}00"
    # it filled at the bar's last instant inside the session, 14:59:59.999999999
    assert filled["updated_at"] == iso_time(BARS[0]["ts"] - 1)

    # a bot sees a bar and sells at once: the sell fills on the next bar, never this one
    seen: dict[str, Any] = {}
    while seen.get("type") != "bar":  # the day's volume-0 repeats come too: prices, not bars
        _topic, seen = market.next(timeout=10) or ("", {"type": "none"})
        assert seen["type"] in ("bar", "quote"), seen
    assert {k: seen[k] for k in ("open", "high", "low", "close")} == {
        k: bar_after(seen["ts"] - 1)[k] for k in ("open", "high", "low", "close")
    }
    sell = http.post(
        "/v1/orders",
        json={
            "symbol": "600000",
            "side": "sell",
            "qty": 1000,
            "limit_price": "0.01",
            "time_in_force": "gtc",
        },
    ).json()
    sold = wait(
        lambda: (o := http.get(f"/v1/orders/{sell['id']}").json())["status"] == "filled" and o
    )
    placed_at = int(
        datetime.fromisoformat(sell["created_at"].replace("Z", "+00:00")).timestamp() * 1e9
    )
    assert placed_at >= seen["ts"]  # the market clock had reached the bar it saw
    next_bar = bar_after(placed_at)
    assert sold["avg_fill_price"] == f"{next_bar['open']}00"  # at the open, above its limit
    assert sold["updated_at"] == iso_time(next_bar["ts"] - 1)


def test_pausing_holds_the_replay_where_it_is(paced: Server) -> None:
    http = paced.http(paced.demo_token)
    paced.set_control("paused")
    time.sleep(0.5)  # a chunk already handed on finishes
    held = http.get("/v1/control").json()["ts"]
    time.sleep(1.5)  # four or five trading days at this speed
    assert http.get("/v1/control").json()["ts"] == held
    paced.set_control("running")
    wait(lambda: http.get("/v1/control").json()["ts"] > held)


def test_a_market_stream_over_http_gets_the_replays_bars(paced: Server) -> None:
    """The gateway unpacks a step's bars only when someone takes them: here an SSE stream
    of one symbol, opened while nothing else reads them."""
    http = paced.http(paced.demo_token)
    paced.set_control("running")
    bars = []
    deadline = time.monotonic() + 30
    with http.stream("GET", "/v1/market/events", params={"symbols": "600000"}) as response:
        assert response.status_code == 200
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: ") and name == "bar":
                bars.append(json.loads(line.removeprefix("data: ")))
                if len(bars) == 2:
                    break
            assert time.monotonic() < deadline, f"{len(bars)} bars in 30 s"
    for bar in bars:
        assert bar["symbol"] == "600000" and bar["v"] == 1
        sample = bar_after(bar["ts"] - 1)
        assert bar["ts"] == sample["ts"]
        assert {k: bar[k] for k in ("open", "close")} == {k: sample[k] for k in ("open", "close")}


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(
        tmp_path_factory.mktemp("fast"),
        fill_mode="wait",
        market={"feed": "replay", "replay_speed": "max"},
        control=REPLAY,
    ) as srv:
        yield srv
        srv.assert_no_crash()


def test_a_replay_at_full_speed_ends_on_the_last_bar(fast: Server) -> None:
    http = fast.http(fast.demo_token)
    last = BARS[-1]
    wait(lambda: http.get("/v1/control").json().get("ts", 0) >= last["ts"], timeout=60)
    control = http.get("/v1/control").json()
    assert control["time"] == iso_time(last["ts"])  # 2024-12-31 15:00 in Shanghai
    assert control["markets"]["cn_a"]["trading_day"] == "2025-01-02"  # New Year's Day shut
    quote = http.get("/v1/quotes/600000").json()
    assert quote["last"] == last["close"]

    def prev_close() -> str:
        [listed] = [s for s in http.get("/v1/symbols").json() if s["symbol"] == "600000"]
        return str(listed["prev_close"])

    # the close that sets 2 January's limits; the accountant, which answers, takes the
    # day's turn from the controller's broadcast a moment after the controller shows it
    wait(lambda: prev_close() == last["close"], timeout=10)


def test_a_bad_replay_file_stops_the_server_before_it_starts(tmp_path: Path) -> None:
    bad = tmp_path / "600000.csv"
    bad.write_text("time,open,high,low,close,volume\n2024-01-02,8.50,8.40,8.60,8.55,100\n")
    config = write_config(
        tmp_path, market={"feed": "replay", "replay_files": [str(bad)]}, control=REPLAY
    )
    run = subprocess.run(
        [sys.executable, "run.py", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert run.returncode == 2
    assert f"{bad}:2: high must be the highest price and low the lowest" in run.stderr
    assert not (tmp_path / "data" / "tradeserver.db").exists()  # nothing started


def test_a_lock_step_bot_gets_its_answer_and_the_next_step_in_one_frame(tmp_path: Path) -> None:
    """protocol.md 2.6, 3.19, 3.20: a DEALER logged in with `batch` that takes its steps
    answers a bar time and gets replay.ok and then the next step in one array frame; a
    REQ socket asking for `batch` still gets one map per reply."""
    market = {"feed": "replay", "replay_speed": "lockstep", "replay_bots": 1}
    with Server(tmp_path, fill_mode="wait", market=market, control=REPLAY) as server:
        bot = zmq.Context.instance().socket(zmq.DEALER)
        bot.connect(server.api)

        def frame() -> Any:
            assert bot.poll(15_000), "no frame within 15 s"
            return msgpack.unpackb(bot.recv())

        login = {"type": "session.login", "rid": 1, "token": server.demo_token, "batch": True}
        bot.send(msgpack.packb(login))
        ready = frame()
        assert isinstance(ready, list) and ready[0]["type"] == "session.ready", ready
        bot.send(msgpack.packb({"type": "replay.join", "rid": 2, "steps": True}))
        seen: list[dict[str, Any]] = []
        while {"replay.joined", "replay.step"} - {m["type"] for m in seen}:
            got = frame()
            assert isinstance(got, list), got
            seen += got
        # the first step may come ahead of the answer to the join (protocol.md 3.19)
        first = next(m for m in seen if m["type"] == "replay.step")
        assert first["index"] == 1, seen
        bot.send(msgpack.packb([{"type": "replay.done", "rid": 3, "ts": first["ts"]}]))
        answered = frame()
        kinds = [m["type"] for m in answered]
        assert kinds == ["replay.ok", "replay.step"], answered
        assert answered[0]["rid"] == 3 and answered[1]["index"] == 2
        bot.close(linger=0)

        req = zmq.Context.instance().socket(zmq.REQ)
        req.connect(server.api)
        req.send(msgpack.packb({**login, "rid": 4}))
        assert req.poll(15_000)
        assert msgpack.unpackb(req.recv())["type"] == "session.ready"
        req.close(linger=0)


def test_quotes_never_come_from_a_bar_ahead_of_the_bots(tmp_path: Path) -> None:
    """In lock-step the controller sends bar times ahead, held at the matcher for the bot;
    quote.get answers from the last bar time settled, the one the bot was given."""
    market = {
        "feed": "replay",
        "replay_speed": "lockstep",
        "replay_bots": 1,
        "replay_step_timeout": 60,
    }
    with Server(tmp_path, fill_mode="wait", market=market, control=REPLAY) as server:
        http = server.http(server.demo_token)
        assert http.post("/v1/replay/join").status_code == 200
        after = 0
        for index in (1, 2):
            step = http.get("/v1/replay/step", params={"after": after, "wait": 25}).json()
            assert step["index"] == index
            time.sleep(0.3)  # the controller has sent bar times ahead by now
            quote = http.get("/v1/quotes/600000").json()
            assert (quote["last"], quote["ts"]) == (BARS[index - 1]["close"], step["ts"])
            assert http.post("/v1/replay/done", json={"ts": step["ts"]}).status_code == 200
            after = step["ts"]
        server.assert_no_crash()
