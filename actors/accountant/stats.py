"""Profit statistics from an equity curve and a user's fills; pure functions over Decimals."""

from __future__ import annotations

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
) -> dict[str, object]:
    """The `stats` reply body. `curve` holds (ts_ns, cash, equity), oldest first, ending now.

    Returns are relative to initial_cash; an account started with none has returns of 0.
    """
    equities = [initial_cash, *(e for _, _, e in curve)]
    equity = equities[-1]
    rate = win_rate(sell_pnls)

    def growth(value: Decimal) -> str:
        return ratio(value / initial_cash - 1 if initial_cash else ZERO)

    return {
        "initial_cash": money(initial_cash),
        "equity": money(equity),
        "total_return": growth(equity),
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
                "return": growth(eq),
            }
            for ts, cash, eq in curve
        ],
    }
