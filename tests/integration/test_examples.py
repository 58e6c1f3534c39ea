"""The examples the README walks through run against a real server."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import fresh_name
from tests.harness import ROOT, Server


def test_the_quickstart_bot_buys_sells_and_reports(wait_server: Server) -> None:
    token = wait_server.new_user(fresh_name("bot"))
    done = subprocess.run(
        [sys.executable, "examples/quickstart_bot.py", "--endpoint", wait_server.api],
        cwd=ROOT,
        env={**os.environ, "TRADESERVER_TOKEN": token, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].startswith("bought 100 at ")
    assert lines[2].startswith("sold 100 at ")
    assert "realized P&L" in lines[3] and "fills 2" in lines[4]
