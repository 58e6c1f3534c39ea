"""Reading and checking replay bar files (actors/controller/bars.py)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal as D
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from actors.controller.bars import BarFileError, load_bars
from actors.market.rules import Market
from protocol.settings import Settings, SymbolSettings

SAMPLE = Path(__file__).parents[2] / "examples" / "data" / "sample_daily.csv"
MARKET = Market.from_settings(
    Settings.model_validate(
        {
            "market": {
                "symbols": [
                    SymbolSettings(symbol="600000", name="SPD Bank", prev_close=D("8.50")),
                    SymbolSettings(symbol="000001", name="Ping An", prev_close=D("11.20")),
                    SymbolSettings(
                        symbol="BTCUSDT", name="Bitcoin", prev_close=D("43000"), profile="crypto"
                    ),
                    SymbolSettings(
                        symbol="AAPL", name="Apple", prev_close=D("190"), profile="us_equity"
                    ),
                ]
            }
        }
    )
)
HEADER = "time,symbol,open,high,low,close,volume\n"


def ns(text: str, zone: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()) * 10**9


def write(folder: Path, text: str, name: str = "bars.csv") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_the_shipped_sample_loads_in_time_order() -> None:
    bars = load_bars([SAMPLE], MARKET)
    assert len(bars) == 968
    assert [b.ts for b in bars] == sorted(b.ts for b in bars)
    first = bars[0]
    # a daily bar is complete at the close: 15:00 in Shanghai; 600000 before 000001 at a tie
    assert (first.symbol, first.ts, first.daily) == (
        "600000",
        ns("2023-01-03 15:00", "Asia/Shanghai"),
        True,
    )
    assert {b.symbol for b in bars} == {"600000", "000001"}


def test_a_file_named_after_its_symbol_needs_no_symbol_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "time,open,high,low,close,volume\n"
        "2024-01-02T09:31:00,8.50,8.52,8.49,8.51,12000\n"
        "2024-01-02T01:32:00Z,8.51,8.51,8.50,8.50,9000\n",
        "600000.csv",
    )
    bars = load_bars([path], MARKET)
    assert [(b.symbol, b.ts, b.close, b.daily) for b in bars] == [
        ("600000", ns("2024-01-02 09:31", "Asia/Shanghai"), D("8.51"), False),
        ("600000", ns("2024-01-02 09:32", "Asia/Shanghai"), D("8.50"), False),
    ]


def test_a_crypto_day_ends_at_midnight_utc_with_fractional_volume(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2024-01-06,BTCUSDT,43000.00,43500.00,42800.00,43100.00,12.5\n")
    [bar] = load_bars([path], MARKET)
    assert (bar.ts, bar.volume) == (ns("2024-01-07 00:00", "UTC"), D("12.5"))


def test_a_daily_bar_on_an_early_close_is_complete_at_that_close(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER
        + "2024-11-27,AAPL,230.00,231.00,229.00,230.50,1000\n"
        + "2024-11-29,AAPL,230.50,232.00,230.00,231.50,500\n",  # the day after Thanksgiving
    )
    bars = load_bars([path], MARKET)
    assert [b.ts for b in bars] == [
        ns("2024-11-27 16:00", "America/New_York"),
        ns("2024-11-29 13:00", "America/New_York"),
    ]


def test_a_missing_crypto_day_is_named_and_a_byte_order_mark_is_fine(tmp_path: Path) -> None:
    text = (
        "\ufeff"
        + HEADER
        + (
            "2024-01-01,BTCUSDT,43000.00,43500.00,42800.00,43100.00,1\n"
            "2024-01-03,BTCUSDT,43000.00,43500.00,42800.00,43100.00,1\n"
        )
    )
    with pytest.raises(BarFileError, match="BTCUSDT has no bar for 2024-01-02"):
        load_bars([write(tmp_path, text)], MARKET)


def test_daily_bars_before_the_calendars_start_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "1999-12-30,600000,8.50,8.60,8.40,8.55,1000\n")
    with pytest.raises(BarFileError, match=r"1999-12-30 is before 2000-01-04, the first day"):
        load_bars([path], MARKET)


GOOD = "2024-01-02,600000,8.50,8.60,8.40,8.55,1000\n"


@pytest.mark.parametrize(
    ("rows", "line", "complaint"),
    [
        ("02/01/2024,600000,8.50,8.60,8.40,8.55,1000\n", 3, "is not a date"),
        ("2024-01-02,600000,8.50,8.60,8.40,8.55,1000\n", 3, "must go forward in time"),
        ("2024-01-03,600000,-8.50,8.60,8.40,8.55,1000\n", 3, "open must be above 0"),
        ("2024-01-03,600000,8.50,8.60,0,8.55,1000\n", 3, "low must be above 0"),
        ("2024-01-03,600000,8.50,8.60,8.40,8.55,-1\n", 3, "volume must be 0 or more"),
        ("2024-01-03,600000,NaN,8.60,8.40,8.55,1000\n", 3, "open must be above 0"),
        ("2024-01-03,600000,8.50,8.60,8.40,8.55,lots\n", 3, "volume 'lots' is not a number"),
        ("2024-01-03,600000,8.50,8.40,8.60,8.55,1000\n", 3, "high must be the highest"),
        ("2024-01-03,600000,8.70,8.60,8.40,8.55,1000\n", 3, "high must be the highest"),
        ("2024-01-03,600000,8.505,8.60,8.40,8.55,1000\n", 3, "not a multiple of 600000's tick"),
        ("2024-01-03,999999,8.50,8.60,8.40,8.55,1000\n", 3, "unknown symbol '999999'"),
        ("2024-01-06,600000,8.50,8.60,8.40,8.55,1000\n", 3, "2024-01-06 is not a trading day"),
        ("2024-01-04,600000,8.50,8.60,8.40,8.55,1000\n", 2, "no bar for 2024-01-03"),
    ],
)
def test_a_bad_file_names_its_line_and_loads_nothing(
    tmp_path: Path, rows: str, line: int, complaint: str
) -> None:
    path = write(tmp_path, HEADER + GOOD + rows)
    with pytest.raises(BarFileError, match=complaint) as caught:
        load_bars([path], MARKET)
    assert str(caught.value).startswith(f"{path}:{line}: "), caught.value


def test_a_file_without_a_needed_column_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "time,symbol,open,high,low,close\n2024-01-02,600000,8.5,8.6,8.4,8.5\n")
    with pytest.raises(BarFileError, match=rf"^{path}:1: missing columns volume$"):
        load_bars([path], MARKET)


def test_the_same_bar_in_two_files_is_refused(tmp_path: Path) -> None:
    first = write(tmp_path, HEADER + GOOD, "a.csv")
    second = write(tmp_path, HEADER + GOOD, "b.csv")
    with pytest.raises(BarFileError, match=rf"{second}:2: 600000 has a bar at this time already"):
        load_bars([first, second], MARKET)


def test_a_missing_file_or_an_empty_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BarFileError, match="No such file"):
        load_bars([tmp_path / "nowhere.csv"], MARKET)
    with pytest.raises(BarFileError, match="no bars"):
        load_bars([write(tmp_path, HEADER)], MARKET)
