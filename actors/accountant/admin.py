"""Users and tokens in the accountant: create and list users, rotate and revoke tokens, and
the state digest (docs/reliability.md). Admin requests need the admin token; a user may
rotate their own token. A user may be created with shares (deposits.py)."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from actors.accountant.accounts import Account, Accounts, User
from actors.accountant.core import Core, Message
from actors.accountant.deposits import DepositDesk, deposit_positions
from actors.accountant.digest import ledger_parts, summary
from actors.accountant.rows import Row, account_row, capital_row, operation_row, user_row
from actors.accountant.views import position_view
from protocol import topics
from protocol.errors import ErrorCode, RejectError
from protocol.tokens import hash_token, new_token, revoked_hash
from protocol.values import money, parse_decimal

log = logging.getLogger("accountant")

MAX_CASH = Decimal("10000000000")  # 1e10 per user: far beyond paper needs, far inside NUMERIC


class AdminDesk:
    """Handlers of user, token and digest requests."""

    def __init__(self, core: Core, deposits: DepositDesk) -> None:
        self.core = core
        self.accounts = core.accounts
        self.deposits = deposits
        self.handlers = {"book.digested": self.on_book_digested}
        self.user_handlers = {
            "user.create": self.on_create_user,
            "user.list": self.on_list_users,
            "token.rotate": self.on_rotate_token,
            "token.revoke": self.on_revoke_token,
            "state.digest": self.on_digest,
        }

    def on_create_user(self, msg: Message, _admin: User) -> None:
        cash = capital(msg["cash"])
        if msg["name"] in self.accounts.by_name:
            raise RejectError(ErrorCode.REQUEST_NAME_TAKEN, f"a user named {msg['name']!r} exists")
        shares = deposit_positions(self.core.market, msg.get("positions"))  # all, or none
        token = new_token()
        user_id = max(self.accounts.users, default=0) + 1
        user, rows = new_user_rows(
            user_id, msg["name"], token, cash, False, self.core.clock.now_ns()
        )
        account = _account(user.id, cash)
        self.accounts.add_user(user, account)
        self.core.work.rows += rows
        for symbol, qty in shares:
            self.deposits.deposit(user, symbol, qty)
        last, sellable = self.core.last_prices, self.accounts.sellable
        created = {
            "type": "user.created",
            "user_id": user.id,
            "name": user.name,
            "token": token,
            "cash": money(cash),
            "deposited_value": money(account.deposited_value),
            "positions": [
                position_view(p, last.get(p.symbol), sellable(p))
                for p in self.accounts.user_positions(user.id)
            ],
        }
        self.core.reply(msg, created)
        log.info("user.created id=%d name=%s", user.id, user.name)

    def on_list_users(self, msg: Message, _admin: User) -> None:
        users = []
        for user in sorted(self.accounts.users.values(), key=lambda u: u.id):
            view = self.core.current_account(user)
            users.append(
                {
                    "user_id": user.id,
                    "name": user.name,
                    "is_admin": user.is_admin,
                    "initial_cash": view["initial_cash"],
                    "deposited_value": view["deposited_value"],
                    "cash": view["cash"],
                    "equity": view["equity"],
                }
            )
        self.core.reply(msg, {"type": "users", "users": users})

    def on_digest(self, msg: Message, _admin: User) -> None:
        """Ask the matcher for its books behind the orders already sent to it; the digest
        is made when they come back, behind the fills it sent before them."""
        request = {"rid": msg["rid"], "gw": msg["gw"]}
        self.core.send(topics.MATCHER, {"type": "book.digest", "request": request})

    def on_book_digested(self, msg: Message) -> None:
        parts = {**ledger_parts(self.accounts, self.core.user_seqs), "books": msg["books"]}
        self.core.reply(msg["request"], {"type": "state.digest", **summary(parts)})

    def on_rotate_token(self, msg: Message, caller: User) -> None:
        user = addressed_user(self.accounts, msg, caller, "token")
        token = new_token()
        self._replace_token(user, hash_token(token), "token.rotated")
        reply = {"type": "token.rotated", "user_id": user.id, "name": user.name, "token": token}
        self.core.reply(msg, reply)

    def on_revoke_token(self, msg: Message, admin: User) -> None:
        user = addressed_user(self.accounts, msg, admin, "token")
        if user.is_admin:
            raise RejectError(
                ErrorCode.REQUEST_INVALID, "the admin token can be rotated, not revoked"
            )
        self._replace_token(user, revoked_hash(), "token.revoked")
        self.core.reply(msg, {"type": "token.revoked", "user_id": user.id, "name": user.name})

    def _replace_token(self, user: User, token_hash: str, kind: str) -> None:
        """Store the new hash and end the user's sessions at every gateway once it is
        committed: a session signed in with the old token must not keep its events."""
        self.accounts.set_token_hash(user, token_hash)
        self.core.work.rows.append(user_row(user))
        self.core.system_entry(kind, f"user {user.id} {user.name}")
        self.core.end_sessions(user, kind)
        log.info("%s id=%d name=%s", kind, user.id, user.name)


def addressed_user(accounts: Accounts, msg: Message, caller: User, what: str) -> User:
    """The user a request about a token or an account is for: `user_id` (admin only),
    else the caller.

    Raises:
        RejectError: AUTH_NOT_ADMIN, REQUEST_NOT_FOUND.
    """
    user_id = msg.get("user_id")
    if user_id is None or user_id == caller.id:
        return caller
    if not caller.is_admin:
        raise RejectError(ErrorCode.AUTH_NOT_ADMIN, f"another user's {what} needs the admin token")
    user = accounts.users.get(user_id)
    if user is None:
        raise RejectError(ErrorCode.REQUEST_NOT_FOUND, f"no user {user_id}")
    return user


def capital(value: Any) -> Decimal:
    """A new user's starting cash: above 0, at most MAX_CASH, in whole cents.

    Raises:
        RejectError: REQUEST_INVALID_AMOUNT.
    """
    cash = parse_decimal(value, "cash", ErrorCode.REQUEST_INVALID_AMOUNT)
    if cash <= 0 or cash > MAX_CASH or cash != cash.quantize(Decimal("0.01")):
        raise RejectError(
            ErrorCode.REQUEST_INVALID_AMOUNT,
            f"cash must be above 0, at most {MAX_CASH}, in whole cents; got {value}",
        )
    return cash


def _account(user_id: int, cash: Decimal) -> Account:
    return Account(user_id=user_id, initial_cash=cash, cash=cash)


def new_user_rows(
    user_id: int, name: str, token: str, cash: Decimal, is_admin: bool, now_ns: int
) -> tuple[User, list[Row]]:
    """A user, and the ledger rows that create it with its account."""
    user = User(user_id, name, hash_token(token), is_admin, now_ns)
    rows = [
        user_row(user),
        account_row(_account(user_id, cash), now_ns),
        capital_row(user_id, 0, now_ns, cash),
        operation_row(now_ns, "user.created", detail=f"user {user_id} {name} with {cash}"),
    ]
    return user, rows
