"""Start the real server (run.py and its four processes) in a temporary folder for tests.

Every endpoint is on loopback with ports picked free; the ledger is a SQLite file in the
folder. `Server` gives the tokens, an HTTP client, ZeroMQ clients, and ways to kill,
stop and restart the processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import zmq

from protocol import codec
from protocol.client import MarketData, TradeClient

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = ("controller", "matcher", "accountant", "gateway")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(folder: Path, fill_mode: str = "instant", **sections: dict[str, Any]) -> Path:
    """A TOML config with free loopback ports, fast ticks and frequent snapshots."""
    config: dict[str, dict[str, Any]] = {
        "server": {"data_dir": str(folder / "data")},
        "endpoints": {
            "http_port": free_port(),
            "client_api": f"tcp://127.0.0.1:{free_port()}",
            "client_pub": f"tcp://127.0.0.1:{free_port()}",
        },
        "market": {"tick_interval": 0.05},
        "control": {"heartbeat_interval": 0.2},
        # cn_a's T+1, daily limits and odd-lot rule are off unless a test is about them:
        # most tests trade freely, at prices far from the symbols' previous close
        "trading": {"fill_mode": fill_mode},
        "profiles": {"cn_a": {"t_plus_one": False, "price_limits": False, "odd_lots": "any"}},
        "stats": {"snapshot_interval": 1.0},
        "ledger": {"sqlite_synchronous": "NORMAL"},
        "limits": {"request_timeout": 10.0},
        # the liquidity agents trade in every exchange-mode book: on for the tests of them
        "agents": {"enabled": False},
    }
    for name, values in sections.items():
        section = config.setdefault(name, {})
        for key, value in values.items():  # one level deeper too: profiles = {cn_a = {...}}
            if isinstance(value, dict) and isinstance(section.get(key), dict):
                section[key] = {**section[key], **value}
            else:
                section[key] = value
    lines = []
    for name, values in config.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
    path = folder / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    """A TOML value: JSON for scalars and arrays, inline tables for maps."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


