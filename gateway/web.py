"""The security headers of every HTTP answer, and the API's docs page served locally.

Each answer gets the policy of what it is, by path, whatever route or static file made
it: the web console (`/`, `/console/...`), the docs page (`/docs`, its scripts and
styles), or the API (JSON, event streams, everything else). None may be framed by
another site or sniffed into another type; the pages load only what this server serves.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS_DIR = Path(__file__).parent / "docs_page"

_COMMON = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# The console loads nothing from elsewhere and runs no inline script.
CONSOLE_HEADERS = {
    **_COMMON,
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "Cache-Control": "no-store",
}
# Swagger UI sets style attributes as it renders, so styles may be inline; scripts not.
DOCS_HEADERS = {
    **_COMMON,
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
}
# JSON and event streams: nothing in them is a page to run or to frame.
API_HEADERS = {
    **_COMMON,
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


def _raw(policy: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in policy.items()]


_CONSOLE_RAW, _DOCS_RAW, _API_RAW = map(_raw, (CONSOLE_HEADERS, DOCS_HEADERS, API_HEADERS))


def raw_headers_for(path: str) -> list[tuple[bytes, bytes]]:
    """The policy of what answers at `path`, as ASGI header pairs."""
    if path == "/" or path == "/console" or path.startswith("/console/"):
        return _CONSOLE_RAW
    if path == "/docs" or path.startswith("/docs/"):
        return _DOCS_RAW
    return _API_RAW


class SecurityHeaders:
    """Adds raw_headers_for(path) to every HTTP answer that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = raw_headers_for(scope["path"])

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in extra if k not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def add_docs(app: FastAPI) -> None:
    """`/docs`: Swagger UI from the files the fastapi-offline package carries, for an app
    made with docs_url=None and redoc_url=None (FastAPI's own pages load it from a CDN,
    and start it with an inline script)."""

    @app.get("/docs", include_in_schema=False)
    async def docs_page() -> FileResponse:
        return FileResponse(DOCS_DIR / "index.html")

    @app.get("/docs/init.js", include_in_schema=False)
    async def docs_script() -> FileResponse:
        return FileResponse(DOCS_DIR / "init.js", media_type="text/javascript")

    assets = StaticFiles(directory=str(files("fastapi_offline") / "static"))
    app.mount("/docs/assets", assets, name="docs-assets")
