"""Alpaca's Market Data API v2 (stocks) through alpaca-py's StockHistoricalDataClient,
against the real server: bars the controller makes from the trades it publishes, and a
replay's bars, never one ahead of the replay.

The live server takes its trades and its time from the external feed (`clock =
"market"`), so each test knows every trade behind the bars it reads. Every answer goes
through the SDK's own parsing and models; raw HTTP checks the error bodies.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.models import Bar, BarSet
from alpaca.data.requests import (
    StockBarsRequest,
    StockLatestBarRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
    StockSnapshotRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from protocol.tokens import hash_token, key_id
from tests.harness import Server
from tests.integration.test_replay import REPLAY, SHANGHAI, sample_bars

NEW_YORK = ZoneInfo("America/New_York")
NS = 10**9


def ny(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=NEW_YORK)


def keys(token: str) -> dict[str, str]:
    return {"APCA-API-KEY-ID": key_id(hash_token(token)), "APCA-API-SECRET-KEY": token}


@contextmanager
def data_client(server: Server, token: str, key: str = "") -> Iterator[StockHistoricalDataClient]:
    """alpaca-py's client for a user of the server; its HTTP session closed after."""
    client = StockHistoricalDataClient(
        key or key_id(hash_token(token)), token, url_override=server.url
    )
    try:
        yield client
    finally:
        client._session.close()


# (New York time, symbol, price, volume[, bid, ask]): two days of AAPL, a few MSFT trades
TRADES: list[tuple[Any, ...]] = [
    ("2024-01-02 15:58:05", "AAPL", "185.00", 100),
    ("2024-01-02 15:58:40", "AAPL", "186.00", 300),
    ("2024-01-02 15:59:10", "AAPL", "184.50", 100),
    ("2024-01-02 16:01:00", "MSFT", "370.00", 10),
    ("2024-01-02 16:03:00", "MSFT", "371.00", 10),
    ("2024-01-02 20:30:00", "AAPL", "184.00", 50),  # 01:30 UTC on the 3rd: still the 2nd here
    ("2024-01-03 09:30:30", "AAPL", "183.00", 200),
    ("2024-01-03 09:31:30", "AAPL", "183.50", 100),
    ("2024-01-03 09:33:00", "AAPL", "184.20", 100),
    ("2024-01-03 09:35:00", "AAPL", "184.30", 400),
    ("2024-01-03 09:35:30", "AAPL", "184.10", 0),  # a price, not a trade: in no bar
    ("2024-01-03 09:36:00", "MSFT", "372.00", 10, "371.90", "372.10"),
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """An external feed on market time with the trades above pushed in."""
    with Server(
        tmp_path_factory.mktemp("alpaca_data"),
        market={"feed": "external"},
        control={"clock": "market"},
    ) as srv:
        for when, symbol, last, volume, *sides in TRADES:
            quote = {"symbol": symbol, "last": last, "volume": volume}
            quote["ts"] = int(ny(when).timestamp()) * NS
            if sides:
                quote |= {"bid": sides[0], "ask": sides[1]}
            srv.push_quotes(quote)
        http = srv.http(srv.demo_token)
        deadline = time.monotonic() + 15
        while http.get("/v1/quotes/MSFT").json()["last"] != "372.00":
            assert time.monotonic() < deadline, "the trades did not arrive"
            time.sleep(0.05)
        yield srv, srv.demo_token
        srv.assert_no_crash()


@pytest.fixture(scope="module")
def client(live: tuple[Server, str]) -> Iterator[StockHistoricalDataClient]:
    with data_client(*live) as sdk:
        yield sdk


def ohlcv(bar: Bar) -> tuple[Any, ...]:
    return (bar.timestamp, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trade_count)


def test_minute_bars_are_the_trades_of_each_minute(client: StockHistoricalDataClient) -> None:
    request = StockBarsRequest(
        symbol_or_symbols="AAPL",
        timeframe=TimeFrame.Minute,
        start=ny("2024-01-02 00:00"),
        end=ny("2024-01-02 23:59"),
    )
    bars = client.get_stock_bars(request)
    assert isinstance(bars, BarSet)
    assert [ohlcv(b) for b in bars["AAPL"]] == [
        (ny("2024-01-02 15:58"), 185.0, 186.0, 185.0, 186.0, 400, 2),
        (ny("2024-01-02 15:59"), 184.5, 184.5, 184.5, 184.5, 100, 1),
        (ny("2024-01-02 20:30"), 184.0, 184.0, 184.0, 184.0, 50, 1),
    ]
    assert bars["AAPL"][0].vwap == 185.75  # (185 x 100 + 186 x 300) / 400


def test_five_minute_and_daily_bars_in_new_york(client: StockHistoricalDataClient) -> None:
    five = client.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols=["AAPL", "MSFT"],
            timeframe=TimeFrame(5, TimeFrameUnit.Minute),
            start=ny("2024-01-03 09:00"),
        )
    )
    assert isinstance(five, BarSet)
    assert [ohlcv(b) for b in five["AAPL"]] == [
        (ny("2024-01-03 09:30"), 183.0, 184.2, 183.0, 184.2, 400, 3),
        (ny("2024-01-03 09:35"), 184.3, 184.3, 184.3, 184.3, 400, 1),
    ]
    assert [ohlcv(b) for b in five["MSFT"]] == [(ny("2024-01-03 09:35"), *[372.0] * 4, 10, 1)]
    days = client.get_stock_bars(
        StockBarsRequest(symbol_or_symbols=["MSFT", "AAPL"], timeframe=TimeFrame.Day)
    )
    assert isinstance(days, BarSet)
    assert [ohlcv(b) for b in days["AAPL"]] == [
        (ny("2024-01-02 00:00"), 185.0, 186.0, 184.0, 184.0, 550, 4),  # 20:30 is the 2nd
        (ny("2024-01-03 00:00"), 183.0, 184.3, 183.0, 184.3, 800, 4),
    ]
    assert days["AAPL"][0].timestamp == datetime(2024, 1, 2, 5, tzinfo=UTC)
    assert [b.close for b in days["MSFT"]] == [371.0, 372.0]


