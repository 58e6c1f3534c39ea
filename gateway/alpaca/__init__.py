"""Alpaca's Trading API v2 (and, in data.py and stream.py, its market data and streams)
on the gateway, so that a bot written for Alpaca runs here with only its URLs changed.
docs/alpaca.md lists what is served and how each part maps onto our messages."""

from __future__ import annotations

from gateway.alpaca.data import router as data_router
from gateway.alpaca.errors import error_json
from gateway.alpaca.trading import Refused, TradingApi, router

PREFIX = "/v2/"


def serves(path: str) -> bool:
    """Whether a path is Alpaca's: its errors are answered in Alpaca's shape."""
    return path.startswith(PREFIX)


__all__ = ["Refused", "TradingApi", "data_router", "error_json", "router", "serves"]
