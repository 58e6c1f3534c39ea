"""Every wire message type, defined once and shared by all processes and the client.

Client requests are pydantic models (frozen, unknown fields refused): the gateway validates
untrusted input with them. Replies, events and internal messages are plain maps whose
fields are documented here as TypedDicts; docs/protocol.md describes the same shapes.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from protocol.codec import PROTOCOL_VERSION

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


class Ping(Request):
    """`ping`: liveness; replies `pong` without touching any state."""

    type: Literal["ping"]


# ORDERS -----------------------------------------------------------------------------


class OrderFields(BaseModel):
    """The body of `POST /v1/orders`; `order.new` over ZeroMQ adds the Request fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: Annotated[StrictStr, Field(min_length=1, max_length=32)]
    side: Literal["buy", "sell"]
    qty: WireNumber  # whole shares: an integer or a decimal string such as "100"
    price: WireNumber  # limit price: a decimal string ("10.50") or a number
    client_order_id: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None


class NewOrder(Request, OrderFields):
    """`order.new`: a limit order; replies `order.accepted` with the order, or `error`."""

    type: Literal["order.new"] = "order.new"


class CancelOrder(Request):
    """`order.cancel`: replies `order.canceled` with the order once the matcher confirms."""

    type: Literal["order.cancel"] = "order.cancel"
    order_id: Id


class GetOrder(Request):
    """`order.get`: replies `order`."""

    type: Literal["order.get"] = "order.get"
    order_id: Id


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


# ADMIN ------------------------------------------------------------------------------


class UserFields(BaseModel):
    """The body of `POST /v1/admin/users`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]
    cash: WireNumber  # starting capital, CNY, at most two decimals


class CreateUser(Request, UserFields):
    """`user.create` (admin): a user with starting cash; replies `user.created` with its token."""

    type: Literal["user.create"] = "user.create"


class ListUsers(Request):
    """`user.list` (admin): replies `users`."""

    type: Literal["user.list"] = "user.list"


REQUESTS: dict[str, type[Request]] = {
    model.model_fields["type"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in (
        Login,
        Ping,
        NewOrder,
        CancelOrder,
        GetOrder,
        ListOrders,
        GetAccount,
        ListPositions,
        ListFills,
        ListHistory,
        GetStats,
        GetQuote,
        ListSymbols,
        GetControl,
        SetControl,
        CreateUser,
        ListUsers,
    )
}
ADMIN_REQUESTS = frozenset({"control.set", "user.create", "user.list"})
# Requests the accountant forwards to the controller after authenticating them.
CONTROLLER_REQUESTS = frozenset({"control.get", "control.set", "quote.get"})


# OBJECTS IN REPLIES AND EVENTS (all decimals are strings) ----------------------------


class OrderView(TypedDict):
    id: int
    client_order_id: str | None
    symbol: str
    side: Literal["buy", "sell"]
    type: Literal["limit"]
    qty: str
    price: str
    status: Literal["new", "partially_filled", "filled", "canceled", "rejected"]
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
    time: str


class AccountView(TypedDict):
    user_id: int
    name: str
    cash: str
    reserved_cash: str
    available_cash: str
    market_value: str
    equity: str
    initial_cash: str
    commission_paid: str
    tax_paid: str
    realized_pnl: str
    unrealized_pnl: str
    total_return: str


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
    """An open order as the matcher holds it (`book.add`, and inside `book.snapshot`)."""

    order_id: int
    symbol: str
    side: Literal["buy", "sell"]
    price: str
    leaves_qty: str  # qty still to fill
    cum_qty: str  # qty filled so far
    seq: int  # acceptance order: time priority


class Execution(TypedDict):
    """`exec`, matcher -> accountant: one fill decided by the matcher."""

    type: Literal["exec"]
    epoch: int  # the book snapshot this fill was decided on; older epochs are ignored
    order_id: int
    qty: str
    price: str
    cum_qty: str  # qty filled on this order including this fill
    ts: int  # ns


class Quote(TypedDict):
    """`quote`, controller PUB md.<symbol> (public)."""

    type: Literal["quote"]
    symbol: str
    last: str
    volume: int
    ts: int
    seq: int


class ControlState(TypedDict):
    """`control`, controller PUB ctl (public) and reply to control.get/set."""

    type: Literal["control"]
    state: Literal["running", "paused", "stopped"]
    session_open: bool
    trading: bool  # running and in session: fills can happen
    ts: int
    seq: int
