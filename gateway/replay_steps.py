"""The latest `replay.step` the controller published, for HTTP bots: they wait for the
next one with `GET /v1/replay/step?after=<ts>` instead of a SUB socket (docs/backtest.md)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from gateway.core import public_step


class LatestStep:
    """Kept by the gateway's event loop; `keep` is a Gateway step listener. The step is
    kept packed, as the accountant packed it, and unpacked for an HTTP bot that asks."""

    def __init__(self) -> None:
        self.ts = -1
        self._packed = b""
        self._next = asyncio.Event()

    def keep(self, ts: int, packed: bytes) -> None:
        self.ts, self._packed = ts, packed
        self._next.set()  # wakes those waiting now; later ones wait on a new event
        self._next = asyncio.Event()

    async def after(self, ts: int, wait: float) -> dict[str, Any] | None:
        """The latest step with a time after `ts`, waiting up to `wait` seconds for one."""
        deadline = asyncio.get_running_loop().time() + wait
        while self.ts <= ts:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._next.wait(), left)
        return public_step(self._packed)
