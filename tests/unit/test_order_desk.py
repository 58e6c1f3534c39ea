"""The accountant's order life cycle against the matcher's answers, without processes
(actors/accountant/orders.py): post_only orders wait for `book.rested` or `book.killed`,
kills and cancels carry their reasons, depth.get goes on to the matcher."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from actors.accountant.accountant import Accountant
from actors.accountant.accounts import Account, Accounts, User
from actors.accountant.core import Core, Message
from actors.accountant.orders import CANCEL_DETAILS
from actors.accountant.rows import OPERATIONS
from actors.market.rules import Market
from actors.runtime.clock import MarketClock
from protocol import codec, topics
from protocol.settings import Settings

TOKEN_HASH = "h1"


@pytest.fixture
def accountant() -> Accountant:
    settings = Settings()
    accounts = Accounts(Market.from_settings(settings))
    accounts.add_user(User(1, "ann", TOKEN_HASH, False), Account(1, D("100000"), D("100000")))
    return Accountant(Core(settings, MarketClock(1_000), accounts, {}))


_rids = iter(range(1, 1_000_000))


def request(kind: str, **fields: Any) -> Message:
    return {"type": kind, "gw": "gw1", "rid": next(_rids), "auth": TOKEN_HASH, **fields}


def new_order(**fields: Any) -> Message:
    order = {
        "symbol": "600000",
        "side": "buy",
        "qty": "100",
        "order_type": "limit",
        "time_in_force": "day",
        "limit_price": "8.50",
        "client_order_id": None,
        "post_only": False,
        "stp": "cancel_newest",
    }
    return request("order.new", **{**order, **fields})


def sent(acc: Accountant) -> tuple[list[Message], list[Message], list[Message]]:
    """What the burst sent: to the matcher, replies to the gateway (unpacked, with their
    rid), private events (unpacked); the work is taken."""
    work = acc.core.take_work()
    to_matcher, replies, events = [], [], []
    for peer, _topic, message in work.outbound:
        if peer == topics.MATCHER:
            to_matcher.append(message)
        elif message.get("type") == "event":
            events.append(codec.decode_internal(message["body"]))
        elif "body" in message:
            replies.append({**codec.decode_internal(message["body"]), "rid": message["rid"]})
        else:
            replies.append(message)
    return to_matcher, replies, events


def answer(acc: Accountant, kind: str, order_id: int, **fields: Any) -> None:
    acc.dispatch({"type": kind, "epoch": acc.orders.epoch, "order_id": order_id, **fields})


def place_pending(acc: Accountant, **fields: Any) -> tuple[int, Message]:
    """A new order the matcher has to decide: its id and the book.add sent."""
    acc.dispatch(new_order(**fields))
    [add], replies, events = sent(acc)
    assert replies == [] and events == []  # nothing until the matcher decides
    order_id = add["order"]["order_id"]
    assert acc.accounts.open_orders[order_id].status == "pending_new"
    return order_id, add


def place_resting(acc: Accountant, **fields: Any) -> dict[str, Any]:
    acc.dispatch(new_order(**fields))
    _, [reply], _ = sent(acc)
    assert reply["type"] == "order.accepted", reply
    return dict(reply["order"])


def test_book_add_tells_the_matcher_the_owner_post_only_and_stp(accountant: Accountant) -> None:
    accountant.dispatch(new_order())
    [add], [reply], _ = sent(accountant)
    assert reply["order"]["post_only"] is False and reply["order"]["stp"] == "cancel_newest"
    assert reply["order"]["cancel_reason"] is None
    order = add["order"]
    assert (order["user_id"], order["post_only"], order["stp"]) == (1, False, "cancel_newest")
    _, add = place_pending(accountant, post_only=True, stp="cancel_both")
    assert (add["order"]["post_only"], add["order"]["stp"]) == (True, "cancel_both")


def test_a_post_only_order_is_accepted_once_the_matcher_rests_it(accountant: Accountant) -> None:
    order_id, _ = place_pending(
        accountant, post_only=True, stp="cancel_oldest", client_order_id="po-1"
    )
    retry = new_order(post_only=True, stp="cancel_oldest", client_order_id="po-1")
    accountant.dispatch(retry)  # waits with the first request
    assert sent(accountant) == ([], [], [])
    other_id, _ = place_pending(accountant, post_only=True)
    answer(accountant, "book.rested", order_id)
    to_matcher, replies, [event] = sent(accountant)
    assert to_matcher == [] and len(replies) == 2
    assert replies[1]["rid"] == retry["rid"]
    for reply in replies:
        assert reply["type"] == "order.accepted" and reply["order"]["id"] == order_id
    view = replies[0]["order"]
    assert (view["status"], view["post_only"], view["stp"]) == ("new", True, "cancel_oldest")
    assert event["event"] == "order.accepted" and event["order"] == view
    assert accountant.accounts.open_orders[other_id].status == "pending_new"
    answer(accountant, "book.rested", order_id)  # twice: nothing more
    assert sent(accountant) == ([], [], [])


def test_a_post_only_order_filled_before_it_is_said_to_rest_is_answered_then(
    accountant: Accountant,
) -> None:
    order_id, _ = place_pending(accountant, post_only=True, qty="300")
    fill = {"qty": "100", "price": "8.50", "cum_qty": "100", "liquidity": "maker", "ts": 2_000}
    answer(accountant, "exec", order_id, **fill)
    _, replies, events = sent(accountant)
    assert replies == [] and [e["event"] for e in events] == [
        "order.accepted",
        "order.partially_filled",
    ]
    answer(accountant, "book.rested", order_id)
    _, [reply], events = sent(accountant)
    assert events == []
    assert (reply["order"]["status"], reply["order"]["filled_qty"]) == ("partially_filled", "100")


def test_a_post_only_order_that_would_take_is_rejected_and_its_cash_released(
    accountant: Accountant,
) -> None:
    order_id, _ = place_pending(accountant, post_only=True)
    assert accountant.accounts.accounts[1].reserved_cash > 0
    answer(accountant, "book.killed", order_id, reason="post_only")
    _, [reply], [event] = sent(accountant)
    assert reply["code"] == "MATCH_POST_ONLY_WOULD_TAKE"
    assert reply["message"] == (
        f"MATCH_POST_ONLY_WOULD_TAKE: order {order_id}: post_only: it would have traded at "
        "once, taking liquidity"
    )
    assert (event["event"], event["order"]["status"]) == ("order.rejected", "rejected")
    assert accountant.accounts.accounts[1].reserved_cash == 0
    assert order_id not in accountant.accounts.open_orders


@pytest.mark.parametrize(
    ("reason", "code", "words"),
    [
        (None, "MATCH_FOK_NOT_FILLED", "the market could not fill all of it at once"),
        ("fok", "MATCH_FOK_NOT_FILLED", "the market could not fill all of it at once"),
        ("self_trade", "MATCH_SELF_TRADE", CANCEL_DETAILS["self_trade"]),
        ("market_closed", "MATCH_FOK_NOT_FILLED", "its market does not trade now"),
    ],
)
def test_a_killed_fok_is_refused_with_the_code_of_its_reason(
    accountant: Accountant, reason: str | None, code: str, words: str
) -> None:
    order_id, _ = place_pending(accountant, time_in_force="fok")
    answer(accountant, "book.killed", order_id, **({"reason": reason} if reason else {}))
    _, [reply], [event] = sent(accountant)
    assert reply["code"] == code and words in reply["message"]
    assert event["event"] == "order.rejected"


@pytest.mark.parametrize("reason", sorted(CANCEL_DETAILS))
def test_the_matchers_cancel_reason_is_kept_and_said_in_the_event(
    accountant: Accountant, reason: str
) -> None:
    order_id = place_resting(accountant)["id"]
    answer(accountant, "book.canceled", order_id, reason=reason)
    [logged] = [row for table, row in accountant.core.work.rows if table == OPERATIONS]
    assert (logged[3], logged[-1]) == ("order.canceled", CANCEL_DETAILS[reason])  # kind, detail
    _, replies, [event] = sent(accountant)
    assert replies == []
    assert event["event"] == "order.canceled"
    assert event["order"]["cancel_reason"] == reason
    assert event["order"]["status"] == "canceled"


def test_an_iocs_rest_says_so_and_a_cancel_asked_for_has_no_reason(
    accountant: Accountant,
) -> None:
    ioc, _ = place_pending(accountant, time_in_force="ioc")
    answer(accountant, "book.canceled", ioc, reason="ioc")
    _, [reply], [accepted, canceled] = sent(accountant)
    assert (accepted["event"], canceled["event"]) == ("order.accepted", "order.canceled")
    assert reply["order"]["status"] == "canceled" and reply["order"]["cancel_reason"] == "ioc"
    resting = place_resting(accountant)["id"]
    accountant.dispatch(request("order.cancel", order_id=resting))
    [cancel], _, _ = sent(accountant)
    answer(accountant, "book.canceled", resting)
    _, [reply], _ = sent(accountant)
    assert cancel["type"] == "book.cancel"
    assert reply["type"] == "order.canceled" and reply["order"]["cancel_reason"] is None
    answer(accountant, "book.canceled", place_resting(accountant)["id"], reason="bogus")
    assert sent(accountant)[2][0]["order"]["cancel_reason"] is None  # unknown: not kept


def test_a_replacement_keeps_post_only_and_stp(accountant: Accountant) -> None:
    order_id, _ = place_pending(accountant, post_only=True, stp="cancel_both")
    answer(accountant, "book.rested", order_id)
    sent(accountant)
    accountant.dispatch(request("order.replace", order_id=order_id, limit_price="8.40"))
    [replace], _, _ = sent(accountant)
    assert replace["type"] == "book.replace"
    new = replace["order"]
    assert (new["post_only"], new["stp"], new["user_id"]) == (True, "cancel_both", 1)
    accountant.dispatch(
        {
            "type": "book.replaced",
            "epoch": accountant.orders.epoch,
            "old_id": order_id,
            "order_id": new["order_id"],
        }
    )
    _, [reply], _ = sent(accountant)
    assert reply["type"] == "order.replaced"
    assert (reply["order"]["post_only"], reply["order"]["stp"]) == (True, "cancel_both")
    assert reply["order"]["limit_price"] == "8.40"


@pytest.mark.parametrize(
    ("reason", "code"),
    [("post_only", "MATCH_POST_ONLY_WOULD_TAKE"), (None, "MATCH_REPLACE_TOO_LATE")],
)
def test_a_refused_replacement_says_why(
    accountant: Accountant, reason: str | None, code: str
) -> None:
    order_id = place_resting(accountant)["id"]
    accountant.dispatch(request("order.replace", order_id=order_id, limit_price="8.60"))
    [replace], _, _ = sent(accountant)
    accountant.dispatch(
        {
            "type": "book.replace_rejected",
            "epoch": accountant.orders.epoch,
            "old_id": order_id,
            "order_id": replace["order"]["order_id"],
            **({"reason": reason} if reason else {}),
        }
    )
    _, [reply], _ = sent(accountant)
    assert reply["code"] == code
    assert accountant.accounts.open_orders[order_id].replacement is None


def test_a_snapshot_refuses_a_post_only_order_still_pending(accountant: Accountant) -> None:
    order_id, _ = place_pending(accountant, post_only=True)
    accountant.dispatch({"type": "book.sync"})
    [snapshot], [reply], [event] = sent(accountant)
    assert snapshot["type"] == "book.snapshot" and snapshot["orders"] == []
    assert reply["code"] == "SYSTEM_UNAVAILABLE"
    assert "the matcher restarted before it could rest" in reply["message"]
    assert event["event"] == "order.rejected"
    assert order_id not in accountant.accounts.open_orders


def test_depth_get_goes_on_to_the_matcher_with_the_gateways_ids(accountant: Accountant) -> None:
    ask = request("depth.get", symbol="600000", levels=5)
    accountant.dispatch(ask)
    [forwarded], replies, _ = sent(accountant)
    assert replies == []
    assert forwarded == {
        "type": "depth.get",
        "symbol": "600000",
        "levels": 5,
        "rid": ask["rid"],
        "gw": "gw1",
    }


def test_depth_get_of_an_unknown_symbol_is_refused_here(accountant: Accountant) -> None:
    accountant.dispatch(request("depth.get", symbol="NOPE", levels=10))
    to_matcher, [reply], _ = sent(accountant)
    assert to_matcher == []
    assert reply["code"] == "REQUEST_UNKNOWN_SYMBOL"
