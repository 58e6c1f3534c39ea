"""The controller's bar history (actors/controller/history.py): minute bars from trades,
longer bars from them in the symbol's market zone, paging, and a replay's present."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from actors.controller.bars import ReplayBar
from actors.controller.history import (
    DAY,
    MAX_MINUTES,
    MINUTE,
    BarHistory,
    Minute,
    bucket_of,
    combine,
    select,
    timeframe_width,
)
from actors.market.rules import Market
from protocol.settings import Settings

NEW_YORK = ZoneInfo("America/New_York")
SHANGHAI = ZoneInfo("Asia/Shanghai")
NS = 10**9


def ny(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=NEW_YORK).timestamp()) * NS


def history() -> BarHistory:
    return BarHistory(Market.from_settings(Settings()))  # AAPL and MSFT: us_equity


@pytest.mark.parametrize(
    ("text", "width"),
    [("1Min", MINUTE), ("5T", 5 * MINUTE), ("59Min", 59 * MINUTE), ("1Hour", 60 * MINUTE)],
)
def test_timeframes_in_alpacas_spellings(text: str, width: int) -> None:
    assert timeframe_width(text) == width
    assert timeframe_width("1Day") == timeframe_width("1D") == DAY


@pytest.mark.parametrize("text", ["0Min", "60Min", "24Hour", "2Day", "1Week", "1Month", "1min"])
def test_other_timeframes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="timeframe"):
        timeframe_width(text)


def test_buckets_align_on_midnight_in_the_market_zone() -> None:
    at = ny("2024-03-08 09:37:12")
    assert bucket_of(at, MINUTE, NEW_YORK) == ny("2024-03-08 09:37")
    assert bucket_of(at, 15 * MINUTE, NEW_YORK) == ny("2024-03-08 09:30")
    assert bucket_of(at, 60 * MINUTE, NEW_YORK) == ny("2024-03-08 09:00")
    assert bucket_of(at, DAY, NEW_YORK) == ny("2024-03-08 00:00")  # 05:00 UTC
    # 21:00 in New York is the next day in UTC, and in Shanghai
    late = ny("2024-03-08 21:00")
    assert bucket_of(late, DAY, NEW_YORK) == ny("2024-03-08 00:00")
    assert datetime.fromtimestamp(bucket_of(late, DAY, SHANGHAI) // NS, SHANGHAI).day == 9
    # the day the clocks go forward is 23 hours long; its hours stay on the hour
    after = ny("2024-03-10 03:30")
    assert bucket_of(after, DAY, NEW_YORK) == ny("2024-03-10 00:00")
    assert bucket_of(after, 60 * MINUTE, NEW_YORK) == ny("2024-03-10 03:00")


def test_combine_takes_first_open_extremes_last_close_sums_and_vwap() -> None:
    group = [
        Minute(0, D("10.00"), D("10.50"), D("9.90"), D("10.20"), D(100), 2, D("1010.00")),
        Minute(MINUTE, D("10.20"), D("10.80"), D("10.10"), D("10.70"), D(300), 3, D("3180.00")),
    ]
    assert combine(0, group) == [0, "10.00", "10.80", "9.90", "10.70", 400, 5, "10.475000"]
    replay = [Minute(0, D("1.5"), D("2"), D("1"), D("1.5"), D("0.25"))]  # no trades or vwap
    assert combine(7, replay) == [7, "1.5", "2", "1", "1.5", "0.25", None, None]


def test_trades_make_minute_bars_and_repeated_prices_do_not() -> None:
    bars = history()
    t = ny("2024-01-02 09:30")
    bars.on_trade("AAPL", D("190.00"), D(100), t + 1 * NS)
    bars.on_trade("AAPL", D("191.00"), D(30), t + 20 * NS)
    bars.on_trade("AAPL", D("189.50"), D(0), t + 30 * NS)  # a price, not a trade
    bars.on_trade("AAPL", D("189.00"), D(50), t + 59 * NS)
    bars.on_trade("AAPL", D("192.00"), D(10), t + 61 * NS)
    found, cursor = bars.bars(["AAPL"], MINUTE, 0, 2**63, 10, False, None)
    assert cursor is None
    assert found == {
        "AAPL": [
            [t, "190.00", "191.00", "189.00", "189.00", 180, 3, "189.888889"],
            [t + MINUTE, "192.00", "192.00", "192.00", "192.00", 10, 1, "192.000000"],
        ]
    }


def minutes(bars: BarHistory, symbol: str, first: int, count: int) -> None:
    """One trade a minute: price 100 + n, volume n + 1."""
    for n in range(count):
        bars.on_trade(symbol, D(100 + n), D(n + 1), first + n * MINUTE)


def test_five_minute_and_daily_bars_come_from_the_minutes() -> None:
    bars = history()
    first = ny("2024-01-02 23:57")  # three minutes before midnight in New York
    minutes(bars, "AAPL", first, 8)
    five, _ = bars.bars(["AAPL"], 5 * MINUTE, 0, 2**63, 10, False, None)
    assert [(b[0], b[1], b[4], b[5]) for b in five["AAPL"]] == [
        (ny("2024-01-02 23:55"), "100", "102", 1 + 2 + 3),
        (ny("2024-01-03 00:00"), "103", "107", 4 + 5 + 6 + 7 + 8),
    ]
    days, _ = bars.bars(["AAPL"], DAY, 0, 2**63, 10, True, None)  # newest first
    assert [(b[0], b[1], b[2], b[3], b[4]) for b in days["AAPL"]] == [
        (ny("2024-01-03 00:00"), "103", "107", "103", "107"),
        (ny("2024-01-02 00:00"), "100", "102", "100", "102"),
    ]


def test_start_and_end_bound_the_bars_t_and_a_bar_begun_before_start_is_left_out() -> None:
    bars = history()
    first = ny("2024-01-02 10:00")
    minutes(bars, "AAPL", first, 20)
    found, _ = bars.bars(
        ["AAPL"], 5 * MINUTE, first + 2 * MINUTE, first + 10 * MINUTE, 10, False, None
    )
    assert [b[0] for b in found["AAPL"]] == [first + 5 * MINUTE, first + 10 * MINUTE]
    assert found["AAPL"][-1][5] == sum(range(11, 16))  # the whole bar at 10:10, past `end`


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("limit", [1, 2, 3, 7, 50])
def test_pages_give_every_bar_once_symbol_by_symbol(descending: bool, limit: int) -> None:
    bars = history()
    first = ny("2024-01-02 10:00")
    minutes(bars, "MSFT", first, 7)
    minutes(bars, "AAPL", first + 3 * MINUTE, 5)
    whole, cursor = bars.bars(["MSFT", "AAPL", "NOPE"], MINUTE, 0, 2**63, 100, descending, None)
    assert cursor is None and list(whole) == ["AAPL", "MSFT"]  # the unknown left out
    pages: list[dict[str, list[list[object]]]] = []
    after = None
    while True:
        page, after = bars.bars(["AAPL", "MSFT"], MINUTE, 0, 2**63, limit, descending, after)
        pages.append(page)
        if after is None:
            break
    joined: dict[str, list[list[object]]] = {}
    for page in pages:
        for symbol, found in page.items():
            joined.setdefault(symbol, []).extend(found)
    assert joined == whole
    sizes = [sum(map(len, page.values())) for page in pages]
    assert len(pages) == -(-12 // limit) and sizes[:-1] == [limit] * (len(pages) - 1)


def test_the_live_window_keeps_the_latest_minutes() -> None:
    bars = history()
    minutes(bars, "AAPL", 0, MAX_MINUTES + 5)
    found, _ = bars.bars(["AAPL"], MINUTE, 0, 2**63, 10_000, False, None)
    assert len(found["AAPL"]) == MAX_MINUTES and found["AAPL"][0][0] == 5 * MINUTE


def test_latest_gives_the_minute_the_day_and_the_day_before() -> None:
    bars = history()
    minutes(bars, "AAPL", ny("2024-01-02 15:58"), 2)
    minutes(bars, "AAPL", ny("2024-01-03 09:30"), 3)
    latest = bars.latest(["AAPL", "MSFT", "NOPE"])
    assert list(latest) == ["AAPL"]  # MSFT has no bars yet
    aapl = latest["AAPL"]
    assert aapl["minute"] is not None and aapl["minute"][0] == ny("2024-01-03 09:32")
    assert aapl["daily"] is not None and aapl["daily"][0] == ny("2024-01-03 00:00")
    assert aapl["prev_daily"] is not None and aapl["prev_daily"][4] == "101"


def replay_bar(symbol: str, ts: int, close: str, daily: bool = False) -> ReplayBar:
    price = D(close)
    return ReplayBar(symbol, ts, price, price, price, price, D(10), daily)


def test_a_replay_serves_only_bars_complete_by_its_present() -> None:
    bars = history()
    present = [0]
    close = ny("2024-01-02 16:00")
    daily = [replay_bar("AAPL", close + n * DAY, f"{190 + n}.00", True) for n in range(3)]
    intraday = [replay_bar("MSFT", ny("2024-01-02 09:31") + n * MINUTE, "370.00") for n in range(3)]
    bars.load_replay(sorted(daily + intraday, key=lambda b: b.ts), lambda: present[0])

    def served(symbol: str, width: int) -> list[int]:
        found, _ = bars.bars([symbol], width, -(2**63), 2**63, 100, False, None)
        return [b[0] for b in found.get(symbol, [])]

    assert served("AAPL", DAY) == served("MSFT", MINUTE) == []
    present[0] = ny("2024-01-02 09:32")  # the MSFT bar ending 09:32 is complete
    assert served("MSFT", MINUTE) == [ny("2024-01-02 09:30"), ny("2024-01-02 09:31")]
    assert served("AAPL", DAY) == []
    present[0] = close + DAY  # the second daily bar
    assert served("AAPL", DAY) == [ny("2024-01-02 00:00"), ny("2024-01-03 00:00")]
    assert served("AAPL", MINUTE) == []  # daily bars make no minute bars
    assert served("MSFT", DAY) == [ny("2024-01-02 00:00")]  # minutes make a day
    latest = bars.latest(["AAPL"])["AAPL"]
    assert latest["minute"] is None
    assert latest["daily"] is not None and latest["daily"][4] == "191.00"
    assert latest["prev_daily"] is not None and latest["prev_daily"][4] == "190.00"


def test_select_stops_at_want() -> None:
    source = [Minute(n * MINUTE, D(1), D(1), D(1), D(1), D(1), 1, D(1)) for n in range(10)]
    assert [b[0] for b in select(source, 10, MINUTE, NEW_YORK, 0, 2**63, False, 3)] == [
        0,
        MINUTE,
        2 * MINUTE,
    ]
    assert [b[0] for b in select(source, 6, MINUTE, NEW_YORK, 0, 2**63, True, 2)] == [
        5 * MINUTE,
        4 * MINUTE,
    ]


def test_answer_replies_to_both_requests_as_the_wire_has_them() -> None:
    bars = history()
    minutes(bars, "AAPL", ny("2024-01-02 10:00"), 3)
    request = {"type": "bars.get", "symbols": ["AAPL"], "timeframe": "1Min", "limit": 2}
    first = bars.answer({**request, "start": None, "end": None, "sort": "asc", "after": None})
    assert first["type"] == "bars" and len(first["bars"]["AAPL"]) == 2
    assert first["next"] == ["AAPL", ny("2024-01-02 10:01")]
    rest = bars.answer({**request, "sort": "asc", "after": first["next"]})
    assert [b[0] for b in rest["bars"]["AAPL"]] == [ny("2024-01-02 10:02")]
    assert rest["next"] is None
    latest = bars.answer({"type": "bars.latest", "symbols": ["AAPL"]})
    assert latest["type"] == "bars.latest" and latest["bars"]["AAPL"]["minute"][4] == "102"


def test_days_split_at_local_midnight_in_a_half_hour_zone() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+5:30: its midnight is 18:30 UTC
    before = int(datetime(2024, 1, 2, 18, 20, tzinfo=ZoneInfo("UTC")).timestamp()) * NS
    after = before + 20 * MINUTE  # the same UTC hour, the next day in Kolkata
    assert bucket_of(after, DAY, kolkata) - bucket_of(before, DAY, kolkata) == DAY
    assert bucket_of(after, DAY, kolkata) == after - 10 * MINUTE
