"""The examples the README walks through run against a real server."""

from __future__ import annotations

import os
import subprocess
import sys

from protocol.tokens import hash_token, key_id
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


def test_the_alpaca_bot_trades_live_through_the_alpaca_api(wait_server: Server) -> None:
    """examples/alpaca_bot.py, an alpaca-py bot, runs unchanged: only Alpaca's environment
    variables point it here. On a live feed it makes its bars from the trade stream."""
    token = wait_server.new_user(fresh_name("apca"))
    ws = wait_server.url.replace("http://", "ws://")
    env = {
        **os.environ,
        "APCA_API_KEY_ID": key_id(hash_token(token)),
        "APCA_API_SECRET_KEY": token,
        "APCA_API_BASE_URL": wait_server.url,
        "APCA_API_DATA_URL": wait_server.url,
        "APCA_API_TRADING_STREAM_URL": ws + "/stream",
        "APCA_API_DATA_STREAM_URL": ws + "/v2/iex",
    }
    args = ("--symbol", "AAPL", "--qty", "5", "--fast", "2", "--slow", "3")
    done = subprocess.run(
        [
            sys.executable,
            "examples/alpaca_bot.py",
            *args,
            "--bar-seconds",
            "0.2",
            "--max-bars",
            "25",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "AAPL: fast 2, slow 3, cash 1000000.00", lines
    assert any(" buy 5.0: order " in line for line in lines), lines
    assert lines[-1].startswith("25 bars, equity "), lines
