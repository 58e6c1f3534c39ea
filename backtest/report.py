"""A finished backtest's report: round trips, metrics, a fills digest, a PNG chart, an HTML page.

Pure functions over the run's fills and equity curve. Money stays exact (`Decimal`) and is
written with `protocol.values.money`; ratios (returns, drawdown, Sharpe, turnover) are derived
figures written with `ratio` (six decimals). The annual return and the Sharpe ratio need a
fractional power or a square root, so they are computed in binary floats and converted to
`Decimal` through `str` before `ratio`: they are statistics, never ledger money.
"""

from __future__ import annotations

import hashlib
import html
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from actors.accountant.stats import max_drawdown
from protocol.values import iso_time, money, number, ratio

ZERO = Decimal(0)
NS_PER_DAY = 86_400 * 1_000_000_000
NS_PER_YEAR = 365.25 * NS_PER_DAY  # a float: years are only used for derived ratios


@dataclass(frozen=True, slots=True)
class FillRecord:
    ts: int  # ns since epoch (market time of the fill)
    symbol: str
    side: str  # "buy" | "sell"
    qty: Decimal
    price: Decimal
    commission: Decimal
    tax: Decimal
    order_id: int
    user_id: int


@dataclass(frozen=True, slots=True)
class EquityPoint:
    ts: int  # ns (market time: e.g. each session close)
    cash: Decimal
    equity: Decimal  # cash + market value


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """One position of a user in a symbol, from flat to flat again.

    `side` is "long" when opened by a buy, "short" when opened by a sell. `bought` and `sold`
    are the traded values (qty * price) of its buys and sells, `fees` its commission + tax.
    """

    user_id: int
    symbol: str
    side: str
    opened: int  # ns, the opening fill
    closed: int  # ns, the fill that made the position flat
    bought: Decimal
    sold: Decimal
    fees: Decimal
    fills: int  # fills that took part (a flipping fill counts in both trips)

    @property
    def pnl(self) -> Decimal:
        return self.sold - self.bought - self.fees


@dataclass(slots=True)
class _Open:
    side: str
    opened: int
    qty: Decimal  # signed position: > 0 long, < 0 short
    bought: Decimal
    sold: Decimal
    fees: Decimal
    fills: int


def round_trips(fills: Iterable[FillRecord]) -> list[RoundTrip]:
    """Round trips per (user_id, symbol), in the order they close; fills are taken in the
    given order (ledger order), not re-sorted.

    A fill that crosses zero (long 10, sell 15) is split: the part that flattens the position
    closes the trip, the rest opens a new one in the other direction. Its value splits exactly;
    its fees split pro rata by quantity (the closing share rounded by the decimal context, the
    opening share the remainder, so the total is kept). Positions still open at the end are
    not round trips.
    """
    trips: list[RoundTrip] = []
    open_: dict[tuple[int, str], _Open] = {}
    for f in fills:
        key = (f.user_id, f.symbol)
        signed = f.qty if f.side == "buy" else -f.qty
        fees = f.commission + f.tax
        pos = open_.get(key)
        if pos is None:
            if signed:
                open_[key] = _opened(f, signed, fees)
            continue
        after = pos.qty + signed
        if after and (after > 0) != (pos.qty > 0):  # crosses zero: split the fill
            part = abs(pos.qty)
            part_fees = fees * part / f.qty
            _add(pos, f.side, part * f.price, part_fees)
            trips.append(_closed(key, pos, f.ts))
            open_[key] = _opened(f, after, fees - part_fees)
            continue
        _add(pos, f.side, f.qty * f.price, fees)
        pos.qty = after
        if not after:
            trips.append(_closed(key, pos, f.ts))
            del open_[key]
    return trips


