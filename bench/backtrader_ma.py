"""The backtrader half of the moving-average-cross benchmark: same bars, strategy and costs.

    .venv/bin/python -m bench.backtrader_ma                  # the shipped sample
    .venv/bin/python -m bench.backtrader_ma --data a.csv --fast 10 --slow 30

Per symbol, independently: at each bar's close, once both simple moving averages and their
previous values exist, a cross up (fast > slow now, fast <= slow before) with no position
and no pending order buys `qty` shares at market; a cross down (fast < slow now,
fast >= slow before) with a position and no pending order sells all of it at market.
Market orders fill at the next bar's open of that symbol (backtrader's default: no
cheat-on-close/open, no slippage). An order placed at the last bar's close never fills.

Costs per order, A-share rules: commission = max(half-up(value x rate, 0.01), minimum) on
both sides, stamp tax = half-up(value x rate, 0.01) on sells, value = qty x price.
`run_backtrader` is imported by the comparison with our server; `main` is for a human.
"""

from __future__ import annotations

import argparse
import math
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import backtrader as bt
import pandas as pd

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "data" / "sample_daily.csv"
CENT = Decimal("0.01")


def _cents(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=ROUND_HALF_UP)


def _dec(x: float | int | Decimal) -> Decimal:
    """A float from backtrader as the decimal it prints as (12.71, not 12.7099999...)."""
    return x if isinstance(x, Decimal) else Decimal(repr(float(x)))


def a_share_fees(
    side: str,
    qty: float | int | Decimal,
    price: float | int | Decimal,
    *,
    commission_rate: Decimal = Decimal("0.001"),
    min_commission: Decimal = Decimal("5"),
    stamp_tax_rate: Decimal = Decimal("0.001"),
) -> tuple[Decimal, Decimal]:
    """(commission, stamp tax) of one order of `qty` at `price`; tax on sells only."""
    value = abs(_dec(qty)) * _dec(price)
    commission = _cents(max(_cents(value * commission_rate), min_commission))
    tax = _cents(value * stamp_tax_rate if side == "sell" else Decimal(0))
    return commission, tax


class AShareCommission(bt.CommInfoBase):
    """Commission plus stamp tax as one backtrader commission; a negative size is a sell."""

    params = (
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_FIXED),
        ("commission_rate", Decimal("0.001")),
        ("min_commission", Decimal("5")),
        ("stamp_tax_rate", Decimal("0.001")),
    )

    def _getcommission(self, size: float, price: float, pseudoexec: bool) -> float:
        if not size:
            return 0.0
        commission, tax = a_share_fees(
            "sell" if size < 0 else "buy",
            size,
            price,
            commission_rate=self.p.commission_rate,
            min_commission=self.p.min_commission,
            stamp_tax_rate=self.p.stamp_tax_rate,
        )
        return float(commission + tax)


class MaCross(bt.Strategy):
    """Moving-average cross per data feed; fills recorded in `self.fills`."""

    params = (
        ("fast", 5),
        ("slow", 20),
        ("qty", 1000),
        ("commission_rate", Decimal("0.001")),
        ("min_commission", Decimal("5")),
        ("stamp_tax_rate", Decimal("0.001")),
    )

    def __init__(self) -> None:
        self.fills: list[dict[str, Any]] = []
        sma = bt.indicators.SMA
        self.smas = {
            d._name: (sma(d.close, period=self.p.fast), sma(d.close, period=self.p.slow))
            for d in self.datas
        }
        self.pending: dict[str, bt.Order | None] = {d._name: None for d in self.datas}
        self.seen: dict[str, int] = {d._name: 0 for d in self.datas}
        self.need = max(self.p.fast, self.p.slow) + 1  # bars for both SMAs and their previous

    def next(self) -> None:
        for d in self.datas:
            name = d._name
            if len(d) == self.seen[name]:
                continue  # no new bar for this symbol at this time
            self.seen[name] = len(d)
            if len(d) < self.need:
                continue
            fast, slow = self.smas[name]
            f0, s0, f1, s1 = fast[0], slow[0], fast[-1], slow[-1]
            if any(math.isnan(v) for v in (f0, s0, f1, s1)):
                continue
            if self.pending[name] is not None:
                continue
            size = self.getposition(d).size
            if f0 > s0 and f1 <= s1 and size == 0:
                self.pending[name] = self.buy(data=d, size=self.p.qty)
            elif f0 < s0 and f1 >= s1 and size > 0:
                self.pending[name] = self.sell(data=d, size=size)

    def notify_order(self, order: bt.Order) -> None:
        if order.status in (order.Submitted, order.Accepted):
            return
        name = order.data._name
        self.pending[name] = None
        if order.status != order.Completed:
            return
        side = "buy" if order.isbuy() else "sell"
        qty = abs(int(order.executed.size))
        price = _dec(order.executed.price)
        commission, tax = a_share_fees(
            side,
            qty,
            price,
            commission_rate=self.p.commission_rate,
            min_commission=self.p.min_commission,
            stamp_tax_rate=self.p.stamp_tax_rate,
        )
        self.fills.append(
            {
                "date": bt.num2date(order.executed.dt).date().isoformat(),
                "symbol": name,
                "side": side,
                "qty": qty,
                "price": str(_cents(price)),
                "commission": str(commission),
                "tax": str(tax),
            }
        )


