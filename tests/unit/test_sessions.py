"""Trading sessions (controller/sessions.py): when the market is open and when it last closed."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from actors.controller.sessions import (
    CALENDAR_START,
    CN_A_HOURS,
    NS,
    US_EQUITY_HOURS,
    ExchangeSessions,
    sessions_for,
)
from protocol.settings import ControlSettings, Settings

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str) -> int:
    """Nanoseconds of a Shanghai wall-clock time."""
    moment = datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)
    return int(moment.timestamp()) * 1_000_000_000


@pytest.fixture(scope="module")
def in_session() -> object:
    return sessions_for(Settings(control=ControlSettings(sessions="cn_a")))


@pytest.mark.parametrize(
    ("moment", "open_"),
    [
        ("2024-01-02 09:29", False),  # before the open
        ("2024-01-02 09:30", True),
        ("2024-01-02 11:29", True),
        ("2024-01-02 11:30", False),  # lunch break
        ("2024-01-02 12:59", False),
        ("2024-01-02 13:00", True),
        ("2024-01-02 14:59", True),
        ("2024-01-02 15:00", False),  # after the close
        ("2024-01-06 10:00", False),  # Saturday
        ("2024-02-12 10:00", False),  # Spring Festival holiday
        ("1990-01-02 10:00", False),  # before the calendar starts
    ],
)
def test_cn_a_sessions_follow_the_xshg_calendar(in_session, moment: str, open_: bool) -> None:  # type: ignore[no-untyped-def]
    assert in_session(at(moment)) is open_


def test_always_sessions_are_always_open_and_never_close() -> None:
    always = sessions_for(Settings())
    assert always(0) is True and always.last_close(at("2024-01-02 15:30")) == 0


@pytest.mark.parametrize(
    ("moment", "closed_at"),
    [
        ("2024-01-02 14:59", "2023-12-29 15:00"),  # the previous trading day, over New Year
        ("2024-01-02 15:00", "2023-12-29 15:00"),  # the minute of the close is not after it
        ("2024-01-02 15:00:01", "2024-01-02 15:00"),
        ("2024-01-02 12:00", "2023-12-29 15:00"),  # the lunch break is not a close
        ("2024-01-06 10:00", "2024-01-05 15:00"),  # Saturday: Friday's close
    ],
)
def test_cn_a_last_close_is_the_end_of_the_latest_trading_day(
    in_session: Any, moment: str, closed_at: str
) -> None:
    assert in_session.last_close(at(moment)) == at(closed_at)


HOURS = ControlSettings(sessions="hours", hours=("09:00-12:00", "13:00:00-16:30:30"))


@pytest.mark.parametrize(
    ("moment", "open_", "closed_at"),
    [
        ("2024-01-06 08:59:59", False, "2024-01-05 16:30:30"),
        ("2024-01-06 09:00", True, "2024-01-05 16:30:30"),  # every day, Saturdays too
        ("2024-01-06 12:00", False, "2024-01-05 16:30:30"),  # a break, not a close
        ("2024-01-06 16:30:29", True, "2024-01-05 16:30:30"),
        ("2024-01-06 16:30:30", False, "2024-01-06 16:30:30"),
    ],
)
def test_daily_hours_open_in_their_windows_and_close_after_the_last(
    moment: str, open_: bool, closed_at: str
) -> None:
    hours = sessions_for(Settings(control=HOURS))
    assert hours(at(moment)) is open_
    assert hours.last_close(at(moment)) == at(closed_at)


@pytest.mark.parametrize(
    "hours",
    [(), ("10:00-09:00",), ("09:00-11:00", "10:00-12:00"), ("9:00-10:00",), ("24:00-25:00",)],
)
def test_daily_hours_must_be_windows_in_order(hours: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="hours"):
        ControlSettings(sessions="hours", hours=hours)


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        ControlSettings(timezone="Mars/Olympus")


@pytest.mark.parametrize(
    ("moment", "open_", "closed_at"),
    [
        ("2099-01-05 10:00", True, "2099-01-02 15:00"),  # a Monday no calendar knows yet
        ("2099-01-05 12:00", False, "2099-01-02 15:00"),
        ("2099-01-10 10:00", False, "2099-01-09 15:00"),  # Saturday: Friday's close
        ("2099-01-12 09:00", False, "2099-01-09 15:00"),  # Monday before the open
    ],
)
def test_cn_a_goes_on_with_weekdays_past_the_years_the_calendar_knows(
    in_session: Any, moment: str, open_: bool, closed_at: str
) -> None:
    assert in_session(at(moment)) is open_
    assert in_session.last_close(at(moment)) == at(closed_at)


@pytest.mark.parametrize(
    ("moment", "day"),
    [
        ("2024-01-02 08:00", "2024-01-02"),  # before the open: today's session
        ("2024-01-02 12:00", "2024-01-02"),  # the lunch break is inside the day
        ("2024-01-02 15:00", "2024-01-03"),  # after the close: the next session
        ("2024-01-05 20:00", "2024-01-08"),  # Friday evening: Monday
        ("2024-02-08 16:00", "2024-02-19"),  # over the Spring Festival
        ("2099-01-02 16:00", "2099-01-05"),  # past the calendar: weekdays
    ],
)
def test_cn_a_trading_day_is_the_session_in_progress_or_the_next(
    in_session: Any, moment: str, day: str
) -> None:
    assert in_session.trading_day(at(moment)) == day


def test_daily_hours_trading_day_turns_at_the_last_close() -> None:
    hours = sessions_for(Settings(control=HOURS))
    assert hours.trading_day(at("2024-01-06 16:30:29")) == "2024-01-06"
    assert hours.trading_day(at("2024-01-06 16:30:30")) == "2024-01-07"  # every day
    assert sessions_for(Settings()).trading_day(at("2024-01-06 07:59")) == "2024-01-05"  # UTC


NEW_YORK = ZoneInfo("America/New_York")


def at_new_york(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=NEW_YORK).timestamp()) * 1_000_000_000


@pytest.mark.parametrize(
    ("moment", "open_", "trading_day"),
    [
        ("2024-01-02 09:29", False, "2024-01-02"),  # before the open
        ("2024-01-02 09:30", True, "2024-01-02"),
        ("2024-01-02 12:00", True, "2024-01-02"),  # no lunch break
        ("2024-01-02 15:59", True, "2024-01-02"),
        ("2024-01-02 16:00", False, "2024-01-03"),  # after the close: the next day's orders
        ("2024-07-04 10:00", False, "2024-07-05"),  # Independence Day
        ("2024-11-29 12:59", True, "2024-11-29"),  # the day after Thanksgiving closes at 13:00
        ("2024-11-29 13:00", False, "2024-12-02"),
        ("2024-03-11 09:30", True, "2024-03-11"),  # the first day of daylight saving time
        ("2024-01-06 10:00", False, "2024-01-08"),  # Saturday
    ],
)
def test_us_equity_sessions_follow_the_nyse_calendar_in_new_york_time(
    moment: str, open_: bool, trading_day: str
) -> None:
    sessions = sessions_for(Settings(control=ControlSettings(sessions="us_equity")))
    assert sessions(at_new_york(moment)) is open_
    assert sessions.trading_day(at_new_york(moment)) == trading_day


def test_crypto_sessions_never_close() -> None:
    sessions = sessions_for(Settings(control=ControlSettings(sessions="crypto")))
    sunday_night = at_new_york("2024-01-07 23:59")
    assert sessions(sunday_night) is True
    assert sessions.last_close(sunday_night) == 0


@pytest.mark.parametrize(
    ("exchange", "hours", "zone"),
    [("XSHG", CN_A_HOURS, "Asia/Shanghai"), ("XNYS", US_EQUITY_HOURS, "America/New_York")],
)
def test_exchange_sessions_answer_as_exchange_calendars_does(
    exchange: str, hours: tuple[str, ...], zone: str
) -> None:
    """The arrays read from the calendar give its own answers, at random times and at
    the edges of sessions and breaks (a minute either side)."""
    import random

    import exchange_calendars
    import pandas as pd

    sessions = ExchangeSessions(exchange, hours, zone)
    calendar = exchange_calendars.get_calendar(exchange, start=CALENDAR_START)
    rng = random.Random(7)
    edges = [t for t in sessions.opens[-400:] + sessions.closes[-400:] if t]
    edges += [t for t in sessions.break_starts[-400:] + sessions.break_ends[-400:] if t]
    times = [t + d for t in rng.sample(edges, 200) for d in (-60 * NS, -1, 0, 1, 60 * NS)]
    first, last = sessions.opens[0], sessions.closes[-1]
    times += [rng.randrange(first, last) for _ in range(300)]
    for ts in times:
        stamp = pd.Timestamp(ts, unit="ns", tz="UTC")
        floor, ceil = stamp.floor("min"), stamp.ceil("min")
        assert sessions(ts) == calendar.is_open_on_minute(floor, ignore_breaks=False), stamp
        assert sessions.last_close(ts) == int(calendar.previous_close(ceil).value), stamp
        day = str(calendar.minute_to_session(floor, direction="next").date())
        assert sessions.trading_day(ts) == day, stamp
