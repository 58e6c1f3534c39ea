"""Refusals of ill-formed requests say what the field takes, in our words: no validator
internals (union branch names, error counts, pydantic's phrasing) reach a client."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from protocol.messages import (
    REQUESTS,
    BacktestFields,
    OrderFields,
    plain_message,
    validation_message,
)

ORDER = {"type": "order.new", "symbol": "600000", "side": "buy", "qty": 100, "price": "8.50"}


def refusal(request: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        REQUESTS[request["type"]].model_validate(request)
    return validation_message(caught.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"qty": True}, "qty: must be an integer or a decimal string"),
        ({"qty": [100]}, "qty: must be an integer or a decimal string"),
        ({"price": {}}, "price: must be an integer or a decimal string"),
        ({"rid": 1.5}, "rid: must be an integer or a string of at most 64 characters"),
        ({"rid": "x" * 65}, "rid: must be an integer or a string of at most 64 characters"),
        ({"rid": 2**63}, "rid: must be an integer or a string of at most 64 characters"),
        ({"side": "hold"}, "side: must be 'buy' or 'sell'"),
        ({"symbol": ""}, "symbol: must not be empty"),
        ({"symbol": "X" * 33}, "symbol: must have at most 32 characters"),
        ({"client_order_id": 7}, "client_order_id: must be a string"),
        ({"foo": 1}, "foo: is not a field of this request"),
        ({"qty": None}, "qty: must be an integer or a decimal string"),
    ],
)
def test_an_order_field_is_named_with_what_it_takes(change: dict[str, Any], message: str) -> None:
    assert refusal({**ORDER, **change}) == message


def test_each_kind_of_problem_is_said_plainly() -> None:
    assert refusal({"type": "order.cancel"}) == "order_id: is required"
    assert refusal({"type": "order.cancel", "order_id": 0}) == "order_id: must be at least 1"
    assert refusal({"type": "order.cancel", "order_id": "5"}) == "order_id: must be an integer"
    assert refusal({"type": "orders.list", "limit": 5000}) == "limit: must be at most 1000"
    assert refusal({"type": "session.login", "token": "t", "events": 1}) == (
        "events: must be true or false"
    )
    assert refusal({"type": "control.set", "state": "go"}) == (
        "state: must be 'running', 'paused' or 'stopped'"
    )
    assert refusal({"type": "replay.done", "ts": 1.5}) == "ts: must be an integer"


def test_other_fields_with_problems_are_counted_not_listed() -> None:
    message = refusal({"type": "order.new", "side": "hold", "qty": True})
    assert message == "symbol: is required (and 2 more field(s) with a problem)"


def test_no_validator_wording_reaches_the_client() -> None:
    bad: list[dict[str, Any]] = [
        {**ORDER, "qty": True},
        {**ORDER, "rid": 1.5},
        {**ORDER, "limit_price": [1]},
        {"type": "order.new"},
        {"type": "user.create", "name": "a b", "cash": 1},
    ]
    for request in bad:
        message = refusal(request)
        for internal in ("constrained", "problem(s)", "Input should", ".int", ".str", "Field"):
            assert internal not in message, message


def test_http_bodies_and_queries_name_the_place_without_body() -> None:
    with pytest.raises(ValidationError) as caught:
        OrderFields.model_validate({"symbol": "600000", "side": "buy", "qty": False})
    errors = [{**e, "loc": ("body", *e["loc"])} for e in caught.value.errors()]
    assert plain_message(errors, outer=("body",)) == "qty: must be an integer or a decimal string"
    whole = [{"type": "model_attributes_type", "loc": ("body",), "msg": "...", "input": 1}]
    assert plain_message(whole, outer=("body",), whole="body") == "body: must be a map (an object)"
    query = [{"type": "int_parsing", "loc": ("query", "limit"), "msg": "...", "input": "x"}]
    assert plain_message(query, outer=("body",)) == "query.limit: must be an integer"


def test_nested_places_keep_their_index() -> None:
    with pytest.raises(ValidationError) as caught:
        BacktestFields.model_validate({"data": ["ok.csv", "no spaces.csv"]})
    assert plain_message(caught.value.errors()).startswith("data.1: must match ")
