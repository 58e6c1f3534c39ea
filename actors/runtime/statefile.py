"""A small JSON state that a process saves often and reads back when it restarts.

Each save appends one line. Replacing a file by renaming a new one over it is the usual
way to write it whole, but on ext4 each such rename flushes the new file's data first,
which stalls for hundreds of milliseconds while a database syncs on the same disk; a
replay saves its market time at every bar. Appends do not flush. The last complete line
is the state; the file is rewritten whole (new file, rename) once it grows past
`MAX_BYTES`, which is rare.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MAX_BYTES = 1 << 20


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any]:
        """The last state saved whole; {} when there is none."""
        try:
            lines = self.path.read_bytes().splitlines()
        except OSError:
            return {}
        for line in reversed(lines):
            if not line.strip():
                continue
            try:
                state = json.loads(line)
            except ValueError:
                continue  # cut short by a crash while it was written
            if isinstance(state, dict):
                return state
        return {}

    def save(self, state: dict[str, Any]) -> None:
        # a line of its own even after one a crash cut short
        line = ("\n" + json.dumps(state, separators=(",", ":"))).encode()
        try:
            size = self.path.stat().st_size
        except OSError:
            size = MAX_BYTES
        if size + len(line) > max(MAX_BYTES, 8 * len(line)):  # big states: every 8th save
            tmp = self.path.with_suffix(".tmp")
            tmp.write_bytes(line.lstrip())
            tmp.replace(self.path)
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
