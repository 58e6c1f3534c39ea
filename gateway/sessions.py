"""The gateway process: HTTP and ZeroMQ endpoints on one asyncio loop, and the sessions
that receive each user's private events (SSE streams here, ZeroMQ ones in zmq_api)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

import uvicorn

from actors import process
from gateway.core import Gateway
from protocol.settings import Settings

log = logging.getLogger("gateway")

MAX_QUEUED_EVENTS = 10_000  # per stream; a client that stops reading loses its stream


EventQueue = asyncio.Queue[dict[str, Any] | None]  # None: the reader fell behind, end it


class Sessions:
    """Event queues of open HTTP event streams, by user id."""

    def __init__(self) -> None:
        self._queues: dict[int, set[EventQueue]] = {}

    def subscribe(self, user_id: int) -> EventQueue:
        queue: EventQueue = asyncio.Queue(MAX_QUEUED_EVENTS + 1)
        self._queues.setdefault(user_id, set()).add(queue)
        return queue

    def unsubscribe(self, user_id: int, queue: EventQueue) -> None:
        queues = self._queues.get(user_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._queues[user_id]

    def deliver(self, user_id: int, event: dict[str, Any]) -> None:
        for queue in list(self._queues.get(user_id, ())):
            if queue.qsize() < MAX_QUEUED_EVENTS:
                queue.put_nowait(event)
            else:
                log.warning("event stream of user %d is not reading; closing it", user_id)
                queue.put_nowait(None)
                self.unsubscribe(user_id, queue)


async def _flush_logs_forever() -> None:
    while True:
        await asyncio.sleep(1.0)
        process.flush_logs()


def main(settings: Settings) -> None:
    """Wire the gateway: internal links, the ZeroMQ client endpoint, then HTTP."""
    from gateway.app import create_app
    from gateway.zmq_api import ClientEndpoint

    process.setup_logging(settings, "gateway")
    gateway = Gateway(settings)
    sessions = Sessions()
    gateway.on_event(sessions.deliver)
    endpoint = ClientEndpoint(settings, gateway)
    app = create_app(settings, gateway, sessions)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.endpoints.http_host,
            port=settings.endpoints.http_port,
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
    asyncio.run(serve())


if __name__ == "__main__":
    main(process.settings_from_argv(sys.argv))
