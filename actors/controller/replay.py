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

from actors.controller.sessions import CALENDAR_START
from actors.market.rules import Market
from actors.runtime import process
from actors.runtime.statefile import StateFile
from protocol.errors import ErrorCode, error_body
from protocol.settings import Settings
from protocol.topics import GATEWAY
from protocol.values import iso_time

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
    """The bars a replay configured by `settings` sends out, checked. Raises BarFileError."""
    market = Market.from_settings(settings)
    bars = load_bars(replay_paths(settings), market)
    return bars_between(bars, market, settings.market.replay_start, settings.market.replay_end)


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
    schedule = cal.schedule.loc[first.isoformat() : last.isoformat(), "close"]
    closes = {session.date(): int(close.value) for session, close in schedule.items()}
    return list(closes), closes


# THE REPLAY ----------------------------------------------------------------------------

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "sample_daily.csv"
GROUPS_PER_CHUNK = 50  # bar times handed on at once at speed "max"
STARTUP_GRACE = 1.0  # s after the controller starts before the first bar goes out


def replay_paths(settings: Settings) -> list[Path]:
    return [Path(p) for p in settings.market.replay_files] or [SAMPLE]


@dataclass(frozen=True, slots=True)
class ReplayStep:
    """The market clock moves to `ts` and `bars` (all complete at one time T) go out:
    phase "fill" at T - 1 ns, the last instant of the bars, when the matcher fills on
    them inside their session; phase "close" at T, when everyone sees them complete.
    `index` numbers the bar time from 1 of `count`. A lock-step replay announces the bars
    to the bots (`replay.step`) in a step of its own, phase "announce", once everyone has
    taken the close step in; otherwise the close step announces them."""

    ts: int
    bars: list[ReplayBar]
    phase: str
    index: int = 0
    count: int = 0
    announce: bool = True


@dataclass(frozen=True, slots=True)
class ReplaySteps:
    """The steps of some bar times, in order, and the progress after them: one hand-over
    to the session control."""

    steps: list[ReplayStep]
    status: dict[str, Any]
    sync: int = 0  # lock-step: a marker id to publish after them (answered: replay.settled)


@dataclass(frozen=True, slots=True)
class ReplayStatus:
    """The replay's progress changed between steps; `stop`: set the run state to stopped
    (a bot timed out, and `replay_on_timeout = "stop"`)."""

    status: dict[str, Any]
    stop: bool = False


@dataclass(frozen=True, slots=True)
class LockStep:
    """A lock-step message for the replayer: a bot's replay.join or replay.done (through the
    matcher), or the accountant's replay.settled."""

    message: dict[str, Any]


class ReplayTick:
    """Timer: hand on the bars that are due."""


@dataclass(frozen=True, slots=True)
class Listen:
    """Ask the session control to send its control state to an actor too."""

    actor: pykka.ActorRef[Any]


SETTLE_TIMEOUT = 10.0  # s a lock-step waits for the fills on a bar time to be settled
JOIN_WAIT = 30.0  # s a lock-step replay waits at most for `replay_bots` bots to join
GREET_RETRY = 1.0  # s between two first markers while the matcher or accountant is not up


