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


def test_the_moving_average_bot_trades_live_on_bars_of_its_own(wait_server: Server) -> None:
    """On a live server there is no replay to join: it makes bars from the trades."""
    token = wait_server.new_user(fresh_name("ma"))
    bot = subprocess.Popen(
        [
            sys.executable,
            "examples/ma_cross.py",
            *("--endpoint", wait_server.api, "--pub", wait_server.pub, f"--token={token}"),
            *("--fast", "2", "--slow", "3", "--qty", "100", "--bar-seconds", "0.3"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = bot.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        bot.kill()
        out, err = bot.communicate()
    lines = out.splitlines()
    assert lines and lines[0].startswith("live: bars of 0.3s on 600000"), (out, err)
    assert any(" buy 100: order " in line for line in lines[1:]), (out, err)
