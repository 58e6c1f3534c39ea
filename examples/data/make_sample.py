"""Write sample_daily.csv: two years of daily bars of two A-shares, for the demo and tests.

Deterministic (seeded): run it again and the file comes out byte for byte the same.
    .venv/bin/python -m examples.data.make_sample
"""

from __future__ import annotations

import csv
import random
from decimal import Decimal
from pathlib import Path

import exchange_calendars

SYMBOLS = {"600000": Decimal("7.20"), "000001": Decimal("12.80")}  # start prices
TICK = Decimal("0.01")
OUT = Path(__file__).with_name("sample_daily.csv")


def main() -> None:
    days = exchange_calendars.get_calendar("XSHG").sessions_in_range("2023-01-03", "2024-12-31")
    rows = []
    for symbol, start in SYMBOLS.items():
        rng = random.Random(f"sample:{symbol}")
        close = start
        for day in days:
            drift = Decimal(str(round(rng.gauss(0.0003, 0.018), 4)))
            open_ = _tick(close * (1 + Decimal(str(round(rng.gauss(0, 0.004), 4)))))
            new_close = _tick(close * (1 + drift))
            high = max(open_, new_close) + TICK * rng.randint(0, 12)
            low = max(TICK, min(open_, new_close) - TICK * rng.randint(0, 12))
            volume = rng.randint(200, 4000) * 1000
            rows.append((day.date().isoformat(), symbol, open_, high, low, new_close, volume))
            close = new_close
    rows.sort()
    with OUT.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("time", "symbol", "open", "high", "low", "close", "volume"))
        writer.writerows(rows)
    print(f"wrote {len(rows)} bars to {OUT}")


def _tick(price: Decimal) -> Decimal:
    return max(TICK, price.quantize(TICK))


if __name__ == "__main__":
    main()
