"""A first bot: buy 100 shares a little above the last trade, wait for the fill, sell, report.

Under cn_a's T+1 rule (on by default) shares bought today may be sold from the next
trading day: the bot then says so and keeps them.

    python examples/quickstart_bot.py --token TOKEN [--endpoint tcp://127.0.0.1:5555]

The token is printed by `python run.py` at start (and kept in runtime/demo_token).
"""

from __future__ import annotations

import argparse
import os
from decimal import Decimal

from protocol.client import TradeClient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", default="tcp://127.0.0.1:5555")
    parser.add_argument("--token", default=os.environ.get("TRADESERVER_TOKEN"))
    parser.add_argument("--symbol", default="600000")
    args = parser.parse_args()
    if not args.token:
        parser.error("give --token or set TRADESERVER_TOKEN")

    with TradeClient(args.endpoint, args.token) as client:
        last = Decimal(client.quote(args.symbol)["last"])
        limit = (last * Decimal("1.01")).quantize(Decimal("0.01"))  # 1% above the market
        print(f"{args.symbol} last {last}; buying 100 with limit {limit}")
        buy = client.place_order(args.symbol, "buy", 100, limit)
        fill = client.wait_for("order.filled", buy["id"], timeout=30)["fill"]
        print(f"bought {fill['qty']} at {fill['price']}, commission {fill['commission']}")

        [held] = [p for p in client.positions() if p["symbol"] == args.symbol]
        if Decimal(held["available_qty"]) < 100:
            print(f"T+1: {held['qty']} held, sellable from the next trading day; keeping them")
        else:
            sell_limit = (Decimal(fill["price"]) * Decimal("0.99")).quantize(Decimal("0.01"))
            sell = client.place_order(args.symbol, "sell", 100, sell_limit)
            fill = client.wait_for("order.filled", sell["id"], timeout=30)["fill"]
            print(
                f"sold {fill['qty']} at {fill['price']}, commission {fill['commission']}, "
                f"stamp tax {fill['tax']}"
            )

        account = client.account()
        stats = client.stats()
        print(
            f"cash {account['cash']}  equity {account['equity']}  "
            f"realized P&L {account['realized_pnl']}  fees paid "
            f"{Decimal(account['commission_paid']) + Decimal(account['tax_paid'])}"
        )
        print(
            f"total return {stats['total_return']}  fills {stats['fills']}  "
            f"win rate {stats['win_rate']}"
        )


if __name__ == "__main__":
    main()
