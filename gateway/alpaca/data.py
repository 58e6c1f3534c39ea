"""Alpaca's Market Data API v2 for stocks (a subset) on the gateway: bars, latest trades,
quotes and bars, and snapshots, so alpaca-py's StockHistoricalDataClient runs unchanged
with `url_override` set to this server.

Nothing here keeps data: bars come from the controller (`bars.get`, `bars.latest`,
actors/controller/history.py), trades and quotes from `quote.get`. Prices, sizes and
vwaps are JSON numbers here, as Alpaca sends them, not our decimal strings: each is the
shortest float that reads back as our decimal. docs/alpaca.md (section 4) maps every field.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from gateway.alpaca import calendars
from gateway.alpaca.auth import alpaca_auth
from gateway.alpaca.trading import Refused, TradingApi
from protocol.errors import ErrorCode, RejectError
from protocol.messages import (
    MAX_BAR_SYMBOLS,
    GetBars,
    GetLatestBars,
    validation_message,
)
from protocol.values import iso_time

Auth = Annotated[str, Depends(alpaca_auth)]
JSON = dict[str, Any]
# 4096 characters, like /v1/market/events: a longer query, percent-encoded, may pass the
# 64 KiB the HTTP parser takes for a request line, and be refused before the API sees it
Symbols = Annotated[
    str, Query(max_length=4096, description="Comma-separated symbols, e.g. AAPL,MSFT")
]
Ignored = Annotated[str | None, Query(max_length=64, description="Accepted and ignored")]
Number = int | float
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def number(text: str | int | None) -> Number | None:
    """A decimal text of ours as a JSON number: an int when whole, else a float."""
    if text is None or isinstance(text, int):
        return text
    return float(text) if "." in text else int(text)


def symbols_of(text: str) -> list[str]:
    """The `symbols` query: comma-separated, each named once, in the order given."""
    names = list(dict.fromkeys(name.strip() for name in text.split(",")))
    if not all(names) or len(names) > MAX_BAR_SYMBOLS:
        raise RejectError(
            ErrorCode.REQUEST_INVALID,
            f"symbols: 1 to {MAX_BAR_SYMBOLS} symbols, comma-separated",
        )
    return names


def time_ns(text: str | None, field: str) -> int | None:
    """An RFC 3339 time or a date (midnight UTC) from a query, in ns (GetBars bounds it)."""
    if text is None:
        return None
    delta = calendars.moment_of(text, field) - EPOCH  # exact: no float on the way
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def token_of(cursor: list[Any] | None) -> str | None:
    """The controller's cursor as Alpaca's opaque next_page_token."""
    if cursor is None:
        return None
    return base64.urlsafe_b64encode(json.dumps(cursor).encode()).decode().rstrip("=")


def cursor_of(token: str | None) -> list[Any] | None:
    if token is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        cursor = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise RejectError(ErrorCode.REQUEST_INVALID, "page_token: not one of ours") from exc
    return cursor if isinstance(cursor, list) else [cursor]


def bar(wire: list[Any]) -> JSON:
    """A bar of the controller's ([t, o, h, l, c, v, n, vw]) in Alpaca's shape."""
    t, o, h, low, c, v, n, vw = wire
    return {
        "t": iso_time(t)[:19] + "Z",  # bars start on a whole minute
        "o": number(o),
        "h": number(h),
        "l": number(low),
        "c": number(c),
        "v": number(v),
        "n": n,
        "vw": number(vw),
    }


def trade(quote: JSON) -> JSON:
    """Our last trade (a quote.get reply) as Alpaca's trade: no venue, tape or conditions."""
    return {
        "t": quote["time"],
        "x": None,
        "p": number(quote["last"]),
        "s": number(quote["volume"]),
        "c": [],
        "i": quote["seq"],
        "z": None,
    }


def best_quote(quote: JSON) -> JSON:
    """Our bid and ask as Alpaca's quote; a feed without them gives the last price on both
    sides. Sizes are 0: no feed of ours has them."""
    return {
        "t": quote["time"],
        "ax": None,
        "ap": number(quote.get("ask", quote["last"])),
        "as": 0,
        "bx": None,
        "bp": number(quote.get("bid", quote["last"])),
        "bs": 0,
        "c": [],
        "z": None,
    }


