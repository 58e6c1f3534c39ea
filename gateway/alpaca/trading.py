"""Alpaca's Trading API v2 on the gateway: each route is one or a few of our requests.

Nothing here keeps state: orders, cash and positions come from the accountant, quotes
and the clock from the controller, like any /v1 route. docs/alpaca.md maps each route.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from gateway.alpaca import calendars, shapes
from gateway.alpaca.auth import alpaca_auth
from gateway.alpaca.errors import alpaca_code, status_of
from gateway.alpaca.ids import asset_uuid, order_id_of
from gateway.alpaca.lockstep import LockStepBots
from gateway.core import Gateway, to_command
from protocol.errors import ErrorCode, RejectError, error_body
from protocol.messages import OrderFields, ReplaceFields, WireNumber
from protocol.values import money, number, parse_decimal

Auth = Annotated[str, Depends(alpaca_auth)]
JSON = dict[str, Any]
_OPEN = frozenset({"new", "partially_filled", "pending_new"})
_PAGE = 1000  # orders or fills per request to the accountant when the gateway filters


class Refused(Exception):
    """An `error` reply from our processes, answered in Alpaca's shape (errors.py)."""

    def __init__(self, reply: JSON) -> None:
        super().__init__(reply["message"])
        self.reply = reply


class AlpacaOrder(BaseModel):
    """The body of `POST /v2/orders`. Fields Alpaca does not know are ignored, as Alpaca
    does; what we cannot do (legs, auctions, extended hours) is refused by name."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    symbol: Annotated[StrictStr, Field(min_length=1, max_length=36)]  # or its asset id
    side: Literal["buy", "sell"]
    type: Literal["market", "limit", "stop", "stop_limit", "trailing_stop"] = "market"
    time_in_force: Literal["day", "gtc", "opg", "cls", "ioc", "fok"] = "day"
    qty: WireNumber | None = None
    notional: WireNumber | None = None
    limit_price: WireNumber | None = None
    stop_price: WireNumber | None = None
    trail_price: WireNumber | None = None
    trail_percent: WireNumber | None = None
    extended_hours: StrictBool = False
    client_order_id: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None
    order_class: Literal["simple", "bracket", "oco", "oto", "mleg", ""] | None = None
    position_intent: (
        Literal["buy_to_open", "buy_to_close", "sell_to_open", "sell_to_close"] | None
    ) = None
    take_profit: dict[str, Any] | None = None
    stop_loss: dict[str, Any] | None = None


class AlpacaReplace(BaseModel):
    """The body of `PATCH /v2/orders/{id}`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    qty: WireNumber | None = None
    time_in_force: Literal["day", "gtc", "ioc", "fok"] | None = None
    limit_price: WireNumber | None = None
    stop_price: WireNumber | None = None
    trail: WireNumber | None = None  # Alpaca's one field for a trailing stop's trail
    client_order_id: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None


class AlpacaConfiguration(BaseModel):
    """The body of `PATCH /v2/account/configurations`: only today's values are taken."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dtbp_check: Literal["both", "entry", "exit"] | None = None
    trade_confirm_email: Literal["all", "none"] | None = None
    suspend_trade: StrictBool | None = None
    no_shorting: StrictBool | None = None
    fractional_trading: StrictBool | None = None
    max_margin_multiplier: Literal["1", "2", "4"] | None = None
    max_options_trading_level: Literal[0, 1, 2, 3] | None = None
    pdt_check: Literal["both", "entry", "exit"] | None = None
    ptp_no_exception_entry: StrictBool | None = None


CONFIGURATION = {
    "dtbp_check": "entry",
    "trade_confirm_email": "all",
    "suspend_trade": False,
    "no_shorting": True,
    "fractional_trading": True,
    "max_margin_multiplier": "1",
    "max_options_trading_level": 0,
    "pdt_check": "entry",
    "ptp_no_exception_entry": False,
}


def unsupported(what: str) -> RejectError:
    return RejectError(ErrorCode.REQUEST_FIELD_NOT_ALLOWED, f"{what} is not supported here")


def plain(value: Any) -> Any:
    """A float as the SDK sends it (`5e-05`) in plain decimal notation; the rest as is."""
    if isinstance(value, float) and math.isfinite(value):
        return format(Decimal(repr(value)), "f")
    return value


def order_fields(body: AlpacaOrder, qty: Any, symbol: str) -> OrderFields:
    """Our order from Alpaca's, once qty (given, or from a notional) and the symbol (given,
    or its asset id's) are known."""
    if body.order_class not in (None, "", "simple") or body.take_profit or body.stop_loss:
        raise unsupported(f"order_class {body.order_class or 'with legs'}")
    if body.extended_hours:
        raise unsupported("extended_hours")
    if body.time_in_force in ("opg", "cls"):
        raise unsupported(f"time_in_force {body.time_in_force}")
    return OrderFields(
        symbol=symbol,
        side=body.side,
        type=body.type,
        qty=plain(qty),
        time_in_force=body.time_in_force,  # type: ignore[arg-type]
        limit_price=plain(body.limit_price),
        stop_price=plain(body.stop_price),
        trail_price=plain(body.trail_price),
        trail_percent=plain(body.trail_percent),
        # Alpaca gives every order a client id; ours are unique per user, so a retry
        # with the same id gets the same order back
        client_order_id=body.client_order_id or str(uuid.uuid4()),
    )


