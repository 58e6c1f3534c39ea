"""The HTTP API (/v1, JSON, OpenAPI at /docs): each route is one request to the accountant.

Authentication is `Authorization: Bearer <token>`; the gateway forwards the token's hash
and the accountant resolves the user. Errors are `{"error": {"code", "message"}}` with
the HTTP status of their code (protocol.errors.HTTP_STATUS).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import itertools
import json
import math
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors.runtime import process
from gateway import alpaca, backtests, console, web
from gateway.core import Gateway, to_command
from gateway.guard import Limited, guard_token
from gateway.replay_steps import LatestStep
from gateway.streams import (
    MarketStreams,
    Sessions,
    StreamEnd,
    sse_frame,
)
from protocol.codec import PROTOCOL_VERSION
from protocol.errors import HTTP_STATUS, ErrorCode, RejectError, error_body
from protocol.messages import (
    MAX_DEPTH_LEVELS,
    BacktestFields,
    ConsoleLogin,
    ControlFields,
    DepositFields,
    OrderFields,
    ReplaceFields,
    ReplayDoneFields,
    ResetFields,
    UserFields,
    plain_message,
)
from protocol.settings import Settings
from protocol.tokens import hash_token, key_id

OrderId = Annotated[int, Path(ge=1, le=2**63 - 1)]
UserId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Limit = Annotated[int, Query(ge=1, le=1000)]
EVENT_HEARTBEAT_S = 15.0
MAX_STREAM_SYMBOLS = 200  # symbols one market stream may name
BENCH_ORDER = {  # the body the bench endpoint answers: an order view's fields
    "client_order_id": None,
    "symbol": "600000",
    "side": "buy",
    "type": "limit",
    "time_in_force": "day",
    "qty": "100",
    "limit_price": "8.50",
    "price": "8.50",
    "stop_price": None,
    "trail_price": None,
    "trail_percent": None,
    "price_bound": "8.50",
    "triggered": False,
    "replaces": None,
    "replaced_by": None,
    "post_only": False,
    "stp": "cancel_newest",
    "cancel_reason": None,
    "filled_qty": "0",
    "avg_fill_price": None,
    "commission": "0.00",
    "tax": "0.00",
    "created_at": "2026-12-07T00:00:00.000000Z",
    "updated_at": "2026-12-07T00:00:00.000000Z",
}


def console_session_of(request: Request) -> str | None:
    """The console session a request acts in: its cookie's, when it has no Authorization
    header (bearer_auth takes the cookie only then)."""
    if request.headers.get("authorization") is None:
        return request.cookies.get(console.COOKIE) or None
    return None


async def bearer_auth(request: Request) -> str:
    """The sha256 of the bearer token, or of the token behind the web console's session
    cookie (gateway/console.py); the accountant decides whose it is."""
    session_id = console_session_of(request)
    if session_id:
        return _console_user(request, session_id)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise RejectError(ErrorCode.AUTH_MISSING_TOKEN, "send Authorization: Bearer <token>")
    token_hash = hash_token(token.strip())
    guard_token(request, token_hash)
    return token_hash


def _console_user(request: Request, session_id: str) -> str:
    token_hash = request.app.state.console_sessions.resolve(session_id)
    if token_hash is None:
        raise RejectError(ErrorCode.AUTH_SESSION_ENDED, "the console session ended: sign in again")
    if request.method not in ("GET", "HEAD") and console.CSRF_HEADER not in request.headers:
        raise RejectError(
            ErrorCode.REQUEST_CROSS_SITE,
            f"a request that changes something needs the {console.CSRF_HEADER} header",
        )
    return token_hash


Auth = Annotated[str, Depends(bearer_auth)]


def error_response(code: ErrorCode, message: str) -> JSONResponse:
    return _error_json(error_body(code, message))


def _error_json(body: dict[str, Any]) -> JSONResponse:
    """An `error` reply as the HTTP error body, with the status of its code."""
    code = ErrorCode(body["code"])
    error = {"code": code.value, "message": body["message"]}
    if "retry_after" not in body:
        return JSONResponse({"error": error}, status_code=HTTP_STATUS[code])
    error["retry_after"] = body["retry_after"]
    headers = {"Retry-After": str(max(1, math.ceil(body["retry_after"])))}
    return JSONResponse({"error": error}, status_code=HTTP_STATUS[code], headers=headers)


_META = frozenset({"type", "v"})  # fields of a reply that are not its body over HTTP


def reply_response(reply: dict[str, Any], key: str | None) -> JSONResponse:
    """The reply's `key` field as the body, or the mapped error."""
    if reply.get("type") == "error":
        return _error_json(reply)
    body = reply[key] if key is not None else {k: v for k, v in reply.items() if k not in _META}
    return JSONResponse(body)


