"""The gateway process: HTTP and ZeroMQ endpoints on one asyncio loop, and the sessions
that receive each user's private events (SSE streams in streams, ZeroMQ ones in zmq_api)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import uvicorn
import uvloop

from actors.runtime import process
from gateway.app import create_app
from gateway.connections import ConnectionLimits, descriptor_budget, guarded_protocol
from gateway.core import Gateway
from gateway.streams import Sessions
from gateway.zmq_api import ClientEndpoint
from protocol.settings import Settings

log = logging.getLogger("gateway")


async def _flush_logs_forever() -> None:
    while True:
        await asyncio.sleep(1.0)
        process.flush_logs()


def main(settings: Settings) -> None:
    """Wire the gateway: internal links, the ZeroMQ client endpoint, then HTTP."""
    process.setup_logging(settings, "gateway")
    gateway = Gateway(settings)
    sessions = Sessions()
    gateway.on_event(sessions.deliver)
    gateway.on_session_end(sessions.end)
    gateway.on_lost(sessions.events_lost)
    endpoint = ClientEndpoint(settings, gateway)
    app = create_app(settings, gateway, sessions)
    limits = settings.limits
    connections = ConnectionLimits(
        max_connections=descriptor_budget(limits.http_max_connections),
        max_per_address=limits.http_max_per_address,
        header_timeout=limits.http_header_timeout,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.endpoints.http_host,
            port=settings.endpoints.http_port,
            http=guarded_protocol(connections),
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=2,
        )
    )

    async def serve() -> None:
        # 1. links to the accountant and controller, 2. ZeroMQ clients, 3. HTTP clients
        await gateway.start()
        await endpoint.start()
        flusher = asyncio.get_running_loop().create_task(_flush_logs_forever())
        process.settle_memory()
        log.info(
            "gateway %s up: http://%s:%d, zmq %s, pub %s",
            gateway.id,
            settings.endpoints.http_host,
            settings.endpoints.http_port,
            settings.endpoints.client_api,
            settings.endpoints.client_pub,
        )
        try:
            await server.serve()
        finally:
            flusher.cancel()
            await endpoint.stop()
            await gateway.stop()
            log.info("stopped cleanly")

    # uvicorn handles SIGTERM/SIGINT while serving, then raises the signal again on the
    # handler that was there before; a no-op one lets the shutdown above finish cleanly.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvloop.run(serve())  # uvloop: the HTTP server's and the sockets' loop, faster than asyncio's


if __name__ == "__main__":
    main(process.settings_from_argv(sys.argv))
