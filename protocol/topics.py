"""PUB/SUB topic names and peer names; SUB filters by prefix, so receivers compare exactly."""

from __future__ import annotations

CONTROL = "ctl"  # controller: run state and session state (public)
MARKET_PREFIX = "md."  # controller: one topic per symbol (public); a replay's bars too
# controller: an exchange-mode symbol's depth changes; clients get them on md.<symbol>
DEPTH_PREFIX = "depth."
# controller: an exchange-mode symbol's reference price (the synthetic walk), public: the
# liquidity agents quote around it
REFERENCE_PREFIX = "ref."
STEP = "step"  # gateway: a replay's bar time is out, with its bars (public)


def market(symbol: str) -> str:
    return MARKET_PREFIX + symbol


def depth(symbol: str) -> str:
    return DEPTH_PREFIX + symbol


def reference(symbol: str) -> str:
    return REFERENCE_PREFIX + symbol


# Peers a process pushes commands to; each maps to the peer's `<name>_in` endpoint.
CONTROLLER = "controller"
MATCHER = "matcher"
ACCOUNTANT = "accountant"
GATEWAY = "gateway"
PROCESSES = (CONTROLLER, MATCHER, ACCOUNTANT, GATEWAY)
