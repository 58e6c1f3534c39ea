"""Trading-session gating (actors/controller.py session_checker) with exchange-calendars."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from actors.controller import session_checker
from protocol.settings import ControlSettings, Settings

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str) -> int:
    """Nanoseconds of a Shanghai wall-clock time."""
    moment = datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)
    return int(moment.timestamp()) * 1_000_000_000


@pytest.fixture(scope="module")
def in_session() -> object:
    return session_checker(Settings(control=ControlSettings(sessions="cn_a")))


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


def test_always_sessions_are_always_open() -> None:
    assert session_checker(Settings())(0) is True
