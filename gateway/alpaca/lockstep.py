"""Alpaca bots in a lock-step replay (docs/alpaca.md, "Backtests").

Alpaca's API has no "done with this bar". A bot that subscribes to bars on the market-data
websocket of a lock-step replay joins it for its user; each bar time's bars go out on that
socket, and the bar time is done for the bot, and `replay.done` sent for it, when:

1. it asks `GET /v2/clock` after those bars reached its socket (deterministic: a bot that
   ends its bar handler with `get_clock()` is never cut short), or
2. it has had no request of its own in flight for `[market] replay_alpaca_idle` seconds
   since the bars reached it and its last request was answered.

Either way, the orders it placed were answered (the SDK waits for each reply) before the
`replay.done` that follows them, so they are in the book before the next bar fills.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.core import Gateway

log = logging.getLogger("gateway")


class LockStepBots:
    """The joined bots by token hash: their requests in flight, when their last one ended,
    and the bar time each was sent and has not answered."""

    def __init__(self, gateway: Gateway, idle: float) -> None:
        self.gateway = gateway
        self.idle = idle
        self.joined: set[str] = set()
        self._busy: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._waiting: dict[str, tuple[int, asyncio.Event]] = {}
        self._answers: set[asyncio.Task[None]] = set()

    def join(self, auth: str) -> None:
        self.joined.add(auth)

    def begin(self, auth: str) -> None:
        """A request of the bot's came in (TradingApi.call)."""
        if auth in self.joined:
            self._busy[auth] = self._busy.get(auth, 0) + 1

    def end(self, auth: str) -> None:
        if auth in self.joined:
            self._busy[auth] = max(0, self._busy.get(auth, 0) - 1)
            self._last[auth] = asyncio.get_running_loop().time()

    def clock_asked(self, auth: str) -> None:
        """GET /v2/clock: done with the bar time it was sent, if any."""
        waiting = self._waiting.get(auth)
        if waiting is not None:
            waiting[1].set()

    def sent(self, auth: str, ts: int) -> None:
        """The bars of bar time `ts` (maybe none of its symbols) are on the bot's socket."""
        loop = asyncio.get_running_loop()
        asked = asyncio.Event()
        self._waiting[auth] = (ts, asked)
        self._last[auth] = loop.time()
        task = loop.create_task(self._answer(auth, ts, asked))
        self._answers.add(task)
        task.add_done_callback(self._answers.discard)

    async def _answer(self, auth: str, ts: int, asked: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not asked.is_set():
            quiet = loop.time() - self._last.get(auth, 0.0)
            if self._busy.get(auth, 0) == 0 and quiet >= self.idle:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asked.wait(), max(self.idle - quiet, self.idle / 8))
        log.debug("alpaca bot done with %d by %s", ts, "clock" if asked.is_set() else "idle")
        if self._waiting.get(auth, (None,))[0] == ts:
            del self._waiting[auth]
        reply = await self.gateway.request({"type": "replay.done", "ts": ts}, auth)
        if reply.get("type") == "error":
            log.warning("replay.done for an Alpaca bot refused: %s", reply.get("message"))
