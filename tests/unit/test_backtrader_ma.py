"""The backtrader half of the MA-cross benchmark: its fees and its fills on the sample."""

from __future__ import annotations

import csv
from collections import defaultdict
from decimal import Decimal

import pytest

pytest.importorskip("backtrader")

from bench.backtrader_ma import SAMPLE, AShareCommission, a_share_fees, run_backtrader


def test_fees_minimum_and_half_up() -> None:
    assert a_share_fees("buy", 1000, Decimal("4.00")) == (Decimal("5.00"), Decimal("0.00"))
    assert str(a_share_fees("buy", 1000, Decimal("4.00"))[0]) == "5.00"
    assert a_share_fees("sell", 1, Decimal("12345.67")) == (Decimal("12.35"), Decimal("12.35"))
    # 12,345.00 x 0.001 = 12.345: half-up, not half-even
    assert a_share_fees("sell", 500, 24.69) == (Decimal("12.35"), Decimal("12.35"))
    # backtrader sees commission + tax, a negative size being a sell
    assert AShareCommission().getcommission(-500, 24.69) == pytest.approx(24.70)
    assert AShareCommission().getcommission(500, 24.69) == pytest.approx(12.35)


def test_sample_fills_alternate_at_next_open() -> None:
    opens: dict[tuple[str, str], str] = {}
    with SAMPLE.open(newline="") as f:
        for row in csv.DictReader(f):
            opens[row["time"], row["symbol"]] = row["open"]
    result = run_backtrader(SAMPLE)

    assert result["bars"] == len(opens)
    assert result["seconds"] > 0 and result["bars_per_s"] > 0
    assert Decimal(result["final_value"]).as_tuple().exponent == -2
    trades = result["trades"]
    assert trades, "no fills on the sample"
    assert trades == sorted(trades, key=lambda t: (t["date"], t["symbol"]))
    sides: dict[str, list[str]] = defaultdict(list)
    for t in trades:
        sides[t["symbol"]].append(t["side"])
        assert t["qty"] == 1000
        assert t["price"] == opens[t["date"], t["symbol"]]
        commission, tax = a_share_fees(t["side"], t["qty"], Decimal(t["price"]))
        assert (t["commission"], t["tax"]) == (str(commission), str(tax))
    assert set(sides) == {"600000", "000001"}
    for seq in sides.values():
        assert seq == ["buy", "sell"] * (len(seq) // 2) + ["buy"] * (len(seq) % 2)
