"""PUB/SUB topic names and peer names; SUB filters by prefix, so receivers compare exactly."""

from __future__ import annotations

CONTROL = "ctl"  # controller: run state and session state (public)
MARKET_PREFIX = "md."  # controller: one topic per symbol (public)
REPLAY_PREFIX = "replay."  # controller -> matcher: a replayed bar to fill on (internal)


def market(symbol: str) -> str:
    return MARKET_PREFIX + symbol


def replay(symbol: str) -> str:
    return REPLAY_PREFIX + symbol


# Peers a process pushes commands to; each maps to the peer's `<name>_in` endpoint.
CONTROLLER = "controller"
MATCHER = "matcher"
ACCOUNTANT = "accountant"
GATEWAY = "gateway"
PROCESSES = (CONTROLLER, MATCHER, ACCOUNTANT, GATEWAY)