def _opened(f: FillRecord, signed: Decimal, fees: Decimal) -> _Open:
    value = abs(signed) * f.price
    buy = signed > 0
    return _Open(
        side="long" if buy else "short",
        opened=f.ts,
        qty=signed,
        bought=value if buy else ZERO,
        sold=ZERO if buy else value,
        fees=fees,
        fills=1,
    )


def _add(pos: _Open, side: str, value: Decimal, fees: Decimal) -> None:
    if side == "buy":
        pos.bought += value
    else:
        pos.sold += value
    pos.fees += fees
    pos.fills += 1


def _closed(key: tuple[int, str], pos: _Open, ts: int) -> RoundTrip:
    user_id, symbol = key
    return RoundTrip(
        user_id, symbol, pos.side, pos.opened, ts, pos.bought, pos.sold, pos.fees, pos.fills
    )


def canonical_decimal(d: Decimal) -> str:
    """The digest's decimal form: `format(d.normalize(), "f")`, zero (and -0) as "0".

    Equal values give equal text whatever their scale: 10.50, 10.5 and 1.05E+1 are "10.5",
    100 is "100" (never "1E+2").
    """
    return "0" if d == 0 else format(d.normalize(), "f")


def fills_digest(fills: Iterable[FillRecord]) -> str:
    """SHA-256 hex of the fills' canonical text, in the given order.

    One line per fill, `ts,user_id,order_id,symbol,side,qty,price,commission,tax`: integers
    in decimal, symbol and side as is, decimals by `canonical_decimal`; lines joined by "\\n"
    (no trailing newline), encoded as UTF-8. No fills digest the empty string.
    """
    text = "\n".join(
        ",".join(
            (
                str(f.ts),
                str(f.user_id),
                str(f.order_id),
                f.symbol,
                f.side,
                *(canonical_decimal(d) for d in (f.qty, f.price, f.commission, f.tax)),
            )
        )
        for f in fills
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


RATIO_LIMIT = 1e15  # derived ratios beyond this are meaningless (and exceed ratio()'s precision)


def _float_ratio(value: float) -> str | None:
    """A float statistic as a ratio string; None when not finite or beyond RATIO_LIMIT."""
    if not math.isfinite(value) or abs(value) >= RATIO_LIMIT:
        return None
    return ratio(Decimal(str(value)))


def _years(curve: Sequence[EquityPoint]) -> float | None:
    """The curve's span in years of 365.25 days; None under one day or two points."""
    if len(curve) < 2:
        return None
    span = curve[-1].ts - curve[0].ts
    return None if span < NS_PER_DAY else span / NS_PER_YEAR


def _annual_return(total: Decimal, years: float | None) -> str | None:
    if years is None:
        return None
    growth = float(1 + total)
    if growth <= 0:  # everything lost: no real root
        return ratio(Decimal(-1))
    try:
        return _float_ratio(math.pow(growth, 1 / years) - 1)
    except OverflowError:
        return None


def _sharpe(initial_cash: Decimal, curve: Sequence[EquityPoint], years: float | None) -> str | None:
    """Annualised mean / sample stdev of the per-point simple returns, risk-free 0."""
    if years is None:
        return None
    equities = [initial_cash, *(p.equity for p in curve)]
    if any(e <= 0 for e in equities[:-1]):
        return None  # a return on nothing is undefined
    returns = [b / a - 1 for a, b in pairwise(equities)]
    if len(returns) < 2:
        return None
    stdev = statistics.stdev(returns)
    if not stdev:
        return None
    per_year = len(returns) / years
    return _float_ratio(float(statistics.mean(returns)) / float(stdev) * math.sqrt(per_year))


def metrics(
    initial_cash: Decimal, curve: Sequence[EquityPoint], fills: Sequence[FillRecord]
) -> dict[str, Any]:
    """The run's figures, JSON-ready: money via `money`, ratios via `ratio`, counts as int.

    Returns are relative to initial_cash (0 when it is 0). `annual_return` and `sharpe` are
    None when the curve spans under a day or has under two points; `sharpe` also when there
    are under two returns, their stdev is 0, or a base equity is not positive. Sharpe's
    periods per year are (number of returns, counted from initial_cash) / years of the curve.
    `turnover` is traded value / mean curve equity (initial_cash for an empty curve), None
    when that is not positive. `win_rate` is None without round trips.
    """
    final = curve[-1].equity if curve else initial_cash
    total = final / initial_cash - 1 if initial_cash else ZERO
    years = _years(curve)
    trips = round_trips(fills)
    wins = sum(1 for t in trips if t.pnl > 0)
    commission = sum((f.commission for f in fills), ZERO)
    tax = sum((f.tax for f in fills), ZERO)
    traded = sum((f.qty * f.price for f in fills), ZERO)
    base = sum((p.equity for p in curve), ZERO) / len(curve) if curve else initial_cash
    return {
        "initial_cash": money(initial_cash),
        "final_equity": money(final),
        "total_return": ratio(total),
        "annual_return": _annual_return(total, years),
        "max_drawdown": ratio(max_drawdown([initial_cash, *(p.equity for p in curve)])),
        "sharpe": _sharpe(initial_cash, curve, years),
        "trades": len(fills),
        "round_trips": len(trips),
        "win_rate": ratio(Decimal(wins) / len(trips)) if trips else None,
        "fees": money(commission + tax),
        "commission": money(commission),
        "tax": money(tax),
        "turnover": ratio(traded / base) if base > 0 else None,
    }


def fill_rows(fills: Iterable[FillRecord]) -> list[dict[str, Any]]:
    """The report's fills, JSON-ready: decimals as strings, time as ISO 8601 UTC."""
    return [
        {
            "time": iso_time(f.ts),
            "user_id": f.user_id,
            "order_id": f.order_id,
            "symbol": f.symbol,
            "side": f.side,
            "qty": number(f.qty),
            "price": number(f.price),
            "value": money(f.qty * f.price),
            "commission": money(f.commission),
            "tax": money(f.tax),
        }
        for f in fills
    ]


def round_trip_rows(trips: Iterable[RoundTrip]) -> list[dict[str, Any]]:
    """The report's round trips, JSON-ready: money as strings, times as ISO 8601 UTC."""
    return [
        {
            "user_id": t.user_id,
            "symbol": t.symbol,
            "side": t.side,
            "opened": iso_time(t.opened),
            "closed": iso_time(t.closed),
            "fills": t.fills,
            "bought": money(t.bought),
            "sold": money(t.sold),
            "fees": money(t.fees),
            "pnl": money(t.pnl),
        }
        for t in trips
    ]


def equity_png(curve: Sequence[EquityPoint], path: Path, title: str, zone: str = "UTC") -> None:
    """Write a ~1000x500 PNG: equity over time above, drawdown from the running peak below.

    Dates are shown in `zone` (an IANA name). Uses a private Agg canvas (no pyplot, no global
    state) and writes no Software/creation metadata. An empty curve gives a "no data" chart.
    """
    from matplotlib import dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter, StrMethodFormatter

    tz = ZoneInfo(zone)
    fig = Figure(figsize=(10, 5), dpi=100)
    FigureCanvasAgg(fig)
    # fixed margins: a layout engine would draw the figure twice
    fig.subplots_adjust(left=0.09, right=0.98, top=0.93, bottom=0.08, hspace=0.08)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    top.set_title(title)
    for axes, label in ((top, "equity"), (bottom, "drawdown")):  # inside: tick labels vary
        axes.text(0.005, 0.96, label, transform=axes.transAxes, va="top", fontsize=9, alpha=0.7)
    bottom.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    if curve:
        times = [datetime.fromtimestamp(p.ts / 1e9, tz=tz) for p in curve]
        equities = [float(p.equity) for p in curve]
        peak = -math.inf
        drawdowns: list[float] = []
        for e in equities:
            peak = max(peak, e)
            drawdowns.append((e - peak) / peak if peak > 0 else 0.0)
        places = 0 if max(map(abs, equities)) >= 1000 else 2
        top.yaxis.set_major_formatter(StrMethodFormatter(f"{{x:,.{places}f}}"))
        top.plot(
            times, equities, color="tab:blue", linewidth=1.2, marker="." if len(curve) < 3 else ""
        )
        bottom.fill_between(times, drawdowns, 0.0, color="tab:red", alpha=0.35, linewidth=0)
        bottom.plot(times, drawdowns, color="tab:red", linewidth=0.8)
        locator = mdates.AutoDateLocator(tz=tz)
        bottom.xaxis.set_major_locator(locator)
        bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=tz))
    else:
        top.text(0.5, 0.5, "no data", transform=top.transAxes, ha="center", va="center")
    top.grid(True, alpha=0.3)
    bottom.grid(True, alpha=0.3)
    fig.savefig(path, format="png", metadata={"Software": None})


