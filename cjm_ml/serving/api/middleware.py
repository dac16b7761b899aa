"""Pure ASGI middleware (no per-request task or body copy, unlike ``BaseHTTPMiddleware``):
the key check before any body is read, the request-body limit, and the access log."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cjm_ml.serving.api.deps import get_principal, require_operator
from cjm_ml.serving.schemas import MAX_BODY_BYTES

log = logging.getLogger(__name__)

#: The key checks a route may depend on; the middleware runs the same check before the body.
KEY_CHECKS = (get_principal, require_operator)
#: Statuses logged for a request that got no answer from the app: it failed (the server
#: answers 500), or the client went away first (499, as nginx logs it).
FAILED, CLIENT_GONE = 500, 499


class BodyTooLarge(HTTPException):
    """A request body over ``MAX_BODY_BYTES`` (413); the connection is closed after the answer,
    so the rest of the body is never read."""

    def __init__(self) -> None:
        super().__init__(
            413,
            f"request body over {MAX_BODY_BYTES // (1024 * 1024)} MiB",
            headers={"connection": "close"},
        )


class LimitsAndAccessLog:
    """Refuses a Content-Length over ``MAX_BODY_BYTES`` (413) before the app runs; when the
    app first reads the body, checks the key its route needs (401 without reading the body:
    the same check and answer as the route's dependency); while it reads, refuses a streamed
    body as soon as it passes the limit (413). Logs one line per answer, refusals and failures
    included: method, path, status, time and key id (never the key, never the query string,
    which may carry it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        failed = True
        try:
            length = Headers(scope=scope).get("content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
                await _answer(BodyTooLarge())(scope, receive, send_noting_status)
            else:
                await self.app(scope, _guarded(scope, receive), send_noting_status)
            failed = False
        except StarletteHTTPException as exc:  # from ``_guarded``, where no handler caught it
            if status:
                raise
            await _answer(exc)(scope, receive, send_noting_status)
            failed = False
        finally:
            log.info(
                "%s %s %d %.1f ms key=%s",
                scope["method"],
                scope["path"],
                status or (FAILED if failed else CLIENT_GONE),
                1000 * (time.perf_counter() - started),
                scope.get("state", {}).get("key_id", "-"),
            )


def _guarded(scope: Scope, receive: Receive) -> Receive:
    """``receive`` that first checks the key the route needs (``HTTPException`` 401 before
    any of the body is read), then raises ``BodyTooLarge`` as soon as the body passes
    ``MAX_BODY_BYTES`` (a chunked body has no Content-Length to refuse it by)."""
    received = 0
    checked = False

    async def guarded_receive() -> Message:
        nonlocal received, checked
        if not checked:
            checked = True
            await _check_key(scope)
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                raise BodyTooLarge()
        return message

    return guarded_receive


async def _check_key(scope: Scope) -> None:
    """Runs the key check (``KEY_CHECKS``) the matched route depends on, if any: raises its
    ``HTTPException`` (401), with the connection to be closed (the body stays unread)."""
    route = scope.get("route")
    check = _key_check_of(route) if isinstance(route, APIRoute) else None
    service = getattr(scope["app"].state, "service", None)
    if check is None or service is None:
        return
    request = Request(scope)
    header_key = request.headers.get("x-api-key") or None
    try:
        if check is get_principal:
            await get_principal(request, service, header_key, request.query_params.get("api_key"))
        else:
            await require_operator(service, header_key)
    except HTTPException as exc:
        exc.headers = {**(exc.headers or {}), "connection": "close"}
        raise


def _key_check_of(route: APIRoute) -> Callable[..., Awaitable[Any]] | None:
    """The first of ``KEY_CHECKS`` in the route's dependency tree, or None."""
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        if dependant.call in KEY_CHECKS:
            return dependant.call
        pending.extend(dependant.dependencies)
    return None


def _answer(exc: StarletteHTTPException) -> JSONResponse:
    """An ``HTTPException`` as the API answers it (``{"detail": ...}``), closing the
    connection: the body was not read, and is not to be."""
    headers = {**(exc.headers or {}), "connection": "close"}
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)
