"""PUB/SUB topic names and peer names; SUB filters by prefix, so receivers compare exactly."""

from __future__ import annotations

CONTROL = "ctl"  # controller: run state and session state (public)
MARKET_PREFIX = "md."  # controller: one topic per symbol (public)
REPLAY_PREFIX = "replay."  # controller -> matcher: a replayed bar to fill on (internal)
STEP = "step"  # controller: a replay's bar time is out, with its bars (public)


def market(symbol: str) -> str:
    return MARKET_PREFIX + symbol


def replay(symbol: str) -> str:
    return REPLAY_PREFIX + symbol


# controller -> matcher and accountant: a lock-step replay's marker; the matcher passes it
# on to the accountant, which answers once it has it both ways (actors/controller/replay.py)
SYNC = "sync"


# Peers a process pushes commands to; each maps to the peer's `<name>_in` endpoint.
CONTROLLER = "controller"
MATCHER = "matcher"
ACCOUNTANT = "accountant"
GATEWAY = "gateway"
PROCESSES = (CONTROLLER, MATCHER, ACCOUNTANT, GATEWAY)
