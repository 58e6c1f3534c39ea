"""Codec limits and number parsing (protocol/codec.py, protocol/values.py)."""

from __future__ import annotations

from decimal import Decimal as D

import msgpack
import pytest

from protocol import codec
from protocol.codec import Limits
from protocol.errors import ErrorCode, RejectError
from protocol.values import iso_time, money, parse_decimal

pytestmark = pytest.mark.hostile


def refused(data: bytes, limits: Limits = codec.CLIENT_LIMITS) -> ErrorCode:
    with pytest.raises(RejectError) as caught:
        codec.decode_untrusted(data, limits)
    return caught.value.code


def test_a_map_and_a_list_of_maps_both_decode_to_a_list() -> None:
    one = {"type": "ping", "rid": 1}
    assert codec.decode_untrusted(codec.encode(one)) == [one]
    assert codec.decode_untrusted(codec.encode([one, one])) == [one, one]


def test_a_frame_over_the_size_limit_is_too_large() -> None:
    data = codec.encode({"type": "ping", "pad": "x" * 2000})
    assert refused(data, Limits(max_message_bytes=1024)) is ErrorCode.REQUEST_TOO_LARGE


@pytest.mark.parametrize(
    "data",
    [
        b"\xc1",  # never used
        b"\x92\x01",  # truncated array
        codec.encode({"a": 1}) + b"\x00",  # trailing bytes
        msgpack.packb(msgpack.ExtType(5, b"x")),
        msgpack.packb({1: 2}),
        msgpack.packb({b"k": 1}, use_bin_type=True),
        msgpack.packb([1, 2]),
        msgpack.packb([]),
        msgpack.packb("just a string"),
        b"\x91" * 100 + b"\x80",  # nested deeper than the limit
        msgpack.packb(list(range(5000))),  # array longer than the limit
        msgpack.packb({"s": "x" * 5000}),  # string longer than the limit
    ],
)
def test_malformed_or_unsafe_msgpack_is_refused(data: bytes) -> None:
    assert refused(data) is ErrorCode.REQUEST_MALFORMED


def test_msgpack_timestamps_are_ext_types_and_refused() -> None:
    import datetime

    stamp = msgpack.packb(datetime.datetime.now(datetime.UTC), datetime=True)
    assert refused(msgpack.packb([{"t": 1}])[:1] + stamp) is ErrorCode.REQUEST_MALFORMED


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (100, D(100)),
        ("10.50", D("10.50")),
        (10.1, D("10.1")),
        (0.1 + 0.2, D("0.30000000000000004")),
        (" 7.25\t", D("7.25")),  # ASCII spaces around are fine
    ],
)
def test_numbers_parse_exactly(value: object, expected: D) -> None:
    assert parse_decimal(value, "price", ErrorCode.REQUEST_INVALID_PRICE) == expected


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        -float("inf"),
        1e300,
        True,
        None,
        "nan",
        "1e5",
        "abc",
        "1" * 5000,
        [1],
        "\u0661\u0660\u0660",  # Arabic-Indic digits: Decimal() reads them as 100
        "\uff11\uff10\uff10",  # fullwidth
        "\U0001d7cf\U0001d7ce\U0001d7ce",  # mathematical bold
        "1\u0660",  # one of them after an ASCII digit
        "\u2003100",  # a Unicode space around ASCII digits
    ],
)
def test_non_numbers_and_out_of_range_numbers_are_refused(value: object) -> None:
    with pytest.raises(RejectError) as caught:
        parse_decimal(value, "price", ErrorCode.REQUEST_INVALID_PRICE)
    assert caught.value.code is ErrorCode.REQUEST_INVALID_PRICE


def test_money_has_two_decimals_or_more_and_times_are_utc_iso() -> None:
    assert money(D("5")) == "5.00"
    assert money(D("1.1000")) == "1.10"
    assert money(D("0.005")) == "0.005"  # a crypto fee or a fractional share's value
    assert money(D("-12.34567891")) == "-12.34567891"
    assert money(D("0.000000005")) == "0.00000001"  # eight places at most, half up
    assert iso_time(0) == "1970-01-01T00:00:00.000000Z"
    assert iso_time(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456Z"


@pytest.mark.parametrize("size", [0, 1, 14, 15, 16, 40, 70_000])
def test_fields_added_to_a_packed_map_read_back_as_one_map(size: int) -> None:
    original = {f"k{n}": n for n in range(size)}
    grown = codec.with_fields(codec.encode(original), {"rid": "abc", "n": None})
    assert codec.decode_internal(grown) == {**original, "rid": "abc", "n": None}
