"""The checks every new order and replacement passes before it leaves the gateway
(protocol/orders.py, protocol/messages.py): here post_only and self-trade prevention."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.core import to_command
from protocol.errors import ErrorCode, RejectError
from protocol.messages import (
    REQUESTS,
    NewOrder,
    OrderFields,
    ReplaceFields,
    validation_message,
)

ORDER = {"type": "order.new", "symbol": "600000", "side": "buy", "qty": 100, "price": "8.50"}


def command(**changes: Any) -> dict[str, Any]:
    return to_command(NewOrder.model_validate({**ORDER, **changes}), "order.new")


def refusal(**changes: Any) -> RejectError:
    with pytest.raises(RejectError) as caught:
        command(**changes)
    return caught.value


def test_an_order_is_not_post_only_and_cancels_the_newest_by_default() -> None:
    sent = command()
    assert (sent["post_only"], sent["stp"]) == (False, "cancel_newest")
    body = to_command(OrderFields.model_validate({**ORDER, "type": "limit"}), "order.new")
    assert (body["post_only"], body["stp"]) == (False, "cancel_newest")


@pytest.mark.parametrize("tif", ["day", "gtc"])
@pytest.mark.parametrize("stp", ["cancel_newest", "cancel_oldest", "cancel_both"])
def test_a_resting_limit_order_may_be_post_only_with_any_stp(tif: str, stp: str) -> None:
    sent = command(post_only=True, time_in_force=tif, stp=stp)
    assert (sent["post_only"], sent["stp"], sent["time_in_force"]) == (True, stp, tif)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"order_type": "market", "price": None},
            "post_only is for limit orders that rest, not a market",
        ),
        (
            {"order_type": "stop_limit", "stop_price": "8.60"},
            "post_only is for limit orders that rest, not a stop_limit",
        ),
        ({"time_in_force": "ioc"}, "post_only is for limit orders that rest (day or gtc), not ioc"),
        ({"time_in_force": "fok"}, "post_only is for limit orders that rest (day or gtc), not fok"),
    ],
)
def test_post_only_on_an_order_that_cannot_rest_is_refused(
    changes: dict[str, Any], message: str
) -> None:
    refused = refusal(post_only=True, **changes)
    assert (refused.code, refused.message) == (ErrorCode.REQUEST_FIELD_NOT_ALLOWED, message)


def test_post_only_false_goes_with_any_order() -> None:
    sent = command(post_only=False, order_type="market", price=None, time_in_force="ioc")
    assert sent["post_only"] is False


def test_post_only_false_on_http_goes_with_a_market_order_too() -> None:
    body = OrderFields.model_validate(
        {**ORDER, "price": None, "type": "market", "post_only": False}
    )
    assert to_command(body, "order.new")["post_only"] is False


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"stp": "cancel_all"},
            "stp: must be 'cancel_newest', 'cancel_oldest' or 'cancel_both'",
        ),
        ({"stp": None}, "stp: must be 'cancel_newest', 'cancel_oldest' or 'cancel_both'"),
        ({"post_only": "yes"}, "post_only: must be true or false"),
        ({"post_only": 1}, "post_only: must be true or false"),
    ],
)
def test_a_bad_stp_or_post_only_is_named_with_what_it_takes(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        REQUESTS["order.new"].model_validate({**ORDER, **changes})
    assert validation_message(caught.value) == message
    with pytest.raises(ValidationError):
        OrderFields.model_validate({**ORDER, "type": "limit", **changes})


@pytest.mark.parametrize("field", ["post_only", "stp"])
def test_post_only_and_stp_cannot_be_replaced(field: str) -> None:
    value = True if field == "post_only" else "cancel_both"
    with pytest.raises(ValidationError) as caught:
        REQUESTS["order.replace"].model_validate(
            {"type": "order.replace", "order_id": 1, field: value}
        )
    assert validation_message(caught.value) == f"{field}: is not a field of this request"
    with pytest.raises(ValidationError):
        ReplaceFields.model_validate({"qty": 100, field: value})


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        (0, "levels: must be at least 1"),
        (501, "levels: must be at most 500"),
        ("10", "levels: must be an integer"),
        (2.5, "levels: must be an integer"),
    ],
)
def test_depth_levels_are_1_to_500(levels: Any, message: str) -> None:
    request = {"type": "depth.get", "symbol": "600000"}
    assert REQUESTS["depth.get"].model_validate(request).levels == 10  # type: ignore[attr-defined]
    with pytest.raises(ValidationError) as caught:
        REQUESTS["depth.get"].model_validate({**request, "levels": levels})
    assert validation_message(caught.value) == message
