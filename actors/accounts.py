"""Plain cash, position, reservation and fee arithmetic for all users; no I/O, no threads.

The accountant actor wraps one `Accounts`: it calls these methods and turns
what they return into ledger rows and messages. Every amount is an exact Decimal.

Invariants, per account, after any sequence of calls that fill whole orders (the
matcher's only kind of fill today; a partial fill pays its own 5.00 minimum commission,
which the reservation of the rest does not cover, so partial fills need more reserved):
- cash + commission_paid + tax_paid + bought value - sold value = initial_cash (+ deposits)
- reserved_cash = the sum of reserved_cash over the account's open orders
- position.reserved_qty = the sum of leaves_qty over the position's open sell orders
- cash - reserved_cash >= 0 and position.qty - position.reserved_qty >= 0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from actors.rules import ZERO, Profile
from protocol.errors import ErrorCode
from protocol.values import AVERAGE_PLACES, CENT

OPEN_STATUSES = frozenset({"new", "partially_filled"})


@dataclass(slots=True)
class User:
    id: int
    name: str
    token_hash: str
    is_admin: bool


@dataclass(slots=True)
class Account:
    user_id: int
    initial_cash: Decimal
    cash: Decimal
    reserved_cash: Decimal = ZERO
    commission_paid: Decimal = ZERO
    tax_paid: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    bought_value: Decimal = ZERO
    sold_value: Decimal = ZERO

    @property
    def available_cash(self) -> Decimal:
        return self.cash - self.reserved_cash


@dataclass(slots=True)
class Position:
    user_id: int
    symbol: str
    qty: Decimal = ZERO
    reserved_qty: Decimal = ZERO
    cost_basis: Decimal = ZERO  # what the shares held cost, fees included
    realized_pnl: Decimal = ZERO
    stored: bool = False  # has a ledger row; the first write inserts, later ones update

    @property
    def available_qty(self) -> Decimal:
        return self.qty - self.reserved_qty

    @property
    def avg_cost(self) -> Decimal:
        if not self.qty:
            return ZERO
        return (self.cost_basis / self.qty).quantize(AVERAGE_PLACES, rounding=ROUND_HALF_UP)


@dataclass(slots=True)
class Order:
    id: int
    user_id: int
    client_order_id: str | None
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    ts_created: int
    ts_updated: int
    status: str = "new"
    filled_qty: Decimal = ZERO
    filled_value: Decimal = ZERO
    commission: Decimal = ZERO
    tax: Decimal = ZERO
    reserved_cash: Decimal = ZERO
    cancel_pending: bool = False

    @property
    def leaves_qty(self) -> Decimal:
        return self.qty - self.filled_qty

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(slots=True)
class Fill:
    id: int
    order_id: int
    user_id: int
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    value: Decimal
    commission: Decimal
    tax: Decimal
    ts_event: int
    realized_pnl: Decimal = ZERO  # sells: proceeds - fees - cost of the shares sold


@dataclass(slots=True)
class Rejection:
    code: ErrorCode
    message: str


@dataclass
class Accounts:
    """All users' accounts, positions and open orders, owned by the accountant."""

    profile: Profile
    users: dict[int, User] = field(default_factory=dict)
    by_token: dict[str, int] = field(default_factory=dict)
    by_name: dict[str, int] = field(default_factory=dict)
    accounts: dict[int, Account] = field(default_factory=dict)
    positions: dict[int, dict[str, Position]] = field(default_factory=dict)  # user -> symbol ->
    open_orders: dict[int, Order] = field(default_factory=dict)
    client_ids: dict[tuple[int, str], int] = field(default_factory=dict)
    next_order_id: int = 1
    next_fill_id: int = 1

    # USERS ---------------------------------------------------------------------------

    def add_user(self, user: User, account: Account) -> None:
        self.users[user.id] = user
        self.by_token[user.token_hash] = user.id
        self.by_name[user.name] = user.id
        self.accounts[user.id] = account

    def user_for_token(self, token_hash: str) -> User | None:
        user_id = self.by_token.get(token_hash)
        return None if user_id is None else self.users[user_id]

    def position(self, user_id: int, symbol: str) -> Position:
        held = self.positions.setdefault(user_id, {})
        pos = held.get(symbol)
        if pos is None:
            pos = held[symbol] = Position(user_id, symbol)
        return pos

    # ORDERS --------------------------------------------------------------------------

    def place(
        self,
        user_id: int,
        symbol: str,
        side: str,
        qty: Decimal,
        price: Decimal,
        client_order_id: str | None,
        now_ns: int,
    ) -> Order | Rejection:
        """Check funds or shares, reserve them and open the order (qty and price already valid)."""
        account = self.accounts[user_id]
        cash_needed = self.profile.cash_to_reserve(side, qty, price)
        if cash_needed > account.available_cash:
            return Rejection(
                ErrorCode.RISK_INSUFFICIENT_CASH,
                f"need {cash_needed} (fees included), available {account.available_cash}",
            )
        if side == "sell":
            pos = self.positions.get(user_id, {}).get(symbol)
            available = pos.available_qty if pos else ZERO
            if qty > available:
                return Rejection(
                    ErrorCode.RISK_INSUFFICIENT_SHARES,
                    f"sell {qty} {symbol}, available {available}",
                )
            self.position(user_id, symbol).reserved_qty += qty
        account.reserved_cash += cash_needed
        order = Order(
            id=self.next_order_id,
            user_id=user_id,
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            qty=qty,
            price=price,
            ts_created=now_ns,
            ts_updated=now_ns,
            reserved_cash=cash_needed,
        )
        self.next_order_id += 1
        self.open_orders[order.id] = order
        if client_order_id is not None:
            self.client_ids[(user_id, client_order_id)] = order.id
        return order

    def fill(self, order: Order, qty: Decimal, price: Decimal, now_ns: int) -> Fill:
        """Settle one fill of an open order: cash, fees, position, reservations, P&L."""
        account = self.accounts[order.user_id]
        pos = self.position(order.user_id, order.symbol)
        value = qty * price
        commission, tax = self.profile.fees(order.side, value)
        fill = Fill(
            id=self.next_fill_id,
            order_id=order.id,
            user_id=order.user_id,
            symbol=order.symbol,
            side=order.side,
            qty=qty,
            price=price,
            value=value,
            commission=commission,
            tax=tax,
            ts_event=now_ns,
        )
        self.next_fill_id += 1
        if order.side == "buy":
            account.cash -= value + commission
            account.bought_value += value
            pos.qty += qty
            pos.cost_basis += value + commission
        else:
            account.cash += value - commission - tax
            account.sold_value += value
            if qty == pos.qty:
                removed_basis = pos.cost_basis
            else:
                removed_basis = (pos.cost_basis * qty / pos.qty).quantize(
                    CENT, rounding=ROUND_HALF_UP
                )
            fill.realized_pnl = value - commission - tax - removed_basis
            pos.qty -= qty
            pos.reserved_qty -= qty
            pos.cost_basis -= removed_basis
            pos.realized_pnl += fill.realized_pnl
            account.realized_pnl += fill.realized_pnl
        account.commission_paid += commission
        account.tax_paid += tax
        order.filled_qty += qty
        order.filled_value += value
        order.commission += commission
        order.tax += tax
        order.ts_updated = now_ns
        self._reserve_for_leaves(order)
        if order.leaves_qty == 0:
            order.status = "filled"
            self._close(order)
        else:
            order.status = "partially_filled"
        return fill

    def cancel(self, order: Order, now_ns: int) -> None:
        """Close an open order the matcher has taken out of its book; release what it held."""
        if order.side == "sell":
            self.position(order.user_id, order.symbol).reserved_qty -= order.leaves_qty
        self.accounts[order.user_id].reserved_cash -= order.reserved_cash
        order.reserved_cash = ZERO
        order.status = "canceled"
        order.cancel_pending = False
        order.ts_updated = now_ns
        self._close(order)

    def _reserve_for_leaves(self, order: Order) -> None:
        """True up the order's cash reservation to what its unfilled part can still cost."""
        needed = (
            self.profile.cash_to_reserve(order.side, order.leaves_qty, order.price)
            if order.leaves_qty
            else ZERO
        )
        self.accounts[order.user_id].reserved_cash += needed - order.reserved_cash
        order.reserved_cash = needed

    def _close(self, order: Order) -> None:
        self.open_orders.pop(order.id, None)

    # VALUATION -----------------------------------------------------------------------

    def market_value(self, user_id: int, last_prices: dict[str, Decimal]) -> Decimal:
        return sum((mark(p, last_prices.get(p.symbol)) for p in self.user_positions(user_id)), ZERO)

    def user_positions(self, user_id: int) -> list[Position]:
        """Holdings with shares, by symbol."""
        held = self.positions.get(user_id, {})
        return [held[s] for s in sorted(held) if held[s].qty]


def mark(pos: Position, last: Decimal | None) -> Decimal:
    """Market value of a position to the cent; at cost when no price has been seen yet."""
    if last is None:
        return pos.cost_basis
    return (pos.qty * last).quantize(CENT, rounding=ROUND_HALF_UP)
