"""Our refusals as Alpaca's error bodies: `{"code": <8 digits>, "message": ...}`.

Alpaca's code starts with the HTTP status (40310000: 403, forbidden). Our own stable code
rides along as `reason`, so a bot that knows both APIs can tell a lot-size refusal from
a tick-size one; alpaca-py ignores fields it does not know.
"""

from __future__ import annotations

import math
import time
from typing import Any

from fastapi.responses import JSONResponse

from protocol.errors import HTTP_STATUS, ErrorCode

_STATUS = {
    # Alpaca answers 422 where a request is well formed but cannot be taken, and 403
    # where the account cannot afford it; 429 for "slow down" so the SDK retries
    ErrorCode.REQUEST_ORDER_NOT_OPEN: 422,
    ErrorCode.REQUEST_CANCEL_PENDING: 422,
    ErrorCode.REQUEST_REPLACE_PENDING: 422,
    ErrorCode.REQUEST_DUPLICATE_CLIENT_ORDER_ID: 422,
    ErrorCode.REQUEST_NOT_REPLAYING: 422,
    ErrorCode.REQUEST_NOT_EXCHANGE: 422,
    ErrorCode.MATCH_FOK_NOT_FILLED: 422,
    ErrorCode.MATCH_REPLACE_TOO_LATE: 422,
    ErrorCode.MATCH_POST_ONLY_WOULD_TAKE: 422,
    ErrorCode.MATCH_SELF_TRADE: 422,
    ErrorCode.MATCH_NOT_CANCELABLE: 422,
    ErrorCode.REQUEST_UNSUPPORTED_VERSION: 422,
    ErrorCode.REQUEST_UNKNOWN_TYPE: 422,
    ErrorCode.SYSTEM_BUSY: 429,
}


def status_of(code: ErrorCode) -> int:
    return _STATUS.get(code, HTTP_STATUS[code])


def alpaca_code(status: int) -> int:
    """Alpaca's code for a status: 40310000 for 403, 42910000 for 429; 40010001 for 400."""
    return 40010001 if status == 400 else status * 100_000 + 10_000


def _plain(message: str, code: ErrorCode) -> str:
    """Alpaca's messages carry no code prefix: "insufficient buying power", not ours."""
    prefix = f"{code.value}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def error_json(body: dict[str, Any], rate_limit: int) -> JSONResponse:
    """An `error` reply (protocol.errors.error_body, with `retry_after` when limited) as
    Alpaca's body and status, with its rate-limit headers on 429."""
    code = ErrorCode(body["code"])
    status = status_of(code)
    content = {
        "code": alpaca_code(status),
        "message": _plain(body["message"], code),
        "reason": code.value,
    }
    headers = None
    if status == 429:
        wait = float(body.get("retry_after", 1.0))
        headers = rate_limit_headers(rate_limit, 0, wait)
        headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return JSONResponse(content, status_code=status, headers=headers)


def rate_limit_headers(limit: int, remaining: int, wait: float = 0.0) -> dict[str, str]:
    """Alpaca's X-RateLimit-* headers: the allowance, what is left, and the Unix second
    at which a request will be taken again."""
    reset = math.ceil(time.time() + wait)
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(reset),
    }