def test_the_sdk_follows_next_page_token_and_gets_every_bar_once(
    client: StockHistoricalDataClient,
) -> None:
    """alpaca-py pages through next_page_token by itself when the server gives fewer bars
    than asked; its own paging loop with a page of 2 bars makes the server do that."""
    request = StockBarsRequest(symbol_or_symbols=["AAPL", "MSFT"], timeframe=TimeFrame.Minute)
    whole = client.get_stock_bars(request)
    assert isinstance(whole, BarSet)
    assert [len(whole[s]) for s in ("AAPL", "MSFT")] == [7, 3]
    asked: list[str | None] = []
    session_get = client._session.request

    def spy(method: str, url: str, **kwargs: Any) -> Any:
        asked.append(kwargs.get("params", {}).get("page_token"))
        return session_get(method, url, **kwargs)

    client._session.request = spy  # type: ignore[method-assign]
    try:
        fields = request.to_request_fields()
        raw = client._get_marketdata("/stocks/bars", fields, page_limit=2, page_size=10_000)
    finally:
        del client._session.request  # the session's own method again
    assert len(asked) == 5 and asked[0] is None and None not in asked[1:]
    assert BarSet(raw).data == whole.data  # each bar once, in order, across the symbols


def test_raw_pages_in_descending_order_cover_everything(live: tuple[Server, str]) -> None:
    server, token = live
    with httpx.Client(base_url=server.url, headers=keys(token), timeout=15) as http:
        params: dict[str, Any] = {"symbols": "MSFT,AAPL", "timeframe": "1Min", "sort": "desc"}
        seen: list[tuple[str, str]] = []
        while True:
            page = http.get("/v2/stocks/bars", params={**params, "limit": 3}).json()
            assert sum(len(v) for v in page["bars"].values()) <= 3
            seen += [(s, b["t"]) for s, found in page["bars"].items() for b in found]
            if page["next_page_token"] is None:
                break
            params["page_token"] = page["next_page_token"]
        whole = http.get("/v2/stocks/bars", params={"symbols": "AAPL,MSFT", "timeframe": "1Min"})
        expected = [(s, b["t"]) for s, found in whole.json()["bars"].items() for b in found[::-1]]
        assert seen == expected and len(seen) == 10
        assert seen[0] == ("AAPL", "2024-01-03T14:35:00Z")  # symbols in order, newest first


