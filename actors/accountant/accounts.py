"""Plain cash, position, reservation and fee arithmetic for all users; no I/O, no threads.

The accountant actor wraps one `Accounts`: it calls these methods and turns
what they return into ledger rows and messages. Every amount is an exact Decimal.

Invariants, per account, after any sequence of calls (whole or partial fills; fees are
per order, so the reservation of an order's rest covers every fee its fills can add):
- cash + commission_paid + tax_paid + bought value - sold value = initial_cash, each
  counted since the account's epoch began (its creation, or its last reset)
- over the account's life, cash + all fees + all bought - all sold = the capital put in
  (the sum of its capital entries: `reset` returns the change), and a position holds
  the shares bought less those sold and those a reset wrote off, plus those deposited
  (`deposit`: shares put in as capital, which leave the cash alone)
- reserved_cash = the sum of reserved_cash over the account's open orders
- position.reserved_qty = the sum of leaves_qty over the position's open sell orders
- cash - reserved_cash >= 0 and position.qty - position.reserved_qty >= 0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from actors.market.rules import TAKER, ZERO, Market, OrderSpec
from protocol.errors import ErrorCode
from protocol.orders import IMMEDIATE
from protocol.values import AVERAGE_PLACES, MONEY_PLACES

OPEN_STATUSES = frozenset({"new", "partially_filled"})
DEFAULT_STP = "cancel_newest"  # an order's self-trade prevention unless it chose another


@dataclass(slots=True)
class User:
    id: int
    name: str
    token_hash: str
    is_admin: bool
    ts_created: int = 0


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
    epoch: int = 0  # one more at each reset; the fields above count from its start
    epoch_ts: int = 0  # when the epoch began (0: at the account's creation)
    # the value of the shares deposited in this epoch, at their price when deposited: with
    # initial_cash, the capital returns are measured against
    deposited_value: Decimal = ZERO

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
    locked_qty: Decimal = ZERO  # T+1: shares bought on trading day `locked_day`
    locked_day: str | None = None

    @property
    def available_qty(self) -> Decimal:
        """Held and not reserved by open sells (T+1 aside: see Accounts.sellable)."""
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
    price: Decimal  # the bound: the least favourable price it may fill at (actors/market/rules.py)
    ts_created: int
    ts_updated: int
    status: str = "new"
    filled_qty: Decimal = ZERO
    filled_value: Decimal = ZERO
    commission: Decimal = ZERO
    tax: Decimal = ZERO
    reserved_cash: Decimal = ZERO
    order_type: str = "limit"
    time_in_force: str = "gtc"
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    triggered: bool = False
    replaces: int | None = None  # the order this one replaced
    trading_day: str = ""  # the trading day it was placed for (a DAY order ends with it)
    replaced_by: int | None = None
    cancel_pending: bool = False  # a cancel is on its way to the matcher
    expiring: bool = False  # the matcher took it out because its trading day ended
    replacement: Order | None = None  # a replacement on its way to the matcher
    replace_hold: Decimal = ZERO  # cash held back for that replacement beyond this order's
    replace_shares: Decimal = ZERO  # and shares
    # Its place in its price level, which a restarted matcher rebuilds: after the order
    # `queue_after` (0: its own id), then by `queue_ts` (when a stop triggered), then id.
    queue_after: int = 0
    queue_ts: int = 0
    post_only: bool = False  # refused rather than take liquidity (the matcher decides)
    stp: str = DEFAULT_STP  # self-trade prevention (protocol.messages.SelfTradePrevention)
    cancel_reason: str | None = None  # why the matcher canceled it (None: its owner did)

    @property
    def queue_key(self) -> tuple[int, int, int]:
        return (self.queue_after or self.id, self.queue_ts, self.id)

    @property
    def pending(self) -> bool:
        """Not yet recorded: IOC/FOK and post_only orders and replacements wait for the
        matcher first."""
        return self.status == "pending_new"

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
    liquidity: str = TAKER  # maker: it rested before the market came to it (fill-model.md)
    epoch: int = 0  # the account's epoch when it filled


@dataclass(slots=True, frozen=True)
class WriteOff:
    """Shares a reset removed from a position, and what they had cost (fees included)."""

    symbol: str
    qty: Decimal
    cost_basis: Decimal


@dataclass(slots=True, frozen=True)
class Reset:
    """What `Accounts.reset` did: the cash put in (negative: taken out) to bring the cash
    to the new capital, and the positions written off."""

    user_id: int
    epoch: int
    previous_cash: Decimal
    capital: Decimal
    change: Decimal
    written_off: tuple[WriteOff, ...]


@dataclass(slots=True, frozen=True)
class Deposit:
    """What `Accounts.deposit` did: `qty` shares of `symbol` put into the account at
    `price`, worth `value` (qty x price to the profile's cash unit), their cost basis."""

    user_id: int
    epoch: int
    symbol: str
    qty: Decimal
    price: Decimal
    value: Decimal


@dataclass(slots=True)
class Rejection:
    code: ErrorCode
    message: str


@dataclass
class Accounts:
    """All users' accounts, positions and open orders, owned by the accountant."""

    market: Market
    users: dict[int, User] = field(default_factory=dict)
    by_token: dict[str, int] = field(default_factory=dict)
    by_name: dict[str, int] = field(default_factory=dict)
    accounts: dict[int, Account] = field(default_factory=dict)
    positions: dict[int, dict[str, Position]] = field(default_factory=dict)  # user -> symbol ->
    open_orders: dict[int, Order] = field(default_factory=dict)
    client_ids: dict[tuple[int, str], int] = field(default_factory=dict)
    next_order_id: int = 1
    next_fill_id: int = 1
    # each profile's market's trading day, from the controller; "" until it has said
    trading_days: dict[str, str] = field(default_factory=dict)

    def day(self, symbol: str) -> str:
        """The trading day of the symbol's market."""
        return self.trading_days.get(self.market.rules(symbol).name, "")

    # POSITIONS -----------------------------------------------------------------------

    def locked(self, pos: Position | None) -> Decimal:
        """Shares bought this trading day that T+1 keeps from being sold until the next;
        while the trading day is unknown, the last shares bought count as today's."""
        if pos is None or not pos.locked_qty:
            return ZERO
        today = self.day(pos.symbol)
        if today and pos.locked_day != today:
            return ZERO
        return min(pos.locked_qty, pos.qty)

    def sellable(self, pos: Position | None) -> Decimal:
        """What new sell orders may take: held, not reserved by open sells, not locked."""
        return ZERO if pos is None else pos.available_qty - self.locked(pos)

    # USERS ---------------------------------------------------------------------------

    def add_user(self, user: User, account: Account) -> None:
        self.users[user.id] = user
        self.by_token[user.token_hash] = user.id
        self.by_name[user.name] = user.id
        self.accounts[user.id] = account

    def set_token_hash(self, user: User, token_hash: str) -> None:
        """The user's token is now the one with this hash; the old one opens nothing."""
        self.by_token.pop(user.token_hash, None)
        user.token_hash = token_hash
        self.by_token[token_hash] = user.id

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
        spec: OrderSpec,
        client_order_id: str | None,
        now_ns: int,
        post_only: bool = False,
        stp: str = DEFAULT_STP,
    ) -> Order | Rejection:
        """Check funds or shares, reserve them and open the order (the spec is valid).

        IOC, FOK and post_only orders open as `pending_new`: the matcher decides at once
        whether they fill (or, post_only, whether they rest), and they are recorded only then.
        """
        held = self._hold(user_id, spec, None)
        if isinstance(held, Rejection):
            return held
        order = self._new_order(user_id, spec, client_order_id, now_ns)
        order.reserved_cash = held[0]
        order.post_only, order.stp = post_only, stp
        if spec.time_in_force in IMMEDIATE or post_only:
            order.status = "pending_new"
        self.open_orders[order.id] = order
        return order

    def request_replace(
        self, old: Order, spec: OrderSpec, client_order_id: str | None, now_ns: int
    ) -> Order | Rejection:
        """Hold what a replacement of `old` needs beyond what `old` holds, and return the
        replacement as `pending_new`; the matcher then swaps them (`replace`) or refuses
        (`unreplace`). Until then `old` may not fill: the matcher checks that."""
        held = self._hold(old.user_id, spec, old)
        if isinstance(held, Rejection):
            return held
        new = self._new_order(old.user_id, spec, client_order_id, now_ns)
        new.status = "pending_new"
        new.replaces = old.id
        new.post_only, new.stp = old.post_only, old.stp  # not replaceable: kept
        old.replacement = new
        old.replace_hold, old.replace_shares = held
        return new

    def replace(self, old: Order, now_ns: int) -> Order:
        """The matcher swapped `old` for its replacement: release one, reserve the other."""
        new = old.replacement
        assert new is not None
        self._release_replace_hold(old)
        self.close(old, "replaced", now_ns)
        old.replaced_by = new.id
        # reserve without checking again: the hold made room, and the rules were checked
        # when the replacement was asked for
        rules = self.market.rules(new.symbol)
        new.reserved_cash = rules.cash_to_reserve(new.side, new.qty, new.price)
        self.accounts[new.user_id].reserved_cash += new.reserved_cash
        if new.side == "sell":
            self.position(new.user_id, new.symbol).reserved_qty += new.qty
        new.status = "new"
        new.ts_created = new.ts_updated = now_ns  # it is placed now, as the old one goes
        self.open_orders[new.id] = new
        return new

    def unreplace(self, old: Order) -> Order | None:
        """The matcher refused the replacement (or never got it): release what it held."""
        new = old.replacement
        self._release_replace_hold(old)
        if new is not None and new.client_order_id is not None:
            self.client_ids.pop((new.user_id, new.client_order_id), None)
        if new is not None and self.next_order_id == new.id + 1:
            # never stored nor shown: its id is free again, as a restart would find it
            # (the next id follows the ledger's highest; the state digest compares them)
            self.next_order_id = new.id
        return new

    def _release_replace_hold(self, old: Order) -> None:
        self.accounts[old.user_id].reserved_cash -= old.replace_hold
        if old.replace_shares:
            self.position(old.user_id, old.symbol).reserved_qty -= old.replace_shares
        old.replacement, old.replace_hold, old.replace_shares = None, ZERO, ZERO

    def _hold(
        self, user_id: int, spec: OrderSpec, replacing: Order | None
    ) -> tuple[Decimal, Decimal] | Rejection:
        """Reserve the cash and shares an order needs, beyond what the order it replaces
        holds; return both amounts reserved, or why they are not there."""
        account = self.accounts[user_id]
        rules = self.market.rules(spec.symbol)
        cash_needed = rules.cash_to_reserve(spec.side, spec.qty, spec.price)
        own_cash = replacing.reserved_cash if replacing else ZERO
        cash = max(ZERO, cash_needed - own_cash)
        if cash > account.available_cash:
            available = account.available_cash + own_cash
            return Rejection(
                ErrorCode.RISK_INSUFFICIENT_CASH,
                f"need {cash_needed} (fees included), available {available}",
            )
        shares = ZERO
        if spec.side == "sell":
            pos = self.positions.get(user_id, {}).get(spec.symbol)
            own_qty = replacing.leaves_qty if replacing else ZERO
            available = self.sellable(pos) + own_qty
            if spec.qty > available:
                locked = self.locked(pos)
                if spec.qty <= available + locked:
                    return Rejection(
                        ErrorCode.RISK_T_PLUS_ONE,
                        f"sell {spec.qty} {spec.symbol}: {locked} bought on {pos.locked_day} "
                        f"may be sold from the next trading day; available now {available}",
                    )
                return Rejection(
                    ErrorCode.RISK_INSUFFICIENT_SHARES,
                    f"sell {spec.qty} {spec.symbol}, available {available}",
                )
            lot = rules.lot_size
            if rules.odd_lots_sell_all and spec.qty % lot and spec.qty != available:
                return Rejection(
                    ErrorCode.REQUEST_LOT_SIZE,
                    f"sell qty must be a multiple of {lot}, or all {available} you may sell",
                )
            shares = max(ZERO, spec.qty - own_qty)
            self.position(user_id, spec.symbol).reserved_qty += shares
        account.reserved_cash += cash
        return cash, shares

    def _new_order(
        self, user_id: int, spec: OrderSpec, client_order_id: str | None, now_ns: int
    ) -> Order:
        order = Order(
            id=self.next_order_id,
            user_id=user_id,
            client_order_id=client_order_id,
            symbol=spec.symbol,
            side=spec.side,
            qty=spec.qty,
            price=spec.price,
            ts_created=now_ns,
            ts_updated=now_ns,
            order_type=spec.order_type,
            time_in_force=spec.time_in_force,
            limit_price=spec.limit_price,
            stop_price=spec.stop_price,
            trail_price=spec.trail_price,
            trail_percent=spec.trail_percent,
            trading_day=self.day(spec.symbol),
        )
        self.next_order_id += 1
        if client_order_id is not None:
            self.client_ids[(user_id, client_order_id)] = order.id
        return order

    def fill(
        self,
        order: Order,
        qty: Decimal,
        price: Decimal,
        now_ns: int,
        liquidity: str = TAKER,
        trading_day: str | None = None,
    ) -> Fill:
        """Settle one fill of an open order: cash, fees, position, reservations, P&L.
        `trading_day` is the day it filled on (default: the market's day now), for T+1."""
        account = self.accounts[order.user_id]
        pos = self.position(order.user_id, order.symbol)
        rules = self.market.rules(order.symbol)
        value = qty * price
        commission, tax = rules.fill_fees(
            order.side,
            (order.filled_qty, order.filled_value),
            (qty, value),
            (order.commission, order.tax),
            liquidity,
        )
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
            liquidity=liquidity,
            epoch=account.epoch,
        )
        self.next_fill_id += 1
        if order.side == "buy":
            account.cash -= value + commission + tax
            account.bought_value += value
            pos.qty += qty
            pos.cost_basis += value + commission + tax
            if rules.t_plus_one:
                today = trading_day or self.day(order.symbol)
                if pos.locked_day != today:
                    pos.locked_qty, pos.locked_day = ZERO, today
                pos.locked_qty += qty
        else:
            account.cash += value - commission - tax
            account.sold_value += value
            if qty == pos.qty:
                removed_basis = pos.cost_basis
            else:
                removed_basis = (pos.cost_basis * qty / pos.qty).quantize(
                    rules.cash_unit, rounding=ROUND_HALF_UP
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
        self.close(order, "canceled", now_ns)

    def close(self, order: Order, status: str, now_ns: int) -> None:
        """Close an order that will not fill any more (the matcher no longer holds it):
        canceled, expired, replaced or rejected; release what it held."""
        if order.side == "sell":
            self.position(order.user_id, order.symbol).reserved_qty -= order.leaves_qty
        self.accounts[order.user_id].reserved_cash -= order.reserved_cash
        order.reserved_cash = ZERO
        order.status = status
        order.cancel_pending = False
        order.ts_updated = now_ns
        self._close(order)

    def trigger(self, order: Order, stop_price: Decimal, price: Decimal) -> None:
        """A trade triggered a stop order; its bound may only have tightened."""
        order.triggered = True
        order.stop_price = stop_price
        order.price = price
        self._reserve_for_leaves(order)

    def _reserve_for_leaves(self, order: Order) -> None:
        """True up the order's cash reservation to what its unfilled part can still cost."""
        needed = (
            self.market.rules(order.symbol).cash_to_reserve(
                order.side,
                order.leaves_qty,
                order.price,
                (order.filled_qty, order.filled_value),
                (order.commission, order.tax),
            )
            if order.leaves_qty
            else ZERO
        )
        self.accounts[order.user_id].reserved_cash += needed - order.reserved_cash
        order.reserved_cash = needed

    def _close(self, order: Order) -> None:
        self.open_orders.pop(order.id, None)

    # RESET ---------------------------------------------------------------------------

    def reset(self, user_id: int, capital: Decimal, now_ns: int) -> Reset:
        """Start the account's next epoch with `capital` in cash and nothing held: every
        position is written off at cost, the counters start again from zero. The account
        must have no open order (the matcher must have let them go first).

        Raises:
            ValueError: the account still has an open order.
        """
        if any(o.user_id == user_id for o in self.open_orders.values()):
            raise ValueError(f"user {user_id} has open orders: cancel them before a reset")
        account = self.accounts[user_id]
        written_off = []
        for symbol, pos in sorted(self.positions.get(user_id, {}).items()):
            if pos.qty:
                written_off.append(WriteOff(symbol, pos.qty, pos.cost_basis))
            pos.qty = pos.reserved_qty = pos.cost_basis = pos.realized_pnl = ZERO
            pos.locked_qty, pos.locked_day = ZERO, None
        previous = account.cash
        account.epoch += 1
        account.epoch_ts = now_ns
        account.initial_cash = account.cash = capital
        account.reserved_cash = account.commission_paid = account.tax_paid = ZERO
        account.realized_pnl = account.bought_value = account.sold_value = ZERO
        account.deposited_value = ZERO  # deposited shares were written off with the rest
        return Reset(
            user_id, account.epoch, previous, capital, capital - previous, tuple(written_off)
        )

    # DEPOSITS ------------------------------------------------------------------------

    def deposit(self, user_id: int, symbol: str, qty: Decimal, price: Decimal) -> Deposit:
        """Put `qty` shares of `symbol` into the account as capital, valued at `price`
        (the qty is checked already): the position gains them with that value as their
        cost basis, the cash does not change. They are sellable at once: T+1 locks shares
        bought, not shares deposited."""
        account = self.accounts[user_id]
        value = (qty * price).quantize(self.market.rules(symbol).cash_unit, ROUND_HALF_UP)
        pos = self.position(user_id, symbol)
        pos.qty += qty
        pos.cost_basis += value
        account.deposited_value += value
        return Deposit(user_id, account.epoch, symbol, qty, price, value)

    # VALUATION -----------------------------------------------------------------------

    def market_value(self, user_id: int, last_prices: dict[str, Decimal]) -> Decimal:
        return sum((mark(p, last_prices.get(p.symbol)) for p in self.user_positions(user_id)), ZERO)

    def user_positions(self, user_id: int) -> list[Position]:
        """Holdings with shares, by symbol."""
        held = self.positions.get(user_id, {})
        return [held[s] for s in sorted(held) if held[s].qty]


def mark(pos: Position, last: Decimal | None) -> Decimal:
    """Market value of a position, exact to the finest cash unit (whole shares on a cent
    tick are whole cents); at cost when no price has been seen yet."""
    if last is None:
        return pos.cost_basis
    return (pos.qty * last).quantize(MONEY_PLACES, rounding=ROUND_HALF_UP)
