"""The web console's session table: ids map to token hashes, idle sessions end, and the
table never grows past its capacity."""

from __future__ import annotations

from gateway.console import ConsoleSessions


def test_a_session_resolves_until_it_is_idle_too_long_and_use_keeps_it_alive() -> None:
    sessions = ConsoleSessions(idle_limit=60)
    sid = sessions.open("hash-a", now=0)
    assert len(sid) >= 40 and sid != sessions.open("hash-a", now=0)
    assert sessions.resolve(sid, now=59) == "hash-a"
    assert sessions.resolve(sid, now=118) == "hash-a"  # used at 59: idle 59 s
    assert sessions.resolve(sid, now=179) is None  # idle 61 s: gone for good
    assert sessions.resolve(sid, now=180) is None


def test_closed_and_unknown_sessions_resolve_to_nothing() -> None:
    sessions = ConsoleSessions()
    sid = sessions.open("hash-b")
    sessions.close(sid)
    sessions.close("never-existed")
    assert sessions.resolve(sid) is None
    assert sessions.resolve("") is None


def test_a_users_sessions_beyond_the_cap_close_their_own_least_recently_used() -> None:
    sessions = ConsoleSessions(per_user=3)
    other = sessions.open("admin", now=0)
    first, second, third = (sessions.open("h", now=i) for i in range(1, 4))
    assert sessions.resolve(first, now=4) == "h"  # now the user's most recently used
    fourth = sessions.open("h", now=5)
    assert len(sessions) == 4
    assert sessions.resolve(second, now=6) is None
    assert [sessions.resolve(s, now=6) for s in (first, third, fourth)] == ["h", "h", "h"]
    assert sessions.resolve(other, now=6) == "admin"


def test_a_full_table_never_closes_another_users_live_session() -> None:
    """Issue 14, item 3: 10,400 sign-ins by one trader pushed the admin's session out."""
    sessions = ConsoleSessions(capacity=50, per_user=20, idle_limit=100)
    admin = sessions.open("admin", now=0)
    for i in range(10_400):
        assert sessions.open("trader", now=1 + i / 1000) is not None
    assert sessions.resolve(admin, now=20) == "admin"
    crowd = [sessions.open(f"user-{i}", now=20) for i in range(40)]
    assert crowd.count(None) == 40 - (50 - 21)  # 29 more fit; then sign-ins are refused
    assert sessions.resolve(admin, now=21) == "admin" and len(sessions) == 50
    # idle sessions make room: at 120.5 all are idle (unused for over 100 s) but the
    # admin's, used at 21
    assert sessions.open("late", now=120.5) is not None
    assert len(sessions) == 2 and sessions.resolve(admin, now=120.6) == "admin"


def test_closing_every_session_of_a_user_leaves_no_trace() -> None:
    sessions = ConsoleSessions(per_user=2)
    ids = [sessions.open("h", now=i) for i in range(5)]
    for sid in ids:
        sessions.close(sid)
    assert len(sessions) == 0 and not sessions._of_user