def load_frames(csv_path: Path) -> dict[str, pd.DataFrame]:
    """One OHLCV frame per symbol, indexed by bar time, in time order."""
    df = pd.read_csv(csv_path, dtype={"symbol": str})
    df["time"] = pd.to_datetime(df["time"])
    cols = ["open", "high", "low", "close", "volume"]
    return {
        str(symbol): group.set_index("time")[cols].sort_index().astype(float)
        for symbol, group in df.groupby("symbol", sort=True)
    }


def run_backtrader(
    csv_path: Path,
    *,
    fast: int = 5,
    slow: int = 20,
    qty: int = 1000,
    cash: Decimal = Decimal("1000000"),
    commission_rate: Decimal = Decimal("0.001"),
    min_commission: Decimal = Decimal("5"),
    stamp_tax_rate: Decimal = Decimal("0.001"),
) -> dict[str, Any]:
    """Backtest the MA cross on `csv_path` with backtrader.

    Returns {"bars": bars fed (all symbols), "seconds": wall time of cerebro.run() only,
    "bars_per_s", "trades": fill records sorted by date then symbol, "final_value": "x.yy"}.
    """
    frames = load_frames(csv_path)
    cerebro = bt.Cerebro(stdstats=False)
    for symbol, frame in frames.items():
        cerebro.adddata(bt.feeds.PandasData(dataname=frame, openinterest=None), name=symbol)
    fees = {
        "commission_rate": commission_rate,
        "min_commission": min_commission,
        "stamp_tax_rate": stamp_tax_rate,
    }
    cerebro.addstrategy(MaCross, fast=fast, slow=slow, qty=qty, **fees)
    cerebro.broker.setcash(float(cash))
    cerebro.broker.set_coc(False)
    cerebro.broker.set_coo(False)
    cerebro.broker.addcommissioninfo(AShareCommission(**fees))

    start = time.perf_counter()
    strategy = cerebro.run()[0]
    seconds = time.perf_counter() - start

    bars = sum(len(f) for f in frames.values())
    fills = sorted(strategy.fills, key=lambda r: (r["date"], r["symbol"]))
    return {
        "bars": bars,
        "seconds": seconds,
        "bars_per_s": bars / seconds if seconds > 0 else math.inf,
        "trades": fills,
        "final_value": str(_cents(_dec(cerebro.broker.getvalue()))),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=SAMPLE, help="bar file (time,symbol,OHLCV)")
    p.add_argument("--fast", type=int, default=5)
    p.add_argument("--slow", type=int, default=20)
    p.add_argument("--qty", type=int, default=1000)
    p.add_argument("--show", type=int, default=6, help="fills to print")
    args = p.parse_args()
    r = run_backtrader(args.data, fast=args.fast, slow=args.slow, qty=args.qty)
    print(f"data         {args.data}")
    print(f"bars         {r['bars']}")
    print(f"seconds      {r['seconds']:.4f}")
    print(f"bars/s       {r['bars_per_s']:,.0f}")
    print(f"fills        {len(r['trades'])}")
    print(f"final value  {r['final_value']}")
    for t in r["trades"][: args.show]:
        print(
            f"  {t['date']} {t['symbol']} {t['side']:4} {t['qty']:>6} @ {t['price']:>8}"
            f"  commission {t['commission']:>6}  tax {t['tax']:>6}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
