"""Nothing in the project unpickles: bytes from a socket or a file are never code.

pyzmq's `send_pyobj` / `recv_pyobj` and the pickle family turn received bytes into
arbitrary objects, so a peer that can reach a socket could run code. Every message is
msgpack through protocol.codec; this test reads the source and fails on any way in.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("actors", "backtest", "bench", "examples", "gateway", "protocol", "tests")
SOURCES = [ROOT / "run.py", *sorted(p for f in FOLDERS for p in (ROOT / f).rglob("*.py"))]
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "jsonpickle", "shelve"}
UNSAFE_CALLS = {"send_pyobj", "recv_pyobj", "send_serialized", "recv_serialized"}


def unsafe_uses(source: str) -> list[str]:
    """Imports of a pickle-like module and calls of pyzmq's pickling methods, by line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Attribute) and node.attr in UNSAFE_CALLS:
            found.append(f"line {node.lineno}: .{node.attr}")
            continue
        else:
            continue
        found += [
            f"line {node.lineno}: import {name}"
            for name in names
            if name.split(".")[0] in UNSAFE_MODULES
        ]
    return found


def test_the_check_finds_what_it_looks_for() -> None:
    source = "import pickle\nfrom dill import loads\nsock.recv_pyobj()\nimport json\n"
    assert unsafe_uses(source) == [
        "line 1: import pickle",
        "line 2: import dill",
        "line 3: .recv_pyobj",
    ]


def test_no_source_file_pickles() -> None:
    folders = {path.relative_to(ROOT).parts[0] for path in SOURCES}
    assert {"actors", "gateway", "protocol", "tests", "run.py"} <= folders
    offenders = {
        str(path.relative_to(ROOT)): uses
        for path in SOURCES
        if (uses := unsafe_uses(path.read_text()))
    }
    assert offenders == {}
