"""Alpaca's clock, calendar and portfolio history, from XNYS and our equity curve.

The calendar is the controller's (actors/controller/sessions.py, exchange-calendars),
read once in a worker thread when first asked for; whether the market is open is the
controller's answer, so a server whose sessions never close says it is open.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool

from actors.controller.sessions import ExchangeSessions
from protocol.errors import ErrorCode, RejectError

NEW_YORK = ZoneInfo("America/New_York")
NS = 1_000_000_000
_TIMEFRAME_S = {"1Min": 60, "5Min": 300, "15Min": 900, "1H": 3600, "1D": 86400}
_PERIOD_DAYS = {"D": 1, "W": 7, "M": 30, "A": 365}
MAX_PERIOD = 100 * 365  # units of a period: more reaches before any curve


@functools.cache
def xnys() -> ExchangeSessions:
    return ExchangeSessions("XNYS", ("09:30-16:00",), "America/New_York")


def _eastern(ns: int) -> str:
    return datetime.fromtimestamp(ns / NS, NEW_YORK).isoformat()


async def clock(now_ns: int, is_open: bool, never_closes: bool = False) -> dict[str, Any]:
    """Alpaca's clock at the server's time. A market that never closes (sessions always)
    is open now and closes a day from now, always: a bot that winds down before the close
    never does, as on such a market it should not."""
    if never_closes:
        return {
            "timestamp": _eastern(now_ns),
            "is_open": True,
            "next_open": _eastern(now_ns),
            "next_close": _eastern(now_ns + 86_400 * NS),
        }
    sessions = await run_in_threadpool(xnys)
    upcoming_open = next((t for t in sessions.opens if t > now_ns), sessions.end)
    next_close = next((t for t in sessions.closes if t > now_ns), sessions.end)
    return {
        "timestamp": _eastern(now_ns),
        "is_open": is_open,
        "next_open": _eastern(upcoming_open),
        "next_close": _eastern(next_close),
    }


def day(text: str | None, field: str) -> str | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text[:10]).isoformat()
    except ValueError as exc:
        raise RejectError(ErrorCode.REQUEST_INVALID, f"{field}: not a date (YYYY-MM-DD)") from exc


async def calendar(start: str | None, end: str | None) -> list[dict[str, str]]:
    """XNYS trading days from start to end (inclusive), open and close as HH:MM in New York."""
    sessions = await run_in_threadpool(xnys)
    first, last = day(start, "start"), day(end, "end")
    days = []
    for session, opens, closes in zip(sessions.days, sessions.opens, sessions.closes, strict=True):
        if (first and session < first) or (last and session > last):
            continue
        days.append(
            {
                "date": session,
                "open": datetime.fromtimestamp(opens / NS, NEW_YORK).strftime("%H:%M"),
                "close": datetime.fromtimestamp(closes / NS, NEW_YORK).strftime("%H:%M"),
                "session_open": datetime.fromtimestamp(opens / NS, NEW_YORK).strftime("%H%M"),
                "session_close": datetime.fromtimestamp(closes / NS, NEW_YORK).strftime("%H%M"),
                "settlement_date": session,
            }
        )
    return days


def moment_of(text: str, field: str) -> datetime:
    """An RFC 3339 time or a date from a query, aware (UTC when it names no zone)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError as exc:
        raise RejectError(ErrorCode.REQUEST_INVALID, f"{field}: not an RFC 3339 time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def portfolio_history(
    stats: dict[str, Any],
    period: str | None,
    timeframe: str | None,
    date_end: str | None,
    start: str | None,
    end: str | None,
) -> dict[str, Any]:
    """The equity curve in Alpaca's shape (_history); a period or time beyond the calendar's
    years is refused, not a server error."""
    try:
        return _history(stats, period, timeframe, date_end, start, end)
    except (OverflowError, ValueError) as exc:
        raise RejectError(ErrorCode.REQUEST_INVALID, "period, start or end: out of range") from exc


def _history(
    stats: dict[str, Any],
    period: str | None,
    timeframe: str | None,
    date_end: str | None,
    start: str | None,
    end: str | None,
) -> dict[str, Any]:
    """The equity curve in Alpaca's shape: the last point of each `timeframe` bucket within
    `period` before the end (the latest point, `end`, or the end of `date_end`)."""
    curve = [(moment_of(p["time"], "time"), Decimal(p["equity"])) for p in stats["equity_curve"]]
    if end is not None:
        until = moment_of(end, "end")
    elif date_end is not None:
        until = datetime.fromisoformat(f"{day(date_end, 'date_end')}T23:59:59.999999+00:00")
    else:
        until = curve[-1][0] if curve else datetime.now(UTC)
    days = min(int(period[:-1]), MAX_PERIOD) * _PERIOD_DAYS[period[-1]] if period else 30
    since = moment_of(start, "start") if start is not None else until - timedelta(days=days)
    if timeframe is None:
        timeframe = "1Min" if days < 7 else "15Min" if days < 30 else "1D"
    step = _TIMEFRAME_S[timeframe]
    buckets: dict[int, Decimal] = {}
    for moment, equity in curve:
        if since <= moment <= until:
            buckets[int(moment.timestamp()) // step * step] = equity
    earlier = [equity for moment, equity in curve if moment < since]
    put_in = Decimal(stats["initial_cash"]) + Decimal(stats["deposited_value"])
    base = earlier[-1] if earlier else put_in  # the capital: cash and the shares deposited
    stamps = sorted(buckets)
    profit = [buckets[t] - base for t in stamps]
    return {
        "timestamp": stamps,
        "equity": [float(buckets[t]) for t in stamps],
        "profit_loss": [float(p) for p in profit],
        "profit_loss_pct": [float(p / base) if base else 0.0 for p in profit],
        "base_value": float(base),
        "timeframe": timeframe,
        "cashflow": {},
    }
