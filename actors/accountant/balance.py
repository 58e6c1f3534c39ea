"""Whether the ledger's books balance, from its tables alone (docs/reliability.md 3).

Per account, over its whole life: cash + every fee + everything bought - everything sold
= the capital put in (the sum of its `capital` entries: the starting cash, and each
reset's change); per position: its shares = bought - sold - written off by resets +
deposited by the admin. And within the account's current epoch: cash + commission_paid +
tax_paid + bought_value - sold_value = initial_cash (deposits leave the cash alone), and
deposited_value = the value of the epoch's `deposit` entries. Read it with no accountant
writing (or its tables caught up: journal.ledger_caught_up).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from actors.accountant.ledger import AccountRow, CapitalRow, FillRow, PositionRow

ZERO = Decimal(0)


def imbalances(engine: Engine) -> list[str]:
    """Every way the ledger does not balance, one line each; empty when it does."""
    capital: dict[int, Decimal] = defaultdict(Decimal)
    written_off: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    deposited: dict[tuple[int, str], Decimal] = defaultdict(Decimal)  # shares
    deposited_value: dict[tuple[int, int], Decimal] = defaultdict(Decimal)  # user, epoch ->
    spent: dict[int, Decimal] = defaultdict(Decimal)  # bought + fees - sold, per user
    shares: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    problems = []
    with Session(engine) as session:
        entries = select(
            CapitalRow.user_id,
            CapitalRow.epoch,
            CapitalRow.kind,
            CapitalRow.amount,
            CapitalRow.symbol,
            CapitalRow.qty,
        )
        for user_id, epoch, kind, amount, symbol, qty in session.execute(entries):
            if kind == "capital":
                capital[user_id] += amount
            elif kind == "deposit":
                deposited[(user_id, symbol)] += qty
                deposited_value[(user_id, epoch)] += amount
            else:
                written_off[(user_id, symbol)] += qty
        fills = select(
            FillRow.user_id,
            FillRow.symbol,
            FillRow.side,
            FillRow.qty,
            FillRow.value,
            FillRow.commission,
            FillRow.tax,
        )
        for user_id, symbol, side, qty, value, commission, tax in session.execute(fills):
            sign = 1 if side == "buy" else -1
            spent[user_id] += sign * value + commission + tax
            shares[(user_id, symbol)] += sign * qty
        for a in session.scalars(select(AccountRow)):
            if a.cash + spent[a.user_id] != capital[a.user_id]:
                problems.append(
                    f"user {a.user_id}: cash {a.cash} + fees + bought - sold = "
                    f"{a.cash + spent[a.user_id]}, capital put in {capital[a.user_id]}"
                )
            epoch = a.cash + a.commission_paid + a.tax_paid + a.bought_value - a.sold_value
            if epoch != a.initial_cash:
                problems.append(
                    f"user {a.user_id}: epoch {a.epoch} adds up to {epoch}, "
                    f"initial_cash {a.initial_cash}"
                )
            if a.deposited_value != deposited_value[(a.user_id, a.epoch)]:
                problems.append(
                    f"user {a.user_id}: deposited_value {a.deposited_value}, epoch {a.epoch}'s "
                    f"deposits {deposited_value[(a.user_id, a.epoch)]}"
                )
        held = {(p.user_id, p.symbol): p.qty for p in session.scalars(select(PositionRow))}
    for key in sorted(set(held) | set(shares) | set(written_off) | set(deposited)):
        expected = shares[key] - written_off[key] + deposited[key]
        if held.get(key, ZERO) != expected:
            problems.append(
                f"user {key[0]} {key[1]}: holds {held.get(key, ZERO)}, "
                f"bought - sold - written off + deposited = {expected}"
            )
    return problems
