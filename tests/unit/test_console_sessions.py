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


def test_beyond_capacity_the_least_recently_used_session_ends() -> None:
    sessions = ConsoleSessions(capacity=3)
    first, second, third = (sessions.open(f"h{i}", now=i) for i in range(3))
    assert sessions.resolve(first, now=3) == "h0"  # now the most recently used
    fourth = sessions.open("h3", now=4)
    assert len(sessions) == 3
    assert sessions.resolve(second, now=5) is None
    assert [sessions.resolve(s, now=5) for s in (first, third, fourth)] == ["h0", "h2", "h3"]
