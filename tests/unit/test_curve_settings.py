"""Settings and keys for CURVE on internal links: plain tcp never leaves the host, and
run.py names the key a host lacks before it starts anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

import run
from actors.runtime import curve
from protocol.settings import build_settings
from tests.harness import write_config


def config(tmp_path: Path, **sections: dict[str, object]) -> Path:
    return write_config(tmp_path, **sections)


@pytest.mark.parametrize("host", ["10.0.0.5", "0.0.0.0", "*", "example.com", "eth0"])
def test_an_internal_tcp_link_off_this_host_needs_curve(tmp_path: Path, host: str) -> None:
    path = config(tmp_path, endpoints={"matcher_in": f"tcp://{host}:7001"})
    with pytest.raises(ValidationError, match=r"endpoints\.matcher_in .* leaves this host"):
        build_settings(path, environ={})
    secured = config(
        tmp_path, endpoints={"matcher_in": f"tcp://{host}:7001"}, security={"curve": True}
    )
    assert build_settings(secured, environ={}).security.curve


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.9", "localhost", "[::1]"])
def test_loopback_tcp_needs_no_curve(tmp_path: Path, host: str) -> None:
    path = config(tmp_path, endpoints={"accountant_in": f"tcp://{host}:7002"})
    assert build_settings(path, environ={}).endpoints.accountant_in == f"tcp://{host}:7002"


def test_the_external_quote_feed_is_not_an_internal_link(tmp_path: Path) -> None:
    """quotes_in takes frames from programs that are not ours, checked as untrusted."""
    path = config(tmp_path, endpoints={"quotes_in": "tcp://0.0.0.0:7003"})
    assert build_settings(path, environ={}).endpoints.quotes_in == "tcp://0.0.0.0:7003"


def test_a_host_missing_a_peer_public_key_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The gateway's host made its own pair, but nobody copied the accountant's public
    key to it: run.py says which file is missing, and starts no process."""
    path = config(
        tmp_path,
        server={"processes": ["gateway"]},
        endpoints={"accountant_in": "tcp://10.0.0.5:7004"},
        security={"curve": True},
    )
    assert run.main(["--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert "accountant.key" in error and "run.py keys" in error, error
    keys = tmp_path / "data" / "keys"
    assert sorted(p.name for p in keys.iterdir()) == ["gateway.key", "gateway.key_secret"]
    assert (keys / "gateway.key_secret").stat().st_mode & 0o077 == 0
    assert not (tmp_path / "data" / "supervisor.json").exists()


def test_keys_are_made_once_and_never_overwritten(tmp_path: Path) -> None:
    settings = build_settings(config(tmp_path, security={"curve": True}), environ={})
    made = curve.create_missing(settings)
    assert sorted(p.name for p in made) == [
        "accountant.key_secret",
        "controller.key_secret",
        "gateway.key_secret",
        "matcher.key_secret",
    ]
    before = (settings.keys_dir / "matcher.key_secret").read_bytes()
    assert curve.create_missing(settings) == []
    assert (settings.keys_dir / "matcher.key_secret").read_bytes() == before
    keys = curve.load(settings, "matcher")
    assert keys is not None and len(keys.public) == 40 and len(keys.secret) == 40
