"""Shared fixtures: real servers for integration tests, one per fill mode per module."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Server

_names = itertools.count(1)

# The suite starts some hundred server processes: let them keep our modules compiled
# (__pycache__, ignored by git) rather than compile each at every start, even where the
# environment says not to write bytecode.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False  # and so does this process, for what it imports from here


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server in instant fill mode: orders fill at their limit as soon as trading is on."""
    with Server(tmp_path_factory.mktemp("instant"), fill_mode="instant") as srv:
        yield srv
        srv.assert_no_crash()


@pytest.fixture(scope="module")
def wait_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server in wait mode: orders fill when the synthetic trade price crosses them."""
    with Server(tmp_path_factory.mktemp("wait"), fill_mode="wait") as srv:
        yield srv
        srv.assert_no_crash()


@pytest.fixture(scope="module")
def unlimited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Instant fill mode and no per-token rate limit: for tests that send floods."""
    limits = {"rate_per_user": 0}
    with Server(tmp_path_factory.mktemp("unlimited"), fill_mode="instant", limits=limits) as srv:
        yield srv
        srv.assert_no_crash()


def fresh_name(prefix: str = "user") -> str:
    return f"{prefix}{next(_names)}"
