"""A seeded universe of daily bars for the backtest benchmark: N symbols x Y years.

    .venv/bin/python -m bench.universe --symbols 50 --years 5 --out universe.csv

Each symbol is a random walk on the Shanghai exchange's trading days (XSHG, from
exchange-calendars) from 2019-01-02, in whole cents, with daily moves of about 2% that
stay inside the ±10% daily limit; open, high, low and close are consistent and on the
tick. The symbols (`U00001`...) are not in the server's symbol table: a backtest takes
them from the data (docs/backtest.md). The same seed writes the same file.
"""

from __future__ import annotations

import argparse
import random
import warnings
from datetime import date
from pathlib import Path

START = date(2019, 1, 2)


def trading_days(years: int) -> list[date]:
    import exchange_calendars

    warnings.filterwarnings("ignore", message=r".*values returning an ndarray")
    calendar = exchange_calendars.get_calendar("XSHG", start="2000-01-01")
    end = date(START.year + years - 1, 12, 31)
    sessions = calendar.sessions_in_range(START.isoformat(), end.isoformat())
    return [s.date() for s in sessions]


def write_universe(path: Path, symbols: int = 50, years: int = 5, seed: int = 20170101) -> int:
    """Write the file; returns how many bars it holds."""
    rng = random.Random(seed)
    days = trading_days(years)
    walks = [rng.randint(300, 5000) for _ in range(symbols)]  # cents: 3.00 to 50.00
    names = [f"U{n + 1:05d}" for n in range(symbols)]
    rows = ["time,symbol,open,high,low,close,volume"]
    for day in days:
        for n, name in enumerate(names):
            prev = walks[n]
            limit = prev // 10  # the close stays within ±10% of the previous close
            close = max(1, prev + max(-limit, min(limit, round(rng.gauss(0, 0.02) * prev))))
            open_ = max(1, prev + max(-limit, min(limit, round(rng.gauss(0, 0.006) * prev))))
            high = min(prev + limit, max(open_, close) + abs(round(rng.gauss(0, 0.006) * prev)))
            low = max(prev - limit, min(open_, close) - abs(round(rng.gauss(0, 0.006) * prev)))
            low = max(1, low)
            volume = rng.randint(10, 5000) * 100
            rows.append(
                f"{day.isoformat()},{name},{_yuan(open_)},{_yuan(high)},{_yuan(low)},"
                f"{_yuan(close)},{volume}"
            )
            walks[n] = close
    path.write_text("\n".join(rows) + "\n")
    return len(rows) - 1


def _yuan(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--symbols", type=int, default=50)
    p.add_argument("--years", type=int, default=5)
    p.add_argument("--seed", type=int, default=20170101)
    p.add_argument("--out", type=Path, default=Path("universe.csv"))
    args = p.parse_args()
    bars = write_universe(args.out, args.symbols, args.years, args.seed)
    print(f"wrote {bars} bars of {args.symbols} symbols to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
