"""Alpaca's Trading API v2, its stock market data (data.py) and its two websockets
(stream.py) on the gateway, so that a bot written for Alpaca runs here with only its URLs
changed. docs/alpaca.md lists what is served and how each part maps onto our messages."""

from __future__ import annotations

from fastapi import FastAPI, WebSocket

from gateway.alpaca import stream
from gateway.alpaca.data import router as data_router
from gateway.alpaca.errors import error_json
from gateway.alpaca.lockstep import LockStepBots
from gateway.alpaca.trading import Refused, TradingApi, router
from gateway.core import Gateway
from gateway.streams import Sessions
from protocol.settings import Settings

PREFIX = "/v2/"


def serves(path: str) -> bool:
    """Whether a path is Alpaca's: its errors are answered in Alpaca's shape."""
    return path.startswith(PREFIX)


def add_to(app: FastAPI, settings: Settings, gateway: Gateway, sessions: Sessions) -> None:
    """Alpaca's routes and websockets on the app; their errors need `error_json` in the
    app's exception handlers (gateway/app.py `refusal`)."""
    app.state.alpaca_bots = bots = LockStepBots(gateway, settings.market.replay_alpaca_idle)
    api = TradingApi(gateway, settings.market.profile, bots)
    app.include_router(router(api))
    app.include_router(data_router(api))  # market data, same auth and errors
    feed = stream.MarketFeed(bots, gateway)
    gateway.on_broadcast(feed.on_broadcast, wants_steps=lambda: bool(feed.clients))

    @app.websocket("/stream")
    async def trade_updates(ws: WebSocket) -> None:
        await stream.trade_updates(ws, gateway, sessions)

    @app.websocket("/v2/{name}")
    async def market_data(ws: WebSocket, name: str) -> None:
        if name not in stream.FEEDS:
            await ws.close(code=1008, reason=f"no feed {name[:20]!r}")
            return
        await stream.market_data(ws, gateway, feed)


__all__ = ["Refused", "add_to", "error_json", "serves"]