def _time(text: str | None, field: str) -> str | None:
    """An RFC 3339 time or a date from a query, as our UTC text, for comparing."""
    if text is None:
        return None
    moment = calendars.moment_of(text, field)
    try:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except OverflowError as exc:  # year 1 at +14:00, year 9999 at -05:00
        raise RejectError(ErrorCode.REQUEST_INVALID, f"{field}: out of range") from exc


def _page_token(text: str | None) -> int | None:
    """The fill id at the end of an activity id (`...::<fill id>`), the page's last."""
    if text is None:
        return None
    tail = text.rpartition("::")[2]
    if not tail.isascii() or not tail.isdigit() or len(tail) > 19:
        raise RejectError(ErrorCode.REQUEST_INVALID, "page_token: an activity id of a page")
    return int(tail)


def same_order(view: JSON, fields: OrderFields) -> bool:
    """Whether an order placed (or found by its client id) is the one asked for."""
    asked = to_command(fields, "order.new")
    prices = ["qty", "limit_price", "trail_price", "trail_percent"]
    if asked["order_type"] != "trailing_stop":  # a trailing stop's stop_price moves
        prices.append("stop_price")
    return all(
        (view[k] is None) == (asked.get(k) is None)
        and (view[k] is None or Decimal(view[k]) == Decimal(asked[k]))
        for k in prices
    ) and (view["symbol"], view["side"], view["type"]) == (
        asked["symbol"],
        asked["side"],
        asked["order_type"],
    )


class TradingApi:
    """The routes, with what they share: the gateway and a short-lived symbol table."""

    def __init__(self, gateway: Gateway, profile: str, bots: LockStepBots) -> None:
        self.gateway = gateway
        self.profile = profile  # the market's default: the account's currency
        self.bots = bots  # lock-step Alpaca bots: a clock request says one is done
        self._symbols: tuple[float, dict[str, JSON]] = (0.0, {})

    async def call(self, command: JSON, auth: str) -> JSON:
        reply = await self.gateway.request(command, auth)
        if reply.get("type") == "error":
            raise Refused(reply)
        return reply

    async def symbols(self, auth: str) -> dict[str, JSON]:
        """symbols.list by symbol, asked again after a second (prev_close moves daily)."""
        loop = asyncio.get_running_loop()
        taken, table = self._symbols
        if loop.time() - taken > 1.0 or not table:
            reply = await self.call({"type": "symbols.list"}, auth)
            table = {row["symbol"]: row for row in reply["symbols"]}
            self._symbols = (loop.time(), table)
        return table

    async def symbol_of(self, symbol_or_asset_id: str, auth: str) -> str:
        """A symbol, given as itself or as its asset id (as Alpaca takes either)."""
        if len(symbol_or_asset_id) == 36:
            for symbol in await self.symbols(auth):
                if asset_uuid(symbol) == symbol_or_asset_id.lower():
                    return symbol
        return symbol_or_asset_id

    async def profile_of(self, symbol: str, auth: str) -> str:
        row = (await self.symbols(auth)).get(symbol)
        return row["profile"] if row else "us_equity"

    async def order(self, view: JSON, auth: str) -> JSON:
        return shapes.order(view, await self.profile_of(view["symbol"], auth))

    async def orders(self, auth: str, status: str, before_id: int | None) -> list[JSON]:
        command = {"type": "orders.list", "status": status, "limit": _PAGE, "before_id": before_id}
        return list((await self.call(command, auth))["orders"])

    async def order_id(self, text: str, auth: str) -> int:
        """Our id for an order UUID of ours; 404 for anything else."""
        order_id = order_id_of(text)
        if order_id is None:
            raise RejectError(ErrorCode.REQUEST_UNKNOWN_ORDER, f"order {text} not found")
        return order_id

    async def qty_for_notional(self, body: AlpacaOrder, auth: str) -> str:
        """A notional order's qty: the amount at the last price, down to the symbol's step."""
        row = (await self.symbols(auth)).get(body.symbol)
        if row is None:
            raise RejectError(ErrorCode.REQUEST_UNKNOWN_SYMBOL, f"asset {body.symbol} not found")
        step = Decimal(str(row["qty_step"]))
        if step >= 1:
            raise RejectError(
                ErrorCode.REQUEST_INVALID_QTY,
                f"notional orders need a fractionable asset; {body.symbol} trades in whole units",
            )
        if body.type != "market":
            raise unsupported("notional with an order type other than market")
        amount = parse_decimal(body.notional, "notional", ErrorCode.REQUEST_INVALID_AMOUNT)
        quote = (await self.call({"type": "quote.get", "symbol": body.symbol}, auth))["quote"]
        qty = (amount / Decimal(quote["last"])).quantize(step, rounding=ROUND_DOWN)
        if qty <= 0:
            raise RejectError(ErrorCode.REQUEST_INVALID_QTY, f"notional {amount} buys nothing")
        return number(qty)


