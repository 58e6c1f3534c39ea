"""The JavaScript bot of examples/node, written from docs/protocol.md alone, runs against
the real server in both fill modes: login, quotes, a fill, account and positions,
refusals by code, a cancel.

It needs `node` and `npm ci` in examples/node. Without them these tests are skipped,
unless REQUIRE_NODE_TESTS is set (.ci/run sets it and installs the packages): then they
fail."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import fresh_name
from tests.harness import ROOT, Server

BOT = ROOT / "examples" / "node"
NODE = shutil.which("node")
READY = NODE is not None and (BOT / "node_modules" / "zeromq").is_dir()

if not READY and not os.environ.get("REQUIRE_NODE_TESTS"):
    pytest.skip("no node, or no `npm ci` in examples/node", allow_module_level=True)


def run_bot(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    assert NODE, "REQUIRE_NODE_TESTS is set but there is no node"
    assert READY, "REQUIRE_NODE_TESTS is set but examples/node has no node_modules: npm ci"
    return subprocess.run(
        [NODE, "bot.mjs", "--api", server.api, "--pub", server.pub, *args],
        cwd=BOT,
        env={**os.environ, "TRADESERVER_TOKEN": server.new_user(fresh_name("node"))},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("mode", ["instant", "wait"])
def test_the_node_bot_trades_and_handles_refusals(
    mode: str, server: Server, wait_server: Server
) -> None:
    srv = server if mode == "instant" else wait_server
    done = run_bot(srv)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith(f"fill mode {mode}"), lines
    assert lines[-1] == "done", lines
    expected = [
        "filled: 100 at ",
        "account: cash ",
        "position: 100 600000",
        "refused as expected: REQUEST_LOT_SIZE: ",
        "refused as expected: REQUEST_INVALID: qty: must be an integer or a decimal string",
        "refused as expected: REQUEST_UNKNOWN_SYMBOL: ",
        "canceled order ",
        "cancel again: REQUEST_ORDER_NOT_OPEN",
    ]
    for start in expected:
        assert any(line.startswith(start) for line in lines), (start, done.stdout)
    kind = "stop" if mode == "instant" else "limit"  # an instant limit would fill at once
    assert any(line.startswith(f"resting {kind} buy 100 at ") for line in lines), lines


def test_the_node_bot_fails_with_a_nonzero_status(server: Server) -> None:
    """A bot whose steps fail says so and exits nonzero: here, a symbol the server lacks."""
    done = run_bot(server, "--symbol", "NOPE")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED: the server has no symbol NOPE" in done.stderr
