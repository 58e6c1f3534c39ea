"""The lock-step gate in the matcher (actors/matcher/gate.py): a bar time waits for the
bots' answers to the one before, and never for a bot the controller let go."""

from __future__ import annotations

from actors.matcher.gate import StepGate


def step(ts: int, after: int, wait_for: list[int], life: int = 1) -> dict[str, object]:
    return {"type": "replay.step", "ts": ts, "after": after, "wait_for": wait_for, "life": life}


def test_a_step_waits_until_every_bot_answered_the_one_before() -> None:
    gate = StepGate()
    first, second = step(10, 0, []), step(20, 10, [2, 3])
    assert gate.step(first) == [first]
    assert gate.step(second) == []
    assert gate.done(2, 10) == []
    assert gate.done(3, 10) == [second]


def test_an_answer_that_came_first_lets_the_step_through_at_once() -> None:
    gate = StepGate()
    gate.done(2, 10)
    later = step(20, 10, [2])
    assert gate.step(later) == [later]


def test_a_bot_let_go_no_longer_holds_the_next_step_nor_those_behind_it() -> None:
    gate = StepGate()
    second, third = step(20, 10, [2, 3]), step(30, 20, [3])
    gate.step(second)
    gate.step(third)
    gate.done(3, 10)
    assert gate.let_go([2], 10) == [second]
    assert gate.done(3, 20) == [third]


def test_steps_of_an_earlier_life_of_the_controller_are_dropped() -> None:
    gate = StepGate()
    gate.step(step(20, 10, [2], life=1))
    again = step(10, 0, [], life=2)
    assert gate.step(again) == [again]
    assert gate.done(2, 10) == []  # the old life's held step is gone


def test_a_bot_let_go_is_not_waited_for_by_the_steps_already_sent_until_it_answers() -> None:
    gate = StepGate()
    third, fourth = step(30, 20, [2, 3]), step(40, 30, [2, 3])
    gate.done(3, 20)
    gate.step(third)
    assert gate.let_go([2], 10) == [third]
    gate.step(fourth)
    gate.done(2, 30)  # it came back: waited for again
    assert gate.held and gate.done(3, 30) == [fourth]
