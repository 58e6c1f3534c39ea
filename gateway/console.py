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
from pathlib import Path

COOKIE = "ts_session"
CSRF_HEADER = "x-tradeserver-console"
IDLE_LIMIT_S = 12 * 3600.0  # a session unused this long is closed
MAX_SESSIONS = 10_000  # the oldest are closed beyond this
STATIC_DIR = Path(__file__).parent / "console"


class ConsoleSessions:
    """Session id -> token hash, closed when idle too long or when there are too many."""

    def __init__(self, idle_limit: float = IDLE_LIMIT_S, capacity: int = MAX_SESSIONS) -> None:
        self.idle_limit = idle_limit
        self.capacity = capacity
        self._sessions: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def open(self, token_hash: str, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        session_id = secrets.token_urlsafe(32)
        self._sessions[session_id] = (token_hash, now)
        while len(self._sessions) > self.capacity:
            self._sessions.popitem(last=False)
        return session_id

    def resolve(self, session_id: str, now: float | None = None) -> str | None:
        """The token hash of a live session (and the session's idle time restarts)."""
        now = time.monotonic() if now is None else now
        found = self._sessions.get(session_id)
        if found is None:
            return None
        token_hash, used = found
        if now - used > self.idle_limit:
            del self._sessions[session_id]
            return None
        self._sessions[session_id] = (token_hash, now)
        self._sessions.move_to_end(session_id)
        return token_hash

    def close(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)
