"""Share deposits in the accountant: the admin puts shares into an account as capital
(`account.deposit`, and `user.create` with `positions`; docs/protocol.md 3.28).

A deposit is valued at the symbol's reference price (its last trade, else its previous
close: Core.reference_price) to its profile's cash unit. That value is the shares' cost
basis, and it joins the account's `deposited_value`, which with `initial_cash` is the
capital its returns are measured against: shares put in are not a profit. The cash does
not change. The ledger gets a `capital` entry of kind `deposit`, the position's and the
account's rows and the user's `account.deposited` operation-log entry, in the burst's
journal entry; the reply and the event leave once it is committed, as every
acknowledgement does. A reset writes deposited shares off with the rest and does not
bring them back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from actors.accountant.accounts import Deposit, User
from actors.accountant.core import Core, Message
from actors.accountant.rows import capital_row
from actors.accountant.views import deposit_view, position_view
from actors.market.rules import Market
from protocol.errors import ErrorCode, RejectError
from protocol.values import money, number, parse_decimal

log = logging.getLogger("accountant")

MAX_DEPOSIT_SYMBOLS = 100  # in one user.create (protocol.messages refuses more, too)


def deposit_qty(market: Market, symbol: str, value: Any) -> Decimal:
    """The qty of a deposit of `symbol`: above 0, at most the trading max_qty, a multiple
    of the symbol's qty step.

    Raises:
        RejectError: REQUEST_UNKNOWN_SYMBOL, REQUEST_INVALID_QTY.
    """
    rules = market.rules(market.listed(symbol).symbol)
    qty = parse_decimal(value, "qty", ErrorCode.REQUEST_INVALID_QTY)
    if qty <= 0 or qty > rules.max_qty or qty % rules.qty_step:
        raise RejectError(
            ErrorCode.REQUEST_INVALID_QTY,
            f"qty of {symbol} must be above 0, at most {rules.max_qty} and a multiple of "
            f"{number(rules.qty_step)}; got {value}",
        )
    return qty.quantize(Decimal(1)) if qty == qty.to_integral_value() else qty.normalize()


def deposit_positions(
    market: Market, positions: Mapping[str, Any] | None
) -> list[tuple[str, Decimal]]:
    """The deposits of a user.create's `positions` (symbol -> qty), by symbol, each checked
    before any is made.

    Raises:
        RejectError: REQUEST_INVALID (more than MAX_DEPOSIT_SYMBOLS), and as deposit_qty.
    """
    if not positions:
        return []
    if len(positions) > MAX_DEPOSIT_SYMBOLS:
        raise RejectError(
            ErrorCode.REQUEST_INVALID,
            f"positions: at most {MAX_DEPOSIT_SYMBOLS} symbols, got {len(positions)}",
        )
    return [
        (symbol, deposit_qty(market, symbol, positions[symbol])) for symbol in sorted(positions)
    ]


def deposit_detail(done: Deposit) -> str:
    """The operation log's words for a deposit."""
    return (
        f"deposit of {number(done.qty)} {done.symbol} at {number(done.price)}, "
        f"value {money(done.value)}"
    )


class DepositDesk:
    """The handler of account.deposit, and the deposits of user.create (AdminDesk)."""

    def __init__(self, core: Core, resetting: Mapping[int, object]) -> None:
        self.core = core
        self.accounts = core.accounts
        self.resetting = resetting  # users whose account is being reset (resets.py)
        self.user_handlers = {"account.deposit": self.on_deposit}

    def on_deposit(self, msg: Message, _admin: User) -> None:
        user = self.accounts.users.get(msg["user_id"])
        if user is None:
            raise RejectError(ErrorCode.REQUEST_NOT_FOUND, f"no user {msg['user_id']}")
        qty = deposit_qty(self.core.market, msg["symbol"], msg["qty"])
        if user.id in self.resetting:  # the reset would write the shares off at once
            raise RejectError(
                ErrorCode.REQUEST_RESET_PENDING, f"the account of user {user.id} is being reset"
            )
        self.core.reply(
            msg, {"type": "account.deposited", **self.deposit(user, msg["symbol"], qty)}
        )

    def deposit(self, user: User, symbol: str, qty: Decimal) -> Message:
        """Put `qty` shares (checked) into the user's account at the reference price;
        returns what was done, with the position after it (the reply's fields)."""
        core = self.core
        now = core.clock.now_ns()
        done = self.accounts.deposit(user.id, symbol, qty, core.reference_price(symbol))
        core.work.rows.append(
            capital_row(user.id, done.epoch, now, done.value, symbol, qty, kind="deposit")
        )
        core.work.accounts[user.id] = now
        core.store_position(user.id, symbol)
        pos = self.accounts.position(user.id, symbol)
        held = position_view(pos, core.last_prices.get(symbol), self.accounts.sellable(pos))
        view = deposit_view(done, now)
        detail = deposit_detail(done)
        core.account_event(
            user.id,
            "account.deposited",
            now,
            detail,
            {"deposit": view, "position": held},
            symbol=symbol,
            qty=qty,
            price=done.price,
        )
        log.info("account.deposited user=%d %s", user.id, detail)
        return {**view, "position": held}
