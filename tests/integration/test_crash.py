"""Crash safety under load, short: about 20 kills while users trade (bench/crash.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.crash import run

pytestmark = pytest.mark.crash


def test_nothing_acknowledged_is_lost_while_processes_are_killed(tmp_path: Path) -> None:
    # with the digest over a clean restart while the flow's orders are still open
    figures = run(tmp_path, kills=20, every=2.0, users=4, seed=7)
    # each problem whole (pytest cuts a long assertion short): which digest part changed
    assert figures["problems"] == [], "\n".join(map(str, figures["problems"]))
    assert sum(figures["kills"].values()) == 20
    assert set(figures["kills"]) == {"controller", "matcher", "accountant", "gateway"}
    assert figures["counts"]["acked orders"] > 50, figures  # the flow went on between kills
    assert figures["counts"]["fills"] > 0, figures
    assert figures["counts"]["resets"] > 0, figures  # and the ledger balanced across them


def test_in_exchange_mode_users_trade_with_each_other_through_kills(tmp_path: Path) -> None:
    figures = run(tmp_path, kills=8, every=2.0, users=4, seed=16, mode="exchange")
    assert figures["problems"] == [], "\n".join(map(str, figures["problems"]))
    assert set(figures["kills"]) == {"controller", "matcher", "accountant", "gateway"}
    assert figures["counts"]["acked orders"] > 50, figures
    assert figures["counts"]["fills"] > 0, figures  # fills here are users' orders crossing
