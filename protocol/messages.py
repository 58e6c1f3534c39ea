"""Every wire message type, defined once and shared by all processes and the client.

Client requests are pydantic models (frozen, unknown fields refused): the gateway validates
untrusted input with them. Replies, events and internal messages are plain maps whose
fields are documented here as TypedDicts; docs/protocol.md describes the same shapes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Annotated, Any, Literal, NotRequired, TypedDict

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from protocol.codec import PROTOCOL_VERSION
from protocol.settings import REPLAY_SPEED

# Numbers from clients: an integer, a float or a decimal string (checked by protocol.values).
WireNumber = StrictInt | StrictFloat | StrictStr  # protocol.values bounds the text
Int64 = Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]
Id = Annotated[StrictInt, Field(ge=1, le=2**63 - 1)]  # ids we assign: orders, fills, users
RequestId = Int64 | Annotated[StrictStr, Field(max_length=64)] | None


class Request(BaseModel):
    """Fields every client request may carry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = PROTOCOL_VERSION
    rid: RequestId = None  # the client's request id, echoed in the reply


# SESSIONS ---------------------------------------------------------------------------


class Login(Request):
    """`session.login`: bind this ZeroMQ connection to a user; replies `session.ready`."""

    type: Literal["session.login"]
    token: Annotated[StrictStr, Field(min_length=1, max_length=256)]
    events: StrictBool = True  # push this user's private events to this connection (DEALER only)
    batch: StrictBool = False  # DEALER: what one loop turn has for it comes as one array frame


class ConsoleLogin(BaseModel):
    """The body of `POST /v1/session`: the token, exchanged for a console session cookie."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token: Annotated[StrictStr, Field(min_length=1, max_length=256)]


class Ping(Request):
    """`ping`: liveness; replies `pong` without touching any state."""

    type: Literal["ping"]


# ORDERS -----------------------------------------------------------------------------


OrderType = Literal["market", "limit", "stop", "stop_limit", "trailing_stop"]
TimeInForce = Literal["day", "gtc", "ioc", "fok"]
# self-trade prevention: which side goes when an order would trade with its owner's own
# resting order (exchange mode, docs/protocol.md 3.3): the incoming one, the resting one, both
SelfTradePrevention = Literal["cancel_newest", "cancel_oldest", "cancel_both"]
ClientOrderId = Annotated[StrictStr, Field(min_length=1, max_length=64)]


class _OrderBody(BaseModel):
    """An order's fields but its type (which protocol.orders checks against the type)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: Annotated[StrictStr, Field(min_length=1, max_length=32)]
    side: Literal["buy", "sell"]
    qty: WireNumber  # an integer or a decimal string such as "100"
    time_in_force: TimeInForce = "day"
    limit_price: WireNumber | None = None  # limit and stop_limit
    price: WireNumber | None = None  # the core's name for limit_price, still accepted
    stop_price: WireNumber | None = None  # stop and stop_limit
    trail_price: WireNumber | None = None  # trailing_stop: trail by this amount...
    trail_percent: WireNumber | None = None  # ...or by this percentage (0 to 100, exclusive)
    client_order_id: ClientOrderId | None = None
    # rest or nothing: a limit order (day or gtc) refused if it would take liquidity
    post_only: StrictBool = False
    stp: SelfTradePrevention = "cancel_newest"


class OrderFields(_OrderBody):
    """The body of `POST /v1/orders`."""

    type: OrderType = "limit"


class NewOrder(Request, _OrderBody):
    """`order.new`: replies `order.accepted` with the order, or `error`.

    The same fields as the HTTP body, but the order type is `order_type`: `type` names
    the message on ZeroMQ.
    """

    type: Literal["order.new"] = "order.new"
    order_type: OrderType = "limit"


