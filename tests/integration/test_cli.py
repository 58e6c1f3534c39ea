"""The admin commands of run.py, against a running server and against a stopped one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import fresh_name
from tests.harness import ROOT, Server


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "--config", str(config), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_user_create_against_a_running_server_gives_a_working_token(server: Server) -> None:
    name = fresh_name("cli")
    done = run_cli(server.config, "user", "create", "--name", name, "--cash", "50000", "--json")
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    assert created["name"] == name and created["cash"] == "50000.00"
    account = server.client(created["token"]).account()
    assert (account["name"], account["cash"]) == (name, "50000.00")
    alpaca_keys = {"APCA-API-KEY-ID": created["key_id"], "APCA-API-SECRET-KEY": created["token"]}
    assert httpx.get(server.url + "/v2/account", headers=alpaca_keys).status_code == 200
    listed = json.loads(run_cli(server.config, "user", "list", "--json").stdout)
    assert name in [u["name"] for u in listed]


def test_user_create_refuses_a_taken_name(server: Server) -> None:
    done = run_cli(server.config, "user", "create", "--name", "demo", "--cash", "1")
    assert done.returncode == 1
    assert "REQUEST_NAME_TAKEN" in done.stderr


def test_control_commands_switch_the_run_state(server: Server) -> None:
    try:
        paused = run_cli(server.config, "control", "pause")
        assert paused.returncode == 0, paused.stderr
        assert json.loads(paused.stdout)["state"] == "paused"
        assert server.client(server.demo_token).control()["state"] == "paused"
    finally:
        assert json.loads(run_cli(server.config, "control", "run").stdout)["state"] == "running"


def test_user_rotate_and_revoke_against_a_running_server(server: Server) -> None:
    name = fresh_name("cli")
    old = server.new_user(name)
    done = run_cli(server.config, "user", "rotate", "--name", name, "--json")
    assert done.returncode == 0, done.stderr
    new = json.loads(done.stdout)["token"]
    assert server.http(new).get("/v1/account").status_code == 200
    assert server.http(old).get("/v1/account").status_code == 401
    done = run_cli(server.config, "user", "revoke", "--name", name)
    assert done.returncode == 0, done.stderr
    assert "revoked" in done.stdout
    assert server.http(new).get("/v1/account").status_code == 401
    missing = run_cli(server.config, "user", "revoke", "--name", fresh_name("nobody"))
    assert missing.returncode != 0 and "no user named" in missing.stderr


def test_admin_commands_work_on_the_ledger_when_no_server_runs(tmp_path: Path) -> None:
    server = Server(tmp_path, fill_mode="instant")

    def create(name: str) -> str:
        done = run_cli(
            server.config, "user", "create", "--name", name, "--cash", "123.45", "--json"
        )
        assert done.returncode == 0, done.stderr
        return str(json.loads(done.stdout)["token"])

    first, revoked = create("offline"), create("revoked")
    rotated = run_cli(server.config, "user", "rotate", "--name", "offline", "--json")
    assert rotated.returncode == 0, rotated.stderr
    token = json.loads(rotated.stdout)["token"]
    assert run_cli(server.config, "user", "revoke", "--name", "revoked").returncode == 0
    admin_file = server.data_dir / "admin_token"
    old_admin = admin_file.read_text().strip()
    assert run_cli(server.config, "user", "rotate", "--name", "admin").returncode == 0
    assert run_cli(server.config, "user", "revoke", "--name", "admin").returncode != 0
    assert json.loads(run_cli(server.config, "control", "stop").stdout)["state"] == "stopped"
    offline_reset = run_cli(server.config, "user", "reset", "--name", "offline")
    assert offline_reset.returncode == 1  # the matcher must let the orders go: server only
    assert "needs the server running" in offline_reset.stderr
    admin_token = admin_file.read_text().strip()
    assert admin_token != old_admin
    assert admin_file.stat().st_mode & 0o777 == 0o600
    with server:
        assert server.client(token).account()["cash"] == "123.45"
        assert server.client(admin_token).control()["state"] == "stopped"
        for gone in (first, revoked, old_admin):
            assert server.http(gone).get("/v1/account").status_code == 401
