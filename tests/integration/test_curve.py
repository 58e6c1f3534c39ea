"""CURVE on the internal tcp links (actors/runtime/curve.py, docs/reliability.md section 6).

The four processes split over two supervisors, as over two hosts: controller, matcher and
accountant on "host A", the gateway on "host B", each with its own data dir and its own
copy of the keys (every public key, only its own processes' secret ones), linked by tcp
endpoints with CURVE and an address allow-list. Orders go through; a peer without a
deployment key, without CURVE, or from an address not on the list is refused at the
handshake."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from protocol.settings import BOUND_BY
from tests.harness import ROOT, Server, free_port, write_config

HOST_A = ["controller", "matcher", "accountant"]
HOST_B = ["gateway"]


def keys_for(source: Path, target: Path, processes: list[str]) -> Path:
    """What a host holds: every public key, and the secret keys of its own processes."""
    target.mkdir(mode=0o700)
    for public in source.glob("*.key"):
        shutil.copy(public, target)
    for name in processes:
        shutil.copy(source / f"{name}.key_secret", target)
    return target


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    folder = tmp_path_factory.mktemp("curve")
    internal = {role: f"tcp://127.0.0.1:{free_port()}" for role in BOUND_BY}
    (folder / "keygen").mkdir()
    made = write_config(folder / "keygen", security={"curve": True})
    created = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "keys", "--config", str(made)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert created.stdout.count("created") == 4, created.stdout
    all_keys = folder / "keygen" / "data" / "keys"
    hosts = []
    for name, processes in (("a", HOST_A), ("b", HOST_B)):
        keys = keys_for(all_keys, folder / f"keys_{name}", processes)
        security = {"curve": True, "keys_dir": str(keys), "allow": ["127.0.0.1"]}
        server = Server(
            folder / name,
            server={"processes": processes},
            endpoints=internal,
            security=security,
        )
        hosts.append(server)
    a, b = hosts
    try:
        a.start(wait=False)
        b.start(wait=False)
        wait_joined(a, b)
        yield a, b
        a.assert_no_crash()
        b.assert_no_crash()
    finally:
        b.stop(together=True)
        a.stop(together=True)


def wait_joined(a: Server, b: Server, timeout: float = 60.0) -> None:
    """Until a request crosses host B's gateway to host A and the matcher has its book."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{b.url}/v1/control", headers=a.auth(a.admin_token), timeout=2)
            if r.status_code == 200 and a.matcher_synced():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError("the two hosts did not join")


def test_orders_cross_the_curve_links_between_the_hosts(split: tuple[Server, Server]) -> None:
    a, b = split
    http = b.http(a.demo_token)
    placed = http.post(
        "/v1/orders", json={"symbol": "600000", "side": "buy", "qty": 100, "price": "11.00"}
    )
    assert placed.status_code == 200, placed.text
    order_id = placed.json()["id"]
    deadline = time.monotonic() + 15
    while (order := http.get(f"/v1/orders/{order_id}").json())["status"] != "filled":
        assert time.monotonic() < deadline, order
        time.sleep(0.1)
    positions = http.get("/v1/positions").json()
    assert any(p["symbol"] == "600000" and p["qty"] == "100" for p in positions), positions
    for name in HOST_A:
        log = (a.data_dir / "logs" / f"{name}.log").read_text()
        assert "Traceback" not in log


def handshake(
    endpoint: str, keys: tuple[bytes, bytes] | None, server_key: bytes | None, source: str = ""
) -> int:
    """Connect a PUSH to `endpoint`, as CURVE client with `keys` (public, secret) or in
    the clear, from `source` address if given; the first handshake event."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    if keys is not None and server_key is not None:
        sock.curve_publickey, sock.curve_secretkey = keys
        sock.curve_serverkey = server_key
    monitor = sock.get_monitor_socket()
    target = endpoint if not source else endpoint.replace("tcp://", f"tcp://{source}:0;")
    sock.connect(target)
    wanted = {
        zmq.EVENT_HANDSHAKE_SUCCEEDED,
        zmq.EVENT_HANDSHAKE_FAILED_AUTH,
        zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
        zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
    }
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if monitor.poll(500):
                event = recv_monitor_message(monitor)["event"]
                if event in wanted:
                    return int(event)
        raise TimeoutError(f"no handshake with {endpoint}")
    finally:
        sock.disable_monitor()
        monitor.close()
        sock.close()
        ctx.term()


def test_only_deployment_keys_from_allowed_addresses_get_in(
    split: tuple[Server, Server], tmp_path: Path
) -> None:
    a, b = split
    accountant_in = a.settings["endpoints"]["accountant_in"]
    keys = a.settings["security"]["keys_dir"]
    server_key, _ = zmq.auth.load_certificate(Path(keys) / "accountant.key")
    gateway_keys = zmq.auth.load_certificate(
        Path(b.settings["security"]["keys_dir"]) / "gateway.key_secret"
    )
    _, stranger_file = zmq.auth.create_certificates(tmp_path, "stranger")
    stranger = zmq.auth.load_certificate(stranger_file)

    # the positive control: the gateway's own keys from an allowed address get in
    assert handshake(accountant_in, gateway_keys, server_key) == zmq.EVENT_HANDSHAKE_SUCCEEDED
    assert handshake(accountant_in, stranger, server_key) == zmq.EVENT_HANDSHAKE_FAILED_AUTH
    assert handshake(accountant_in, None, None) != zmq.EVENT_HANDSHAKE_SUCCEEDED
    from_elsewhere = handshake(accountant_in, gateway_keys, server_key, source="127.0.0.2")
    assert from_elsewhere == zmq.EVENT_HANDSHAKE_FAILED_AUTH