def with_key_id(reply: dict[str, Any], token_hash: str) -> dict[str, Any]:
    """session.ready with the Alpaca key id of the token it was asked with (docs/alpaca.md)."""
    if reply.get("type") != "session.ready":
        return reply
    return {**reply, "key_id": key_id(token_hash)}


class BodyLimit:
    """ASGI middleware: refuse request bodies above the limit with REQUEST_TOO_LARGE (413).

    Bodies are small, so it reads the whole body first (declared length or chunked) and
    hands the app a replay of it; the app never sees a body it would have to abandon.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _too_large(self.max_bytes)(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _too_large(self.max_bytes)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: wait for the disconnect
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


def _too_large(limit: int) -> JSONResponse:
    return error_response(ErrorCode.REQUEST_TOO_LARGE, f"request body above {limit} bytes")


def create_app(settings: Settings, gateway: Gateway, sessions: Sessions) -> FastAPI:
    app = FastAPI(
        title="TradeServer",
        version="1",
        description="Paper trading over HTTP. See docs/protocol.md for every field.",
        docs_url=None,  # web.add_docs: served from here, not from a CDN
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.limits.max_message_bytes)
    app.add_middleware(web.SecurityHeaders)  # outermost: on every answer, refusals too
    app.state.console_sessions = console_sessions = console.ConsoleSessions()
    app.state.gateway = gateway

    def refusal(request: Request, body: dict[str, Any]) -> JSONResponse:
        """An `error` in the shape of the API asked: Alpaca's under /v2, else ours."""
        if alpaca.serves(request.url.path):
            return alpaca.error_json(body, settings.limits.rate_burst)
        return _error_json(body)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            body = error_body(ErrorCode.REQUEST_MALFORMED, "body is not valid JSON")
            return refusal(request, body)
        message = plain_message(exc.errors(), outer=("body",), whole="body")
        return refusal(request, error_body(ErrorCode.REQUEST_INVALID, message))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            # FastAPI answers 400 when a body is not JSON it can read (bad UTF-8, an
            # integer of more than 4300 digits); JSON syntax errors come as json_invalid.
            400: ErrorCode.REQUEST_MALFORMED,
            404: ErrorCode.REQUEST_NOT_FOUND,
            405: ErrorCode.REQUEST_METHOD_NOT_ALLOWED,
        }.get(exc.status_code, ErrorCode.REQUEST_INVALID)
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return refusal(request, error_body(code, message))

    @app.exception_handler(Limited)
    async def _limited(request: Request, exc: Limited) -> JSONResponse:
        return refusal(request, exc.body)

    @app.exception_handler(RejectError)
    async def _rejected(request: Request, exc: RejectError) -> JSONResponse:
        return refusal(request, error_body(exc.code, exc.message))

    @app.exception_handler(alpaca.Refused)
    async def _refused(request: Request, exc: alpaca.Refused) -> JSONResponse:
        return refusal(request, exc.reply)

    async def ask(command: dict[str, Any], user: str, key: str | None) -> JSONResponse:
        return reply_response(await gateway.request(command, user), key)

    # ORDERS ----------------------------------------------------------------------------

    @app.post("/v1/orders", tags=["orders"], summary="Place an order")
    async def place_order(body: OrderFields, user: Auth) -> JSONResponse:
        return await ask(to_command(body, "order.new"), user, "order")

    @app.patch(
        "/v1/orders/{order_id}",
        tags=["orders"],
        summary="Replace an open order: a new order takes its place; returns the new order",
    )
    async def replace_order(order_id: OrderId, body: ReplaceFields, user: Auth) -> JSONResponse:
        command = {**to_command(body, "order.replace"), "order_id": order_id}
        return await ask(command, user, "order")

    @app.delete("/v1/orders/{order_id}", tags=["orders"], summary="Cancel an open order")
    async def cancel_order(order_id: OrderId, user: Auth) -> JSONResponse:
        return await ask({"type": "order.cancel", "order_id": order_id}, user, "order")

    @app.get("/v1/orders", tags=["orders"], summary="Open orders, or all with ?status=all")
    async def list_orders(
        user: Auth,
        status: Literal["open", "all"] = "open",
        limit: Limit = 100,
        before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    ) -> JSONResponse:
        command = {"type": "orders.list", "status": status, "limit": limit, "before_id": before_id}
        return await ask(command, user, "orders")

    @app.get("/v1/orders/{order_id}", tags=["orders"], summary="One order")
    async def get_order(order_id: OrderId, user: Auth) -> JSONResponse:
        return await ask({"type": "order.get", "order_id": order_id}, user, "order")

    # ACCOUNT ---------------------------------------------------------------------------

    @app.get("/v1/account", tags=["account"], summary="Cash, reserved cash, equity")
    async def get_account(user: Auth) -> JSONResponse:
        return await ask({"type": "account.get"}, user, "account")

    @app.get("/v1/positions", tags=["account"], summary="Holdings")
    async def list_positions(user: Auth) -> JSONResponse:
        return await ask({"type": "positions.list"}, user, "positions")

    @app.get("/v1/fills", tags=["account"], summary="Fills, newest first")
    async def list_fills(
        user: Auth,
        limit: Limit = 100,
        before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    ) -> JSONResponse:
        return await ask(
            {"type": "fills.list", "limit": limit, "before_id": before_id}, user, "fills"
        )

    @app.get("/v1/history", tags=["account"], summary="The operation log, oldest first")
    async def list_history(
        user: Auth,
        limit: Limit = 100,
        after_seq: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    ) -> JSONResponse:
        return await ask(
            {"type": "history.list", "limit": limit, "after_seq": after_seq}, user, None
        )

    @app.get("/v1/history.csv", tags=["account"], summary="The whole operation log as CSV")
    async def history_csv(user: Auth) -> Response:
        rows: list[dict[str, Any]] = []
        after = 0
        while True:
            command = {"type": "history.list", "limit": 1000, "after_seq": after}
            reply = await gateway.request(command, user)
            if reply.get("type") == "error":
                return reply_response(reply, None)
            rows.extend(reply["entries"])
            if reply["next_after_seq"] is None:
                break
            after = reply["next_after_seq"]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return Response(
            out.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="history.csv"'},
        )

    @app.get("/v1/stats", tags=["account"], summary="Profit statistics and the equity curve")
    async def get_stats(user: Auth) -> JSONResponse:
        return await ask({"type": "stats.get"}, user, "stats")

    # MARKET AND CONTROL ----------------------------------------------------------------

    @app.get("/v1/quotes/{symbol}", tags=["market"], summary="Last trade of a symbol")
    async def get_quote(symbol: Annotated[str, Path(max_length=32)], user: Auth) -> JSONResponse:
        return await ask({"type": "quote.get", "symbol": symbol}, user, "quote")

    @app.get(
        "/v1/depth/{symbol}",
        tags=["market"],
        summary="The book of an exchange-mode symbol as price levels, best first",
    )
    async def get_depth(
        symbol: Annotated[str, Path(max_length=32)],
        user: Auth,
        levels: Annotated[int, Query(ge=1, le=MAX_DEPTH_LEVELS)] = 10,
    ) -> JSONResponse:
        return await ask({"type": "depth.get", "symbol": symbol, "levels": levels}, user, None)

    @app.get("/v1/symbols", tags=["market"], summary="Tradable symbols and their rules")
    async def list_symbols(user: Auth) -> JSONResponse:
        return await ask({"type": "symbols.list"}, user, "symbols")

    @app.get("/v1/control", tags=["control"], summary="Run state and session state")
    async def get_control(user: Auth) -> JSONResponse:
        return await ask({"type": "control.get"}, user, None)

    @app.post("/v1/control", tags=["control"], summary="Run, pause or stop (admin)")
    async def set_control(body: ControlFields, user: Auth) -> JSONResponse:
        return await ask({"type": "control.set", "state": body.state}, user, None)

    @app.post("/v1/admin/users", tags=["admin"], summary="Create a user with capital (admin)")
    async def create_user(body: UserFields, user: Auth) -> JSONResponse:
        reply = await gateway.request(to_command(body, "user.create"), user)
        response = reply_response(reply, None)
        if reply.get("type") == "user.created":
            response.status_code = 201
        return response

    @app.get("/v1/admin/users", tags=["admin"], summary="All users with their equity (admin)")
    async def list_users(user: Auth) -> JSONResponse:
        return await ask({"type": "user.list"}, user, "users")

    @app.get("/v1/admin/digest", tags=["admin"], summary="A hash of the trading state (admin)")
    async def get_digest(user: Auth) -> JSONResponse:
        return await ask({"type": "state.digest"}, user, None)

    @app.post("/v1/token/rotate", tags=["account"], summary="A new token for yourself")
    async def rotate_own_token(user: Auth) -> JSONResponse:
        return await ask({"type": "token.rotate"}, user, None)

    @app.post(
        "/v1/admin/users/{user_id}/token", tags=["admin"], summary="A new token for a user (admin)"
    )
    async def rotate_token(user_id: UserId, user: Auth) -> JSONResponse:
        return await ask({"type": "token.rotate", "user_id": user_id}, user, None)

    @app.delete(
        "/v1/admin/users/{user_id}/token", tags=["admin"], summary="Revoke a user's token (admin)"
    )
    async def revoke_token(user_id: UserId, user: Auth) -> JSONResponse:
        return await ask({"type": "token.revoke", "user_id": user_id}, user, None)

    @app.post(
        "/v1/account/reset",
        tags=["account"],
        summary="Reset your account: cancel open orders, write off positions, new capital",
    )
    async def reset_own_account(user: Auth, body: ResetFields | None = None) -> JSONResponse:
        command = to_command(body or ResetFields(), "account.reset")
        return await ask(command, user, None)

    @app.post(
        "/v1/admin/users/{user_id}/reset", tags=["admin"], summary="Reset a user's account (admin)"
    )
    async def reset_account(
        user_id: UserId, user: Auth, body: ResetFields | None = None
    ) -> JSONResponse:
        command = {**to_command(body or ResetFields(), "account.reset"), "user_id": user_id}
        return await ask(command, user, None)

    @app.post(
        "/v1/admin/users/{user_id}/deposit",
        tags=["admin"],
        summary="Put shares into a user's account as capital (admin)",
    )
    async def deposit_shares(user_id: UserId, body: DepositFields, user: Auth) -> JSONResponse:
        command = {**to_command(body, "account.deposit"), "user_id": user_id}
        return await ask(command, user, None)

    # LOCK-STEP REPLAY (HTTP bots) -------------------------------------------------------

    latest_step = LatestStep()
    gateway.on_step(latest_step.keep)

    @app.post("/v1/replay/join", tags=["replay"], summary="Join a lock-step replay")
    async def join_replay(user: Auth) -> JSONResponse:
        return await ask({"type": "replay.join"}, user, None)

    @app.post("/v1/replay/done", tags=["replay"], summary="Done with a replay's bar time")
    async def replay_done(body: ReplayDoneFields, user: Auth) -> JSONResponse:
        return await ask({"type": "replay.done", "ts": body.ts}, user, None)

    @app.get("/v1/replay/step", tags=["replay"], summary="The next bar time of a replay")
    async def next_step(
        user: Auth,
        after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
        wait: Annotated[float, Query(ge=0, le=30)] = 25.0,
    ) -> Response:
        reply = await gateway.request({"type": "session.login"}, user)
        if reply.get("type") == "error":
            return reply_response(reply, None)
        step = await latest_step.after(after, wait)
        return Response(status_code=204) if step is None else JSONResponse(step)

    # ANSWERED HERE, FOR THE ADMIN: HEALTH AND BACKTEST REPORTS ---------------------------

    async def admin_only(user: str) -> JSONResponse | None:
        """None for the admin token; else the error to answer with."""
        reply = await gateway.request({"type": "session.login"}, user)
        if reply.get("type") == "error":
            return reply_response(reply, None)
        if not reply.get("is_admin"):
            return error_response(ErrorCode.AUTH_NOT_ADMIN, "this needs the admin token")
        return None

    @app.get("/v1/admin/health", tags=["admin"], summary="The four processes' health (admin)")
    async def get_health(user: Auth) -> JSONResponse:
        refused = await admin_only(user)
        return refused or JSONResponse({"processes": gateway.health()})

    admin_readers: dict[int, set[asyncio.Event]] = {}  # admin user -> ended when set

    def end_admin_streams(user_id: int, _reason: str) -> None:
        for ended in admin_readers.pop(user_id, set()):
            ended.set()

    gateway.on_session_end(end_admin_streams)

    @app.get(
        "/v1/admin/events",
        tags=["admin"],
        summary="Server-sent events: the processes' health each second, users every 5 (admin)",
    )
    async def admin_events(user: Auth) -> Response:
        reply = await gateway.request({"type": "session.login"}, user)
        if reply.get("type") != "session.ready":
            return reply_response(reply, None)
        if not reply.get("is_admin"):
            return error_response(ErrorCode.AUTH_NOT_ADMIN, "this needs the admin token")
        ended = asyncio.Event()
        readers = admin_readers.setdefault(reply["user_id"], set())
        readers.add(ended)
        return StreamingResponse(
            _admin_stream(gateway, user, ended, lambda: readers.discard(ended)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    def no_run(run_id: str) -> JSONResponse:
        return error_response(ErrorCode.REQUEST_NOT_FOUND, f"no finished backtest {run_id[:40]!r}")

    @app.post("/v1/backtests", tags=["backtests"], summary="Start a backtest (admin)")
    async def start_backtest(body: BacktestFields, user: Auth) -> JSONResponse:
        refused = await admin_only(user)
        if refused:
            return refused
        run_id = backtests.start(settings, backtests.arguments(settings, body))
        return JSONResponse({"run_id": run_id, "status": "running"}, status_code=202)

    @app.get("/v1/backtests", tags=["backtests"], summary="Backtest runs, newest first (admin)")
    async def list_backtests(user: Auth) -> JSONResponse:
        refused = await admin_only(user)
        if refused:
            return refused
        return JSONResponse(await run_in_threadpool(backtests.list_reports, settings.data_dir))

    @app.get("/v1/backtests/{run_id}", tags=["backtests"], summary="A backtest's report (admin)")
    async def get_backtest(run_id: Annotated[str, Path(max_length=64)], user: Auth) -> Response:
        refused = await admin_only(user)
        if refused:
            return refused
        report = await run_in_threadpool(backtests.read_report, settings.data_dir, run_id)
        return no_run(run_id) if report is None else JSONResponse(report)

    @app.get(
        "/v1/backtests/{run_id}/{name}",
        tags=["backtests"],
        summary="A backtest's report.html or equity.png (admin)",
    )
    async def get_backtest_file(
        run_id: Annotated[str, Path(max_length=64)],
        name: Annotated[str, Path(max_length=32)],
        user: Auth,
    ) -> Response:
        refused = await admin_only(user)
        if refused:
            return refused
        found = backtests.report_file(settings.data_dir, run_id, name)
        if found is None:
            return no_run(f"{run_id}/{name}")
        path, media_type = found
        return Response(path.read_bytes(), media_type=media_type)

    # PUSH STREAM -----------------------------------------------------------------------

    @app.get("/v1/events", tags=["events"], summary="Server-sent events: your own private events")
    async def events(user: Auth, request: Request) -> Response:
        mark = sessions.ends.mark()
        reply = await gateway.request({"type": "session.login"}, user)
        if reply.get("type") != "session.ready":
            return reply_response(reply, None)
        queue = sessions.subscribe(reply["user_id"], mark, console_session_of(request))
        return StreamingResponse(
            _queue_stream(
                queue, lambda: sessions.unsubscribe(reply["user_id"], queue), _event_frame
            ),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    market_streams = MarketStreams()
    gateway.on_broadcast(market_streams.on_broadcast, wants_steps=market_streams.reading)
    gateway.on_session_end(market_streams.end)
    console_sessions.on_close += [sessions.end_console, market_streams.end_console]

    @app.get(
        "/v1/market/events",
        tags=["market"],
        summary="Server-sent events: public quotes (or bars) and the control state",
    )
    async def market_events(
        user: Auth,
        request: Request,
        symbols: Annotated[
            str | None,
            Query(
                max_length=4096,
                description="Comma-separated symbols, e.g. 600000,000001; all when absent",
            ),
        ] = None,
    ) -> Response:
        names = None if symbols is None else [name.strip() for name in symbols.split(",")]
        if names is not None and (not all(names) or len(set(names)) > MAX_STREAM_SYMBOLS):
            return error_response(
                ErrorCode.REQUEST_INVALID,
                f"query.symbols: 1 to {MAX_STREAM_SYMBOLS} symbols, comma-separated",
            )
        mark = market_streams.ends.mark()
        reply = await gateway.request({"type": "session.login"}, user)
        if reply.get("type") != "session.ready":
            return reply_response(reply, None)
        wanted: frozenset[str] | None = None
        if names is not None:
            table = await gateway.request({"type": "symbols.list"}, user)
            if table.get("type") == "error":
                return reply_response(table, None)
            known = {row["symbol"] for row in table["symbols"]}
            unknown = sorted(set(names) - known)
            if unknown:
                listed = ", ".join(repr(name[:32]) for name in unknown[:5])
                return error_response(ErrorCode.REQUEST_UNKNOWN_SYMBOL, f"no symbol {listed}")
            wanted = frozenset(names)
        queue = market_streams.subscribe(
            reply["user_id"], wanted, mark, console_session_of(request)
        )
        return StreamingResponse(
            _queue_stream(queue, lambda: market_streams.unsubscribe(queue), bytes),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get("/v1/health", tags=["health"], summary="Liveness of the gateway (no data)")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    if settings.server.bench_endpoint:
        fixed_order = {"id": 0, "status": "new", **BENCH_ORDER}

        @app.post("/v1/bench/order", include_in_schema=False)
        async def bench_order(body: OrderFields) -> JSONResponse:
            """The same stack as POST /v1/orders, and nothing behind it (bench/)."""
            return JSONResponse(fixed_order)

    # WEB CONSOLE -----------------------------------------------------------------------

    @app.post("/v1/session", tags=["session"], summary="Sign in to the web console")
    async def open_session(body: ConsoleLogin, request: Request) -> JSONResponse:
        token_hash = hash_token(body.token.strip())
        guard_token(request, token_hash)
        reply = with_key_id(
            await gateway.request({"type": "session.login"}, token_hash), token_hash
        )
        response = reply_response(reply, None)
        if reply.get("type") == "session.ready":
            session_id = console_sessions.open(token_hash)
            if session_id is None:
                return error_response(
                    ErrorCode.SYSTEM_BUSY, "too many console sessions are open; try again later"
                )
            response.set_cookie(
                console.COOKIE,
                session_id,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
        return response

    @app.get("/v1/session", tags=["session"], summary="Who this token or session is")
    async def current_session(user: Auth) -> JSONResponse:
        reply = await gateway.request({"type": "session.login"}, user)
        return reply_response(with_key_id(reply, user), None)

    @app.delete("/v1/session", tags=["session"], summary="Sign out of the web console")
    async def close_session(request: Request) -> JSONResponse:
        console_sessions.close(request.cookies.get(console.COOKIE, ""))
        response = JSONResponse({"signed_out": True})
        response.delete_cookie(console.COOKIE, httponly=True, samesite="strict")
        return response

    # after /v1: a /v1 request is matched before any of Alpaca's routes are tried
    alpaca.add_to(app, settings, gateway, sessions)

    @app.get("/", include_in_schema=False)
    async def console_page() -> Response:
        return FileResponse(console.STATIC_DIR / "index.html")

    app.mount("/console", StaticFiles(directory=console.STATIC_DIR), name="console")
    web.add_docs(app)

    return app


HISTORY_COLUMNS = [
    "seq",
    "time",
    "kind",
    "order_id",
    "symbol",
    "side",
    "qty",
    "price",
    "status",
    "cash",
    "detail",
]


def _end_frame(end: StreamEnd) -> bytes:
    data = json.dumps({"reason": end.reason}, separators=(",", ":"))
    return f"event: {end.event}\ndata: {data}\n\n".encode()


async def _queue_stream(
    queue: asyncio.Queue[Any], done: Callable[[], None], render: Callable[[Any], bytes]
) -> AsyncIterator[bytes]:
    """SSE from a stream's queue: `render` makes each item's frame, a comment goes out
    while it is quiet, and a StreamEnd (`overflow`: the reader fell too far behind;
    `session.ended`: its token was rotated or revoked) is the last event."""
    try:
        yield b": connected\n\n"
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), EVENT_HEARTBEAT_S)
            except TimeoutError:
                yield b": heartbeat\n\n"
                continue
            if isinstance(item, StreamEnd):
                yield _end_frame(item)
                return
            yield render(item)
    finally:
        done()


def _event_frame(event: dict[str, Any]) -> bytes:
    """A private event: `id` its per-user seq, `event` its kind, `data` the JSON event."""
    data = json.dumps({**event, "v": PROTOCOL_VERSION}, separators=(",", ":"))
    line_id = "" if event.get("seq") is None else f"id: {event['seq']}\n"
    return f"{line_id}event: {event['event']}\ndata: {data}\n\n".encode()


ADMIN_USERS_EVERY = 5  # health reports between two user lists on the admin stream


async def _admin_stream(
    gateway: Gateway, auth: str, ended: asyncio.Event, done: Callable[[], None]
) -> AsyncIterator[bytes]:
    """`event: health` (GET /v1/admin/health's body) every HEALTH_EVERY seconds and
    `event: users` (GET /v1/admin/users') every ADMIN_USERS_EVERY of them, until the
    admin's token is rotated or revoked (`event: session.ended`)."""
    try:
        yield b": connected\n\n"
        for tick in itertools.count():
            if ended.is_set():
                break
            yield sse_frame("health", {"processes": gateway.health()})
            if tick % ADMIN_USERS_EVERY == 0:
                users = await gateway.request({"type": "user.list"}, auth)
                if users.get("type") != "error":
                    yield sse_frame("users", {"users": users["users"]})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), process.HEALTH_EVERY)
        yield _end_frame(StreamEnd("session.ended", "token changed"))
    finally:
        done()