def test_latest_trade_quote_bar_and_snapshot(client: StockHistoricalDataClient) -> None:
    both = ["AAPL", "MSFT", "NOPE"]  # unknown symbols are left out, as Alpaca does
    trades = client.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols=both))
    assert sorted(trades) == ["AAPL", "MSFT"]  # type: ignore[arg-type]
    aapl = trades["AAPL"]  # type: ignore[index]
    assert (aapl.price, aapl.size) == (184.1, 0)  # the latest print, a price without volume
    assert aapl.timestamp == ny("2024-01-03 09:35:30")
    quotes = client.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols=both))
    msft = quotes["MSFT"]  # type: ignore[index]
    assert (msft.bid_price, msft.ask_price, msft.bid_size, msft.ask_size) == (371.9, 372.1, 0, 0)
    assert quotes["AAPL"].bid_price == quotes["AAPL"].ask_price == 184.1  # type: ignore[index]
    latest = client.get_stock_latest_bar(StockLatestBarRequest(symbol_or_symbols=both))
    assert ohlcv(latest["AAPL"])[:2] == (ny("2024-01-03 09:35"), 184.3)  # type: ignore[index]
    snapshots = client.get_stock_snapshot(StockSnapshotRequest(symbol_or_symbols=both))
    assert sorted(snapshots) == ["AAPL", "MSFT"]  # type: ignore[arg-type]
    snap = snapshots["AAPL"]  # type: ignore[index]
    assert snap.latest_trade is not None and snap.latest_trade.price == 184.1
    assert snap.minute_bar is not None and snap.minute_bar.close == 184.3
    assert snap.daily_bar is not None and snap.daily_bar.timestamp == ny("2024-01-03 00:00")
    assert snap.previous_daily_bar is not None and snap.previous_daily_bar.volume == 550


def test_bars_get_over_zeromq_is_protocol_md_s_example(live: tuple[Server, str]) -> None:
    """protocol.md 3.24: the same bars on the wire, decimal strings and ns, and the cursor."""
    server, token = live
    client = server.client(token)
    request = {"symbols": ["AAPL"], "timeframe": "5Min", "limit": 1}
    first = client.request(
        "bars.get", **request, start=int(ny("2024-01-03 09:00").timestamp()) * NS
    )
    t = int(ny("2024-01-03 09:30").timestamp()) * NS
    assert first["bars"] == {
        "AAPL": [[t, "183.00", "184.20", "183.00", "184.20", 400, 3, "183.425000"]]
    }
    assert first["next"] == ["AAPL", t]
    rest = client.request("bars.get", **request, after=first["next"])
    assert [b[0] for b in rest["bars"]["AAPL"]] == [t + 300 * NS] and rest["next"] is None
    latest = client.request("bars.latest", symbols=["MSFT", "SPY"])["bars"]
    assert list(latest) == ["MSFT"] and latest["MSFT"]["minute"][4] == "372.00"


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"symbols": "AAPL", "timeframe": "1Week"}, 422),
        ({"symbols": "AAPL", "timeframe": "60Min"}, 422),
        ({"symbols": "AAPL"}, 422),  # no timeframe
        ({"timeframe": "1Min"}, 422),  # no symbols
        ({"symbols": "AAPL,,MSFT", "timeframe": "1Min"}, 422),
        ({"symbols": "AAPL", "timeframe": "1Min", "start": "yesterday"}, 422),
        ({"symbols": "AAPL", "timeframe": "1Min", "end": "9999-12-31T00:00:00Z"}, 422),
        ({"symbols": ",".join(f"S{n}" for n in range(201)), "timeframe": "1Min"}, 422),
        ({"symbols": "AAPL", "timeframe": "1Min", "page_token": "!!"}, 422),
        ({"symbols": "AAPL", "timeframe": "1Min", "page_token": "WzEsMiwzXQ"}, 422),  # [1,2,3]
        ({"symbols": "AAPL", "timeframe": "1Min", "limit": 10_001}, 422),
    ],
)
def test_bad_requests_get_alpacas_error_body(
    live: tuple[Server, str], params: dict[str, Any], status: int
) -> None:
    server, token = live
    r = httpx.get(server.url + "/v2/stocks/bars", params=params, headers=keys(token))
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == status * 100_000 + 10_000 and body["message"], body
    assert body["reason"] == "REQUEST_INVALID"


