"""Backtest reports: round trips, metrics, the fills digest, the PNG and the HTML page."""

from __future__ import annotations

import hashlib
import math
from decimal import Decimal as D
from pathlib import Path

from backtest.report import (
    EquityPoint,
    FillRecord,
    equity_png,
    fill_rows,
    fills_digest,
    metrics,
    report_html,
    round_trip_rows,
    round_trips,
)

DAY = 86_400 * 1_000_000_000
YEAR = 31_557_600 * 1_000_000_000  # 365.25 days


def fill(
    ts: int,
    side: str,
    qty: str,
    price: str,
    commission: str = "0",
    tax: str = "0",
    symbol: str = "AAPL",
    user_id: int = 1,
    order_id: int = 1,
) -> FillRecord:
    return FillRecord(ts, symbol, side, D(qty), D(price), D(commission), D(tax), order_id, user_id)


def curve(*equities: str, step: int = DAY) -> list[EquityPoint]:
    return [EquityPoint(i * step, D(e), D(e)) for i, e in enumerate(equities)]


PARTIAL = [
    fill(1, "buy", "10", "100", "1"),
    fill(2, "buy", "5", "110", "0.5"),
    fill(2, "buy", "2", "50", symbol="MSFT"),
    fill(3, "buy", "3", "100", user_id=2),  # user 2 never sells: still open
    fill(3, "sell", "8", "120", "0.8", "0.5"),
    fill(4, "sell", "7", "90", "0.7", "0.3"),
    fill(5, "sell", "2", "40", symbol="MSFT"),
]


def test_round_trips_from_partial_fills_skip_open_positions() -> None:
    aapl, msft = round_trips(PARTIAL)
    # bought 10*100 + 5*110, sold 8*120 + 7*90, fees 1 + 0.5 + 0.8 + 0.5 + 0.7 + 0.3
    assert (aapl.user_id, aapl.symbol, aapl.side, aapl.opened, aapl.closed) == (
        1, "AAPL", "long", 1, 4,
    )  # fmt: skip
    assert (aapl.bought, aapl.sold, aapl.fees, aapl.fills) == (D(1550), D(1590), D("3.8"), 4)
    assert aapl.pnl == D("36.2")
    assert (msft.symbol, msft.opened, msft.closed, msft.pnl) == ("MSFT", 2, 5, D(-20))


def test_a_reopened_position_and_a_flip_make_separate_trips() -> None:
    fills = [
        fill(1, "buy", "1", "100"),
        fill(2, "sell", "1", "101"),
        fill(3, "buy", "10", "10"),
        fill(4, "sell", "15", "12", "1.5"),  # closes 10 (fee 1.0), opens a short of 5 (fee 0.5)
        fill(5, "buy", "5", "11"),
        fill(6, "buy", "4", "11"),  # open at the end
    ]
    first, long_, short = round_trips(fills)
    assert first.pnl == D(1)
    assert (long_.bought, long_.sold, long_.fees, long_.pnl) == (D(100), D(120), D("1.0"), D(19))
    assert (short.side, short.opened, short.closed) == ("short", 4, 5)
    assert (short.sold, short.bought, short.fees, short.pnl) == (D(60), D(55), D("0.5"), D("4.5"))


def test_metrics_returns_drawdown_fees_and_win_rate() -> None:
    m = metrics(D(1000), curve("1100", "880", "990", "1210"), PARTIAL)
    assert m["initial_cash"] == "1000.00"
    assert m["final_equity"] == "1210.00"
    assert m["total_return"] == "0.210000"
    assert m["max_drawdown"] == "0.200000"  # 1100 -> 880
    assert (m["trades"], m["round_trips"], m["win_rate"]) == (7, 2, "0.500000")
    assert (m["commission"], m["tax"], m["fees"]) == ("3.00", "0.80", "3.80")
    assert "bars" not in m and "run_id" not in m


def test_annual_return_over_exactly_one_year_is_the_total_return() -> None:
    m = metrics(D(1000), curve("1000", "1210", step=YEAR), [])
    assert m["annual_return"] == m["total_return"] == "0.210000"
    short = metrics(D(1000), curve("1000", "1210", step=DAY - 1), [])
    assert short["annual_return"] is None and short["sharpe"] is None
    assert metrics(D(1000), curve("1210"), [])["annual_return"] is None
    assert metrics(D(1000), curve("1000", "1210"), [])["annual_return"] is None  # 1.21**365.25
    assert metrics(D(1000), curve("1000", "0", step=YEAR), [])["annual_return"] == "-1.000000"


