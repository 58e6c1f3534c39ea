"""The unknown-token allowance on HTTP, for every API that takes a token (/v1, /v2)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request

from gateway.core import Gateway


class Limited(Exception):
    """A refusal with a `retry_after`, raised where no reply can be returned."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body["message"])
        self.body = body


def guard_token(request: Request, token_hash: str) -> None:
    """A token not accepted yet counts against its sender's address (TokenGuard)."""
    gateway: Gateway = request.app.state.gateway
    source = request.client.host if request.client else "unknown"
    refused = gateway.tokens.refusal(token_hash, source, time.monotonic())
    if refused is not None:
        raise Limited(refused)
