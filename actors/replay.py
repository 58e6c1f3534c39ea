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
import time as wall
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pykka

from actors import process
from actors.rules import Market
from actors.sessions import CALENDAR_START
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
                (replace(bar, ts=closes.get(bar.ts, bar.ts)) if bar.daily else bar, where)
                for bar, where in bars
            ]
    rank = {symbol: n for n, symbol in enumerate(market.symbols)}
    merged = [bar for bars in found.values() for bar, _ in bars]
    merged.sort(key=lambda bar: (bar.ts, rank[bar.symbol]))
    return merged


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
    import exchange_calendars  # pandas: only when a replay has daily bars

    cal = exchange_calendars.get_calendar(calendar, start=CALENDAR_START)
    if first < cal.first_session.date():
        raise BarFileError(
            f"{where}: {first} is before {cal.first_session.date()}, the first day of the "
            f"{calendar} calendar the server knows"
        )
    if last > cal.last_session.date():
        return None
    sessions = cal.sessions_in_range(first.isoformat(), last.isoformat())
    closes = {s.date(): int(cal.session_close(s).value) for s in sessions}
    return list(closes), closes


# THE REPLAY ----------------------------------------------------------------------------

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "data" / "sample_daily.csv"
GROUPS_PER_CHUNK = 50  # bar times handed on at once at speed "max"
STARTUP_GRACE = 1.0  # s after the controller starts before the first bar goes out


def replay_paths(settings: Settings) -> list[Path]:
    return [Path(p) for p in settings.market.replay_files] or [SAMPLE]


@dataclass(frozen=True, slots=True)
class ReplayStep:
    """The market clock moves to `ts` and `bars` (all complete at one time T) go out:
    phase "fill" at T - 1 ns, the last instant of the bars, when the matcher fills on
    them inside their session; phase "close" at T, when everyone sees them complete."""

    ts: int
    bars: list[ReplayBar]
    phase: str


@dataclass(frozen=True, slots=True)
class ReplaySteps:
    """The steps of some bar times, in order: one hand-over to the session control."""

    steps: list[ReplayStep]


class ReplayTick:
    """Timer: hand on the bars that are due."""


@dataclass(frozen=True, slots=True)
class Listen:
    """Ask the session control to send its control state to an actor too."""

    actor: pykka.ActorRef[Any]


class Replayer(pykka.ThreadingActor):
    """Hands the session control the bars in time order, while the run state is running:
    at speed `max` as fast as the timer allows, at `xN` N times faster than they happened.

    After a restart it resumes after the market time the controller saved (actors/clock.py):
    bars at or before it were replayed already."""

    def __init__(
        self, settings: Settings, control: pykka.ActorRef[Any], bars: list[ReplayBar], after: int
    ) -> None:
        super().__init__()
        self.control = control
        self.groups: list[tuple[int, list[ReplayBar]]] = []
        for bar in bars:
            if self.groups and self.groups[-1][0] == bar.ts:
                self.groups[-1][1].append(bar)
            else:
                self.groups.append((bar.ts, [bar]))
        speed = settings.market.replay_speed
        self.factor = None if speed == "max" else float(speed[1:])
        self.next = next(
            (n for n, (ts, _) in enumerate(self.groups) if ts > after), len(self.groups)
        )
        # a bar time whose fill step went out before the restart gets its close step only
        self.filled = after if self.next < len(self.groups) else 0
        self.running = False
        self.anchor: tuple[float, int] | None = None  # wall time and bar time pacing starts
        self.bars = len(bars)
        # the matcher and accountant subscribe to the controller's PUB as it starts: what it
        # publishes before they are connected is lost (issue 5 resynchronises streams)
        self.starts_at = wall.monotonic() + STARTUP_GRACE
        if self.groups and self.next == len(self.groups):
            log.warning(
                "replay: the market time saved in this data dir is past the last bar; "
                "nothing to replay (start from a fresh data dir)"
            )

    def on_start(self) -> None:
        self.control.tell(Listen(self.actor_ref))
        log.info("replay of %d bars, speed %s", self.bars, self.factor or "max")

    def on_failure(self, *_exc: object) -> None:
        process.die("replayer failed")

    def on_receive(self, message: Any) -> None:
        if isinstance(message, dict) and message.get("type") == "control":
            running = message["state"] == "running"
            if running and not self.running:
                self.anchor = None  # paced again from now
            self.running = running
        elif (
            isinstance(message, ReplayTick) and self.running and wall.monotonic() >= self.starts_at
        ):
            self.step()

    def step(self) -> None:
        """Hand on the bar times that are due, a chunk at a time. Ask, not tell: a chunk
        is out before the next goes, so a request to the session control waits for one
        chunk at most, whatever the speed."""
        while self.next < len(self.groups):
            now = wall.monotonic()
            steps: list[ReplayStep] = []
            while self.next < len(self.groups) and len(steps) < 2 * GROUPS_PER_CHUNK:
                ts, bars = self.groups[self.next]
                if self.factor is not None:
                    if self.anchor is None:
                        self.anchor = (now, ts)
                    if self.anchor[0] + (ts - self.anchor[1]) / NS / self.factor > now:
                        break
                if ts - 1 > self.filled:
                    steps.append(ReplayStep(ts - 1, bars, "fill"))
                steps.append(ReplayStep(ts, bars, "close"))
                self.next += 1
            if not steps:
                return
            done = self.control.ask(ReplaySteps(steps))
            if done < len(steps):  # the run state left running: those bars wait
                self.next -= sum(1 for s in steps[done:] if s.phase == "close")
                self.running = False
                return
            if self.next == len(self.groups):
                log.info("replay done: %d bars", self.bars)
            if self.factor is not None or self.actor_inbox.qsize():
                return  # paced; or a control state is waiting: the next tick goes on