def test_the_sdk_raises_on_a_bad_timeframe_and_a_bad_key(
    live: tuple[Server, str], client: StockHistoricalDataClient
) -> None:
    request = StockBarsRequest(symbol_or_symbols="AAPL", timeframe=TimeFrame.Week)
    with pytest.raises(APIError) as refused:
        client.get_stock_bars(request)
    assert refused.value.status_code == 422 and "timeframe" in str(refused.value)
    with data_client(*live, key="PKNOTAKEY") as bad, pytest.raises(APIError) as unknown:
        bad.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols="AAPL"))
    assert unknown.value.status_code == 401


# REPLAY -------------------------------------------------------------------------------


def test_a_replay_serves_its_file_bars_up_to_its_present_only(tmp_path: Any) -> None:
    """Lock-step with one bot that answers slowly: the controller has sent bar times ahead
    (held at the matcher for the bot), but bars, trades and snapshots stop at the bar time
    the bot was given."""
    market = {
        "feed": "replay",
        "replay_speed": "lockstep",
        "replay_bots": 1,
        "replay_step_timeout": 60,
    }
    sample = sample_bars("600000")
    with (
        Server(tmp_path, fill_mode="wait", market=market, control=REPLAY) as server,
        data_client(server, server.demo_token) as client,
    ):
        http = server.http(server.demo_token)
        assert http.post("/v1/replay/join").status_code == 200
        days = StockBarsRequest(symbol_or_symbols=["600000", "000001"], timeframe=TimeFrame.Day)
        after = 0
        for index in (1, 2, 3):
            step = http.get("/v1/replay/step", params={"after": after, "wait": 25}).json()
            assert step["index"] == index
            time.sleep(0.3)  # the controller is well ahead of the bot by now
            bars = client.get_stock_bars(days)
            assert isinstance(bars, BarSet)
            served = [(b.timestamp, str(b.open), str(b.close)) for b in bars["600000"]]
            assert served == [
                (
                    datetime.fromtimestamp(row["ts"] // NS, SHANGHAI).replace(hour=0),
                    str(float(row["open"])),
                    str(float(row["close"])),
                )
                for row in sample[:index]
            ]
            assert len(bars["000001"]) == index
            trade = client.get_stock_latest_trade(
                StockLatestTradeRequest(symbol_or_symbols="600000")
            )["600000"]  # type: ignore[index]
            assert trade.price == float(sample[index - 1]["close"])
            snap = client.get_stock_snapshot(StockSnapshotRequest(symbol_or_symbols="600000"))
            daily = snap["600000"].daily_bar  # type: ignore[index]
            assert daily is not None and daily.close == float(sample[index - 1]["close"])
            assert snap["600000"].minute_bar is None  # type: ignore[index]
            assert http.post("/v1/replay/done", json={"ts": step["ts"]}).status_code == 200
            after = step["ts"]
        minutes = StockBarsRequest(symbol_or_symbols="600000", timeframe=TimeFrame.Minute)
        assert client.get_stock_bars(minutes).data == {}  # type: ignore[union-attr]
        server.assert_no_crash()
