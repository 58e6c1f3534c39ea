"""The gateway's per-token rate limit (gateway.core.RateLimit), on a clock of our own."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.core import RateLimit, TokenGuard


def test_a_burst_passes_then_the_rate_holds() -> None:
    limit = RateLimit(rate=10, burst=3)
    assert [limit.wait("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limit.wait("a", 0.0) == 0.1  # one token comes back every 1/10 s
    assert limit.wait("a", 0.05) == 0.05  # a refused request does not cost a token
    assert limit.wait("a", 0.1) == 0.0
    assert limit.wait("a", 0.1) > 0


def test_each_key_has_its_own_bucket() -> None:
    limit = RateLimit(rate=1, burst=1)
    assert limit.wait("a", 0.0) == 0.0
    assert limit.wait("a", 0.0) == 1.0
    assert limit.wait("b", 0.0) == 0.0


def test_rate_zero_is_no_limit() -> None:
    limit = RateLimit(rate=0, burst=1)
    assert all(limit.wait("a", 0.0) == 0.0 for _ in range(10_000))


def test_made_up_keys_do_not_grow_it_without_bound() -> None:
    limit = RateLimit(rate=1, burst=5, max_keys=100)
    for n in range(10_000):
        limit.wait(f"key{n}", n / 1000)
    assert len(limit._buckets) <= 100
    for _ in range(5):  # a key in use outlives older ones when others come and go
        limit.wait("busy", 10.0)
    for n in range(90):
        limit.wait(f"other{n}", 10.0)
    assert limit.wait("busy", 10.0) > 0


@given(
    rate=st.floats(min_value=0.5, max_value=1000),
    burst=st.integers(min_value=1, max_value=50),
    gaps=st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=300),
)
def test_never_more_than_the_burst_plus_the_rate_times_the_time(
    rate: float, burst: int, gaps: list[float]
) -> None:
    limit = RateLimit(rate=rate, burst=burst)
    now, passed = 0.0, 0
    for gap in gaps:
        now += gap
        passed += limit.wait("a", now) == 0.0
        assert passed <= burst + rate * now + 1e-6


def test_tokens_not_accepted_yet_share_their_senders_allowance() -> None:
    """gateway/core.py TokenGuard (issue 14, item 4): made-up tokens from one address
    share one allowance; a token once accepted is not counted; a user's session end
    forgets that user's tokens only."""
    guard = TokenGuard(rate=1, burst=3)
    made_up = [guard.wait(f"guess-{n}", "10.0.0.9", now=0.0) for n in range(5)]
    assert made_up[:3] == [0.0, 0.0, 0.0] and all(w > 0 for w in made_up[3:])
    assert guard.wait("guess-x", "10.0.0.8", now=0.0) == 0.0  # another address: its own
    answers: list[object] = []
    for auth, user_id in (("alice", 5), ("bob", 6)):
        guard.watch(auth, answers.append)({"type": "session.ready", "user_id": user_id})
    guard.watch("wrong", answers.append)({"type": "error", "code": "AUTH_INVALID_TOKEN"})
    assert len(answers) == 3  # every answer still reaches its caller
    assert guard.wait("alice", "10.0.0.9", now=0.0) == 0.0  # accepted: not counted
    assert guard.wait("wrong", "10.0.0.9", now=0.0) > 0  # refused: still counted
    guard.forget(5)
    assert guard.wait("bob", "10.0.0.9", now=0.0) == 0.0
    assert guard.wait("alice", "10.0.0.9", now=0.0) > 0  # counted again, until accepted
