"""Liquidity agents for exchange mode: market makers, noise traders and momentum traders,
each a client of the public ZeroMQ API with a user of its own (docs/agents.md)."""

from actors.agents.market_maker import MarketMaker, Quote, ladder, plan_requote
from actors.agents.momentum import MomentumTrader, momentum_signal
from actors.agents.noise import NoiseTrader, pick_side
from actors.agents.pricing import SymbolInfo
from actors.agents.runner import Runner, traded_symbols

__all__ = [
    "MarketMaker",
    "MomentumTrader",
    "NoiseTrader",
    "Quote",
    "Runner",
    "SymbolInfo",
    "ladder",
    "momentum_signal",
    "pick_side",
    "plan_requote",
    "traded_symbols",
]
