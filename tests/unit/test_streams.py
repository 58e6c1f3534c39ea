"""Numbered frames on internal links (actors/runtime/streams.py): order, repeats, gaps, resends."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.runtime.streams import Incoming, Outgoing


def test_frames_go_on_in_order_and_a_gap_holds_the_rest_back() -> None:
    stream: Incoming[str] = Incoming()
    assert stream.take(1, 5, "a", 0.0) == (["a"], 0)  # the first frame seen sets the start
    assert stream.take(1, 7, "c", 0.0) == ([], 0)
    assert stream.missing() == (6, 6)
    assert stream.take(1, 8, "d", 0.0) == ([], 0)
    assert stream.take(1, 6, "b", 0.0) == (["b", "c", "d"], 0)
    assert stream.missing() is None
    assert stream.take(1, 6, "b", 0.0) == ([], 0)  # a repeat (a resend others asked for)
    assert (stream.gaps, stream.repeats, stream.lost) == (1, 1, 0)


def test_a_gap_given_up_counts_its_frames_as_lost() -> None:
    stream: Incoming[str] = Incoming()
    stream.take(1, 1, "a", 0.0)
    stream.take(1, 5, "e", 1.0)
    assert stream.give_up(6.0) == (["e"], 3)
    assert stream.take(1, 6, "f", 6.0) == (["f"], 0)
    assert stream.lost == 3


def test_a_new_life_of_the_sender_starts_afresh_and_old_resends_are_ignored() -> None:
    stream: Incoming[str] = Incoming()
    stream.take(10, 1, "a", 0.0)
    stream.take(10, 3, "c", 0.0)  # held behind a gap when the sender died
    assert stream.take(20, 1, "new", 0.0) == (["c", "new"], 1)
    assert stream.take(10, 2, "b", 0.0) == ([], 0)  # a resend from the ended life
    assert stream.take(20, 2, "new2", 0.0) == (["new2"], 0)


def test_too_much_held_back_gives_the_gap_up_at_once() -> None:
    stream: Incoming[int] = Incoming(hold_max=3)
    stream.take(1, 1, 1, 0.0)
    for seq in (3, 4, 5):
        assert stream.take(1, seq, seq, 0.0) == ([], 0)
    assert stream.take(1, 6, 6, 0.0) == ([3, 4, 5, 6], 1)


def test_a_gap_is_asked_for_every_half_second_and_given_up_after_five() -> None:
    stream: Incoming[str] = Incoming()
    assert stream.due(0.0) is None  # nothing missing
    stream.take(1, 1, "a", 0.0)
    stream.take(1, 4, "d", 0.0)
    assert stream.due(0.1) == "ask"
    assert stream.resend_request("pub") == {
        "type": "bus.resend",
        "link": "pub",
        "life": 1,
        "first": 2,
        "last": 3,
    }
    assert stream.due(0.3) is None  # asked 0.2 s ago
    assert stream.due(0.6) == "ask"
    stream.take(1, 2, "b", 1.0)  # progress: ask for the rest at once, the clock restarts
    assert stream.due(1.0) == "ask"
    assert stream.due(5.9) == "ask"
    assert stream.due(6.0) == "give up"


def test_the_sender_keeps_its_last_frames_for_resends() -> None:
    out: Outgoing[str] = Outgoing("link", retain=3)
    for frame in "abcde":
        out.stamp(frame)
    assert out.since(1, 5) == [(3, "c"), (4, "d"), (5, "e")]
    assert out.since(4, 4) == [(4, "d")]
    assert out.since(6, 9) == []


@settings(deadline=None)  # a few ms each, but the machine may be busy
@given(
    count=st.integers(min_value=1, max_value=200),
    drop=st.floats(min_value=0, max_value=0.9),
    repeat=st.floats(min_value=0, max_value=0.5),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_with_resends_every_frame_goes_on_once_and_in_order(
    count: int, drop: float, repeat: float, seed: int
) -> None:
    """A link that drops, repeats and reorders frames: what the receiver asks for again is
    resent (and may be dropped again); in the end each frame went on once, in order."""
    rng = random.Random(seed)
    out: Outgoing[int] = Outgoing("link", retain=count)
    wire = [(out.stamp(n), n) for n in range(count)]
    stream: Incoming[int] = Incoming()
    delivered: list[int] = []
    first, *rest = wire  # the first frame arrives: it sets where the stream starts
    delivered += stream.take(1, *first, 0.0)[0]
    in_flight = [f for f in rest if rng.random() >= drop]
    in_flight += [f for f in rest if rng.random() < repeat]
    rng.shuffle(in_flight)
    in_flight.append(wire[-1])  # a later frame (a heartbeat) shows a loss at the end
    for _ in range(1000):
        for seq, frame in in_flight:
            delivered += stream.take(1, seq, frame, 0.0)[0]
        missing = stream.missing()
        if missing is None:
            break
        in_flight = [f for f in out.since(*missing) if rng.random() >= drop / 2]
    assert delivered == list(range(count))
    assert stream.lost == 0
