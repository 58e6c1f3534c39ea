"""A moving-average-cross bot that runs unchanged in a backtest and on the live server.

For each symbol it keeps the closes of its bars. When the fast average (default 5 bars)
crosses above the slow one (default 20) and it holds none, it buys `--qty` shares at
market; when the fast one crosses below and it holds some, it sells them all at market.
Market orders placed after a bar's close fill at the next bar's open.

- In a backtest (`python run.py backtest --bot "python examples/ma_cross.py"`) the bars are
  the replay's: it joins the replay, handles each bar time's `replay.step` message, and
  answers `replay.done` so that, in lock-step, the next bar waits for its orders.
- On the live server (`python examples/ma_cross.py --token TOKEN`) there is no replay to
  join: it makes its own bars from the trades, one every `--bar-seconds`.

The endpoints and the token come from the environment a backtest sets (TRADESERVER_API,
TRADESERVER_PUB, TRADESERVER_TOKEN) or from the flags.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from decimal import Decimal
from typing import Any

from protocol.client import MarketData, TradeClient, TradeError

OPEN_STATUSES = {"new", "partially_filled", "pending_new"}


class Crossing:
    """Fast and slow simple moving averages of one symbol's closes, exact (Decimal)."""

    def __init__(self, fast: int, slow: int) -> None:
        self.fast, self.slow = fast, slow
        self.closes: deque[Decimal] = deque(maxlen=slow + 1)

    def add(self, close: Decimal) -> str | None:
        """The close of a new bar; "up" or "down" when the averages cross on it."""
        self.closes.append(close)
        if len(self.closes) <= max(self.fast, self.slow):
            return None
        now, before = list(self.closes)[1:], list(self.closes)[:-1]
        fast_now, slow_now = _mean(now[-self.fast :]), _mean(now[-self.slow :])
        fast_before, slow_before = _mean(before[-self.fast :]), _mean(before[-self.slow :])
        if fast_now > slow_now and fast_before <= slow_before:
            return "up"
        if fast_now < slow_now and fast_before >= slow_before:
            return "down"
        return None


def _mean(values: list[Decimal]) -> Decimal:
    return sum(values, Decimal(0)) / len(values)


class Bot:
    def __init__(self, client: TradeClient, fast: int, slow: int, qty: int) -> None:
        self.client = client
        self.qty = qty
        self.fast, self.slow = fast, slow
        self.crossings: dict[str, Crossing] = {}
        self.pending: dict[str, int] = {}  # symbol -> id of its order not yet done

    def on_bars(self, bars: list[dict[str, Any]]) -> None:
        """The bars that closed at one time: trade on the crossings among them."""
        signals = {}
        for bar in bars:
            crossing = self.crossings.setdefault(bar["symbol"], Crossing(self.fast, self.slow))
            signal = crossing.add(Decimal(bar["close"]))
            if signal:
                signals[bar["symbol"]] = signal
        if not signals:
            return
        held = {p["symbol"]: Decimal(p["qty"]) for p in self.client.positions()}
        for symbol, signal in signals.items():
            if self.busy(symbol):
                continue
            qty = held.get(symbol, Decimal(0))
            if signal == "up" and not qty:
                self.place(symbol, "buy", self.qty)
            elif signal == "down" and qty > 0:
                self.place(symbol, "sell", qty)

    def busy(self, symbol: str) -> bool:
        order_id = self.pending.get(symbol)
        if order_id is None:
            return False
        if self.client.get_order(order_id)["status"] in OPEN_STATUSES:
            return True
        del self.pending[symbol]
        return False

    def place(self, symbol: str, side: str, qty: Decimal | int) -> None:
        try:
            order = self.client.place_order(
                symbol, side, qty, order_type="market", time_in_force="day"
            )
        except TradeError as exc:
            print(f"{symbol} {side} {qty} refused: {exc.code}", flush=True)
            return
        self.pending[symbol] = order["id"]
        print(f"{symbol} {side} {qty}: order {order['id']}", flush=True)


def run_replay(bot: Bot, client: TradeClient, market: MarketData) -> None:
    """One `replay.step` at a time until the last; in lock-step each is answered. A step
    seen already (announced again after a server restart) is only answered."""
    last = 0
    while True:
        item = market.next(timeout=60)
        if item is None:
            print("no bars for 60 s; stopping", file=sys.stderr)
            return
        _topic, step = item
        if step["ts"] > last:
            bot.on_bars(step["bars"])
            last = step["ts"]
        try:
            client.replay_done(step["ts"])  # this bar time's orders are all acknowledged
        except (TimeoutError, TradeError) as exc:  # the server restarting: it asks again
            print(f"replay.done {step['ts']} unanswered ({exc}); going on", file=sys.stderr)
        if step["index"] == step["count"]:
            return


def run_live(bot: Bot, market: MarketData, seconds: float) -> None:
    """Bars of `seconds` from the live trades: each one's close is its last trade."""
    last: dict[str, dict[str, Any]] = {}
    bar_ends = time.monotonic() + seconds
    while True:
        item = market.next(timeout=max(0.0, bar_ends - time.monotonic()))
        if item is not None and item[1].get("type") == "quote":
            last[item[1]["symbol"]] = {"symbol": item[1]["symbol"], "close": item[1]["last"]}
        if time.monotonic() >= bar_ends:
            bot.on_bars(list(last.values()))
            last.clear()
            bar_ends += seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    env = os.environ.get
    parser.add_argument("--endpoint", default=env("TRADESERVER_API", "tcp://127.0.0.1:5555"))
    parser.add_argument("--pub", default=env("TRADESERVER_PUB", "tcp://127.0.0.1:5556"))
    parser.add_argument("--token", default=env("TRADESERVER_TOKEN"))
    parser.add_argument("--fast", type=int, default=5)
    parser.add_argument("--slow", type=int, default=20)
    parser.add_argument("--qty", type=int, default=1000)
    parser.add_argument("--bar-seconds", type=float, default=60.0, help="live bars (not replays)")
    args = parser.parse_args()
    if not args.token:
        parser.error("give --token or set TRADESERVER_TOKEN")

    with TradeClient(args.endpoint, args.token, events=False) as client:
        bot = Bot(client, args.fast, args.slow, args.qty)
        # subscribe before joining: the first bar time goes out once we have joined
        market = MarketData(args.pub, topics=("step",))
        time.sleep(0.2)  # a SUB socket takes a moment to connect
        try:
            joined = client.join_replay()
        except TradeError as exc:
            if exc.code != "REQUEST_NOT_REPLAYING":
                raise
            market.close()
            symbols = [s["symbol"] for s in client.symbols()]
            print(f"live: bars of {args.bar_seconds:g}s on {', '.join(symbols)}", flush=True)
            quotes = MarketData(args.pub, topics=tuple(f"md.{s}" for s in symbols))
            run_live(bot, quotes, args.bar_seconds)
            return
        print(f"replay: {joined['bar_times']} bar times at speed {joined['speed']}", flush=True)
        run_replay(bot, client, market)
        account = client.account()
        print(f"done: cash {account['cash']} equity {account['equity']}", flush=True)


if __name__ == "__main__":
    main()
