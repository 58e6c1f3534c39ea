"""Profit statistics from an equity curve and a user's fills; pure functions over Decimals."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from decimal import Decimal

from protocol.values import iso_time, money, ratio

ZERO = Decimal(0)


def max_drawdown(equities: Sequence[Decimal]) -> Decimal:
    """Largest fall from a running peak, as a fraction of that peak (0.25 = 25%)."""
    peak = ZERO
    worst = ZERO
    for equity in equities:
        peak = max(peak, equity)
        if peak > 0:
            worst = max(worst, (peak - equity) / peak)
    return worst


def win_rate(sell_pnls: Sequence[Decimal]) -> Decimal | None:
    """Share of sell fills that realised a profit; None before the first sell."""
    if not sell_pnls:
        return None
    return Decimal(sum(1 for p in sell_pnls if p > 0)) / len(sell_pnls)


def summary(
    initial_cash: Decimal,
    curve: Sequence[tuple[int, Decimal, Decimal]],
    sell_pnls: Sequence[Decimal],
    fills: int,
    commission_paid: Decimal,
    tax_paid: Decimal,
    realized_pnl: Decimal,
    unrealized_pnl: Decimal,
    deposits: Sequence[tuple[int, Decimal]] = (),
) -> dict[str, object]:
    """The `stats` reply body. `curve` holds (ts_ns, cash, equity), oldest first, ending now;
    `deposits` (ts_ns, value) the shares deposited in the epoch.

    Returns are relative to the capital put in: initial_cash and, from its time, each
    deposit's value (a deposit is not a profit); an account started with none has
    returns of 0. The drawdown starts from the capital put in before the first point.
    """
    deposits = sorted(deposits)
    times = [at for at, _ in deposits]
    bases = [initial_cash]  # bases[n]: the capital once the first n deposits are in
    for _, value in deposits:
        bases.append(bases[-1] + value)
    deposited = bases[-1] - initial_cash

    def base(ts: int) -> Decimal:
        return bases[bisect_right(times, ts)]

    def growth(value: Decimal, capital: Decimal) -> str:
        return ratio(value / capital - 1 if capital else ZERO)

    start = base(curve[0][0]) if curve else initial_cash + deposited
    equities = [start, *(e for _, _, e in curve)]
    equity = equities[-1]
    rate = win_rate(sell_pnls)
    return {
        "initial_cash": money(initial_cash),
        "deposited_value": money(deposited),
        "equity": money(equity),
        "total_return": growth(equity, initial_cash + deposited),
        "max_drawdown": ratio(max_drawdown(equities)),
        "realized_pnl": money(realized_pnl),
        "unrealized_pnl": money(unrealized_pnl),
        "commission_paid": money(commission_paid),
        "tax_paid": money(tax_paid),
        "fills": fills,
        "sells": len(sell_pnls),
        "win_rate": None if rate is None else ratio(rate),
        "equity_curve": [
            {
                "time": iso_time(ts),
                "cash": money(cash),
                "equity": money(eq),
                "return": growth(eq, base(ts)),
            }
            for ts, cash, eq in curve
        ],
    }
