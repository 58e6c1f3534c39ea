"""Tokens: random, URL-safe, and never taken for a command-line option."""

from __future__ import annotations

from protocol.tokens import hash_token, new_token


def test_tokens_are_long_distinct_and_never_start_with_a_dash() -> None:
    tokens = [new_token() for _ in range(2000)]  # about 31 would start with "-" unchecked
    assert len(set(tokens)) == len(tokens)
    assert all(len(t) == 43 and not t.startswith("-") for t in tokens)
    assert len(hash_token(tokens[0])) == 64