class ReplaceFields(BaseModel):
    """The body of `PATCH /v1/orders/{id}`: what changes; the rest is kept (post_only and
    stp always)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    qty: WireNumber | None = None  # the new order's qty
    time_in_force: TimeInForce | None = None
    limit_price: WireNumber | None = None
    price: WireNumber | None = None  # alias of limit_price
    stop_price: WireNumber | None = None
    trail_price: WireNumber | None = None
    trail_percent: WireNumber | None = None
    client_order_id: ClientOrderId | None = None  # of the new order


class ReplaceOrder(Request, ReplaceFields):
    """`order.replace`: a new order replaces an open one; replies `order.replaced`."""

    type: Literal["order.replace"] = "order.replace"
    order_id: Id


class CancelOrder(Request):
    """`order.cancel`: replies `order.canceled` with the order once the matcher confirms."""

    type: Literal["order.cancel"] = "order.cancel"
    order_id: Id


class GetOrder(Request):
    """`order.get`: one order by its id or by its client order id; replies `order`."""

    type: Literal["order.get"] = "order.get"
    order_id: Id | None = None
    client_order_id: ClientOrderId | None = None

    @model_validator(mode="after")
    def _one_key(self) -> GetOrder:
        if (self.order_id is None) == (self.client_order_id is None):
            raise ValueError("give order_id or client_order_id, one of them")
        return self


class ListOrders(Request):
    """`orders.list`: open orders (status "open") or all of them, newest first; replies `orders`."""

    type: Literal["orders.list"] = "orders.list"
    status: Literal["open", "all"] = "open"
    limit: Annotated[StrictInt, Field(ge=1, le=1000)] = 100
    before_id: Id | None = None  # page: orders with a smaller id


# ACCOUNT AND HISTORY ----------------------------------------------------------------


class GetAccount(Request):
    """`account.get`: replies `account`."""

    type: Literal["account.get"] = "account.get"


class ListPositions(Request):
    """`positions.list`: replies `positions` (holdings with qty > 0)."""

    type: Literal["positions.list"] = "positions.list"


class ListFills(Request):
    """`fills.list`: newest first; replies `fills`."""

    type: Literal["fills.list"] = "fills.list"
    limit: Annotated[StrictInt, Field(ge=1, le=1000)] = 100
    before_id: Id | None = None


class ListHistory(Request):
    """`history.list`: the operation log, oldest first from `after_seq`; replies `history`."""

    type: Literal["history.list"] = "history.list"
    limit: Annotated[StrictInt, Field(ge=1, le=1000)] = 100
    after_seq: Annotated[StrictInt, Field(ge=0, le=2**63 - 1)] = 0


class GetStats(Request):
    """`stats.get`: profit statistics and the equity curve; replies `stats`."""

    type: Literal["stats.get"] = "stats.get"


# MARKET AND CONTROL -----------------------------------------------------------------


class GetQuote(Request):
    """`quote.get`: the last quote of a symbol; replies `quote`."""

    type: Literal["quote.get"] = "quote.get"
    symbol: Annotated[StrictStr, Field(min_length=1, max_length=32)]


Symbol = Annotated[StrictStr, Field(min_length=1, max_length=32)]
MAX_BAR_SYMBOLS = 200  # symbols one bars request may name
MAX_DEPTH_LEVELS = 500  # price levels per side one depth request may ask for
_TIMEFRAME = re.compile(r"^([1-9][0-9]?)(Min|T|Hour|H|Day|D)$")
_TIMEFRAME_UNIT = {"Min": 60, "T": 60, "Hour": 3600, "H": 3600, "Day": 86400, "D": 86400}
TIMEFRAMES = "1-59Min, 1-23Hour or 1Day"


def timeframe_seconds(text: str) -> int:
    """A bar timeframe's width in seconds: 1-59 minutes, 1-23 hours or one day, as
    Alpaca spells them (`5Min`, `1Hour`, `1Day`) or for short (`5T`, `1H`, `1D`).

    Raises:
        ValueError: any other.
    """
    found = _TIMEFRAME.match(text)
    amount, unit = (int(found[1]), _TIMEFRAME_UNIT[found[2]]) if found else (0, 0)
    top = {60: 59, 3600: 23, 86400: 1}.get(unit, 0)
    if not 1 <= amount <= top:
        raise ValueError(f"timeframe {text[:20]!r}: {TIMEFRAMES}")
    return amount * unit


def _timeframe(text: str) -> str:
    timeframe_seconds(text)
    return text


Timeframe = Annotated[StrictStr, Field(max_length=8), AfterValidator(_timeframe)]


class GetBars(Request):
    """`bars.get`: OHLCV bars of symbols, symbol by symbol, oldest first (or newest with
    `sort` desc), up to `limit` in all; replies `bars` with `next`, the cursor to pass as
    `after` for the rest (docs/protocol.md 3.24). Unknown symbols have no bars."""

    type: Literal["bars.get"] = "bars.get"
    symbols: Annotated[list[Symbol], Field(min_length=1, max_length=MAX_BAR_SYMBOLS)]
    timeframe: Timeframe
    start: Int64 | None = None  # ns: bars whose first instant is at or after it
    end: Int64 | None = None  # ns: ... and at or before it
    limit: Annotated[StrictInt, Field(ge=1, le=10_000)] = 1000
    sort: Literal["asc", "desc"] = "asc"
    after: tuple[Symbol, Int64] | None = None  # a reply's `next`: where the last page ended


class GetDepth(Request):
    """`depth.get`: the book of an exchange-mode symbol as price levels, `levels` on each
    side, best first; replies `depth` (docs/protocol.md 3.27). The matcher answers it."""

    type: Literal["depth.get"] = "depth.get"
    symbol: Symbol
    levels: Annotated[StrictInt, Field(ge=1, le=MAX_DEPTH_LEVELS)] = 10


class GetLatestBars(Request):
    """`bars.latest`: each symbol's latest 1-minute bar, its latest daily bar and the
    daily bar before; replies `bars.latest`."""

    type: Literal["bars.latest"] = "bars.latest"
    symbols: Annotated[list[Symbol], Field(min_length=1, max_length=MAX_BAR_SYMBOLS)]


class ListSymbols(Request):
    """`symbols.list`: the tradable symbols with their rules; replies `symbols`."""

    type: Literal["symbols.list"] = "symbols.list"


class GetControl(Request):
    """`control.get`: run state and session state; replies `control`."""

    type: Literal["control.get"] = "control.get"


class ControlFields(BaseModel):
    """The body of `POST /v1/control`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: Literal["running", "paused", "stopped"]


