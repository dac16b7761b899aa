"""Pure ASGI middleware (no per-request task or body copy, unlike ``BaseHTTPMiddleware``):
the request-body limit and the access log."""

from __future__ import annotations

import logging
import time

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

#: Request bodies larger than this are refused (413) before they are parsed.
MAX_BODY_BYTES = 16 * 1024 * 1024


class LimitsAndAccessLog:
    """Refuses a body over ``MAX_BODY_BYTES`` (413) before it is read, and logs each request:
    method, path, status, time and key id (never the key, never the query string, which may
    carry it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            refusal = JSONResponse(
                {"detail": f"request body over {MAX_BODY_BYTES // (1024 * 1024)} MiB"},
                status_code=413,
            )
            await refusal(scope, receive, send)
            return
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_noting_status)
        log.info(
            "%s %s %d %.1f ms key=%s",
            scope["method"],
            scope["path"],
            status,
            1000 * (time.perf_counter() - started),
            scope.get("state", {}).get("key_id", "-"),
        )