def router(api: TradingApi) -> APIRouter:
    r = APIRouter(prefix="/v2", tags=["alpaca"])

    # ACCOUNT ---------------------------------------------------------------------------

    @r.get("/account", summary="Alpaca: the account")
    async def get_account(auth: Auth) -> JSONResponse:
        view = (await api.call({"type": "account.get"}, auth))["account"]
        stats = (await api.call({"type": "stats.get"}, auth))["stats"]
        curve = stats["equity_curve"]
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        before = [p["equity"] for p in curve if p["time"] < today]
        # before any point of an earlier day: the capital put in, cash and shares deposited
        put_in = Decimal(view["initial_cash"]) + Decimal(view["deposited_value"])
        last_equity = before[-1] if before else money(put_in)
        created = curve[0]["time"] if curve else None
        return JSONResponse(shapes.account(view, api.profile, last_equity, created))

    @r.get("/account/configurations", summary="Alpaca: account configuration")
    async def get_configurations(auth: Auth) -> JSONResponse:
        await api.call({"type": "account.get"}, auth)  # who asks: a known user
        return JSONResponse(CONFIGURATION)

    @r.patch("/account/configurations", summary="Alpaca: change the configuration")
    async def set_configurations(body: AlpacaConfiguration, auth: Auth) -> JSONResponse:
        await api.call({"type": "account.get"}, auth)
        for key, value in body.model_dump(exclude_none=True).items():
            if value != CONFIGURATION[key]:
                raise unsupported(f"{key} = {value!r} (this server has {CONFIGURATION[key]!r})")
        return JSONResponse(CONFIGURATION)

    @r.get("/account/activities", summary="Alpaca: account activities (fills)")
    async def list_activities(
        auth: Auth,
        activity_types: str | None = None,
        date: str | None = None,
        until: str | None = None,
        after: str | None = None,
        direction: Literal["asc", "desc"] = "desc",
        page_size: Annotated[int, Query(ge=1, le=100)] = 100,
        page_token: str | None = None,
    ) -> JSONResponse:
        kinds = set((activity_types or "FILL").split(","))
        if not kinds <= {"FILL"}:
            return JSONResponse([])  # we have fills only: any other type has no entries
        return await activities(auth, date, until, after, direction, page_size, page_token)

    @r.get("/account/activities/{activity_type}", summary="Alpaca: activities of one type")
    async def list_activities_of(
        activity_type: str,
        auth: Auth,
        date: str | None = None,
        until: str | None = None,
        after: str | None = None,
        direction: Literal["asc", "desc"] = "desc",
        page_size: Annotated[int, Query(ge=1, le=100)] = 100,
        page_token: str | None = None,
    ) -> JSONResponse:
        if activity_type != "FILL":
            return JSONResponse([])
        return await activities(auth, date, until, after, direction, page_size, page_token)

    async def activities(
        auth: str,
        on_date: str | None,
        until: str | None,
        after: str | None,
        direction: str,
        page_size: int,
        page_token: str | None,
    ) -> JSONResponse:
        """Fills as FILL activities, newest first unless asc; page_token: the last id seen."""
        account = (await api.call({"type": "account.get"}, auth))["account"]
        low, high = _time(after, "after"), _time(until, "until")
        if on_date is not None:
            day = calendars.day(on_date, "date")
            low, high = f"{day}T00:00:00", f"{day}T23:59:59.999999Z"
        token_id = _page_token(page_token)
        fills: list[JSON] = []
        before: int | None = token_id if direction == "desc" else None
        while True:  # newest first, page by page, until the window or the page is full
            command = {"type": "fills.list", "limit": _PAGE, "before_id": before}
            page = (await api.call(command, auth))["fills"]
            for fill in page:
                if high is not None and fill["time"] > high:
                    continue
                if low is not None and fill["time"] <= low:
                    page = []
                    break
                if direction == "asc" and token_id is not None and fill["id"] <= token_id:
                    page = []
                    break
                fills.append(fill)
            if len(page) < _PAGE or (direction == "desc" and len(fills) >= page_size):
                break
            before = page[-1]["id"]
        chosen = fills[:page_size] if direction == "desc" else list(reversed(fills))[:page_size]
        orders = await asyncio.gather(
            *(
                api.call({"type": "order.get", "order_id": oid}, auth)
                for oid in {f["order_id"] for f in chosen}
            )
        )
        by_id = {reply["order"]["id"]: reply["order"] for reply in orders}
        return JSONResponse(
            [shapes.fill_activity(f, account["user_id"], by_id.get(f["order_id"])) for f in chosen]
        )

    @r.get("/account/portfolio/history", summary="Alpaca: equity over time")
    async def portfolio_history(
        auth: Auth,
        period: Annotated[str | None, Query(pattern=r"^[0-9]+[DWMA]$")] = None,
        timeframe: Literal["1Min", "5Min", "15Min", "1H", "1D"] | None = None,
        date_end: str | None = None,
        end: str | None = None,
        start: str | None = None,
    ) -> JSONResponse:
        stats = (await api.call({"type": "stats.get"}, auth))["stats"]
        return JSONResponse(
            calendars.portfolio_history(stats, period, timeframe, date_end, start, end)
        )

    # ORDERS ----------------------------------------------------------------------------

    @r.post("/orders", summary="Alpaca: place an order")
    async def place_order(body: AlpacaOrder, auth: Auth) -> JSONResponse:
        if (body.qty is None) == (body.notional is None):
            raise RejectError(ErrorCode.REQUEST_INVALID, "qty or notional is required, not both")
        symbol = await api.symbol_of(body.symbol, auth)
        qty = body.qty if body.notional is None else await api.qty_for_notional(body, auth)
        fields = order_fields(body, qty, symbol)
        view = (await api.call(to_command(fields, "order.new"), auth))["order"]
        if body.client_order_id is not None and not same_order(view, fields):
            # ours answers a retry with its order; Alpaca refuses a reused id with other fields
            message = f"client_order_id {body.client_order_id!r} is taken by another order"
            raise RejectError(ErrorCode.REQUEST_DUPLICATE_CLIENT_ORDER_ID, message)
        notional = None if body.notional is None else str(body.notional)
        profile = await api.profile_of(view["symbol"], auth)
        return JSONResponse(shapes.order(view, profile, notional))

    @r.get("/orders", summary="Alpaca: orders, with filters")
    async def list_orders(
        auth: Auth,
        status: Literal["open", "closed", "all"] = "open",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        after: str | None = None,
        until: str | None = None,
        direction: Literal["asc", "desc"] = "desc",
        nested: bool = False,
        side: Literal["buy", "sell"] | None = None,
        symbols: str | None = None,
    ) -> JSONResponse:
        low, high = _time(after, "after"), _time(until, "until")
        wanted = set(symbols.split(",")) if symbols else None
        found: list[JSON] = []
        before: int | None = None
        while True:
            page = await api.orders(auth, "open" if status == "open" else "all", before)
            for view in page:
                if low is not None and view["created_at"] <= low:
                    page = []  # newest first: the rest are older still
                    break
                if not _chosen(view, status, high, side, wanted):
                    continue
                found.append(view)
            full = direction == "desc" and len(found) >= limit
            if len(page) < _PAGE or full:
                break
            before = page[-1]["id"]
        chosen = found[:limit] if direction == "desc" else list(reversed(found))[:limit]
        return JSONResponse([await api.order(v, auth) for v in chosen])

    def _chosen(
        view: JSON, status: str, high: str | None, side: str | None, wanted: set[str] | None
    ) -> bool:
        if status == "closed" and view["status"] in _OPEN:
            return False
        if high is not None and view["created_at"] > high:
            return False
        if side is not None and view["side"] != side:
            return False
        return wanted is None or view["symbol"] in wanted

    @r.get("/orders:by_client_order_id", summary="Alpaca: an order by its client order id")
    async def order_by_client_id(
        auth: Auth, client_order_id: Annotated[str, Query(min_length=1, max_length=128)]
    ) -> JSONResponse:
        ours = order_id_of(client_order_id)  # an order given no client id shows its own id
        command = (
            {"type": "order.get", "client_order_id": client_order_id}
            if ours is None
            else {"type": "order.get", "order_id": ours}
        )
        view = (await api.call(command, auth))["order"]
        return JSONResponse(await api.order(view, auth))

    @r.get("/orders/{order_id}", summary="Alpaca: one order")
    async def get_order(order_id: str, auth: Auth, nested: bool = False) -> JSONResponse:
        command = {"type": "order.get", "order_id": await api.order_id(order_id, auth)}
        view = (await api.call(command, auth))["order"]
        return JSONResponse(await api.order(view, auth))

    @r.patch("/orders/{order_id}", summary="Alpaca: replace an open order")
    async def replace_order(order_id: str, body: AlpacaReplace, auth: Auth) -> JSONResponse:
        old = (
            await api.call(
                {"type": "order.get", "order_id": await api.order_id(order_id, auth)}, auth
            )
        )["order"]
        trail_field = "trail_percent" if old["trail_percent"] is not None else "trail_price"
        fields = ReplaceFields(
            qty=body.qty,
            time_in_force=body.time_in_force,
            limit_price=body.limit_price,
            stop_price=body.stop_price,
            client_order_id=body.client_order_id,
            **({trail_field: body.trail} if body.trail is not None else {}),
        )
        command = {**to_command(fields, "order.replace"), "order_id": old["id"]}
        view = (await api.call(command, auth))["order"]
        return JSONResponse(await api.order(view, auth))

    @r.delete("/orders/{order_id}", summary="Alpaca: cancel an order", status_code=204)
    async def cancel_order(order_id: str, auth: Auth) -> Response:
        command = {"type": "order.cancel", "order_id": await api.order_id(order_id, auth)}
        await api.call(command, auth)
        return Response(status_code=204)

    @r.delete("/orders", summary="Alpaca: cancel every open order (207)")
    async def cancel_all(auth: Auth) -> JSONResponse:
        return JSONResponse(await cancel_open(auth), status_code=207)

    async def cancel_open(auth: str) -> list[JSON]:
        views: list[JSON] = []
        page = await api.orders(auth, "open", None)
        while page:  # every open order, a page at a time, newest first
            views += page
            page = await api.orders(auth, "open", page[-1]["id"]) if len(page) == _PAGE else []
        results = await asyncio.gather(*(cancel_one(v, auth) for v in views))
        return list(results)

    async def cancel_one(view: JSON, auth: str) -> JSON:
        reply = await api.gateway.request({"type": "order.cancel", "order_id": view["id"]}, auth)
        if reply.get("type") == "error":
            status = status_of(ErrorCode(reply["code"]))
            body = {"code": alpaca_code(status), "message": reply["message"]}
            return {"id": shapes.order(view)["id"], "status": status, "body": body}
        order = await api.order(reply["order"], auth)
        return {"id": order["id"], "status": 200, "body": order}

    # POSITIONS -------------------------------------------------------------------------

    async def positions(auth: str) -> list[JSON]:
        views = (await api.call({"type": "positions.list"}, auth))["positions"]
        table = await api.symbols(auth)
        return [shapes.position(v, table[v["symbol"]]) for v in views if v["symbol"] in table]

    async def one_position(symbol_or_id: str, auth: str) -> JSON:
        for held in await positions(auth):
            if symbol_or_id in (held["symbol"], held["asset_id"]):
                return held
        raise RejectError(ErrorCode.REQUEST_NOT_FOUND, "position does not exist")

    @r.get("/positions", summary="Alpaca: open positions")
    async def list_positions(auth: Auth) -> JSONResponse:
        return JSONResponse(await positions(auth))

    @r.get("/positions/{symbol_or_asset_id}", summary="Alpaca: one position")
    async def get_position(symbol_or_asset_id: str, auth: Auth) -> JSONResponse:
        return JSONResponse(await one_position(symbol_or_asset_id, auth))

    async def sell(held: JSON, qty: Decimal, auth: str) -> JSON:
        fields = OrderFields(
            symbol=held["symbol"],
            side="sell",
            type="market",
            qty=number(qty),
            client_order_id=str(uuid.uuid4()),
        )
        view = (await api.call(to_command(fields, "order.new"), auth))["order"]
        return await api.order(view, auth)

    @r.delete("/positions/{symbol_or_asset_id}", summary="Alpaca: close a position")
    async def close_position(
        symbol_or_asset_id: str,
        auth: Auth,
        qty: str | None = None,
        percentage: str | None = None,
    ) -> JSONResponse:
        held = await one_position(symbol_or_asset_id, auth)
        if qty is not None and percentage is not None:
            raise RejectError(ErrorCode.REQUEST_INVALID, "qty or percentage, not both")
        table = await api.symbols(auth)
        step = Decimal(str(table[held["symbol"]]["qty_step"]))
        amount = Decimal(held["qty_available"])
        if qty is not None:
            amount = parse_decimal(qty, "qty", ErrorCode.REQUEST_INVALID_QTY)
        elif percentage is not None:
            share = parse_decimal(percentage, "percentage", ErrorCode.REQUEST_INVALID_QTY)
            if not 0 < share <= 100:
                raise RejectError(ErrorCode.REQUEST_INVALID_QTY, "percentage: above 0, up to 100")
            amount = (Decimal(held["qty"]) * share / 100).quantize(step, rounding=ROUND_DOWN)
        if amount > Decimal(held["qty_available"]) or not amount:
            raise RejectError(
                ErrorCode.RISK_INSUFFICIENT_SHARES,
                f"insufficient qty available for order (requested: {number(amount)}, "
                f"available: {held['qty_available']})",
            )
        return JSONResponse(await sell(held, amount, auth))

    @r.delete("/positions", summary="Alpaca: close every position (207)")
    async def close_all(auth: Auth, cancel_orders: bool = False) -> JSONResponse:
        if cancel_orders:
            await cancel_open(auth)
        results = []
        for held in await positions(auth):
            entry: JSON = {"symbol": held["symbol"]}
            try:
                order = await sell(held, Decimal(held["qty_available"]), auth)
                entry |= {"order_id": order["id"], "status": 200, "body": order}
            except (Refused, RejectError) as refusal:
                reply = (
                    refusal.reply
                    if isinstance(refusal, Refused)
                    else error_body(refusal.code, refusal.message)
                )
                status = status_of(ErrorCode(reply["code"]))
                body = {"code": alpaca_code(status), "message": reply["message"]}
                entry |= {"status": status, "body": body | {"symbol": held["symbol"]}}
            results.append(entry)
        return JSONResponse(results, status_code=207)

    # ASSETS, CLOCK, CALENDAR -----------------------------------------------------------

    @r.get("/assets", summary="Alpaca: the tradable assets")
    async def list_assets(
        auth: Auth,
        status: str | None = None,
        asset_class: str | None = None,
        exchange: str | None = None,
    ) -> JSONResponse:
        assets = [shapes.asset(row) for row in (await api.symbols(auth)).values()]
        return JSONResponse(
            [
                a
                for a in assets
                if status in (None, a["status"])
                and asset_class in (None, a["class"])
                and exchange in (None, a["exchange"])
            ]
        )

    @r.get("/assets/{symbol_or_asset_id}", summary="Alpaca: one asset")
    async def get_asset(symbol_or_asset_id: str, auth: Auth) -> JSONResponse:
        for row in (await api.symbols(auth)).values():
            if symbol_or_asset_id in (row["symbol"], asset_uuid(row["symbol"])):
                return JSONResponse(shapes.asset(row))
        raise RejectError(ErrorCode.REQUEST_NOT_FOUND, "asset not found")

    @r.get("/clock", summary="Alpaca: the market clock (XNYS)")
    async def get_clock(auth: Auth) -> JSONResponse:
        control = await api.call({"type": "control.get"}, auth)
        api.bots.clock_asked(auth)  # a lock-step bot is done with its bar time
        market = control.get("markets", {}).get("us_equity", control)
        never_closes = market["session_open"] and not market["last_close"]
        return JSONResponse(
            await calendars.clock(control["ts"], market["session_open"], never_closes)
        )

    @r.get("/calendar", summary="Alpaca: trading days (XNYS)")
    async def get_calendar(
        auth: Auth, start: str | None = None, end: str | None = None
    ) -> JSONResponse:
        await api.call({"type": "account.get"}, auth)
        return JSONResponse(await calendars.calendar(start, end))

    return r