class SetControl(Request, ControlFields):
    """`control.set` (admin): run, pause or stop trading; replies `control`."""

    type: Literal["control.set"] = "control.set"


class JoinReplay(Request):
    """`replay.join`: in a lock-step replay, each bar time waits for this user's
    `replay.done` (docs/replay.md); replies `replay.joined`."""

    type: Literal["replay.join"] = "replay.join"
    # each replay.step on this connection too (a DEALER taking events), behind the private
    # events of what came before it: no SUB socket, and no query to learn the fills
    steps: StrictBool = False


class ReplayDoneFields(BaseModel):
    """The body of `POST /v1/replay/done`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ts: Int64


class ReplayDone(Request, ReplayDoneFields):
    """`replay.done`: this user is done with the bar time `ts` of a lock-step replay (its
    orders for it are acknowledged); replies `replay.ok`."""

    type: Literal["replay.done"] = "replay.done"


# ADMIN ------------------------------------------------------------------------------


CsvName = Annotated[StrictStr, Field(max_length=128, pattern=r"^[A-Za-z0-9_.-]+\.csv$")]
BotName = Annotated[StrictStr, Field(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class BacktestFields(BaseModel):
    """The body of `POST /v1/backtests` (admin): a backtest to start (docs/backtest.md).
    Bar files and bots are named, from the server's `[backtest]` settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[
        StrictStr, Field(max_length=64, pattern=r"^([A-Za-z0-9_.@][A-Za-z0-9_.@ -]*)?$")
    ] = ""
    data: Annotated[list[CsvName], Field(max_length=20)] = []
    start: date | None = None
    end: date | None = None
    speed: Annotated[StrictStr, Field(pattern=f"^(|{REPLAY_SPEED})$")] = ""
    cash: WireNumber = "1000000"
    bots: Annotated[list[BotName], Field(max_length=10)] = []
    step_timeout: Annotated[float, Field(gt=0, le=600)] | None = None
    on_timeout: Literal["continue", "stop"] | None = None


