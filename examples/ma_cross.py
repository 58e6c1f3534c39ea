"""A moving-average-cross bot that runs unchanged in a backtest and on the live server.

For each symbol it keeps the closes of its bars. When the fast average (default 5 bars)
crosses above the slow one (default 20) and it holds none, it buys `--qty` shares at
market; when the fast one crosses below and it holds some, it sells them all at market.
Market orders placed after a bar's close fill at the next bar's open.

- In a backtest (`python run.py backtest --bot "python examples/ma_cross.py"`) the bars are
  the replay's. It joins the replay asking for the steps on its own connection, so each
  bar time comes behind the private events of its fills: it knows what it holds and which
  of its orders are open without asking. For each bar time it sends its orders and its
  `replay.done` in one frame, and reads the refusals among the replies later; in
  lock-step the next bar waits for that done.
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

ZERO = Decimal(0)
DONE = frozenset({"order.filled", "order.canceled", "order.expired", "order.rejected"})


class Crossing:
    """Fast and slow simple moving averages of one symbol's closes, exact (Decimal), kept
    as running sums: a bar costs a few additions, not a pass over the window."""

    def __init__(self, fast: int, slow: int) -> None:
        self.fast, self.slow = fast, slow
        self.closes: deque[Decimal] = deque(maxlen=max(fast, slow) + 1)
        self.sums: dict[int, Decimal] = {fast: ZERO, slow: ZERO}  # of the last n closes
        self.before: tuple[Decimal, Decimal] | None = None  # the averages a bar ago

    def add(self, close: Decimal) -> str | None:
        """The close of a new bar; "up" or "down" when the averages cross on it."""
        closes = self.closes
        for n in self.sums:
            if len(closes) >= n:
                self.sums[n] -= closes[-n]
        closes.append(close)
        for n in self.sums:
            self.sums[n] += close
        if len(closes) <= max(self.fast, self.slow) - 1:
            return None
        now = (self.sums[self.fast] / self.fast, self.sums[self.slow] / self.slow)
        before, self.before = self.before, now
        if before is None:
            return None
        if now[0] > now[1] and before[0] <= before[1]:
            return "up"
        if now[0] < now[1] and before[0] >= before[1]:
            return "down"
        return None


class Strategy:
    """The crossings of every symbol, and what to do on a bar time given what is held."""

    def __init__(self, fast: int, slow: int, qty: int) -> None:
        self.fast, self.slow, self.qty = fast, slow, qty
        self.crossings: dict[str, Crossing] = {}

    def signals(self, bars: list[dict[str, Any]]) -> dict[str, str]:
        out = {}
        for bar in bars:
            crossing = self.crossings.get(bar["symbol"])
            if crossing is None:
                crossing = self.crossings[bar["symbol"]] = Crossing(self.fast, self.slow)
            signal = crossing.add(Decimal(bar["close"]))
            if signal:
                out[bar["symbol"]] = signal
        return out

    def order(self, signal: str, held: Decimal) -> tuple[str, Decimal] | None:
        """(side, qty) for a signal, or None."""
        if signal == "up" and not held:
            return "buy", Decimal(self.qty)
        if signal == "down" and held > 0:
            return "sell", held
        return None


class ReplayTrader:
    """A backtest: holdings and open orders from the private events, one frame per bar time."""

    def __init__(self, client: TradeClient, strategy: Strategy) -> None:
        self.client = client
        self.strategy = strategy
        self.held: dict[str, Decimal] = {}
        self.busy: set[str] = set()  # symbols with an order not yet done
        self.sent: dict[int, str] = {}  # rid of an order.new -> its symbol

    def take_events(self) -> None:
        events = self.client.events
        while events:
            event = events.popleft()
            order = event.get("order")
            if order is None:
                continue
            fill = event.get("fill")
            if fill is not None:
                sign = 1 if fill["side"] == "buy" else -1
                self.held[fill["symbol"]] = self.held.get(fill["symbol"], ZERO) + sign * Decimal(
                    fill["qty"]
                )
            if event["event"] in DONE:
                self.busy.discard(order["symbol"])

    def take_replies(self) -> None:
        for rid, reply in self.client.take_replies().items():
            symbol = self.sent.pop(rid, None)
            if symbol is not None and reply.get("type") == "error":
                print(f"{symbol} refused: {reply['code']}", flush=True)
                self.busy.discard(symbol)

    def on_step(self, step: dict[str, Any], fresh: bool) -> None:
        """A bar time: its orders and its done, in one frame (a bar time seen before a
        server restart is only answered)."""
        self.take_events()
        self.take_replies()
        requests = []
        symbols = []
        for symbol, signal in (self.strategy.signals(step["bars"]) if fresh else {}).items():
            wanted = (
                None
                if symbol in self.busy
                else self.strategy.order(signal, self.held.get(symbol, ZERO))
            )
            if wanted is None:
                continue
            side, qty = wanted
            fields = {"symbol": symbol, "side": side, "qty": format(qty, "f")}
            requests.append(("order.new", {**fields, "order_type": "market"}))
            symbols.append(symbol)
            self.busy.add(symbol)
            print(f"{symbol} {side} {qty}", flush=True)
        requests.append(("replay.done", {"ts": step["ts"]}))
        rids = self.client.send_batch(requests)
        self.sent.update(zip(rids, symbols, strict=False))


def run_replay(trader: ReplayTrader, client: TradeClient) -> None:
    """One step at a time until the last; in lock-step each is answered."""
    last = 0
    while True:
        step = client.next_step(timeout=60)
        if step is None:
            print("no bars for 60 s; stopping", file=sys.stderr)
            return
        trader.on_step(step, step["ts"] > last)
        last = max(last, step["ts"])
        if step["index"] == step["count"]:
            return


class LiveTrader:
    """The live server: bars of its own from the trades, and each order asked for."""

    def __init__(self, client: TradeClient, strategy: Strategy) -> None:
        self.client = client
        self.strategy = strategy
        self.pending: dict[str, int] = {}  # symbol -> id of its order not yet done

    def on_bars(self, bars: list[dict[str, Any]]) -> None:
        signals = self.strategy.signals(bars)
        if not signals:
            return
        held = {p["symbol"]: Decimal(p["qty"]) for p in self.client.positions()}
        for symbol, signal in signals.items():
            order_id = self.pending.get(symbol)
            if order_id is not None:
                if self.client.get_order(order_id)["status"] in ("new", "partially_filled"):
                    continue
                del self.pending[symbol]
            wanted = self.strategy.order(signal, held.get(symbol, ZERO))
            if wanted is None:
                continue
            side, qty = wanted
            try:
                order = self.client.place_order(
                    symbol, side, qty, order_type="market", time_in_force="day"
                )
            except TradeError as exc:
                print(f"{symbol} {side} {qty} refused: {exc.code}", flush=True)
                continue
            self.pending[symbol] = order["id"]
            print(f"{symbol} {side} {qty}: order {order['id']}", flush=True)


def run_live(trader: LiveTrader, market: MarketData, seconds: float) -> None:
    """Bars of `seconds` from the live trades: each one's close is its last trade."""
    last: dict[str, dict[str, Any]] = {}
    bar_ends = time.monotonic() + seconds
    while True:
        item = market.next(timeout=max(0.0, bar_ends - time.monotonic()))
        if item is not None and item[1].get("type") == "quote":
            last[item[1]["symbol"]] = {"symbol": item[1]["symbol"], "close": item[1]["last"]}
        if time.monotonic() >= bar_ends:
            trader.on_bars(list(last.values()))
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

    strategy = Strategy(args.fast, args.slow, args.qty)
    with TradeClient(args.endpoint, args.token) as client:
        try:
            joined = client.join_replay(steps=True)
        except TradeError as exc:
            if exc.code != "REQUEST_NOT_REPLAYING":
                raise
            symbols = [s["symbol"] for s in client.symbols()]
            print(f"live: bars of {args.bar_seconds:g}s on {', '.join(symbols)}", flush=True)
            quotes = MarketData(args.pub, topics=tuple(f"md.{s}" for s in symbols))
            run_live(LiveTrader(client, strategy), quotes, args.bar_seconds)
            return
        print(f"replay: {joined['bar_times']} bar times at speed {joined['speed']}", flush=True)
        trader = ReplayTrader(client, strategy)
        run_replay(trader, client)
        account = client.account()
        print(f"done: cash {account['cash']} equity {account['equity']}", flush=True)


if __name__ == "__main__":
    main()
