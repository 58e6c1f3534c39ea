"""Alpaca's websockets through alpaca-py's own stream clients, against the real server:
trade updates (/stream) and market data (/v2/iex), plus the error frames on raw sockets."""

from __future__ import annotations

import contextlib
import csv
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from alpaca.data.live.stock import StockDataStream
from alpaca.data.models import Trade
from alpaca.trading.client import TradingClient
from alpaca.trading.models import TradeUpdate
from alpaca.trading.requests import LimitOrderRequest
from alpaca.trading.stream import TradingStream
from websockets.sync.client import connect

from protocol.tokens import hash_token, key_id
from tests.conftest import fresh_name
from tests.harness import ROOT, Server


@pytest.fixture(scope="module")
def user(server: Server) -> tuple[str, str]:
    token = server.new_user(fresh_name("stream"), cash="100000")
    return key_id(hash_token(token)), token


def ws_url(server: Server, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


@contextlib.contextmanager
def running(
    stream: Any, subscribe: Callable[[Callable[[Any], Any]], None]
) -> Iterator[queue.Queue[Any]]:
    """The SDK's stream in a thread of its own, its messages in a queue."""
    received: queue.Queue[Any] = queue.Queue()

    async def handler(item: Any) -> None:
        received.put(item)

    subscribe(handler)
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        stream.stop()
        thread.join(timeout=10)


def take(
    received: queue.Queue[Any], until: Callable[[Any], bool], timeout: float = 15
) -> list[Any]:
    items: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            item = received.get(timeout=0.2)
        except queue.Empty:
            continue
        items.append(item)
        if until(item):
            return items
    raise AssertionError(f"not received in {timeout}s; got {items!r}")


def test_trade_updates_tell_new_then_fill_with_the_position(
    server: Server, user: tuple[str, str]
) -> None:
    key, secret = user
    stream = TradingStream(key, secret, paper=True, url_override=ws_url(server, "/stream"))
    trading = TradingClient(key, secret, paper=True, url_override=server.url)
    with running(stream, stream.subscribe_trade_updates) as received:
        time.sleep(0.5)  # the SDK connects, authenticates and listens in its own thread
        order = trading.submit_order(
            LimitOrderRequest(
                symbol="AAPL", qty=3, side="buy", time_in_force="day", limit_price=231
            )
        )
        updates = take(received, lambda u: u.event == "fill")
        assert all(isinstance(u, TradeUpdate) for u in updates)
        assert [u.event for u in updates] == ["new", "fill"]
        fill = updates[-1]
        assert fill.order.id == order.id and fill.order.status == "filled"
        assert fill.price == 231.0 and fill.qty == 3.0 and fill.position_qty == 3.0
        assert fill.execution_id is not None


def test_market_data_streams_trades_of_the_subscribed_symbols(
    server: Server, user: tuple[str, str]
) -> None:
    key, secret = user
    stream = StockDataStream(key, secret, url_override=ws_url(server, "/v2/iex"))
    with running(stream, lambda handler: stream.subscribe_trades(handler, "AAPL")) as received:
        trades = take(received, lambda t: True) + take(received, lambda t: True)
        assert all(isinstance(t, Trade) and t.symbol == "AAPL" and t.price > 0 for t in trades)
        assert trades[1].timestamp >= trades[0].timestamp


def test_the_streams_refuse_bad_keys_with_alpacas_frames(
    server: Server, user: tuple[str, str]
) -> None:
    key, secret = user
    with connect(ws_url(server, "/stream")) as ws:
        ws.send(
            json.dumps(
                {"action": "authenticate", "data": {"key_id": "PKNOPE", "secret_key": secret}}
            )
        )
        answer = json.loads(ws.recv(timeout=10))
        assert answer == {
            "stream": "authorization",
            "data": {"status": "unauthorized", "action": "authenticate"},
        }
    with connect(
        ws_url(server, "/v2/iex"), additional_headers={"Content-Type": "application/msgpack"}
    ) as ws:
        assert msgpack.unpackb(ws.recv(timeout=10)) == [{"T": "success", "msg": "connected"}]
        ws.send(msgpack.packb({"action": "auth", "key": key, "secret": secret + "x"}))
        assert msgpack.unpackb(ws.recv(timeout=10)) == [
            {"T": "error", "code": 402, "msg": "auth failed"}
        ]
    with connect(ws_url(server, "/v2/iex")) as ws:  # JSON without the msgpack header
        assert json.loads(ws.recv(timeout=10)) == [{"T": "success", "msg": "connected"}]
        ws.send(json.dumps({"action": "auth", "key": key, "secret": secret}))
        assert json.loads(ws.recv(timeout=10)) == [{"T": "success", "msg": "authenticated"}]
        ws.send(json.dumps({"action": "subscribe", "trades": "AAPL"}))
        assert json.loads(ws.recv(timeout=10)) == [
            {"T": "error", "code": 400, "msg": "invalid syntax"}
        ]
        ws.send(json.dumps({"action": "subscribe", "bars": ["SPY"], "quotes": ["*"]}))
        subscription = json.loads(ws.recv(timeout=10))[0]
        assert subscription["T"] == "subscription" and subscription["bars"] == ["SPY"]
        assert subscription["quotes"] == ["*"] and subscription["trades"] == []


def test_a_lock_step_replay_waits_for_a_quiet_alpaca_bot_and_sends_each_bar_once(
    tmp_path: Path,
) -> None:
    """A bot that only reads bars (it never asks the clock) is done with a bar time once it
    has been quiet for replay_alpaca_idle: every bar reaches it once, in order."""
    market = {
        "feed": "replay",
        "replay_speed": "lockstep",
        "replay_bots": 1,
        "replay_end": "2023-01-31",
        "replay_alpaca_idle": 0.05,
    }
    replay = {"sessions": "profile", "clock": "market"}
    with Server(tmp_path, fill_mode="wait", market=market, control=replay) as server:
        token = server.demo_token
        with connect(ws_url(server, "/v2/iex")) as ws:
            assert json.loads(ws.recv(timeout=10))[0]["msg"] == "connected"
            ws.send(
                json.dumps({"action": "auth", "key": key_id(hash_token(token)), "secret": token})
            )
            assert json.loads(ws.recv(timeout=10))[0]["msg"] == "authenticated"
            ws.send(json.dumps({"action": "subscribe", "bars": ["600000"]}))
            assert json.loads(ws.recv(timeout=10))[0]["T"] == "subscription"
            want = [row for row in sample_rows("600000") if row["time"] <= "2023-01-31"]
            got = []
            while len(got) < len(want):
                got += [m for m in json.loads(ws.recv(timeout=15)) if m["T"] == "b"]
        assert [bar["c"] for bar in got] == [float(row["close"]) for row in want]
        assert all(bar["S"] == "600000" for bar in got)
        control = server.http(token).get("/v1/control").json()
        assert control["replay"]["timeouts"] == 0, control


def sample_rows(symbol: str) -> list[dict[str, str]]:
    with (ROOT / "examples" / "data" / "sample_daily.csv").open() as fh:
        return [row for row in csv.DictReader(fh) if row["symbol"] == symbol]


def test_the_streams_take_alpacas_other_auth_styles_and_survive_garbage(
    server: Server, user: tuple[str, str]
) -> None:
    key, secret = user
    with connect(ws_url(server, "/stream")) as ws:
        ws.send("[" * 100_000)  # too deep for a JSON parser: not a login, not a crash
        answer = json.loads(ws.recv(timeout=10))
        assert answer["data"]["status"] == "unauthorized"
    with connect(ws_url(server, "/stream")) as ws:
        ws.send(json.dumps({"action": "auth", "key": key, "secret": secret}))
        assert json.loads(ws.recv(timeout=10))["data"]["status"] == "authorized"
        ws.send(json.dumps({"action": "listen", "data": "x"}))
        assert json.loads(ws.recv(timeout=10))["data"] == {"error": "invalid syntax"}
        ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        assert json.loads(ws.recv(timeout=10))["data"] == {"streams": ["trade_updates"]}
    headers = {"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret}
    with connect(ws_url(server, "/v2/iex"), additional_headers=headers) as ws:
        assert json.loads(ws.recv(timeout=10)) == [{"T": "success", "msg": "connected"}]
        assert json.loads(ws.recv(timeout=10)) == [{"T": "success", "msg": "authenticated"}]
        ws.send("[" * 100_000)
        assert json.loads(ws.recv(timeout=10))[0]["code"] == 400
        ws.send(json.dumps({"action": "subscribe", "dailyBars": ["AAPL"]}))
        refused = json.loads(ws.recv(timeout=10))[0]
        assert refused["T"] == "error" and refused["code"] == 400 and "dailyBars" in refused["msg"]
        ws.send(json.dumps({"action": "subscribe", "quotes": ["AAPL"]}))
        assert json.loads(ws.recv(timeout=10))[0]["quotes"] == ["AAPL"]
        quote = next(m for _ in range(50) for m in json.loads(ws.recv(timeout=10)) if m["T"] == "q")
        assert quote["S"] == "AAPL" and quote["bp"] == quote["ap"] > 0  # no bid/ask: the last


def test_live_minute_bars_come_when_the_next_minute_trades(tmp_path: Path) -> None:
    """On a live feed a minute's bar (the controller's, as GET /v2/stocks/bars has it)
    goes to bars subscribers at the first trade of a later minute, stamped with its start."""
    with Server(tmp_path, market={"feed": "external"}, control={"clock": "market"}) as server:
        token = server.demo_token
        with connect(ws_url(server, "/v2/iex")) as ws:
            assert json.loads(ws.recv(timeout=10))[0]["msg"] == "connected"
            ws.send(
                json.dumps({"action": "auth", "key": key_id(hash_token(token)), "secret": token})
            )
            assert json.loads(ws.recv(timeout=10))[0]["msg"] == "authenticated"
            ws.send(json.dumps({"action": "subscribe", "bars": ["AAPL"]}))
            assert json.loads(ws.recv(timeout=10))[0]["bars"] == ["AAPL"]
            minute = 1_704_294_000 * 10**9  # 2024-01-03 15:00:00 UTC, 10:00 in New York
            for offset, last, volume in (
                (5, "231.00", 100),
                (30, "232.50", 200),
                (50, "230.75", 50),
            ):
                server.push_quotes(
                    {
                        "symbol": "AAPL",
                        "last": last,
                        "volume": volume,
                        "ts": minute + offset * 10**9,
                    }
                )
            server.push_quotes(
                {"symbol": "AAPL", "last": "231.10", "volume": 10, "ts": minute + 62 * 10**9}
            )
            bars = [m for m in json.loads(ws.recv(timeout=15)) if m["T"] == "b"]
        assert bars == [
            {
                "T": "b",
                "S": "AAPL",
                "o": 231.0,
                "h": 232.5,
                "l": 230.75,
                "c": 230.75,
                "v": 350.0,
                "t": "2024-01-03T15:00:00.000000000Z",
                "n": 3,
                "vw": bars[0]["vw"],
            }
        ]
        assert round(bars[0]["vw"], 6) == round((231 * 100 + 232.5 * 200 + 230.75 * 50) / 350, 6)
