"""The gate of a lock-step replay in the matcher: a bar time is held until the bots it waits
for have answered the bar time before it.

A bot answers with `replay.done`, which reaches the matcher behind the orders it placed
(both came down the same links from the gateway through the accountant): once it is
here, those orders are in the books, and the next bar time may fill them. The controller
decides whom each step waits for (`wait_for`, `after`: the ts they must have answered)
and sends the next step before the bots have answered, so the only round trip per bar
time is the bots' own. A bot that timed out is let go with `replay.release`: no step
waits for it any more, until it answers again. Steps from a controller's earlier life
(it restarted) are dropped: it sends them again.
"""

from __future__ import annotations

from collections import deque
from typing import Any

Message = dict[str, Any]


class StepGate:
    def __init__(self) -> None:
        self.held: deque[Message] = deque()
        self.answered: dict[int, int] = {}  # bot user id -> the last bar time it answered
        self.gone: set[int] = set()  # bots let go: waited for no more
        self.life = 0  # the controller's, of the steps held

    def step(self, step: Message) -> list[Message]:
        """A step from the controller; returns the steps that may go now, in order."""
        life = step.get("life", 0)
        if life != self.life:
            self.held.clear()
            self.life = life
        self.held.append(step)
        return self._release()

    def done(self, user_id: int, ts: int) -> list[Message]:
        """A bot answered bar time `ts` (its orders for it are in the books)."""
        self._answer(user_id, ts)
        return self._release()

    def _answer(self, user_id: int, ts: int) -> None:
        self.gone.discard(user_id)
        if ts > self.answered.get(user_id, 0):
            self.answered[user_id] = ts

    def let_go(self, users: list[int], ts: int) -> list[Message]:
        """The controller stopped waiting for these bots (they timed out) at `ts`."""
        for user_id in users:
            self._answer(user_id, ts)
            self.gone.add(user_id)  # after _answer, which takes a bot back
        return self._release()

    def _release(self) -> list[Message]:
        out = []
        held, answered, gone = self.held, self.answered, self.gone
        while held and all(
            u in gone or answered.get(u, 0) >= held[0]["after"] for u in held[0]["wait_for"]
        ):
            out.append(held.popleft())
        return out