class Server:
    """A running run.py; use `with Server(...)` or start()/stop()."""

    def __init__(self, folder: Path, fill_mode: str = "instant", **sections: dict[str, Any]):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.config = write_config(folder, fill_mode, **sections)
        self.data_dir = folder / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self._settings: dict[str, Any] = {}
        self._clients: list[Any] = []
        self._quote_socket: zmq.Socket | None = None

    # LIFE CYCLE ------------------------------------------------------------------------

    def start(self, timeout: float = 60.0, wait: bool = True) -> Server:
        """Start run.py and wait until it serves (or, without `wait`, until it has written
        its settings); a server that fails to start is stopped."""
        (self.data_dir / "settings.json").unlink(missing_ok=True)  # wait for this run's
        out = open(self.folder / "supervisor.out", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "--config", str(self.config)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        out.close()
        try:
            self._settings = json.loads((self._wait_file("settings.json", timeout)).read_text())
            if wait:
                self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_file(self, name: str, timeout: float) -> Path:
        path = self.data_dir / name
        deadline = time.monotonic() + timeout
        while not path.exists():
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} did not appear")
            time.sleep(0.05)
        return path

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            log = (self.folder / "supervisor.out").read_text(errors="replace")
            raise RuntimeError(f"run.py exited with {self.proc.returncode}:\n{log}")

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until a request crosses gateway, accountant and controller, and trading is on
        (or the configured state is reached) and the matcher holds a book snapshot."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                r = httpx.get(
                    self.url + "/v1/control", headers=self.auth(self.admin_token), timeout=2
                )
                if r.status_code == 200 and self.matcher_synced():
                    return
            except (httpx.HTTPError, OSError) as exc:
                last_error = exc
            time.sleep(0.1)
        raise TimeoutError(f"server not ready: {last_error}")

    def matcher_synced(self) -> bool:
        log = self.data_dir / "logs" / "matcher.log"
        status = self.status()
        pid = status["children"]["matcher"]["pid"]
        text = log.read_text(errors="replace") if log.exists() else ""
        # the matcher process running now has logged a snapshot after its start line
        start = text.rfind(f"matcher up, pid {pid},")
        return pid is not None and start >= 0 and "book snapshot" in text[start:]

    def stop(self, timeout: float = 30.0, together: bool = False) -> int:
        """SIGTERM to run.py, which stops the processes in flow order, each once the one
        before has exited; `together`: also to the four at once, as a test's teardown
        may (the flow order is for a server that goes on, restarts included)."""
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.close()
        self._clients.clear()
        if self._quote_socket is not None:
            self._quote_socket.close()
            self._quote_socket = None
        if self.proc is None:
            return 0
        children = []
        if together:
            with contextlib.suppress(RuntimeError):
                children = [c["pid"] for c in self.status()["children"].values() if c["pid"]]
        self.proc.send_signal(signal.SIGTERM)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def restart(self) -> None:
        assert self.stop() == 0
        self.start()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop(together=True)

    # PROCESSES -------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        for _ in range(50):
            with contextlib.suppress(OSError, ValueError):
                return json.loads((self.data_dir / "supervisor.json").read_text())
            time.sleep(0.02)
        raise RuntimeError("no supervisor.json")

    def pid(self, process: str) -> int:
        return int(self.status()["children"][process]["pid"])

    def kill(self, process: str, sig: int = signal.SIGKILL) -> None:
        """Kill one child; the supervisor restarts it. Waits until the new one runs."""
        old = self.pid(process)
        os.kill(old, sig)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pid = self.status()["children"][process]["pid"]
            if pid not in (None, old):
                break
            time.sleep(0.05)
        else:
            raise TimeoutError(f"{process} was not restarted")
        self.wait_ready()

    # CLIENTS ---------------------------------------------------------------------------

    @property
    def settings(self) -> dict[str, Any]:
        """The resolved settings the server runs with (its settings.json)."""
        return self._settings

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._settings['endpoints']['http_port']}"

    @property
    def api(self) -> str:
        return str(self._settings["endpoints"]["client_api"])

    @property
    def pub(self) -> str:
        return str(self._settings["endpoints"]["client_pub"])

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin_token").read_text().strip()

    @property
    def demo_token(self) -> str:
        return (self.data_dir / "demo_token").read_text().strip()

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def http(self, token: str | None = None) -> httpx.Client:
        client = httpx.Client(
            base_url=self.url, headers=self.auth(token) if token else {}, timeout=15
        )
        self._clients.append(client)
        return client

    def client(self, token: str | None = None, **kwargs: Any) -> TradeClient:
        client = TradeClient(self.api, token, timeout=15, **kwargs)
        self._clients.append(client)
        return client

    def market(self, topics: tuple[str, ...] = ("md.", "ctl")) -> MarketData:
        md = MarketData(self.pub, topics)
        self._clients.append(md)
        return md

    def new_user(
        self, name: str, cash: str = "1000000", positions: dict[str, str] | None = None
    ) -> str:
        """Create a user through the admin HTTP API, with shares deposited if `positions`
        (symbol -> qty); returns its token."""
        body: dict[str, Any] = {"name": name, "cash": cash}
        if positions:
            body["positions"] = positions
        r = httpx.post(
            self.url + "/v1/admin/users",
            json=body,
            headers=self.auth(self.admin_token),
            timeout=15,
        )
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def push_quotes(self, *quotes: dict[str, Any]) -> None:
        """Push trades into the controller's external feed (a server with feed "external"),
        each a map with symbol, last, volume and optionally bid and ask."""
        if self._quote_socket is None:
            self._quote_socket = zmq.Context.instance().socket(zmq.PUSH)
            self._quote_socket.setsockopt(zmq.LINGER, 1000)
            self._quote_socket.connect(self._settings["endpoints"]["quotes_in"])
        for quote in quotes:
            self._quote_socket.send(codec.encode({"v": 1, "type": "quote", **quote}))

    def set_control(self, state: str) -> None:
        r = httpx.post(
            self.url + "/v1/control",
            json={"state": state},
            headers=self.auth(self.admin_token),
            timeout=15,
        )
        assert r.status_code == 200, r.text
        assert r.json()["state"] == state

    def ledger_imbalances(self) -> list[str]:
        """balance.imbalances on the ledger of this server, stopped: every way its books do
        not balance (docs/reliability.md), empty when they do."""
        from actors.accountant.balance import imbalances
        from actors.accountant.journal import ledger_caught_up
        from actors.accountant.ledger import make_engine

        url = f"sqlite:///{self.data_dir / 'tradeserver.db'}"
        engine = make_engine(url, "NORMAL")
        try:
            ledger_caught_up(url, "NORMAL", engine)
            return imbalances(engine)
        finally:
            engine.dispose()

    def assert_no_crash(self) -> None:
        """No process restarted and no log holds a traceback or a critical line."""
        restarts = {name: c["restarts"] for name, c in self.status()["children"].items()}
        assert not any(restarts.values()), f"processes restarted: {restarts}"
        for name, text in self.logs():
            assert "Traceback" not in text and "CRITICAL" not in text, f"{name}:\n{text[-4000:]}"

    def logs(self) -> Iterator[tuple[str, str]]:
        for path in sorted((self.data_dir / "logs").glob("*")):
            yield path.name, path.read_text(errors="replace")
