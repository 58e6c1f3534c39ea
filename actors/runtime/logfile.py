"""A process's log file: buffered lines, rotated by size, and a line that repeats many
times a second written a few times, then counted (a flood of one error, as a gateway out
of file descriptors logs for every connection it cannot accept, must not fill the disk)."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

REPEATS_PER_WINDOW = 10  # lines alike written per window; the rest counted
REPEAT_WINDOW_S = 10.0


class LogFile:
    """Lines are buffered and written every second (by run()'s timer), at once for
    warnings, and at exit: an order's status lines cost a few microseconds, not the fifty
    of a flushed logging.FileHandler line. Past `max_bytes` the file becomes `<name>.1`
    (the older ones `.2` ... up to `backups`, the oldest dropped) and a new one starts."""

    def __init__(self, path: Path, max_bytes: int = 50_000_000, backups: int = 5) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._second = -1
        self._stamp = ""
        self._open()

    def _open(self) -> None:
        self._file = open(self.path, "a", buffering=1 << 16, encoding="utf-8")  # noqa: SIM115
        self._size = self._file.tell()

    def line(self, level: str, name: str, text: str) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        line = f"{self._stamp},{int((now - second) * 1000):03d} {level} {name} {text}\n"
        with self._lock:
            if self._size + len(line) > self.max_bytes and self._size:
                self._rotate()
            self._file.write(line)
            self._size += len(line)

    def _rotate(self) -> None:
        self._file.close()
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._open()

    def flush(self) -> None:
        with self._lock:
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


class LogHandler(logging.Handler):
    """Routes the logging module into the LogFile, lines alike (same logger, level and
    first line of the message's template) at most REPEATS_PER_WINDOW times per
    REPEAT_WINDOW_S, then a count."""

    def __init__(self, log_file: LogFile) -> None:
        super().__init__()
        self.log_file = log_file
        self._formatter = logging.Formatter()
        self._window = 0.0
        self._seen: dict[tuple[str, int, str], int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if not self._first_times(record):
            return  # counted, not formatted: a flood costs a count per line
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self._formatter.formatException(record.exc_info)
        self.log_file.line(record.levelname, record.name, text)
        if record.levelno >= logging.WARNING:
            self.log_file.flush()

    def _first_times(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self._window > REPEAT_WINDOW_S:
            self._report_dropped()
            self._window = now
        # alike: the same template (its numbers and names may differ), or the same text
        key = (record.name, record.levelno, str(record.msg).partition("\n")[0][:120])
        seen = self._seen[key] = self._seen.get(key, 0) + 1
        return seen <= REPEATS_PER_WINDOW

    def _report_dropped(self) -> None:
        for (name, level, first), seen in self._seen.items():
            if seen > REPEATS_PER_WINDOW:
                dropped = seen - REPEATS_PER_WINDOW
                self.log_file.line(
                    logging.getLevelName(level),
                    name,
                    f"{dropped} more lines like this one in {REPEAT_WINDOW_S:.0f} s were "
                    f"not written: {first}",
                )
        self._seen = {}

    def flush(self) -> None:
        """Write the counts of a window that has ended (a flood that stopped), then the file."""
        self.acquire()  # emit() holds it too: both change the counts
        try:
            if self._seen and time.monotonic() - self._window > REPEAT_WINDOW_S:
                self._report_dropped()
        finally:
            self.release()
        self.log_file.flush()
