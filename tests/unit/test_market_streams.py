"""Public market-data streams (gateway/streams.py MarketStreams): each gets its symbols'
quotes and the control state when it changes, a reader that stops reading loses its
stream, and a rotated token ends its user's streams."""

from __future__ import annotations

import json
from typing import Any

from gateway import streams
from gateway.streams import (
    ENDED_WHILE_OPENING,
    SIGNED_OUT,
    MarketQueue,
    MarketStreams,
    Sessions,
    StreamEnd,
)


def control(state: str, seq: int) -> dict[str, Any]:
    return {"type": "control", "state": state, "trading": state == "running", "seq": seq,
            "ts": seq * 1000, "time": f"t{seq}"}  # fmt: skip


def quote(symbol: str, last: str, seq: int) -> dict[str, Any]:
    return {"type": "quote", "symbol": symbol, "last": last, "volume": 100, "seq": seq}


def drain(queue: MarketQueue) -> list[tuple[str, dict[str, Any]] | StreamEnd]:
    """(event name, data) of each frame waiting in the queue, or the StreamEnd."""
    out: list[tuple[str, dict[str, Any]] | StreamEnd] = []
    while not queue.empty():
        item = queue.get_nowait()
        if isinstance(item, StreamEnd):
            out.append(item)
            continue
        event, data, blank = item.decode().split("\n", 2)
        assert event.startswith("event: ") and data.startswith("data: ") and blank == "\n"
        out.append((event.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


def test_a_stream_gets_its_symbols_quotes_and_not_the_others() -> None:
    market = MarketStreams()
    one = market.subscribe(1, frozenset({"600000"}), 0)
    every = market.subscribe(2, None, 0)
    market.on_broadcast("md.600000", [quote("600000", "8.50", 1)])
    market.on_broadcast("md.000001", [quote("000001", "11.20", 2)])
    market.on_broadcast("md.6000001", [quote("6000001", "1.00", 3)])  # not a prefix match
    assert drain(one) == [("quote", {**quote("600000", "8.50", 1), "v": 1})]
    assert [item[1]["symbol"] for item in drain(every) if isinstance(item, tuple)] == [
        "600000",
        "000001",
        "6000001",
    ]


def test_control_goes_out_when_the_state_changes_not_on_each_heartbeat() -> None:
    market = MarketStreams()
    early = market.subscribe(1, frozenset({"600000"}), 0)
    market.on_broadcast("ctl", [control("running", 1)])
    market.on_broadcast("ctl", [control("running", 2), control("paused", 3)])
    market.on_broadcast("ctl", [control("paused", 4)])
    assert [(e[0], e[1]["state"], e[1]["seq"]) for e in drain(early) if isinstance(e, tuple)] == [
        ("control", "running", 1),
        ("control", "paused", 3),
    ]
    late = market.subscribe(2, None, 0)  # starts with the state as it is
    assert [(e[1]["state"], e[1]["seq"]) for e in drain(late) if isinstance(e, tuple)] == [
        ("paused", 3)
    ]


def test_other_topics_never_reach_a_market_stream() -> None:
    market = MarketStreams()
    queue = market.subscribe(1, None, 0)
    market.on_broadcast("step", [{"type": "replay.step", "ts": 1}])
    market.on_broadcast("replay.600000", [quote("600000", "8.50", 1)])
    assert drain(queue) == []


def test_a_reader_that_falls_behind_gets_an_overflow_and_is_dropped(monkeypatch: Any) -> None:
    monkeypatch.setattr(streams, "MAX_QUEUED_MARKET", 3)
    market = MarketStreams()
    slow = market.subscribe(1, None, 0)
    for seq in range(5):
        market.on_broadcast("md.600000", [quote("600000", "8.50", seq)])
    items = drain(slow)
    assert len(items) == 4 and items[-1] == StreamEnd("overflow", "too many unread events")
    assert len(market) == 0


def test_a_rotated_token_ends_only_its_users_streams() -> None:
    market = MarketStreams()
    mine, theirs = market.subscribe(7, None, 0), market.subscribe(8, None, 0)
    market.end(7, "token.rotated")
    market.on_broadcast("md.600000", [quote("600000", "8.50", 1)])
    assert drain(mine) == [StreamEnd("session.ended", "token.rotated")]
    assert len(drain(theirs)) == 1 and len(market) == 1
    market.unsubscribe(theirs)
    assert len(market) == 0


def test_a_stream_opened_across_its_tokens_end_is_ended_at_once() -> None:
    """Issue 14, item 1: a stream's login reply and its user's session end can be handled
    in one pass, before the stream subscribes; it must not stay open for the new token's
    events. A login after the end, and another user's, are not touched."""
    events, market = Sessions(), MarketStreams()
    before = events.ends.mark(), market.ends.mark()
    events.end(5, "token rotated")  # handled while the streams' logins were answered
    market.end(5, "token rotated")
    ended = StreamEnd("session.ended", ENDED_WHILE_OPENING)
    assert events.subscribe(5, before[0]).get_nowait() == ended
    assert market.subscribe(5, None, before[1]).get_nowait() == ended
    assert len(market) == 0
    after = events.subscribe(5, events.ends.mark())  # signed in with the new token
    other = events.subscribe(6, before[0])
    events.deliver(5, {"type": "event", "event": "order.accepted", "seq": 1})
    events.deliver(6, {"type": "event", "event": "order.accepted", "seq": 1})
    assert after.get_nowait()["seq"] == 1 and other.get_nowait()["seq"] == 1


def test_a_console_sessions_streams_end_when_it_closes() -> None:
    events, market = Sessions(), MarketStreams()
    signed_in = events.subscribe(5, 0, console="sid-1")
    bearer = events.subscribe(5, 0)
    quotes = market.subscribe(5, None, 0, console="sid-1")
    other_tab = market.subscribe(5, None, 0, console="sid-2")
    events.end_console("sid-1")
    market.end_console("sid-1")
    assert signed_in.get_nowait() == StreamEnd("session.ended", SIGNED_OUT)
    assert quotes.get_nowait() == StreamEnd("session.ended", SIGNED_OUT)
    events.deliver(5, {"type": "event", "event": "order.accepted", "seq": 1})
    assert bearer.get_nowait()["event"] == "order.accepted" and signed_in.empty()
    assert len(market) == 1 and other_tab.empty()
