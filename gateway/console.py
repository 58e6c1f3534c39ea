"""The web console: its static page, and signing in with a token for an HttpOnly cookie.

The browser never keeps the token. `POST /v1/session` takes it once, in the body (never
in a URL, so never in a log), and sets `ts_session`: a random id that this gateway maps
to the token's hash, HttpOnly (no script can read it) and SameSite=Strict (no other
site's page sends it). A request with the cookie and no Authorization header acts as
that user; one that changes something must also carry the header `X-TradeServer-Console`,
which a page of another origin cannot add without a CORS grant this server never gives.
Sessions live in the gateway's memory: after a gateway restart, the console asks the
user to sign in again.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

COOKIE = "ts_session"
CSRF_HEADER = "x-tradeserver-console"
IDLE_LIMIT_S = 12 * 3600.0  # a session unused this long is closed
MAX_SESSIONS_PER_USER = 20  # a user's least recently used session closes beyond this
MAX_SESSIONS = 10_000  # beyond this, sign-ins wait for idle sessions to end
STATIC_DIR = Path(__file__).parent / "console"


class ConsoleSessions:
    """Session id -> token hash, closed when idle too long. A user's sessions are capped
    (their own least recently used one closes); a sign-in never closes another user's
    session: when the table is full of live sessions it is refused (`open` gives None)."""

    def __init__(
        self,
        idle_limit: float = IDLE_LIMIT_S,
        capacity: int = MAX_SESSIONS,
        per_user: int = MAX_SESSIONS_PER_USER,
    ) -> None:
        self.idle_limit = idle_limit
        self.capacity = capacity
        self.per_user = per_user
        # least recently used first, both
        self._sessions: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._of_user: dict[str, OrderedDict[str, None]] = {}
        # told the id of each session that closes, however it closes: its streams end
        self.on_close: list[Callable[[str], None]] = []

    def open(self, token_hash: str, now: float | None = None) -> str | None:
        now = time.monotonic() if now is None else now
        mine = self._of_user.get(token_hash, {})
        while len(mine) >= self.per_user:
            self.close(next(iter(mine)))
        if len(self._sessions) >= self.capacity:
            self._close_idle(now)
            if len(self._sessions) >= self.capacity:
                return None
        session_id = secrets.token_urlsafe(32)
        self._sessions[session_id] = (token_hash, now)
        self._of_user.setdefault(token_hash, OrderedDict())[session_id] = None
        return session_id

    def resolve(self, session_id: str, now: float | None = None) -> str | None:
        """The token hash of a live session (and the session's idle time restarts)."""
        now = time.monotonic() if now is None else now
        found = self._sessions.get(session_id)
        if found is None:
            return None
        token_hash, used = found
        if now - used > self.idle_limit:
            self.close(session_id)
            return None
        self._sessions[session_id] = (token_hash, now)
        self._sessions.move_to_end(session_id)
        self._of_user[token_hash].move_to_end(session_id)
        return token_hash

    def close(self, session_id: str) -> None:
        found = self._sessions.pop(session_id, None)
        if found is not None:
            mine = self._of_user[found[0]]
            del mine[session_id]
            if not mine:
                del self._of_user[found[0]]
            for listener in self.on_close:
                listener(session_id)

    def _close_idle(self, now: float) -> None:
        while self._sessions:
            session_id, (_hash, used) = next(iter(self._sessions.items()))
            if now - used <= self.idle_limit:
                return
            self.close(session_id)

    def __len__(self) -> int:
        return len(self._sessions)
