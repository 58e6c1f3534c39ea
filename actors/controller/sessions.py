"""Trading sessions: whether the market is open at a time, and when it last closed.

The controller asks one of these on every heartbeat and broadcasts both answers on `ctl`:
`session_open` gates trading, `last_close` is when DAY orders expire (docs/fill-model.md).
- `always` and `crypto`: always open, never closes; the trading day is the UTC date, so
  DAY orders end at midnight UTC;
- `cn_a`: the XSHG calendar from exchange-calendars (09:30-11:30 and 13:00-15:00
  Asia/Shanghai on exchange trading days); the lunch break is not a close. Past the
  years whose holidays the library records, every weekday is taken as a trading day
  (logged once), so the server keeps trading rather than never opening again;
- `us_equity`: the XNYS calendar (09:30-16:00 America/New_York on NYSE trading days,
  early closes included), with the same weekday fallback;
- `hours`: the configured daily windows in the configured zone, every day; the day's
  session closes at the end of its last window;
- `profile`: each symbol trades in its own profile's sessions (cn_a, us_equity or
  crypto above), so A-shares, US stocks and crypto open and close on one server each on
  their own calendar. `market_sessions` gives one Sessions per profile in use.
"""

from __future__ import annotations

import logging
import warnings
from bisect import bisect_left, bisect_right
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from protocol.settings import Settings, session_windows

CALENDAR_DEPRECATION = r".*\.values returning an ndarray that drops timezone"
CALENDAR_START = "2000-01-01"  # replays reach back this far (actors/controller/bars.py)
NS = 1_000_000_000
MINUTE = 60 * NS
CN_A_HOURS = ("09:30-11:30", "13:00-15:00")
# trading phases (docs/market-rules.md 1.9); the call auctions' lengths before the open and
# before the close
CONTINUOUS, CLOSED = "continuous", "closed"
OPENING_CALL_PHASE, PRE_OPEN_PHASE, CLOSING_CALL_PHASE = "opening_call", "pre_open", "closing_call"
OPENING_CALL, PRE_OPEN, CLOSING_CALL = 15 * MINUTE, 5 * MINUTE, 3 * MINUTE
NO_CANCELS_BEFORE_OPEN = 10 * MINUTE  # from 09:20 to the open, orders cannot be canceled
US_EQUITY_HOURS = ("09:30-16:00",)
log = logging.getLogger("controller")


class Sessions(Protocol):
    def __call__(self, ts_ns: int) -> bool:
        """Whether the market is in session at a time (ns since the epoch)."""

    def last_close(self, ts_ns: int) -> int:
        """The latest session close at or before a time, in ns; 0 if there is none."""

    def trading_day(self, ts_ns: int) -> str:
        """The trading day a time belongs to, YYYY-MM-DD: the session in progress, else
        the next one (an order placed overnight is for the next day's session)."""

    def phase(self, ts_ns: int) -> str:
        """The trading phase: `continuous` in session, `closed` out of it, and with call
        auctions `opening_call`, `pre_open` and `closing_call` (docs/market-rules.md 1.9)."""

    def cancels(self, ts_ns: int) -> bool:
        """Whether orders may be canceled now (not in parts of the call auctions)."""


def market_sessions(settings: Settings) -> dict[str, Sessions]:
    """The sessions of each profile the symbols use (and the default profile): its own
    calendar with `sessions = "profile"`, else the server's one calendar for all."""
    names = {settings.market.profile}
    names |= {s.profile for s in settings.market.symbols if s.profile is not None}
    if settings.control.sessions != "profile":
        shared = sessions_for(settings)
        return {name: shared for name in sorted(names)}
    return {name: sessions_for(settings, name) for name in sorted(names)}


def sessions_for(settings: Settings, kind: str | None = None) -> Sessions:
    """Sessions of a kind (default: control.sessions; `profile` means the default
    profile's)."""
    kind = kind or settings.control.sessions
    if kind == "profile":
        kind = settings.market.profile
    if kind == "cn_a":
        calls = settings.profiles.cn_a.call_auctions and bool(settings.exchange_symbols())
        return ExchangeSessions("XSHG", CN_A_HOURS, "Asia/Shanghai", calls)
    if kind == "us_equity":
        return ExchangeSessions("XNYS", US_EQUITY_HOURS, "America/New_York")
    if kind == "hours":
        return DailyHours(settings.control.hours, settings.control.timezone)
    return AlwaysOpen()


class AlwaysOpen:
    def __call__(self, ts_ns: int) -> bool:
        return True

    def phase(self, ts_ns: int) -> str:
        return CONTINUOUS

    def cancels(self, ts_ns: int) -> bool:
        return True

    def last_close(self, ts_ns: int) -> int:
        return 0

    def trading_day(self, ts_ns: int) -> str:
        """The UTC date: with no closes, days turn at midnight UTC."""
        return datetime.fromtimestamp(ts_ns / NS, UTC).date().isoformat()


