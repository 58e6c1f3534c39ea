"""A moving-average-cross bot written for Alpaca's API with alpaca-py, and nothing else.

It runs unchanged against Alpaca's paper API and against TradeServer: only the URLs
differ, and they come from Alpaca's usual environment variables, which
`run.py backtest --bot` sets (docs/alpaca.md, "Backtests"):

    APCA_API_KEY_ID, APCA_API_SECRET_KEY   the keys
    APCA_API_BASE_URL                      the trading API (http://127.0.0.1:8000)
    APCA_API_DATA_URL                      the market data API (the same here)
    APCA_API_DATA_STREAM_URL               the market data websocket (ws://.../v2/iex)
    APCA_API_TRADING_STREAM_URL            the trade updates websocket (ws://.../stream)

It uses the four clients: the trading client (account, orders, positions, clock), the
historical data client (the bars before it starts), the market data stream (each new
bar) and the trading stream (its fills). When the fast average of the closes crosses
above the slow one and it holds none, it buys `--qty` at market; when it crosses below,
it closes the position. After each bar it asks the clock: in a lock-step backtest that
tells the server it is done with the bar.

On a live server the bars are minute bars; for a quicker look, `--bar-seconds S` makes
bars of S seconds from the trade stream instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.live import StockDataStream
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import MarketOrderRequest
from alpaca.trading.stream import TradingStream


def say(text: str) -> None:
    print(text, flush=True)


class MovingAverageCross:
    def __init__(self, args: argparse.Namespace, trading: TradingClient) -> None:
        self.args = args
        self.trading = trading
        self.closes: deque[float] = deque(maxlen=args.slow)
        self.above: bool | None = None
        self.bars = 0

    def warm_up(self, data: StockHistoricalDataClient) -> None:
        """The closes of the bars before now, so the averages are ready at once."""
        start = datetime.now(UTC) - timedelta(days=3)
        request = StockBarsRequest(
            symbol_or_symbols=self.args.symbol, timeframe=TimeFrame.Minute, start=start
        )
        try:
            bars = data.get_stock_bars(request).data.get(self.args.symbol, [])
        except (APIError, AttributeError) as exc:
            say(f"no history: {exc}")
            return
        for bar in bars[-self.args.slow :]:
            self.closes.append(bar.close)
        say(f"warm-up: {len(self.closes)} bars")

    def on_bar(self, close: float, when: Any) -> None:
        self.bars += 1
        self.closes.append(close)
        if len(self.closes) >= self.args.slow:
            fast = sum(list(self.closes)[-self.args.fast :]) / self.args.fast
            slow = sum(self.closes) / len(self.closes)
            above = fast > slow
            if self.above is not None and above != self.above:
                self.trade("buy" if above else "sell", when)
            self.above = above
        self.trading.get_clock()  # done with this bar (a lock-step backtest waits for it)
        if self.args.max_bars and self.bars >= self.args.max_bars:
            say(f"{self.bars} bars, equity {self.trading.get_account().equity}")
            os._exit(0)

    def trade(self, side: str, when: Any) -> None:
        held = {p.symbol: p for p in self.trading.get_all_positions()}
        try:
            if side == "buy" and self.args.symbol not in held:
                order = self.trading.submit_order(
                    MarketOrderRequest(
                        symbol=self.args.symbol, qty=self.args.qty, side="buy", time_in_force="day"
                    )
                )
                say(f"{when} buy {self.args.qty}: order {order.id}")
            elif side == "sell" and self.args.symbol in held:
                order = self.trading.close_position(self.args.symbol)
                say(f"{when} sell {order.qty}: order {order.id}")
        except APIError as refused:
            say(f"{when} {side} refused: {refused.status_code} {refused.message}")


def trades_as_bars(bot: MovingAverageCross, seconds: float) -> Any:
    """A trade handler that closes a bar every `seconds`: its close is the last price."""
    opened = [time.monotonic(), None]

    async def on_trade(trade: Any) -> None:
        opened[1] = trade.price
        if time.monotonic() - opened[0] >= seconds:
            opened[0] = time.monotonic()
            bot.on_bar(trade.price, trade.timestamp)

    return on_trade


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbol", default="AAPL")
    parser.add_argument("--qty", type=float, default=10)
    parser.add_argument("--fast", type=int, default=5)
    parser.add_argument("--slow", type=int, default=20)
    parser.add_argument("--bar-seconds", type=float, default=0.0)
    parser.add_argument("--max-bars", type=int, default=0, help="exit after this many bars")
    args = parser.parse_args()
    env = os.environ
    key, secret = env["APCA_API_KEY_ID"], env["APCA_API_SECRET_KEY"]
    base = env.get("APCA_API_BASE_URL", "https://paper-api.alpaca.markets")
    trading = TradingClient(key, secret, paper=True, url_override=base)
    data = StockHistoricalDataClient(key, secret, url_override=env.get("APCA_API_DATA_URL"))
    market = StockDataStream(key, secret, url_override=env.get("APCA_API_DATA_STREAM_URL"))
    updates = TradingStream(
        key, secret, paper=True, url_override=env.get("APCA_API_TRADING_STREAM_URL")
    )
    bot = MovingAverageCross(args, trading)
    say(f"{args.symbol}: fast {args.fast}, slow {args.slow}, cash {trading.get_account().cash}")
    bot.warm_up(data)

    async def on_update(update: Any) -> None:
        if update.event in ("fill", "partial_fill"):
            say(f"{update.event} {update.order.side} {update.qty} at {update.price}")

    async def on_bar(bar: Any) -> None:
        bot.on_bar(bar.close, bar.timestamp.date())

    updates.subscribe_trade_updates(on_update)
    threading.Thread(target=updates.run, daemon=True).start()
    if args.bar_seconds:
        market.subscribe_trades(trades_as_bars(bot, args.bar_seconds), args.symbol)
    else:
        market.subscribe_bars(on_bar, args.symbol)
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        market.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
