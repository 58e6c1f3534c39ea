"""A hash of the trading state: accounts, positions, open orders, books and the ledger's
counters, equal whenever the state is (`run.py digest`, docs/reliability.md).

Each part is a canonical JSON text (sorted, decimals as normalised strings) and its
SHA-256; the digest is the SHA-256 of the parts' hashes. The accountant gives the
ledger's parts, the matcher its books; offline, the books are what a matcher builds from
the ledger's open orders (`books_from_orders`), so a server at rest gives the same
digest online, stopped, and after a restart.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

from actors.accountant.accounts import Accounts
from actors.accountant.orders import OrderDesk
from actors.matcher.book import Book, FillModel
from actors.matcher.router import resting

PARTS = ("accounts", "positions", "orders", "books", "counters")


def _text(value: Decimal | None) -> str | None:
    """A decimal without trailing zeros, so 10.50 and 10.5 hash the same."""
    if value is None:
        return None
    normal = value.normalize()
    return format(normal, "f") if normal == normal.to_integral() else str(normal)


def ledger_parts(accounts: Accounts, user_seqs: dict[int, int]) -> dict[str, Any]:
    """The accountant's parts: every account, position and open order, and the counters
    that number orders, fills and each user's events."""
    return {
        "accounts": [
            [
                a.user_id,
                _text(a.initial_cash),
                _text(a.cash),
                _text(a.reserved_cash),
                _text(a.commission_paid),
                _text(a.tax_paid),
                _text(a.realized_pnl),
                a.epoch,
                _text(a.deposited_value),
            ]
            for a in sorted(accounts.accounts.values(), key=lambda a: a.user_id)
        ],
        "positions": [
            [
                p.user_id,
                p.symbol,
                _text(p.qty),
                _text(p.reserved_qty),
                _text(p.cost_basis),
                _text(p.realized_pnl),
                _text(p.locked_qty),
                p.locked_day,
            ]
            for user_id in sorted(accounts.positions)
            for _, p in sorted(accounts.positions[user_id].items())
            if p.qty or p.reserved_qty or p.realized_pnl
        ],
        "orders": [
            [
                o.id,
                o.user_id,
                o.symbol,
                o.side,
                o.order_type,
                o.time_in_force,
                _text(o.qty),
                _text(o.filled_qty),
                _text(o.price),
                _text(o.limit_price),
                _text(o.stop_price),
                o.triggered,
                o.status,
                _text(o.reserved_cash),
                o.trading_day,
                o.post_only,
                o.stp,
            ]
            for o in sorted(accounts.open_orders.values(), key=lambda o: o.id)
            if not o.pending
        ],
        "counters": {
            "next_order_id": accounts.next_order_id,
            "next_fill_id": accounts.next_fill_id,
            "event_seqs": {str(user): seq for user, seq in sorted(user_seqs.items())},
        },
    }


def books_from_orders(accounts: Accounts) -> list[Book]:
    """The books a matcher builds from these open orders (its book snapshot): for a
    digest of a ledger with no server running."""
    books: dict[str, Book] = {}
    for order in sorted(accounts.open_orders.values(), key=lambda o: o.queue_key):
        if order.pending:
            continue
        book = books.get(order.symbol)
        if book is None:
            model = FillModel(accounts.market.rules(order.symbol))
            book = books[order.symbol] = Book(order.symbol, model)
        book.add(resting(OrderDesk.book_order(order)))
    return list(books.values())


def summary(parts: dict[str, Any]) -> dict[str, Any]:
    """The digest, each part's hash, and whether the books hold exactly the open orders
    (same ids, same quantities left)."""
    hashes = {name: _sha256(parts[name]) for name in PARTS}
    in_books = {
        (entry[0], entry[2])
        for book in parts["books"].values()
        for side in ("bids", "asks", "stops")
        for entry in book[side]
    }
    open_orders = {(o[0], _text(Decimal(o[6]) - Decimal(o[7]))) for o in parts["orders"]}
    return {
        "digest": _sha256(hashes),
        "parts": hashes,
        "counts": {
            "accounts": len(parts["accounts"]),
            "positions": len(parts["positions"]),
            "open_orders": len(parts["orders"]),
            "book_orders": len(in_books),
        },
        "counters": parts["counters"],
        "books_match_orders": in_books == open_orders,
        "only_in_books": sorted(i for i, _ in in_books - open_orders)[:20],
        "only_in_ledger": sorted(i for i, _ in open_orders - in_books)[:20],
    }


def _sha256(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