MAX_DEPOSIT_SYMBOLS = 100  # symbols one user.create may deposit shares of


class UserFields(BaseModel):
    """The body of `POST /v1/admin/users`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]
    cash: WireNumber  # starting capital, CNY, at most two decimals
    # shares to start with, symbol -> qty, deposited as capital (account.deposit)
    positions: (
        Annotated[
            dict[Annotated[StrictStr, Field(min_length=1, max_length=32)], WireNumber],
            Field(max_length=MAX_DEPOSIT_SYMBOLS),
        ]
        | None
    ) = None


class CreateUser(Request, UserFields):
    """`user.create` (admin): a user with starting cash; replies `user.created` with its token."""

    type: Literal["user.create"] = "user.create"


class ListUsers(Request):
    """`user.list` (admin): replies `users`."""

    type: Literal["user.list"] = "user.list"


class RotateToken(Request):
    """`token.rotate`: a new token for yourself, or (admin) for `user_id`; the old one stops
    working at once and that user's sessions end. Replies `token.rotated` with the token."""

    type: Literal["token.rotate"] = "token.rotate"
    user_id: Id | None = None


class ResetFields(BaseModel):
    """The body of `POST /v1/account/reset` and `POST /v1/admin/users/{user_id}/reset`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cash: WireNumber | None = None  # the new capital; default the account's initial_cash


class ResetAccount(Request, ResetFields):
    """`account.reset`: cancel your open orders, write off your positions and start a new
    account epoch with `cash`; the admin may name another user by `user_id`. Replies
    `account.reset` once the orders are canceled and the reset is committed."""

    type: Literal["account.reset"] = "account.reset"
    user_id: Id | None = None


class GetDigest(Request):
    """`state.digest` (admin): a hash of accounts, positions, open orders, books and the
    ledger's counters (docs/reliability.md); replies `state.digest`."""

    type: Literal["state.digest"] = "state.digest"


class RevokeToken(Request):
    """`token.revoke` (admin): `user_id` can no longer sign in until its token is rotated;
    its sessions end. Replies `token.revoked`."""

    type: Literal["token.revoke"] = "token.revoke"
    user_id: Id


