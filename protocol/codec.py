"""The one codec: msgpack bytes to messages and back, with limits; nothing else calls msgpack.

Every message is a map with string keys carrying `v` (protocol version) and `type`.
A frame holds one message or, between our own processes, a list of messages (a batch).
Untrusted bytes (from clients) are decoded with explicit size, length and depth limits;
ext types (timestamps included) and non-string keys are refused. Never pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from protocol.errors import ErrorCode, RejectError

PROTOCOL_VERSION = 1


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied when decoding bytes from an untrusted peer."""

    max_message_bytes: int = 64 * 1024
    max_str_len: int = 4096
    max_bin_len: int = 0
    max_array_len: int = 1000
    max_map_len: int = 64
    max_depth: int = 6


CLIENT_LIMITS = Limits()
# Our own processes trust each other but still bound what one frame may hold.
INTERNAL_LIMITS = Limits(
    max_message_bytes=256 * 1024 * 1024,
    max_str_len=1024 * 1024,
    max_bin_len=64 * 1024 * 1024,  # replies and events the accountant packed for clients
    max_array_len=10_000_000,
    max_map_len=100_000,
    max_depth=32,
)


def encode(obj: Any) -> bytes:
    """Pack a message or a batch. Raises TypeError for anything msgpack cannot carry."""
    return msgpack.packb(obj, use_bin_type=True, datetime=False)


def with_fields(
    packed: bytes, fields: dict[str, Any], packed_values: dict[str, bytes] | None = None
) -> bytes:
    """A packed map with more entries, without unpacking it: its header counts the new
    ones and they follow its own (keys it has already must not be given again). The
    values of `packed_values` are packed already: one order view packed once goes into
    both the reply and the event that carry it."""
    first = packed[0]
    if 0x80 <= first <= 0x8F:  # fixmap
        count, start = first & 0x0F, 1
    elif first == 0xDE:  # map 16
        count, start = int.from_bytes(packed[1:3], "big"), 3
    elif first == 0xDF:  # map 32
        count, start = int.from_bytes(packed[1:5], "big"), 5
    else:
        raise ValueError("not a packed map")
    parts = [b"", packed[start:]]  # the header, made below once the count is known
    for key, value in fields.items():
        parts += (_packed_key(key), encode(value))
    if packed_values:
        for key, raw in packed_values.items():
            parts += (_packed_key(key), raw)
    count += (len(parts) - 2) // 2
    if count < 16:
        head = _FIXMAP_HEADS[count]
    elif count < 1 << 16:
        head = b"\xde" + count.to_bytes(2, "big")
    else:
        head = b"\xdf" + count.to_bytes(4, "big")
    parts[0] = head
    return b"".join(parts)


_FIXMAP_HEADS = [bytes((0x80 | n,)) for n in range(16)]
_KEYS: dict[str, bytes] = {}


def _packed_key(key: str) -> bytes:
    packed = _KEYS.get(key)
    if packed is None:
        packed = encode(key)
        if len(_KEYS) < 1000:  # the few field names the servers add
            _KEYS[key] = packed
    return packed


def _unpack(data: bytes, limits: Limits) -> Any:
    return msgpack.unpackb(
        data,
        raw=False,
        strict_map_key=True,
        max_str_len=limits.max_str_len,
        max_bin_len=limits.max_bin_len,
        max_array_len=limits.max_array_len,
        max_map_len=limits.max_map_len,
        max_ext_len=0,
    )


def decode_internal(data: bytes) -> Any:
    """Unpack a frame from one of our own processes (map or list of maps)."""
    return _unpack(data, INTERNAL_LIMITS)


def decode_untrusted(data: bytes, limits: Limits = CLIENT_LIMITS) -> list[dict[str, Any]]:
    """Unpack a client frame into a list of messages (one map, or a list of maps).

    Raises:
        RejectError: REQUEST_TOO_LARGE or REQUEST_MALFORMED; nothing has been acted on.
    """
    if len(data) > limits.max_message_bytes:
        raise RejectError(
            ErrorCode.REQUEST_TOO_LARGE,
            f"frame of {len(data)} bytes exceeds {limits.max_message_bytes}",
        )
    try:
        obj = _unpack(data, limits)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        reason = str(exc) or type(exc).__name__
        raise RejectError(ErrorCode.REQUEST_MALFORMED, f"not valid msgpack ({reason})") from None
    check_shape(obj, limits)
    messages = obj if isinstance(obj, list) else [obj]
    if not messages or not all(isinstance(m, dict) for m in messages):
        raise RejectError(ErrorCode.REQUEST_MALFORMED, "a frame holds a map or a list of maps")
    return messages


def check_shape(obj: Any, limits: Limits, depth: int = 0) -> None:
    """Refuse nesting deeper than the limit and map keys that are not strings.

    Raises:
        RejectError: REQUEST_MALFORMED.
    """
    if depth > limits.max_depth:
        raise RejectError(ErrorCode.REQUEST_MALFORMED, f"nesting deeper than {limits.max_depth}")
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise RejectError(ErrorCode.REQUEST_MALFORMED, "map keys must be strings")
            if isinstance(value, dict | list):
                check_shape(value, limits, depth + 1)
    elif isinstance(obj, list):
        for value in obj:
            if isinstance(value, dict | list):
                check_shape(value, limits, depth + 1)
