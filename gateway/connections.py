"""HTTP connections the gateway holds, bounded: a connection has `header_timeout` seconds
from its opening (or from its last answer) to send a request's headers, and there are at
most `max_connections` at once, `max_per_address` from one client address. Beyond, a new
connection is closed as soon as it is accepted, so a flood of idle or half-sent requests
(slowloris) cannot take the process's file descriptors from the ZeroMQ clients and the
internal links: part of the descriptor limit is held back for them (FD_RESERVE).

uvicorn has no header timeout of its own: its keep-alive timer starts only after a first
answer and stops at the first byte of the next request.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("gateway")

FD_RESERVE = 512  # descriptors kept from HTTP: ZeroMQ clients, internal links, logs


@dataclass
class ConnectionLimits:
    max_connections: int
    max_per_address: int
    header_timeout: float
    by_address: dict[str, int] = field(default_factory=dict)
    refused: int = 0  # connections closed at once for a limit, since start


def descriptor_budget(wanted: int) -> int:
    """The HTTP connections this process can hold beside FD_RESERVE other descriptors:
    `wanted`, or fewer when the descriptor limit (raised to its hard limit first) is low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and hard != resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(16, min(wanted, soft - FD_RESERVE))


def guarded_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with `limits` (pass the class as Config(http=...))."""

    def _release(address: str | None) -> None:
        if address is None:
            return
        left = limits.by_address[address] - 1
        if left:
            limits.by_address[address] = left
        else:
            del limits.by_address[address]

    class GuardedProtocol(HttpToolsProtocol):
        _address: str | None = None
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            address = self.client[0] if self.client else "unknown"
            count = limits.by_address.get(address, 0)
            if len(self.connections) > limits.max_connections or count >= limits.max_per_address:
                limits.refused += 1
                log.warning(
                    "HTTP connection from %s closed at once: %d open, %d from there "
                    "(limits http_max_connections %d, http_max_per_address %d)",
                    address,
                    len(self.connections) - 1,
                    count,
                    limits.max_connections,
                    limits.max_per_address,
                )
                transport.abort()
                return
            self._address = address
            limits.by_address[address] = count + 1
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_timer()
            address, self._address = self._address, None
            _release(address)
            super().connection_lost(exc)

        def handle_websocket_upgrade(self) -> None:
            """The websocket protocol takes over the connection, and its address's slot:
            it gives the slot back when it is lost (uvicorn never calls ours again)."""
            self._disarm_header_timer()
            address, self._address = self._address, None
            super().handle_websocket_upgrade()
            websocket = self.transport.get_protocol()
            lost = websocket.connection_lost

            def release_then(exc: Exception | None) -> None:
                _release(address)
                lost(exc)

            websocket.connection_lost = release_then  # type: ignore[method-assign]

        def on_headers_complete(self) -> None:
            self._disarm_header_timer()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and not self.pipeline:
                self._arm_header_timer()

        def _arm_header_timer(self) -> None:
            self._disarm_header_timer()
            self._header_timer = self.loop.call_later(limits.header_timeout, self._too_slow)

        def _disarm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return GuardedProtocol