class DepositFields(BaseModel):
    """The body of `POST /v1/admin/users/{user_id}/deposit`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: Annotated[StrictStr, Field(min_length=1, max_length=32)]
    qty: WireNumber  # shares (or units): above 0, a multiple of the symbol's qty_step


class DepositShares(Request, DepositFields):
    """`account.deposit` (admin): put `qty` shares of `symbol` into the account of
    `user_id` as capital, valued at the symbol's last price (else its previous close);
    the cash does not change. Replies `account.deposited`."""

    type: Literal["account.deposit"] = "account.deposit"
    user_id: Id


def validation_message(exc: ValidationError) -> str:
    """The first field a request got wrong, and what that field takes (plain_message)."""
    return plain_message(exc.errors())


# What a field that takes one of several kinds of value takes, said once for all its kinds
# (pydantic reports one problem per kind it tried).
_NUMBER = "must be an integer or a decimal string"
_TAKES = {
    "rid": "must be an integer or a string of at most 64 characters",
    **dict.fromkeys(
        ("qty", "limit_price", "price", "stop_price", "trail_price", "trail_percent", "cash"),
        _NUMBER,
    ),
    **dict.fromkeys(("last", "volume", "bid", "ask"), _NUMBER),  # a pushed quote (9.5)
    "positions": _NUMBER,  # a qty of user.create's positions, under its symbol
}
# pydantic's names for the kinds it tried, which follow the field in an error's place
_KIND = re.compile(r"^(int|float|str|bool|none|constrained-\w+|function-.*|.*\[.*\])$")


def plain_message(
    errors: Sequence[Mapping[str, Any]], outer: tuple[str, ...] = (), whole: str = "message"
) -> str:
    """`field: what is wrong` for the first field with a problem, in our words rather
    than the validator's, with how many other fields have one. `outer`: parts of an
    error's place to leave out (HTTP's "body"); `whole`: the name of a problem with no
    field (the message, or the body, itself)."""
    problems: dict[str, list[Mapping[str, Any]]] = {}
    for error in errors:
        parts = [str(p) for p in error.get("loc", ()) if str(p) not in outer]
        field = ".".join(p for p in parts if not _KIND.match(p)) or whole
        problems.setdefault(field, []).append(error)
    field, found = next(iter(problems.items()))
    kinds = {str(e["loc"][-1]) for e in found if e.get("loc") and _KIND.match(str(e["loc"][-1]))}
    name = field.rsplit(".", 1)[-1]
    if len(kinds) > 1 and any(e["type"] != "missing" for e in found):
        said = (
            _TAKES.get(name)
            or _TAKES.get(field.split(".", 1)[0])
            or " or ".join(dict.fromkeys(_plain(e) for e in found))
        )
    else:
        said = _plain(found[0])
    more = len(problems) - 1
    return f"{field}: {said}" + (f" (and {more} more field(s) with a problem)" if more else "")


def _plain(error: Mapping[str, Any]) -> str:
    """One validator problem in our words."""
    kind, ctx = str(error.get("type", "")), error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field of this request"
    if kind == "literal_error":
        return f"must be {ctx.get('expected', 'one of the documented values')}"
    if kind == "string_too_short":
        least = ctx.get("min_length", 1)
        return "must not be empty" if least == 1 else f"must have at least {least} characters"
    if kind == "string_too_long":
        return f"must have at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')}"
    if kind in ("too_long", "too_short"):
        bound = "at most" if kind == "too_long" else "at least"
        size = ctx.get("max_length" if kind == "too_long" else "min_length")
        return f"must have {bound} {size} items"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "less_than_equal": ("at most", "le"),
        "greater_than": ("above", "gt"),
        "less_than": ("below", "lt"),
    }
    if kind in bounds:
        word, key = bounds[kind]
        return f"must be {word} {ctx.get(key)}"
    for prefix, said in (
        ("int", "must be an integer"),
        ("float", "must be a number"),
        ("decimal", "must be a number"),
        ("string", "must be a string"),
        ("bool", "must be true or false"),
        ("date", "must be a date, YYYY-MM-DD"),
        ("list", "must be an array"),
        ("dict", "must be a map (an object)"),
        ("model", "must be a map (an object)"),
    ):
        if kind.startswith(prefix):
            return said
    return "is not valid"


REQUESTS: dict[str, type[Request]] = {
    model.model_fields["type"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in (
        Login,
        Ping,
        NewOrder,
        ReplaceOrder,
        CancelOrder,
        GetOrder,
        ListOrders,
        GetAccount,
        ListPositions,
        ListFills,
        ListHistory,
        GetStats,
        GetQuote,
        GetBars,
        GetLatestBars,
        GetDepth,
        ListSymbols,
        GetControl,
        SetControl,
        JoinReplay,
        ReplayDone,
        CreateUser,
        ListUsers,
        RotateToken,
        RevokeToken,
        GetDigest,
        ResetAccount,
        DepositShares,
    )
}
ADMIN_REQUESTS = frozenset(
    {"control.set", "user.create", "user.list", "token.revoke", "state.digest", "account.deposit"}
)
# Requests the accountant forwards to the controller after authenticating them.
CONTROLLER_REQUESTS = frozenset(
    {"control.get", "control.set", "quote.get", "bars.get", "bars.latest"}
)
# Requests the accountant forwards to the matcher, which answers the gateway.
MATCHER_REQUESTS = frozenset({"depth.get"})
# Requests the accountant forwards to the controller through the matcher, so that they reach
# it after the orders sent before them are in the books.
REPLAY_REQUESTS = frozenset({"replay.join", "replay.done"})


# OBJECTS IN REPLIES AND EVENTS (all decimals are strings) ----------------------------


OrderStatus = Literal[
    "new",
    "partially_filled",
    "filled",
    "canceled",
    "expired",
    "replaced",
    "rejected",
    "pending_new",
]
# Why the matcher canceled an order (an order's `cancel_reason`, docs/protocol.md 5):
# self-trade prevention, the rest of an IOC, the rest of a market order the book could
# not fill (exchange mode), a market or IOC order sent while its market does not trade
CancelReason = Literal["self_trade", "ioc", "no_liquidity", "market_closed"]


class OrderView(TypedDict):
    id: int
    client_order_id: str | None
    symbol: str
    side: Literal["buy", "sell"]
    type: OrderType
    time_in_force: TimeInForce
    qty: str
    limit_price: str | None
    price: str | None  # the same as limit_price, under the core's name
    stop_price: str | None  # a trailing stop's: where it stood when last recorded
    trail_price: str | None
    trail_percent: str | None
    price_bound: str  # the least favourable price it may fill at (docs/fill-model.md)
    triggered: bool  # a stop order a trade has triggered
    replaces: int | None
    replaced_by: int | None
    post_only: bool  # refused rather than take liquidity
    stp: SelfTradePrevention
    status: OrderStatus
    cancel_reason: CancelReason | None  # canceled by the matcher: why (None: by its owner)
    filled_qty: str
    avg_fill_price: str | None
    commission: str
    tax: str
    created_at: str
    updated_at: str


class FillView(TypedDict):
    id: int
    order_id: int
    symbol: str
    side: Literal["buy", "sell"]
    qty: str
    price: str
    value: str
    commission: str
    tax: str
    liquidity: Literal["maker", "taker"]  # maker: it rested before the market reached it
    time: str
    epoch: int  # the account's epoch when it filled (0 until the first reset)


class AccountView(TypedDict):
    user_id: int
    name: str
    cash: str
    reserved_cash: str
    available_cash: str
    market_value: str
    equity: str
    initial_cash: str
    deposited_value: str  # the value of the shares deposited this epoch, when deposited
    commission_paid: str
    tax_paid: str
    realized_pnl: str
    unrealized_pnl: str
    total_return: str
    epoch: int  # 0 from creation, one more at each reset
    reset_at: str | None  # when the epoch began: the last reset (None before any)


class WrittenOff(TypedDict):
    symbol: str
    qty: str
    cost_basis: str  # what the shares had cost, fees included


class ResetView(TypedDict):
    """The `reset` map of the `account.reset` reply and event."""

    user_id: int
    epoch: int  # the epoch this reset began
    time: str
    capital: str  # the cash the account starts the epoch with
    previous_cash: str  # its cash just before (after its orders were canceled)
    capital_change: str  # capital - previous_cash: put in (or, negative, taken out)
    canceled_orders: list[int]  # the orders the reset canceled
    written_off: list[WrittenOff]  # the positions it removed


class DepositView(TypedDict):
    """The `account.deposited` reply's fields, and the `deposit` map of its event (with
    `position`, the reply's only)."""

    user_id: int
    symbol: str
    qty: str
    price: str  # the reference price it was valued at: the last trade, else prev close
    value: str  # qty x price, to the profile's cash unit: the shares' cost basis
    time: str


