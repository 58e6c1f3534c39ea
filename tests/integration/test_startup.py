"""`python run.py` with flags and environment overrides, its banner, and its log files."""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.harness import ROOT, free_port


def test_run_py_starts_from_flags_and_env_prints_a_working_curl_line_and_logs(
    tmp_path: Path,
) -> None:
    http_port = free_port()
    env = {
        **os.environ,
        "TRADESERVER_ENDPOINTS__CLIENT_API": f"tcp://127.0.0.1:{free_port()}",
        "TRADESERVER_ENDPOINTS__CLIENT_PUB": f"tcp://127.0.0.1:{free_port()}",
        "TRADESERVER_MARKET__TICK_INTERVAL": "0.05",
    }
    data_dir = tmp_path / "data"
    command = [sys.executable, "run.py", "--data-dir", str(data_dir)]
    command += ["--http-port", str(http_port), "--fill-mode", "instant"]
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) as proc:
        order = _check_banner_and_fill(proc, data_dir, http_port)
    assert proc.returncode == 0
    logs = data_dir / "logs"
    accountant = (logs / "accountant.log").read_text()
    assert re.search(rf"order\.accepted order={order['id']} user=2 new", accountant)
    assert re.search(rf"order\.filled order={order['id']} user=2 filled", accountant)
    assert re.search(
        rf"fill order={order['id']} qty=100 price=", (logs / "matcher.log").read_text()
    )
    for name in ("controller", "matcher", "accountant", "gateway"):
        assert "stopped cleanly" in (logs / f"{name}.log").read_text()


def test_the_ledger_logs_and_data_dir_are_for_the_servers_user_only(tmp_path: Path) -> None:
    """Issue 14, item 7: under the common umask 022 the ledger, its WAL, its journal and
    the logs came out 0644 in a 0755 data dir, readable by every local account. A data
    dir an older version left open is tightened too."""
    data_dir = tmp_path / "data"
    (data_dir / "logs").mkdir(parents=True)
    data_dir.chmod(0o755)
    old_log = data_dir / "logs" / "gateway.log.1"
    old_log.write_text("from an older version\n")
    old_log.chmod(0o644)
    http_port = free_port()
    env = {
        **os.environ,
        "TRADESERVER_ENDPOINTS__CLIENT_API": f"tcp://127.0.0.1:{free_port()}",
        "TRADESERVER_ENDPOINTS__CLIENT_PUB": f"tcp://127.0.0.1:{free_port()}",
        "TRADESERVER_MARKET__TICK_INTERVAL": "0.05",
    }
    command = [sys.executable, "run.py", "--data-dir", str(data_dir)]
    command += ["--http-port", str(http_port), "--fill-mode", "instant"]
    with subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.umask(0o022),  # the common default, which left files 0644
    ) as proc:
        _check_banner_and_fill(proc, data_dir, http_port)
        written = {p.name for p in data_dir.iterdir()}
        assert {"tradeserver.db", "tradeserver.db-wal", "tradeserver.db.journal.db"} <= written
        opened = [p for p in data_dir.rglob("*") if not p.is_symlink()]
    assert proc.returncode == 0
    assert len(opened) > 15
    for path in [data_dir, *opened, *data_dir.rglob("*")]:
        mode = path.lstat().st_mode & 0o777
        assert mode & 0o077 == 0, f"{path} is {mode:o}"
    assert data_dir.stat().st_mode & 0o777 == 0o700


def _check_banner_and_fill(
    proc: subprocess.Popen[str], data_dir: Path, http_port: int
) -> dict[str, Any]:
    """The banner names the URLs and the demo token; its curl line places an order that fills."""
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(8)]
        text = "".join(banner)
        assert "TradeServer is running (paper mode, fill mode instant" in text, text
        assert f"http://127.0.0.1:{http_port}/docs" in text
        token = (data_dir / "demo_token").read_text().strip()
        assert f"token {token}" in text
        curl = next(line for line in banner if line.strip().startswith("curl"))
        args = shlex.split(curl)
        headers = dict(h.split(": ", 1) for flag, h in itertools.pairwise(args) if flag == "-H")
        body = json.loads(args[args.index("-d") + 1])
        url = next(a for a in args if a.startswith("http://"))
        order = httpx.post(url, json=body, headers=headers, timeout=15).json()
        assert order["status"] in ("new", "filled"), order
        settings = json.loads((data_dir / "settings.json").read_text())
        assert settings["market"]["tick_interval"] == 0.05
        deadline = time.monotonic() + 15
        while True:
            auth = {"Authorization": f"Bearer {token}"}
            reply = httpx.get(f"{url}/{order['id']}", headers=auth, timeout=15).json()
            if reply["status"] == "filled" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert reply["status"] == "filled"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return order