def test_sharpe_none_for_constant_equity_and_known_value() -> None:
    assert metrics(D(1000), curve("1000", "1000", "1000"), [])["sharpe"] is None
    # returns 0.1, -0.1, 0.1: mean 1/30, sample stdev 0.2/sqrt(3); 3 returns over 2 days
    sharpe = metrics(D(100), curve("110", "99", "108.9"), [])["sharpe"]
    expected = math.sqrt(3) / 6 * math.sqrt(3 / (2 / 365.25))
    assert abs(float(sharpe) - expected) < 1e-5


def test_turnover_is_traded_value_over_mean_equity() -> None:
    fills = [fill(1, "buy", "10", "50"), fill(2, "sell", "10", "60")]  # 500 + 600 traded
    assert metrics(D(1000), curve("900", "1100"), fills)["turnover"] == "1.100000"
    empty = metrics(D(2000), [], fills)
    assert (empty["turnover"], empty["final_equity"], empty["total_return"]) == (
        "0.550000", "2000.00", "0.000000",
    )  # fmt: skip
    assert (empty["round_trips"], empty["win_rate"], empty["sharpe"]) == (1, "1.000000", None)


def test_digest_is_canonical_stable_and_price_sensitive() -> None:
    one = FillRecord(1, "AAPL", "buy", D("10"), D("10.50"), D("1.00"), D("0"), 42, 7)
    text = "1,7,42,AAPL,buy,10,10.5,1,0"
    assert fills_digest([one]) == hashlib.sha256(text.encode()).hexdigest()
    same = FillRecord(1, "AAPL", "buy", D("1E+1"), D("10.5"), D("1"), D("-0.00"), 42, 7)
    assert fills_digest([same]) == fills_digest([one])
    assert fills_digest(PARTIAL) == fills_digest(list(PARTIAL))
    changed = [*PARTIAL[:4], fill(3, "sell", "8", "120.01", "0.8", "0.5"), *PARTIAL[5:]]
    assert fills_digest(changed) != fills_digest(PARTIAL)
    assert fills_digest([]) == hashlib.sha256(b"").hexdigest()


def test_equity_png_writes_a_png(tmp_path: Path) -> None:
    points = curve("1000", "1100", "880", "990", "1210")
    for name, data in (("run.png", points), ("one.png", curve("5"))):
        equity_png(data, tmp_path / name, "run <1>", zone="America/New_York")
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_html_escapes_and_lists_every_fill(tmp_path: Path) -> None:
    rows = fill_rows(PARTIAL)
    report = {
        "run_id": 3,
        "name": "<script>alert(1)</script>",
        "metrics": {**metrics(D(1000), curve("1100", "1210"), PARTIAL), "bars": 2},
        "fills": rows,
        "round_trips": round_trip_rows(round_trips(PARTIAL)),
    }
    page = tmp_path / "report.html"
    report_html(report, "run 3.png", page)
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert '<img src="run 3.png" alt="' in text
    assert "http://" not in text and "https://" not in text
    body = text.split("<h2>Fills", 1)[1]
    assert body.count("<tr>") == len(PARTIAL) + 1  # header + one row per fill
    for row in rows:
        cells = f"<td>{row['time']}</td>" + "".join(
            f'<td class="n">{row[k]}</td>' for k in ("user_id", "order_id")
        )
        assert cells + f"<td>{row['symbol']}</td><td>{row['side']}</td>" in body
        assert f'<td class="n">{row["price"]}</td>' in body
    assert rows[4] == {
        "time": "1970-01-01T00:00:00.000000Z",
        "user_id": 1,
        "order_id": 1,
        "symbol": "AAPL",
        "side": "sell",
        "qty": "8",
        "price": "120",
        "value": "960.00",
        "commission": "0.80",
        "tax": "0.50",
    }
    no_chart = tmp_path / "plain.html"
    report_html(report, None, no_chart)
    assert "<img" not in no_chart.read_text(encoding="utf-8")
