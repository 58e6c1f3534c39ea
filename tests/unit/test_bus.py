"""The Bus's poll loop on real sockets."""

from __future__ import annotations

from pathlib import Path

import zmq

from actors.runtime.bus import Bus


def test_a_stale_readiness_of_a_socket_done_resending_is_let_go(tmp_path: Path) -> None:
    """The poll said a PUB or PUSH had room, but a newer resend request earlier in the
    same batch already sent what it waited for: the loop must not try to read it (CI
    found the controller dying on `recv` from its PUB with 'Operation not supported')."""
    bus = Bus("test")
    try:
        bus.publish_as("pub", f"ipc://{tmp_path}/pub")
        bus.push_to("peer", f"ipc://{tmp_path}/peer")
        for peer in ("pub", "peer"):
            sock, _ = bus._out[peer]
            assert sock.getsockopt(zmq.TYPE) in (zmq.PUB, zmq.PUSH)
            bus._on_ready(sock)  # not waiting for room any more: nothing to do
    finally:
        bus._close()