class PositionView(TypedDict):
    symbol: str
    qty: str
    available_qty: str
    avg_cost: str
    cost_basis: str
    last_price: str | None
    market_value: str
    unrealized_pnl: str
    realized_pnl: str


# INTERNAL MESSAGES (between our processes; trusted, batched as lists) ---------------


class Routed(TypedDict):
    """What a gateway adds to a client request before pushing it to the accountant."""

    gw: str  # gateway incarnation id, echoed in the reply; other gateways ignore it
    rid: int  # the gateway's request id, unique per gateway
    auth: str  # sha256 hex of the bearer token; the accountant resolves the user


class BookOrder(TypedDict):
    """An open order as the matcher holds it (`book.add`, `book.replace`, `book.snapshot`)."""

    order_id: int
    symbol: str
    side: Literal["buy", "sell"]
    order_type: OrderType
    time_in_force: TimeInForce
    price: str  # the bound: the least favourable price it may fill at
    stop_price: str | None  # stops: where they trigger; trailing stops start here
    trail_price: str | None
    trail_percent: str | None
    triggered: bool
    leaves_qty: str  # qty still to fill
    cum_qty: str  # qty filled so far
    seq: int  # acceptance order: time priority
    user_id: int  # its owner: self-trade prevention
    post_only: bool  # answered `book.killed` (reason "post_only") rather than take
    stp: SelfTradePrevention