def router(api: TradingApi) -> APIRouter:
    r = APIRouter(prefix="/v2/stocks", tags=["alpaca market data"])

    async def ask(model: type[GetBars] | type[GetLatestBars], fields: JSON, auth: str) -> JSON:
        try:
            request = model.model_validate(fields)
        except ValidationError as exc:
            raise RejectError(ErrorCode.REQUEST_INVALID, validation_message(exc)) from None
        command = request.model_dump(exclude={"v", "rid"})
        return await api.call(command, auth)

    async def quotes(names: list[str], auth: str) -> dict[str, JSON]:
        """quote.get for each symbol; the unknown are left out, as Alpaca does."""
        replies = await asyncio.gather(
            *(api.gateway.request({"type": "quote.get", "symbol": s}, auth) for s in names)
        )
        found = {}
        for name, reply in zip(names, replies, strict=True):
            if reply.get("type") != "error":
                found[name] = reply["quote"]
            elif reply["code"] != ErrorCode.REQUEST_UNKNOWN_SYMBOL.value:
                raise Refused(reply)
        return found

    @r.get("/bars", summary="Alpaca: historical bars of stocks")
    async def get_bars(
        auth: Auth,
        symbols: Symbols,
        timeframe: Annotated[str, Query(max_length=16)],
        start: Annotated[str | None, Query(max_length=64)] = None,
        end: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
        page_token: Annotated[str | None, Query(max_length=256)] = None,
        sort: Literal["asc", "desc"] = "asc",
        feed: Ignored = None,
        adjustment: Ignored = None,
        asof: Ignored = None,
        currency: Ignored = None,
    ) -> JSONResponse:
        fields = {
            "type": "bars.get",
            "symbols": symbols_of(symbols),
            "timeframe": timeframe,
            "start": time_ns(start, "start"),
            "end": time_ns(end, "end"),
            "limit": limit,
            "sort": sort,
            "after": cursor_of(page_token),
        }
        reply = await ask(GetBars, fields, auth)
        bars = {symbol: [bar(b) for b in found] for symbol, found in reply["bars"].items()}
        return JSONResponse({"bars": bars, "next_page_token": token_of(reply["next"])})

    @r.get("/bars/latest", summary="Alpaca: the latest 1-minute bar of stocks")
    async def latest_bars(
        auth: Auth, symbols: Symbols, feed: Ignored = None, currency: Ignored = None
    ) -> JSONResponse:
        fields = {"type": "bars.latest", "symbols": symbols_of(symbols)}
        latest = (await ask(GetLatestBars, fields, auth))["bars"]
        bars = {s: bar(found["minute"]) for s, found in latest.items() if found["minute"]}
        return JSONResponse({"bars": bars})

    @r.get("/trades/latest", summary="Alpaca: the latest trade of stocks")
    async def latest_trades(
        auth: Auth, symbols: Symbols, feed: Ignored = None, currency: Ignored = None
    ) -> JSONResponse:
        found = await quotes(symbols_of(symbols), auth)
        return JSONResponse({"trades": {s: trade(q) for s, q in found.items()}})

    @r.get("/quotes/latest", summary="Alpaca: the latest bid and ask of stocks")
    async def latest_quotes(
        auth: Auth, symbols: Symbols, feed: Ignored = None, currency: Ignored = None
    ) -> JSONResponse:
        found = await quotes(symbols_of(symbols), auth)
        return JSONResponse({"quotes": {s: best_quote(q) for s, q in found.items()}})

    @r.get("/snapshots", summary="Alpaca: latest trade, quote and bars of stocks")
    async def snapshots(
        auth: Auth, symbols: Symbols, feed: Ignored = None, currency: Ignored = None
    ) -> JSONResponse:
        names = symbols_of(symbols)
        found, latest = await asyncio.gather(
            quotes(names, auth),
            ask(GetLatestBars, {"type": "bars.latest", "symbols": names}, auth),
        )
        out = {}
        for name in names:
            bars = latest["bars"].get(name, {})
            if name not in found and not bars:
                continue
            quote = found.get(name)

            def shaped(key: str, bars: JSON = bars) -> JSON | None:
                return bar(bars[key]) if bars.get(key) else None

            out[name] = {
                "latestTrade": trade(quote) if quote else None,
                "latestQuote": best_quote(quote) if quote else None,
                "minuteBar": shaped("minute"),
                "dailyBar": shaped("daily"),
                "prevDailyBar": shaped("prev_daily"),
            }
        return JSONResponse(out)

    return r