_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #eee; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f5f5f5; }
img { max-width: 100%; border: 1px solid #ddd; }
.muted { color: #777; }
"""

_CORE_KEYS = {"run_id", "name", "metrics", "fills", "round_trips"}


def _e(value: Any) -> str:
    """A cell's text, escaped: None as an em dash."""
    return "—" if value is None else html.escape(str(value), quote=True)


def _cell(value: Any) -> str:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(value, str):
        try:
            numeric = Decimal(value).is_finite()
        except ArithmeticError:
            numeric = False
    return f'<td class="n">{_e(value)}</td>' if numeric else f"<td>{_e(value)}</td>"


def _pairs_table(pairs: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th>{_cell(v)}</tr>" for k, v in pairs.items())
    return f"<table>{rows}</table>"


def _rows_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(row.get(c)) for c in columns) + "</tr>\n" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>"


_FILL_COLUMNS = (
    "time",
    "user_id",
    "order_id",
    "symbol",
    "side",
    "qty",
    "price",
    "value",
    "commission",
    "tax",
)
_TRIP_COLUMNS = (
    "user_id",
    "symbol",
    "side",
    "opened",
    "closed",
    "fills",
    "bought",
    "sold",
    "fees",
    "pnl",
)


def report_html(report: Mapping[str, Any], png_name: str | None, path: Path) -> None:
    """Write one self-contained HTML page (inline CSS, no scripts, no external URLs).

    `report` holds `run_id`, `name`, `metrics` (from `metrics()` plus anything the caller
    adds), `fills` (from `fill_rows`) and `round_trips` (from `round_trip_rows`); any other
    scalar top-level entries are listed in a "Run" table. `png_name` is the chart's file name
    relative to the page (None: no chart). Every string is HTML-escaped.
    """
    run_id, name = report.get("run_id"), report.get("name")
    title = f"Backtest {name} (run {run_id})"
    extra = {
        k: v
        for k, v in report.items()
        if k not in _CORE_KEYS and (v is None or isinstance(v, str | int | float | bool))
    }
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
    ]
    if extra:
        parts += ["<h2>Run</h2>", _pairs_table(extra)]
    parts += ["<h2>Metrics</h2>", _pairs_table(report.get("metrics") or {})]
    if png_name is not None:
        alt = f"Equity curve and drawdown of {title}"
        parts += ["<h2>Equity</h2>", f'<img src="{_e(png_name)}" alt="{_e(alt)}">']
    trips = report.get("round_trips") or []
    fills = report.get("fills") or []
    parts += [
        f"<h2>Round trips ({len(trips)})</h2>",
        _rows_table(trips, _TRIP_COLUMNS),
        f"<h2>Fills ({len(fills)})</h2>",
        _rows_table(fills, _FILL_COLUMNS),
        "</body></html>",
        "",
    ]
    path.write_text("\n".join(parts), encoding="utf-8")
