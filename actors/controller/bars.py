"""Historical OHLCV bars for a replay: read CSV files and check every row (docs/replay.md).

A file has a header with `time,open,high,low,close,volume` and, for several symbols in one
file, `symbol`; without that column the file's name is the symbol (`600000.csv`). `time` is
when the bar is complete:
- a date (`2024-01-02`) is a daily bar, complete at its market's close that day
  (cn_a 15:00 Asia/Shanghai, us_equity 16:00 America/New_York, crypto 24:00 UTC);
- a date and time (`2024-01-02 09:31` or `2024-01-02T09:31:00`) is in the market's zone,
  unless it carries its own offset (`Z`, `+08:00`).

Nothing half-loads: the first wrong row raises BarFileError naming the file and line.
Prices are above 0 and on the symbol's tick, high is the highest and low the lowest of the
four, volume at least 0; each symbol's bars strictly increase in time, across files too.
Daily bars of a calendar market (cn_a, us_equity) must be on its trading days, with none
missing between a symbol's first and last bar.
"""

from __future__ import annotations

import csv
import logging
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

from actors.controller.sessions import CALENDAR_START
from actors.market.rules import Market
from protocol.settings import Settings

COLUMNS = ("time", "open", "high", "low", "close", "volume")
PRICES = ("open", "high", "low", "close")
# each profile's market: its zone, the time its daily bar is complete, its calendar
MARKET_CLOSE = {
    "cn_a": ("Asia/Shanghai", time(15, 0), "XSHG"),
    "us_equity": ("America/New_York", time(16, 0), "XNYS"),
    "crypto": ("UTC", None, None),  # None: at midnight ending the day
}
NS = 1_000_000_000
log = logging.getLogger("controller")


class BarFileError(ValueError):
    """A replay file that cannot be loaded, with where and why."""


@dataclass(frozen=True, slots=True)
class ReplayBar:
    symbol: str
    ts: int  # ns: when the bar is complete
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    daily: bool


@dataclass(frozen=True, slots=True)
class _Where:
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


def load_bars(paths: Sequence[Path], market: Market) -> list[ReplayBar]:
    """Every bar of the files, checked, in time order (a tie in the order of the symbol
    table). Raises BarFileError."""
    found: dict[str, list[tuple[ReplayBar, _Where]]] = {}
    for path in paths:
        for bar, where in _read(path, market):
            found.setdefault(bar.symbol, []).append((bar, where))
    if not found:
        raise BarFileError(f"{', '.join(map(str, paths)) or 'no files'}: no bars")
    for symbol, bars in found.items():
        bars.sort(key=lambda item: item[0].ts)
        for (before, at_before), (bar, where) in pairwise(bars):
            if bar.ts == before.ts:
                raise BarFileError(
                    f"{where}: {symbol} has a bar at this time already ({at_before})"
                )
        closes = _check_days(symbol, bars, market)
        if closes:  # a daily bar is complete at its day's close, an early one included
            found[symbol] = [
                (_at(bar, closes.get(bar.ts, bar.ts)) if bar.daily else bar, where)
                for bar, where in bars
            ]
    rank = {symbol: n for n, symbol in enumerate(market.symbols)}
    merged = [bar for bars in found.values() for bar, _ in bars]
    merged.sort(key=lambda bar: (bar.ts, rank[bar.symbol]))
    return merged


def _at(bar: ReplayBar, ts: int) -> ReplayBar:
    """The bar complete at `ts` (dataclasses.replace, at a tenth of its cost)."""
    return ReplayBar(bar.symbol, ts, bar.open, bar.high, bar.low, bar.close, bar.volume, True)