class Replayer(pykka.ThreadingActor):
    """Hands the session control the bars in time order, while the run state is running:
    at speed `max` as fast as the timer allows, at `xN` N times faster than they happened,
    and at `lockstep` one bar time at a time (docs/replay.md): the fill step; once the
    accountant has settled its fills, the close step; then it waits until every bot that
    joined has answered `replay.done` for it, or `replay_step_timeout`.

    After a restart it resumes after the market time the controller saved (actors/runtime/clock.py):
    bars at or before it were replayed already. A bar time whose close was saved is
    announced again (bots ignore a `ts` they answered), and the bots that had joined
    (replay.json) are waited for again; a bar time saved between its opening and its close
    is filled again, and the matcher does not fill on a bar twice."""

    def __init__(
        self,
        settings: Settings,
        control: pykka.ActorRef[Any],
        bus: Any,
        bars: list[ReplayBar],
        after: int,
    ) -> None:
        super().__init__()
        self.control = control
        self.bus = bus  # replies to the bots, through the gateway
        self.groups: list[tuple[int, list[ReplayBar]]] = []
        for bar in bars:
            if self.groups and self.groups[-1][0] == bar.ts:
                self.groups[-1][1].append(bar)
            else:
                self.groups.append((bar.ts, [bar]))
        m = settings.market
        self.speed = m.replay_speed
        self.factor = float(self.speed[1:]) if self.speed.startswith("x") else None
        self.lockstep = self.speed == "lockstep"
        self.expected_bots = m.replay_bots
        self.step_timeout = m.replay_step_timeout
        self.stop_on_timeout = m.replay_on_timeout == "stop"
        self.next = next(
            (n for n, (ts, _) in enumerate(self.groups) if ts > after), len(self.groups)
        )
        self.filled = 0  # the last fill step's time (its bars' last instant)
        self.running = False
        self.anchor: tuple[float, int] | None = None  # wall time and bar time pacing starts
        self.bars = len(bars)
        self.saved = StateFile(settings.data_dir / "replay.json")
        self.bots: set[int] = set(self.saved.load().get("bots", []))  # lock-step: waited for
        self.waiting: str | None = None  # "settle": marker `sync`; "done": bar time `at`
        self.then: Any = None  # what goes on when the wait ends
        # marker ids only go up, also across restarts: the accountant answers the highest
        self.sync = wall.time_ns()
        self.at = 0
        self.baseline = self.next > 0  # lock-step: the state before the first bar time is set
        if self.lockstep and self.next and self.groups[self.next - 1][0] == after:
            self.then = self.announce_again  # its close went out before the restart
        self.pending: set[int] = set()  # bots yet to answer replay.done for `at`
        self.peers_ready = False  # the matcher and accountant answered a first marker (greet)
        self.deadline = 0.0
        self.timeouts = 0
        self.ended = bool(self.groups) and self.next == len(self.groups)
        # a moment for the matcher and accountant to subscribe to the controller's PUB;
        # the first marker (greet) then tells that they have
        self.starts_at = wall.monotonic() + STARTUP_GRACE
        self.join_until = self.starts_at + JOIN_WAIT if self.next == 0 else 0.0
        if self.groups and self.next == len(self.groups):
            log.warning(
                "replay: the market time saved in this data dir is past the last bar; "
                "nothing to replay (start from a fresh data dir)"
            )

    def on_start(self) -> None:
        self.control.tell(Listen(self.actor_ref))
        self.control.tell(ReplayStatus(self.status()))
        log.info("replay of %d bars, speed %s", self.bars, self.speed)

    def on_failure(self, *_exc: object) -> None:
        process.die("replayer failed")

    def status(self) -> dict[str, Any]:
        """The replay's progress, in the control state (docs/protocol.md)."""
        return {
            "speed": self.speed,
            "bar_times": len(self.groups),
            "closed": self.next,
            "bots": len(self.bots),
            "timeouts": self.timeouts,
            "finished": self.ended,
        }

    def on_receive(self, message: Any) -> None:
        if isinstance(message, dict) and message.get("type") == "control":
            running = message["state"] == "running"
            if running and not self.running:
                self.anchor = None  # paced again from now
                if self.waiting == "done":  # the bots get their time again after a pause
                    self.deadline = wall.monotonic() + self.step_timeout
            self.running = running
        elif isinstance(message, LockStep):
            self.on_lockstep(message.message)
        elif (
            isinstance(message, ReplayTick) and self.running and wall.monotonic() >= self.starts_at
        ):
            if self.waiting is not None:
                if wall.monotonic() >= self.deadline:
                    self.time_out()
            elif not self.ended:
                self.resume()

    def bots_missing(self) -> bool:
        """Before the first bar time: the run expects more bots than have joined, and they
        still have time to. (One that times out later is not waited for again.)"""
        if len(self.bots) >= self.expected_bots or wall.monotonic() >= self.join_until:
            self.join_until = 0.0
            return False
        return True

    def step(self) -> None:
        """Hand on the bar times that are due, a chunk at a time. Ask, not tell: a chunk
        is out before the next goes, so a request to the session control waits for one
        chunk at most, whatever the speed."""
        if self.bots_missing():
            return
        while self.next < len(self.groups):
            now = wall.monotonic()
            steps: list[ReplayStep] = []
            while self.next < len(self.groups) and len(steps) < 2 * GROUPS_PER_CHUNK:
                ts = self.groups[self.next][0]
                if self.factor is not None:
                    if self.anchor is None:
                        self.anchor = (now, ts)
                    if self.anchor[0] + (ts - self.anchor[1]) / NS / self.factor > now:
                        break
                steps += self.steps_of(self.next)
                self.next += 1
            if not steps:
                return
            done = self.control.ask(ReplaySteps(steps, self.status()))
            if done < len(steps):  # the run state left running: those bars wait
                self.next -= sum(1 for s in steps[done:] if s.phase == "close")
                self.running = False
                return
            if self.next == len(self.groups):
                break
            if self.factor is not None or self.actor_inbox.qsize():
                return  # paced; or a control state is waiting: the next tick goes on
        if not self.ended:
            self.settle_end()

    def settle_end(self) -> None:
        """After the last bar time at speed max or xN: a marker through the matcher and the
        accountant, so that `finished` means every fill is settled."""
        self.publish([], self.finish)

    def steps_of(self, n: int) -> list[ReplayStep]:
        """Bar time n's steps: its fill step (unless it went out before a restart), its close."""
        ts, bars = self.groups[n]
        count = len(self.groups)
        steps = [ReplayStep(ts, bars, "close", n + 1, count)]
        if ts - 1 > self.filled:
            steps.insert(0, ReplayStep(ts - 1, bars, "fill", n + 1, count))
        return steps

    # LOCK-STEP -------------------------------------------------------------------------

    def publish(self, steps: list[ReplayStep], then: Any) -> None:
        """Hand on steps with a marker after them, and call `then` once the matcher and the
        accountant have taken in everything up to the marker (replay.settled). No steps:
        the control state now, and a marker."""
        self.sync += 1
        if self.control.ask(ReplaySteps(steps, self.status(), self.sync)) < len(steps):
            self.running = False  # the run state left running: the same again when it returns
            return
        self.waiting, self.then = "settle", then
        self.deadline = wall.monotonic() + SETTLE_TIMEOUT

    def advance(self) -> None:
        """Lock-step: bar time `next` in four steps, each taken in by the matcher and the
        accountant before the next goes: its session opening (the clock at the bars' last
        instant), its fills, its close (sessions closing, the day turning), then the bars
        to the bots. The bar time after waits for the bots' replay.done."""
        if self.next == len(self.groups) or self.bots_missing():
            return
        if not self.baseline:  # the matcher and the accountant start from the same state
            self.baseline = True
            self.publish([], self.advance)
            return
        ts, bars = self.groups[self.next]
        if ts - 1 <= self.filled:  # filled before a restart
            self.close()
            return
        index, count = self.next + 1, len(self.groups)

        def fill() -> None:
            self.publish([ReplayStep(ts - 1, bars, "fill", index, count)], filled)

        def filled() -> None:
            self.filled = ts - 1
            self.close()

        self.publish([ReplayStep(ts - 1, [], "fill", index, count)], fill)

    def close(self) -> None:
        ts, bars = self.groups[self.next]
        index, count = self.next + 1, len(self.groups)

        def announce() -> None:
            self.next += 1
            self.announce(ts, bars, index, count)

        self.publish([ReplayStep(ts, bars, "close", index, count, announce=False)], announce)

    def announce(self, ts: int, bars: list[ReplayBar], index: int, count: int) -> None:
        """The bots get bar time `ts`; the next waits for their replay.done."""
        step = ReplayStep(ts, bars, "announce", index, count)
        if not self.control.ask(ReplaySteps([step], self.status())):
            self.running = False  # announced when the run state is running again
            self.then = lambda: self.announce(ts, bars, index, count)
            return
        if self.bots:
            self.pending = set(self.bots)
            self.at = ts
            self.waiting, self.then = "done", self.advance
            self.deadline = wall.monotonic() + self.step_timeout
        elif self.next == len(self.groups):
            self.finish()

    def announce_again(self) -> None:
        """After a restart: the bar time whose close was saved last (it may not have gone
        out to the bots)."""
        ts, bars = self.groups[self.next - 1]
        self.announce(ts, bars, self.next, len(self.groups))

    def finish(self) -> None:
        self.waiting = None
        self.ended = True
        log.info("replay done: %d bars, %d bot timeouts", self.bars, self.timeouts)
        self.control.tell(ReplayStatus(self.status()))

    def go_on(self) -> None:
        """What waited goes on: the next step, or the end."""
        then, self.waiting, self.then = self.then, None, None
        if then is not None:
            then()
        last = self.next == len(self.groups)
        if self.waiting is None and self.lockstep and not self.ended and last:
            self.finish()

    def on_lockstep(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "replay.settled":
            if self.waiting == "settle" and msg["id"] == self.sync:
                self.go_on()
            return
        user_id = msg["user_id"]
        if user_id not in self.bots:
            if self.expected_bots and len(self.bots) >= self.expected_bots:
                self.reply(
                    msg,
                    dict(
                        error_body(
                            ErrorCode.REQUEST_INVALID,
                            f"this replay waits for its {self.expected_bots} bot(s) only",
                        )
                    ),
                )
                return
            self.bots.add(user_id)  # a join, or a bot going on after a restart or a timeout
            self.saved.save({"bots": sorted(self.bots)})
            self.control.tell(ReplayStatus(self.status()))
        if kind == "replay.join":
            next_ts = self.groups[self.next][0] if self.next < len(self.groups) else None
            self.reply(msg, {"type": "replay.joined", **self.status(), "next_ts": next_ts})
        else:
            self.reply(msg, {"type": "replay.ok", "ts": msg["ts"]})
            if self.waiting == "done" and msg["ts"] == self.at:
                self.pending.discard(user_id)
                if not self.pending:
                    self.go_on()
        ready = self.running and wall.monotonic() >= self.starts_at
        if self.waiting is None and ready and not self.ended:
            self.resume()

    def resume(self) -> None:
        """Go on from where the replay stands (a tick, a join, the run state running)."""
        if not self.peers_ready:
            self.greet()
        elif self.then is not None:  # a step the run state held back
            self.go_on()
        elif self.lockstep:
            self.advance()
        else:
            self.step()

    def greet(self) -> None:
        """Before the first bar: a marker through the matcher and the accountant, asked
        again each GREET_RETRY until answered. Bars published before they are subscribed
        would be lost to them (a process started or restarted later than this one)."""
        held_back = self.then

        def ready() -> None:
            self.peers_ready, self.then = True, held_back
            log.info("replay: the matcher and the accountant are listening")
            self.resume()

        self.publish([], ready)
        self.deadline = wall.monotonic() + GREET_RETRY

    def time_out(self) -> None:
        if self.waiting == "settle" and not self.peers_ready:
            self.greet()  # not subscribed yet
            return
        if self.waiting == "settle":  # lost on its way, or the matcher or accountant is slow
            log.warning(
                "replay: marker %d unanswered after %.0fs; again", self.sync, SETTLE_TIMEOUT
            )
            self.publish([], self.then)
            return
        for user_id in sorted(self.pending):
            log.warning(
                "replay: bot user %d did not answer replay.done for %s in %.1fs%s",
                user_id,
                iso_time(self.at),
                self.step_timeout,
                "; stopping" if self.stop_on_timeout else "; going on without it",
            )
        self.timeouts += len(self.pending)
        self.bots -= self.pending
        self.saved.save({"bots": sorted(self.bots)})
        self.pending = set()
        if self.stop_on_timeout:
            self.waiting, self.then = None, self.advance
            self.running = False  # until the run state, stopped now, is running again
            self.control.tell(ReplayStatus(self.status(), stop=True))
        else:
            self.control.tell(ReplayStatus(self.status()))
            self.go_on()

    def reply(self, request: dict[str, Any], body: dict[str, Any]) -> None:
        self.bus.send(GATEWAY, {**body, "rid": request["rid"], "gw": request["gw"]})
