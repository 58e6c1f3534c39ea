"""The synthetic market feed (actors/controller/feeds.py)."""

from __future__ import annotations

from decimal import Decimal as D

from actors.controller.feeds import SyntheticFeed
from protocol.settings import Settings


def test_the_same_seed_gives_the_same_prices_on_the_tick() -> None:
    first, second = SyntheticFeed(Settings()), SyntheticFeed(Settings())
    for _ in range(200):
        ticks = first.step()
        assert ticks == second.step()
        assert all(t.last > 0 and t.last % D("0.01") == 0 and t.volume % 100 == 0 for t in ticks)


def test_a_restarted_feed_resumes_from_the_saved_prices() -> None:
    feed = SyntheticFeed(Settings())
    for _ in range(50):
        feed.step()
    saved = feed.prices()
    restarted = SyntheticFeed(Settings())
    restarted.resume(saved)
    assert restarted.prices() == saved
