"""Alpaca's credentials: `APCA-API-KEY-ID` + `APCA-API-SECRET-KEY`, or a bearer token.

The secret key is the user's token and the key id is derived from it
(protocol.tokens.key_id), so a pair is checked here without asking anyone; the
accountant then resolves the token's hash to its user, as for /v1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request

from gateway.alpaca.lockstep import LockStepBots
from gateway.guard import guard_token
from protocol.errors import ErrorCode, RejectError
from protocol.tokens import hash_token, key_id


async def alpaca_auth(request: Request) -> AsyncIterator[str]:
    """The sha256 of the token behind the request's Alpaca credentials, for the length of
    the request: a lock-step bot is busy until its request is answered (lockstep.py)."""
    token_hash = _token_hash(request)
    bots: LockStepBots = request.app.state.alpaca_bots
    bots.begin(token_hash)
    try:
        yield token_hash
    finally:
        bots.end(token_hash)


def _token_hash(request: Request) -> str:
    secret = request.headers.get("apca-api-secret-key", "").strip()
    if secret:
        token_hash = hash_token(secret)
        guard_token(request, token_hash)
        if request.headers.get("apca-api-key-id", "").strip() != key_id(token_hash):
            raise RejectError(
                ErrorCode.AUTH_INVALID_TOKEN, "the key id does not go with this secret key"
            )
        return token_hash
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise RejectError(
            ErrorCode.AUTH_MISSING_TOKEN,
            "send APCA-API-KEY-ID and APCA-API-SECRET-KEY, or Authorization: Bearer <secret>",
        )
    token_hash = hash_token(token.strip())
    guard_token(request, token_hash)
    return token_hash
