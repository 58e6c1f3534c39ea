"""The one registry of stable error codes; every process and client refers to it.

A code is never renamed or reused: retire one by commenting it out. The prefix says
who refuses: AUTH_ (identity), REQUEST_ (the request itself), RISK_ (pre-trade checks),
MATCH_ (the matcher), SYSTEM_ (the server). A rejection is a reply carrying a code and
a message with the facts; exceptions are reserved for bugs.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # identity
    AUTH_MISSING_TOKEN = "AUTH_MISSING_TOKEN"
    AUTH_INVALID_TOKEN = "AUTH_INVALID_TOKEN"
    AUTH_NOT_ADMIN = "AUTH_NOT_ADMIN"
    AUTH_LOGIN_REQUIRED = "AUTH_LOGIN_REQUIRED"
    AUTH_SESSION_ENDED = "AUTH_SESSION_ENDED"
    # the request itself
    REQUEST_MALFORMED = "REQUEST_MALFORMED"
    REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
    REQUEST_UNSUPPORTED_VERSION = "REQUEST_UNSUPPORTED_VERSION"
    REQUEST_UNKNOWN_TYPE = "REQUEST_UNKNOWN_TYPE"
    REQUEST_INVALID = "REQUEST_INVALID"
    REQUEST_UNKNOWN_SYMBOL = "REQUEST_UNKNOWN_SYMBOL"
    REQUEST_NOT_EXCHANGE = "REQUEST_NOT_EXCHANGE"
    REQUEST_INVALID_QTY = "REQUEST_INVALID_QTY"
    REQUEST_LOT_SIZE = "REQUEST_LOT_SIZE"
    REQUEST_INVALID_PRICE = "REQUEST_INVALID_PRICE"
    REQUEST_PRICE_TICK = "REQUEST_PRICE_TICK"
    REQUEST_PRICE_LIMIT = "REQUEST_PRICE_LIMIT"
    REQUEST_MIN_NOTIONAL = "REQUEST_MIN_NOTIONAL"
    REQUEST_UNKNOWN_ORDER = "REQUEST_UNKNOWN_ORDER"
    REQUEST_ORDER_NOT_OPEN = "REQUEST_ORDER_NOT_OPEN"
    REQUEST_CANCEL_PENDING = "REQUEST_CANCEL_PENDING"
    REQUEST_REPLACE_PENDING = "REQUEST_REPLACE_PENDING"
    REQUEST_FIELD_REQUIRED = "REQUEST_FIELD_REQUIRED"
    REQUEST_FIELD_NOT_ALLOWED = "REQUEST_FIELD_NOT_ALLOWED"
    REQUEST_TIF_NOT_ALLOWED = "REQUEST_TIF_NOT_ALLOWED"
    REQUEST_INVALID_TRAIL = "REQUEST_INVALID_TRAIL"
    REQUEST_NOTHING_TO_REPLACE = "REQUEST_NOTHING_TO_REPLACE"
    REQUEST_DUPLICATE_CLIENT_ORDER_ID = "REQUEST_DUPLICATE_CLIENT_ORDER_ID"
    REQUEST_NAME_TAKEN = "REQUEST_NAME_TAKEN"
    REQUEST_INVALID_AMOUNT = "REQUEST_INVALID_AMOUNT"
    REQUEST_NOT_FOUND = "REQUEST_NOT_FOUND"
    REQUEST_METHOD_NOT_ALLOWED = "REQUEST_METHOD_NOT_ALLOWED"
    REQUEST_NOT_REPLAYING = "REQUEST_NOT_REPLAYING"
    REQUEST_RATE_LIMITED = "REQUEST_RATE_LIMITED"
    REQUEST_CROSS_SITE = "REQUEST_CROSS_SITE"
    REQUEST_RESET_PENDING = "REQUEST_RESET_PENDING"
    # pre-trade checks
    RISK_INSUFFICIENT_CASH = "RISK_INSUFFICIENT_CASH"
    RISK_INSUFFICIENT_SHARES = "RISK_INSUFFICIENT_SHARES"
    RISK_T_PLUS_ONE = "RISK_T_PLUS_ONE"
    # the matcher
    MATCH_FOK_NOT_FILLED = "MATCH_FOK_NOT_FILLED"
    MATCH_REPLACE_TOO_LATE = "MATCH_REPLACE_TOO_LATE"
    # the server
    SYSTEM_TIMEOUT = "SYSTEM_TIMEOUT"
    SYSTEM_UNAVAILABLE = "SYSTEM_UNAVAILABLE"
    SYSTEM_INTERNAL = "SYSTEM_INTERNAL"
    SYSTEM_BUSY = "SYSTEM_BUSY"


# HTTP status for each code; the ZeroMQ API carries the code alone.
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.AUTH_MISSING_TOKEN: 401,
    ErrorCode.AUTH_INVALID_TOKEN: 401,
    ErrorCode.AUTH_NOT_ADMIN: 403,
    ErrorCode.AUTH_LOGIN_REQUIRED: 401,
    ErrorCode.AUTH_SESSION_ENDED: 401,
    ErrorCode.REQUEST_MALFORMED: 400,
    ErrorCode.REQUEST_TOO_LARGE: 413,
    ErrorCode.REQUEST_UNSUPPORTED_VERSION: 400,
    ErrorCode.REQUEST_UNKNOWN_TYPE: 400,
    ErrorCode.REQUEST_INVALID: 422,
    ErrorCode.REQUEST_UNKNOWN_SYMBOL: 422,
    ErrorCode.REQUEST_NOT_EXCHANGE: 409,
    ErrorCode.REQUEST_INVALID_QTY: 422,
    ErrorCode.REQUEST_LOT_SIZE: 422,
    ErrorCode.REQUEST_INVALID_PRICE: 422,
    ErrorCode.REQUEST_PRICE_TICK: 422,
    ErrorCode.REQUEST_UNKNOWN_ORDER: 404,
    ErrorCode.REQUEST_ORDER_NOT_OPEN: 409,
    ErrorCode.REQUEST_CANCEL_PENDING: 409,
    ErrorCode.REQUEST_REPLACE_PENDING: 409,
    ErrorCode.REQUEST_FIELD_REQUIRED: 422,
    ErrorCode.REQUEST_FIELD_NOT_ALLOWED: 422,
    ErrorCode.REQUEST_TIF_NOT_ALLOWED: 422,
    ErrorCode.REQUEST_INVALID_TRAIL: 422,
    ErrorCode.REQUEST_NOTHING_TO_REPLACE: 422,
    ErrorCode.REQUEST_DUPLICATE_CLIENT_ORDER_ID: 409,
    ErrorCode.REQUEST_NAME_TAKEN: 409,
    ErrorCode.REQUEST_INVALID_AMOUNT: 422,
    ErrorCode.REQUEST_NOT_FOUND: 404,
    ErrorCode.REQUEST_METHOD_NOT_ALLOWED: 405,
    ErrorCode.REQUEST_NOT_REPLAYING: 409,
    ErrorCode.REQUEST_RATE_LIMITED: 429,
    ErrorCode.REQUEST_CROSS_SITE: 403,
    ErrorCode.REQUEST_RESET_PENDING: 409,
    ErrorCode.RISK_INSUFFICIENT_CASH: 403,
    ErrorCode.RISK_INSUFFICIENT_SHARES: 403,
    ErrorCode.RISK_T_PLUS_ONE: 403,
    ErrorCode.REQUEST_PRICE_LIMIT: 422,
    ErrorCode.REQUEST_MIN_NOTIONAL: 422,
    ErrorCode.MATCH_FOK_NOT_FILLED: 409,
    ErrorCode.MATCH_REPLACE_TOO_LATE: 409,
    ErrorCode.SYSTEM_TIMEOUT: 504,
    ErrorCode.SYSTEM_UNAVAILABLE: 503,
    ErrorCode.SYSTEM_INTERNAL: 500,
    ErrorCode.SYSTEM_BUSY: 503,
}


def error_body(code: ErrorCode, message: str) -> dict[str, str]:
    """The `error` reply fields, shared by both APIs."""
    return {"type": "error", "code": code.value, "message": f"{code.value}: {message}"}


class RejectError(Exception):
    """Raised when validation code deep in a call chain must refuse a request.

    Caught at the edge of the handler and turned into an `error` reply.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"RejectError({self.code.value!r}, {self.message!r})"
