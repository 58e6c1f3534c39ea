"""A process's log file (actors/runtime/logfile.py): rotated by size with a bounded number
of old files, and a line repeated many times a second written a few times, then counted
(issue 14, item 2: a gateway out of file descriptors wrote 157,695 tracebacks, 70 MB in
22 s, into a log that was never rotated)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from actors.runtime import logfile
from actors.runtime.logfile import REPEATS_PER_WINDOW, LogFile, LogHandler


def test_a_log_past_its_size_rotates_and_keeps_only_its_backups(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "gateway.log"
    log = LogFile(path, max_bytes=10_000, backups=3)
    for n in range(2_000):  # ~100 kB: ten files' worth
        log.line("INFO", "gateway", f"line {n:05d} " + "x" * 30)
    log.close()
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["gateway.log", "gateway.log.1", "gateway.log.2", "gateway.log.3"]
    for p in path.parent.iterdir():
        assert p.stat().st_size <= 10_000
    newest = path.read_text().splitlines()
    assert newest[-1].endswith("line 01999 " + "x" * 30)
    # no line lost or torn between the files kept: they follow on from each other
    kept = [*(path.with_name(f"gateway.log.{n}") for n in (3, 2, 1)), path]
    numbers = [int(line.split("line ")[1][:5]) for p in kept for line in p.read_text().splitlines()]
    assert numbers == list(range(numbers[0], 2_000))


def test_a_log_opened_again_goes_on_from_its_size(tmp_path: Path) -> None:
    path = tmp_path / "matcher.log"
    path.write_text("x" * 9_990 + "\n")
    log = LogFile(path, max_bytes=10_000, backups=2)
    log.line("INFO", "matcher", "after a restart")
    log.close()
    assert path.read_text().endswith("after a restart\n")
    assert path.with_name("matcher.log.1").read_text().startswith("xxx")


def test_a_flood_of_one_line_is_written_a_few_times_then_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(logfile.time, "monotonic", lambda: clock[0])
    path = tmp_path / "gateway.log"
    handler = LogHandler(LogFile(path))
    log = logging.getLogger("flood-test")
    log.propagate = False
    log.addHandler(handler)
    try:
        for n in range(5_000):
            try:
                raise OSError(24, "Too many open files")
            except OSError:
                log.exception("socket.accept() out of system resource\nsocket: fd=%d", n)
        log.warning("something else")
        clock[0] += logfile.REPEAT_WINDOW_S + 1  # the window ends: the count is written
        handler.flush()
    finally:
        log.removeHandler(handler)
        handler.log_file.close()
    text = path.read_text()
    assert text.count("socket.accept() out of system resource") == REPEATS_PER_WINDOW + 1
    assert text.count("Traceback") == REPEATS_PER_WINDOW
    assert f"{5_000 - REPEATS_PER_WINDOW} more lines like this one" in text
    assert "something else" in text
    assert len(text) < 20_000
