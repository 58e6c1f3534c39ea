"""actors/runtime/statefile.py: the last whole line is the state, whatever happened after it."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.runtime import statefile
from actors.runtime.statefile import StateFile


def test_the_last_save_is_read_back(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "control.json")
    assert state.load() == {}
    state.save({"state": "running", "market_time": 1})
    state.save({"state": "paused", "market_time": 2})
    assert StateFile(tmp_path / "control.json").load() == {"state": "paused", "market_time": 2}


def test_a_line_cut_short_by_a_crash_falls_back_to_the_one_before(tmp_path: Path) -> None:
    path = tmp_path / "feed.json"
    state = StateFile(path)
    state.save({"market_time": 5})
    with path.open("a") as fh:
        fh.write('\n{"market_time": 6, "clo')  # the process died mid-write
    assert state.load() == {"market_time": 5}
    state.save({"market_time": 7})  # on a line of its own
    assert state.load() == {"market_time": 7}


def test_a_file_written_whole_by_an_older_version_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "control.json"
    path.write_text('{"state": "stopped"}')  # no newline: one JSON object, as before
    assert StateFile(path).load() == {"state": "stopped"}


def test_the_file_is_rewritten_whole_when_it_grows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statefile, "MAX_BYTES", 200)
    path = tmp_path / "control.json"
    state = StateFile(path)
    for n in range(50):
        state.save({"market_time": n})
    assert path.stat().st_size <= 200
    assert state.load() == {"market_time": 49}