class ExchangeSessions:
    """An exchange's sessions from exchange-calendars, read once into arrays of ns: a
    look-up is a bisection, not a pandas call (a replay asks twice per bar time, and a
    pandas look-up took some 65 us). Minutes are the calendar's: a session's minutes run
    from its open to before its close, less its break."""

    def __init__(
        self, exchange: str, hours: tuple[str, ...], zone: str, calls: bool = False
    ) -> None:
        import exchange_calendars  # a second or two of pandas import: only when asked for

        # exchange-calendars still reads Series.values, which pandas 3 deprecates; harmless
        warnings.filterwarnings("ignore", message=CALENDAR_DEPRECATION)
        calendar = exchange_calendars.get_calendar(exchange, start=CALENDAR_START)
        self.name = calendar.name
        self.last_session = calendar.last_session.date()
        schedule = calendar.schedule
        self.opens = [_ns(v) for v in schedule["open"]]
        self.closes = [_ns(v) for v in schedule["close"]]
        self.break_starts = [_ns(v) for v in schedule["break_start"]]
        self.break_ends = [_ns(v) for v in schedule["break_end"]]
        self.days = [str(label.date()) for label in schedule.index]
        self.beyond = DailyHours(hours, zone, weekdays_only=True)
        self.end = self.closes[-1] + 60 * NS  # the minute after the last one it knows
        self.warned = False
        self.calls = calls  # the A-share call auctions around each day's open and close

    def phase(self, ts_ns: int) -> str:
        """With call auctions: 15 to 5 minutes before the day's open the opening call, the
        5 minutes after it pre-open (orders wait, nothing trades), the last 3 minutes of
        the day the closing call; the lunch break is closed."""
        if not self.calls or ts_ns >= self.end:
            return CONTINUOUS if self(ts_ns) else CLOSED
        minute = ts_ns - ts_ns % MINUTE
        n = bisect_right(self.opens, minute + OPENING_CALL) - 1
        if n < 0:
            return CLOSED
        open_, close = self.opens[n], self.closes[n]
        if open_ - OPENING_CALL <= minute < open_ - PRE_OPEN:
            return OPENING_CALL_PHASE
        if open_ - PRE_OPEN <= minute < open_:
            return PRE_OPEN_PHASE
        if not self(ts_ns):
            return CLOSED
        return CLOSING_CALL_PHASE if minute >= close - CLOSING_CALL else CONTINUOUS

    def cancels(self, ts_ns: int) -> bool:
        """Whether orders may be canceled: not from 09:20 to the open, nor in the closing
        call (with call auctions)."""
        phase = self.phase(ts_ns)
        if phase == OPENING_CALL_PHASE:
            minute = ts_ns - ts_ns % MINUTE
            open_ = self.opens[bisect_right(self.opens, minute + OPENING_CALL) - 1]
            return minute < open_ - NO_CANCELS_BEFORE_OPEN
        return phase not in (PRE_OPEN_PHASE, CLOSING_CALL_PHASE)

    def __call__(self, ts_ns: int) -> bool:
        if ts_ns >= self.end:
            return self._beyond()(ts_ns)
        minute = ts_ns - ts_ns % MINUTE
        n = bisect_right(self.opens, minute) - 1
        if n < 0 or minute >= self.closes[n]:
            return False
        return not self.break_starts[n] <= minute < self.break_ends[n]

    def last_close(self, ts_ns: int) -> int:
        """Rounded up to the minute: a close counts from the minute after its last one."""
        if ts_ns >= self.end:
            return self._beyond().last_close(ts_ns)
        minute = ts_ns + (-ts_ns % MINUTE)
        n = bisect_left(self.closes, minute) - 1
        return self.closes[n] if n >= 0 else 0

    def trading_day(self, ts_ns: int) -> str:
        if ts_ns >= self.end:
            return self._beyond().trading_day(ts_ns)
        minute = ts_ns - ts_ns % MINUTE
        n = bisect_right(self.opens, minute) - 1
        if n < 0 or minute >= self.closes[n]:
            n += 1  # between sessions: the next one's
        if n == len(self.days):
            return self._beyond().trading_day(ts_ns)
        return self.days[n]

    def _beyond(self) -> DailyHours:
        if not self.warned:
            log.warning(
                "past %s, the last day exchange-calendars knows for %s: holidays unknown, "
                "every weekday is a trading day",
                self.last_session,
                self.name,
            )
            self.warned = True
        return self.beyond


def _ns(stamp: Any) -> int:
    """A schedule's time as ns; no break (NaT) as 0, so no minute falls in it."""
    return 0 if stamp is None or stamp != stamp else int(stamp.value)  # NaT != NaT


class DailyHours:
    def phase(self, ts_ns: int) -> str:
        return CONTINUOUS if self(ts_ns) else CLOSED

    def cancels(self, ts_ns: int) -> bool:
        return True

    def __init__(self, hours: tuple[str, ...], zone: str, weekdays_only: bool = False) -> None:
        self.windows = session_windows(hours)
        self.zone = ZoneInfo(zone)
        self.weekdays_only = weekdays_only

    def _trading_day(self, day: datetime) -> bool:
        return not self.weekdays_only or day.weekday() < 5

    def __call__(self, ts_ns: int) -> bool:
        local = datetime.fromtimestamp(ts_ns / NS, self.zone)
        if not self._trading_day(local):
            return False
        second = local.hour * 3600 + local.minute * 60 + local.second
        return any(start <= second < end for start, end in self.windows)

    def last_close(self, ts_ns: int) -> int:
        local = datetime.fromtimestamp(ts_ns / NS, self.zone)
        close = self.windows[-1][1]
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        for days_back in range(8):  # a trading day is never more than a week back
            day = midnight - timedelta(days=days_back)
            closed_at = _at(day, close, self.zone)
            if self._trading_day(day) and closed_at <= ts_ns:
                return closed_at
        return 0

    def trading_day(self, ts_ns: int) -> str:
        local = datetime.fromtimestamp(ts_ns / NS, self.zone)
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if _at(day, self.windows[-1][1], self.zone) <= ts_ns:
            day += timedelta(days=1)
        while not self._trading_day(day):
            day += timedelta(days=1)
        return day.date().isoformat()


def _at(midnight: datetime, second: int, zone: ZoneInfo) -> int:
    """ns of `second` after a local midnight, by the wall clock (DST gaps move it on)."""
    naive = midnight.replace(tzinfo=None) + timedelta(seconds=second)
    return int(naive.replace(tzinfo=zone).timestamp()) * NS