class BookReplace(TypedDict):
    """`book.replace`, accountant -> matcher: swap `old_id` for `order` if it has filled
    exactly `cum_qty` so far and is still `triggered` or not as the accountant saw it;
    answered `book.replaced` or `book.replace_rejected`."""

    type: Literal["book.replace"]
    epoch: int
    old_id: int
    cum_qty: str
    triggered: bool
    order: BookOrder


class BookAnswer(TypedDict):
    """Matcher -> accountant, about one order: `book.canceled` (out of the book: a cancel,
    an IOC's rest), `book.expired` (a DAY order whose trading day ended), `book.cancel_rejected`
    (not in the book), `book.rested` (a post_only order is in the book: it is accepted),
    `book.killed` (a FOK that could not fill whole, a post_only that would have taken),
    `book.replaced` / `book.replace_rejected` (with `old_id`)."""

    type: str
    epoch: int
    order_id: int
    old_id: NotRequired[int]
    # book.canceled: a CancelReason, absent for a cancel asked for;
    # book.killed: KillReason, absent = "fok"; book.replace_rejected: "post_only" or absent
    reason: NotRequired[str]


# Why the matcher refused an order that never rested (`book.killed`): a FOK it could not
# fill whole, a post_only order that would have taken, a FOK that self-trade prevention
# stopped, a FOK sent while its market does not trade
KillReason = Literal["fok", "post_only", "self_trade", "market_closed"]


class Triggered(TypedDict):
    """`book.triggered`, matcher -> accountant: a trade reached a stop order's stop."""

    type: Literal["book.triggered"]
    epoch: int
    order_id: int
    stop_price: str  # where the stop stood (a trailing stop's, after trailing)
    price: str  # its bound from now on: only ever tighter
    ts: int


class Trailed(TypedDict):
    """`book.trailed`, matcher -> accountant: trailing stops whose stop a trade or bar
    moved, sent before any trigger on the same trade; the ledger keeps each new stop."""

    type: Literal["book.trailed"]
    epoch: int
    stops: list[tuple[int, str]]  # [order id, its stop now]
    ts: int


# A bar inside a replay step, between our processes: [symbol, open, high, low, close,
# volume, prev_close], texts as in the client's bar (volume an integer when whole). An
# array, not a map: each process that reads a step decodes no key names.
StepBar = tuple[str, str, str, str, str, int | str, str]
STEP_BAR_KEYS = ("symbol", "open", "high", "low", "close", "volume", "prev_close")


