"""The latest `replay.step` the controller published, for HTTP bots: they wait for the
next one with `GET /v1/replay/step?after=<ts>` instead of a SUB socket (docs/backtest.md)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from protocol import topics


class LatestStep:
    """Kept by the gateway's event loop; `on_broadcast` is a Gateway broadcast listener."""

    def __init__(self) -> None:
        self.step: dict[str, Any] | None = None
        self._next = asyncio.Event()

    def on_broadcast(self, topic: str, messages: list[dict[str, Any]]) -> None:
        if topic == topics.STEP:
            self.step = messages[-1]
            self._next.set()  # wakes those waiting now; later ones wait on a new event
            self._next = asyncio.Event()

    async def after(self, ts: int, wait: float) -> dict[str, Any] | None:
        """The latest step with a time after `ts`, waiting up to `wait` seconds for one."""
        deadline = asyncio.get_running_loop().time() + wait
        while self.step is None or self.step["ts"] <= ts:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._next.wait(), left)
        return self.step
