"""Load shedding in the gateway (gateway/core.py Admission)."""

from __future__ import annotations

from gateway.core import Admission


def test_an_idle_server_admits_a_burst_up_to_the_floor_rate() -> None:
    admission = Admission(timeout=10.0, floor_rate=500.0)
    assert admission.admits(in_flight=2499, stalled=0.0)
    assert not admission.admits(in_flight=2500, stalled=0.0)


def test_requests_are_refused_while_the_accountant_is_silent_for_half_the_timeout() -> None:
    admission = Admission(timeout=10.0)
    assert admission.admits(in_flight=1, stalled=4.9)
    assert not admission.admits(in_flight=1, stalled=5.0)


def test_the_admitted_depth_follows_the_reply_rate() -> None:
    now = 1000.0
    admission = Admission(timeout=10.0, floor_rate=500.0, start=now)
    for i in range(4000):  # 4000 replies in 2 s: 2000/s
        admission.replied(now + i * 0.0005)
    assert 1200 <= admission.rate <= 2000
    assert admission.admits(in_flight=int(admission.rate * 5) - 1, stalled=0.0)
    assert not admission.admits(in_flight=int(admission.rate * 5) + 1, stalled=0.0)
