"""Bearer tokens: random secrets handed to users once, stored and compared only as hashes.

The gateway hashes the token a client presents; the accountant, which owns users, looks
the hash up. A token is 256 random bits, so one SHA-256 is enough to store it safely.
"""

from __future__ import annotations

import base64
import hashlib
import secrets


def new_token() -> str:
    """256 random bits, URL-safe; never starting with "-", which a command line would
    take for an option (`bot.py --token -x...` fails)."""
    while True:
        token = secrets.token_urlsafe(32)
        if not token.startswith("-"):
            return token


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def revoked_hash() -> str:
    """What a revoked user's token hash becomes: not a SHA-256 in hex, so no token hashes
    to it and nobody signs in as that user until a new token is given."""
    return "revoked-" + secrets.token_hex(28)  # 64 characters, as the column holds


def key_id(token_hash: str) -> str:
    """The Alpaca-style key id that goes with a token (docs/alpaca.md): public, derived
    from the token's hash, so it changes when the token does and needs no storage. The
    token itself is the secret key."""
    digest = hashlib.sha256(b"tradeserver key id\0" + token_hash.encode()).digest()
    return "PK" + base64.b32encode(digest).decode()[:18]