def bars_between(
    bars: list[ReplayBar], market: Market, start: date | None, end: date | None
) -> list[ReplayBar]:
    """The bars whose day, in their market's zone, is from `start` to `end` (either may be
    None: no bound). Raises BarFileError when none is left."""
    if start is None and end is None:
        return bars
    zones = {s: ZoneInfo(MARKET_CLOSE[market.rules(s).name][0]) for s in market.symbols}
    kept = [
        bar
        for bar in bars
        if (start or date.min)
        <= datetime.fromtimestamp((bar.ts - 1) // NS, zones[bar.symbol]).date()
        <= (end or date.max)
    ]
    if not kept:
        raise BarFileError(f"no bars from {start or 'the first'} to {end or 'the last'}")
    return kept


def replay_bars(settings: Settings) -> list[ReplayBar]:
    """The bars a replay configured by `settings` sends out, checked. Raises BarFileError.

    Kept once loaded: run.py and the backtest runner check the files before they fork the
    controller, which then has them without reading the files again."""
    m = settings.market
    key = (
        tuple(replay_paths(settings)),
        m.replay_start,
        m.replay_end,
        tuple((s.symbol, s.profile, s.tick_size) for s in m.symbols),
        m.profile,
        settings.model_dump_json(include={"profiles"}),
    )
    loaded = _LOADED.get(key)
    if loaded is None:
        market = Market.from_settings(settings)
        bars = load_bars(list(key[0]), market)
        loaded = bars_between(bars, market, m.replay_start, m.replay_end)
        _LOADED.clear()  # one replay at a time in a process
        _LOADED[key] = loaded
    return loaded


_LOADED: dict[tuple[object, ...], list[ReplayBar]] = {}


def _read(path: Path, market: Market) -> Iterator[tuple[ReplayBar, _Where]]:
    try:
        handle = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise BarFileError(f"{path}: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or ()]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise BarFileError(f"{path}:1: missing columns {', '.join(missing)}")
        reader.fieldnames = header
        last: dict[str, tuple[int, _Where]] = {}
        for row in _rows(reader, path):
            where = _Where(path, reader.line_num)
            bar = _bar(row, path.stem if "symbol" not in header else None, market, where)
            previous = last.get(bar.symbol)
            if previous is not None and bar.ts <= previous[0]:
                raise BarFileError(
                    f"{where}: {bar.symbol} bars must go forward in time; this one is not "
                    f"after line {previous[1].line}"
                )
            last[bar.symbol] = (bar.ts, where)
            yield bar, where


def _rows(reader: csv.DictReader[str], path: Path) -> Iterator[dict[str, str | None]]:
    """The rows, with a CSV the csv module cannot parse refused by its line."""
    try:
        yield from reader
    except csv.Error as exc:
        raise BarFileError(f"{path}:{reader.line_num}: {exc}") from None


def _bar(
    row: dict[str, str | None], symbol: str | None, market: Market, where: _Where
) -> ReplayBar:
    symbol = symbol or (row.get("symbol") or "").strip()
    if symbol not in market:
        raise BarFileError(f"{where}: unknown symbol {symbol[:32]!r} (not in the symbol table)")
    rules = market.rules(symbol)
    values = {}
    for column in (*PRICES, "volume"):
        text = (row.get(column) or "").strip()
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise BarFileError(f"{where}: {column} {text[:40]!r} is not a number") from None
        if not value.is_finite() or value < 0 or (column in PRICES and value == 0):
            least = "above 0" if column in PRICES else "0 or more"
            raise BarFileError(f"{where}: {column} must be {least}, got {text[:40]}")
        if column in PRICES and value % rules.tick_size:
            raise BarFileError(
                f"{where}: {column} {text} is not a multiple of {symbol}'s tick "
                f"{rules.tick_size} (the symbol table can set tick_size)"
            )
        values[column] = value
    high, low = values["high"], values["low"]
    if high < max(values["open"], values["close"], low) or low > min(
        values["open"], values["close"]
    ):
        raise BarFileError(f"{where}: high must be the highest price and low the lowest")
    ts, daily = _time((row.get("time") or "").strip(), rules.name, where)
    return ReplayBar(
        symbol, ts, values["open"], high, low, values["close"], values["volume"], daily
    )


def _time(text: str, profile: str, where: _Where) -> tuple[int, bool]:
    zone_name, close, _calendar = MARKET_CLOSE[profile]
    zone = ZoneInfo(zone_name)
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            if close is None:
                moment = datetime.combine(day + timedelta(days=1), time(0), zone)
            else:
                moment = datetime.combine(day, close, zone)
            return int(moment.timestamp()) * NS, True
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BarFileError(
            f"{where}: time {text[:40]!r} is not a date or a date and time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return int(moment.timestamp() * 1_000_000) * 1000, False


def _check_days(
    symbol: str, bars: list[tuple[ReplayBar, _Where]], market: Market
) -> dict[int, int]:
    """Daily bars of a calendar market: on its trading days, none missing in between.
    Returns, for a calendar market, each daily bar's time -> its day's close."""
    daily = [(bar, where) for bar, where in bars if bar.daily]
    calendar = MARKET_CLOSE[market.rules(symbol).name][2]
    if not daily:
        return {}
    zone = ZoneInfo(MARKET_CLOSE[market.rules(symbol).name][0])
    # ts - 1: a crypto day's bar is complete at the midnight that ends it
    days = [datetime.fromtimestamp((bar.ts - 1) // NS, zone).date() for bar, _ in daily]
    found = _trading_days(calendar, days[0], days[-1], daily[0][1])
    if found is None:
        return {}  # past the last year the calendar knows: no check
    expected, closes = found
    have = dict(zip(days, (where for _, where in daily), strict=True))
    for day, where in have.items():
        if day not in expected:
            raise BarFileError(f"{where}: {day} is not a trading day of {symbol}'s market")
    for n, day in enumerate(expected):
        if day not in have:
            after = have[expected[n - 1]] if n and expected[n - 1] in have else None
            raise BarFileError(
                f"{after or daily[0][1]}: {symbol} has no bar for {day}, a trading day"
                " (a gap in the data)"
            )
    return {bar.ts: closes[day] for (bar, _), day in zip(daily, days, strict=True) if closes}


def _trading_days(
    calendar: str | None, first: date, last: date, where: _Where
) -> tuple[list[date], dict[date, int]] | None:
    """Every trading day from first to last, and each one's close in ns (none for an
    always-open market, whose days are all dates); None past the calendar's last year."""
    if calendar is None:
        return [first + timedelta(days=n) for n in range((last - first).days + 1)], {}
    sessions = _calendar_closes(calendar)
    if first < sessions[0][0]:
        raise BarFileError(
            f"{where}: {first} is before {sessions[0][0]}, the first day of the "
            f"{calendar} calendar the server knows"
        )
    if last > sessions[-1][0]:
        return None
    days = [day for day, _ in sessions]
    chosen = sessions[bisect_left(days, first) : bisect_right(days, last)]
    return [day for day, _ in chosen], dict(chosen)


@cache
def _calendar_closes(calendar: str) -> list[tuple[date, int]]:
    """Each session of an exchange calendar with its close in ns, read once (the symbols
    of one file share it; iterating pandas' timestamps per symbol was most of a load)."""
    import exchange_calendars  # pandas: only when a replay has daily bars

    cal = exchange_calendars.get_calendar(calendar, start=CALENDAR_START)
    closes = cal.schedule["close"]
    ns = closes.array.asi8 if hasattr(closes.array, "asi8") else closes.astype("int64")
    return list(zip(closes.index.date, (int(v) for v in ns), strict=True))


def symbols_in_data(paths: Sequence[Path], known: set[str]) -> dict[str, tuple[Decimal, str]]:
    """The symbols the files have bars of that `known` lacks, each with a previous close
    for its first day and where that came from: the `prev_close` column of its first
    bar when the file has one, else that bar's open. Rows it cannot read are left to the
    full load (load_bars), which refuses them with their line."""
    first: dict[str, tuple[str, Decimal, str]] = {}  # symbol -> (time, prev close, source)
    for path in paths:
        try:
            handle = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115
        except OSError:
            continue
        with handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or ()]
            reader.fieldnames = header
            column = "prev_close" if "prev_close" in header else "open"
            source = "prev_close column" if column == "prev_close" else "first bar's open"
            try:
                for row in reader:
                    symbol = path.stem if "symbol" not in header else (row.get("symbol") or "")
                    symbol = symbol.strip()
                    if not symbol or symbol in known:
                        continue
                    when = (row.get("time") or "").strip()
                    try:
                        price = Decimal((row.get(column) or "").strip())
                    except InvalidOperation:
                        continue
                    if (
                        price.is_finite()
                        and price > 0
                        and (symbol not in first or when < first[symbol][0])
                    ):
                        first[symbol] = (when, price, source)
            except csv.Error:
                continue
    return {symbol: (price, source) for symbol, (_, price, source) in first.items()}


SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "sample_daily.csv"


def replay_paths(settings: Settings) -> list[Path]:
    return [Path(p) for p in settings.market.replay_files] or [SAMPLE]