class ReplayStep(TypedDict):
    """`replay.step`, controller -> matcher -> accountant: one bar time of a replay
    (actors/controller/replayer.py). `packed_bars` is the array of the client's bar maps,
    packed once by the controller: the accountant puts the bytes into the step it packs
    for the gateway, so no process after the controller unpacks or packs them again."""

    type: Literal["replay.step"]
    ts: int
    time: str
    index: int
    count: int
    bars: list[StepBar]
    packed_bars: bytes
    fill: dict[str, Any]  # the control state at the bars' last instant
    close: dict[str, Any]  # the control state at the bar time
    life: int  # the controller run that sent it (ns): the matcher drops older steps
    wait_for: list[int]
    after: int


class Execution(TypedDict):
    """`exec`, matcher -> accountant: one fill decided by the matcher."""

    type: Literal["exec"]
    epoch: int  # the book snapshot this fill was decided on; older epochs are ignored
    order_id: int
    qty: str
    price: str
    cum_qty: str  # qty filled on this order including this fill
    liquidity: Literal["maker", "taker"]  # sets the fee rate (crypto)
    trading_day: str  # of the symbol's market when it filled: T+1 counts from it
    ts: int  # ns


class Quote(TypedDict):
    """`quote`, controller PUB md.<symbol> (public): one trade, with the best bid and ask
    when the feed has them."""

    type: Literal["quote"]
    symbol: str
    last: str
    volume: int | str  # a decimal string when fractional; 0: a price repeated, not a trade
    bid: NotRequired[str]
    ask: NotRequired[str]
    prev_close: str  # the previous trading day's last trade: the day's price limits
    ts: int
    time: str
    seq: int


class PushedQuote(BaseModel):
    """`quote`, pushed by an external feed to the controller's `quotes_in` (feed=external)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = PROTOCOL_VERSION
    type: Literal["quote"]
    symbol: Annotated[StrictStr, Field(min_length=1, max_length=32)]
    last: WireNumber  # the trade price, above 0
    volume: WireNumber  # what traded at it, 0 to 10**15 (protocol.values checks it)
    bid: WireNumber | None = None
    ask: WireNumber | None = None
    ts: Annotated[StrictInt, Field(ge=0, le=2**63 - 1)] | None = None  # ns; clock = market


class Depth(TypedDict):
    """`depth`: an exchange-mode symbol's book as price levels, [price, total qty] as
    strings, bids highest first and asks lowest first. The matcher's reply to depth.get
    (all levels asked for; `rid` and `gw` on the way to the gateway), and on md.<symbol>
    (the controller's PUB) the levels that changed, qty "0" for a level gone, or with
    `reset` the whole book (docs/protocol.md 9.7)."""

    type: Literal["depth"]
    symbol: str
    seq: int  # counts the symbol's depth messages on md.<symbol>, one by one
    reset: NotRequired[bool]  # md only: this message is the whole book
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    bid: str | None  # best bid, best ask, last trade
    ask: str | None
    last: NotRequired[str | None]  # depth.get replies
    ts: int
    time: str


class MarketSession(TypedDict):
    session_open: bool
    trading: bool
    trading_day: str
    last_close: int


class ControlState(TypedDict):
    """`control`, controller PUB ctl (public) and reply to control.get/set."""

    type: Literal["control"]
    state: Literal["running", "paused", "stopped"]
    fill_mode: Literal["wait", "instant"]  # [trading] fill_mode: how orders fill
    session_open: bool
    trading: bool  # running and in session: fills can happen
    trading_day: str  # YYYY-MM-DD: the session in progress, else the next one
    last_close: int  # ns of the latest session close (0: sessions never close)
    # the four fields above for each profile's market in use; the top-level ones are the
    # default profile's (market.profile). They differ only with sessions = "profile".
    markets: dict[str, MarketSession]
    ts: int
    time: str
    seq: int
