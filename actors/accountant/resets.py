"""Account resets in the accountant (`account.reset`, docs/protocol.md 3.26).

A reset first cancels the user's open orders through the matcher, as cancels from the
user would: the matcher owns the books, and an order it may still fill must not outlive
the reset. Fills that come before the cancels are settled as usual. Once the user has no
open order left the reset itself happens, in one burst: the positions are written off at
cost, the cash becomes the new capital, the account starts its next epoch, and the
ledger gets the capital entry of the change, one write-off entry per position, the
account's row, an equity snapshot (the first point of the new curve) and the operation
log's `account.reset` entry; the reply and the `account.reset` event leave once that
burst is committed, as every acknowledgement does. Until then the user may place,
replace or reset nothing, nor get shares deposited (REQUEST_RESET_PENDING).

Shares the admin deposited (deposits.py) are written off with the rest, and the new epoch
starts with cash only (deposited_value 0): a reset does not bring them back; the admin
deposits them again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from actors.accountant.accounts import Order, User
from actors.accountant.admin import addressed_user, capital
from actors.accountant.core import Core, Message
from actors.accountant.orders import OrderDesk
from actors.accountant.rows import capital_row
from actors.accountant.views import reset_view
from protocol.errors import ErrorCode, RejectError
from protocol.values import money

log = logging.getLogger("accountant")


@dataclass
class PendingReset:
    """A reset waiting for the matcher to let the user's orders go."""

    request: Message
    capital: Decimal
    canceling: list[Order] = field(default_factory=list)  # the cancels this reset sent


class ResetDesk:
    """The handler of account.reset, and the resets waiting on their cancels."""

    def __init__(self, core: Core, orders: OrderDesk) -> None:
        self.core = core
        self.accounts = core.accounts
        self.orders = orders
        self.pending: dict[int, PendingReset] = {}  # user id ->
        orders.resetting = self.pending
        self.user_handlers = {"account.reset": self.on_reset}

    def on_reset(self, msg: Message, caller: User) -> None:
        user = addressed_user(self.accounts, msg, caller, "account")
        if user.id in self.pending:
            raise RejectError(
                ErrorCode.REQUEST_RESET_PENDING, f"the account of user {user.id} is being reset"
            )
        given = msg.get("cash")
        amount = self.accounts.accounts[user.id].initial_cash if given is None else capital(given)
        self.pending[user.id] = PendingReset(msg, amount)
        self.advance(user.id)

    def advance_all(self) -> None:
        """At the end of each burst: each pending reset cancels what it can, or happens."""
        for user_id in list(self.pending):
            self.advance(user_id)

    def advance(self, user_id: int) -> None:
        """Ask the matcher to cancel the user's open orders that can be canceled now (not
        an IOC/FOK it is deciding, nor one being canceled or replaced already: those end,
        or come back as an open order, by themselves); reset once none is left."""
        pending = self.pending[user_id]
        open_orders = [o for o in self.accounts.open_orders.values() if o.user_id == user_id]
        for order in open_orders:
            if not (order.pending or order.cancel_pending or order.replacement is not None):
                self.orders.send_cancel(order)
                pending.canceling.append(order)
        if not open_orders:
            del self.pending[user_id]
            self.reset(user_id, pending)

    def reset(self, user_id: int, pending: PendingReset) -> None:
        core = self.core
        now = core.clock.now_ns()
        done = self.accounts.reset(user_id, pending.capital, now)
        rows = core.work.rows
        rows.append(capital_row(user_id, done.epoch, now, done.change))
        rows += (
            capital_row(user_id, done.epoch, now, w.cost_basis, w.symbol, w.qty)
            for w in done.written_off
        )
        core.work.accounts[user_id] = now
        for symbol in self.accounts.positions.get(user_id, {}):
            core.store_position(user_id, symbol)
        core.take_snapshot(user_id, now, "reset")
        # an order may have filled before its cancel reached the matcher
        canceled = sorted(o.id for o in pending.canceling if o.status == "canceled")
        view = reset_view(done, canceled, now)
        written = ", ".join(f"{w.qty} {w.symbol}" for w in done.written_off) or "none"
        detail = (
            f"epoch {done.epoch}: capital {money(done.capital)} (cash was "
            f"{money(done.previous_cash)}, change {money(done.change)}); "
            f"written off: {written}"
        )
        core.account_event(user_id, "account.reset", now, detail, {"reset": view})
        account = core.current_account(self.accounts.users[user_id])
        core.reply(pending.request, {"type": "account.reset", "reset": view, "account": account})
        log.info("account.reset user=%d %s", user_id, detail)
