"""The scoring API's app factory: ``create_app(settings)``.

The lifespan opens everything at startup (``open_service``: the tenants file, the event
store, the champions, the outbox and its background deliverer, the scorer thread) and closes
it at shutdown. Scoring by id (the CRM's call) goes to the scorer, which scores the requests
waiting together (``ScoreBatcher``); other CPU-bound or blocking endpoints are plain ``def``
and run on the threadpool. Every refusal is a 4xx (or 503) with a ``detail`` naming the field
or item and why.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from cjm_ml.config import Settings
from cjm_ml.events import EventValidationError
from cjm_ml.serving.api.middleware import LimitsAndAccessLog
from cjm_ml.serving.api.routes import events, journey, models, operations, outbox, queues, scoring
from cjm_ml.serving.schemas import problem
from cjm_ml.serving.service import Refused, open_service


def create_app(
    settings: Settings | None = None,
    *,
    start_deliverer: bool = True,
    on_shutdown: Callable[[], None] | None = None,
) -> FastAPI:
    """The API with everything it needs opened at startup and closed at shutdown (then
    ``on_shutdown`` runs: ``cjm serve`` stops its other workers there)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = open_service(settings)
        app.state.service = service
        # What startup loaded lives as long as the process: keep it out of the cyclic garbage
        # collector, whose full passes over it took ~100 ms each (a p99 spike under load).
        gc.collect()
        gc.freeze()
        if start_deliverer:
            service.deliverer.start(settings.outbox_poll_s)
        try:
            yield
        finally:
            service.close()
            if on_shutdown is not None:
                on_shutdown()

    app = FastAPI(
        title="cjm-ml scoring API",
        version="1",
        description="Risk, friction drivers and actions for leads, appointments and deliveries.",
        lifespan=lifespan,
    )
    app.add_exception_handler(Refused, _refused)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(EventValidationError, _invalid_events)
    app.add_middleware(LimitsAndAccessLog)
    for area in (operations, models, events, scoring, queues, journey, outbox):
        app.include_router(area.router)
    return app


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    """A service refusal as the API answers it: its status and ``{"detail": ...}``."""
    assert isinstance(exc, Refused)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """A request that fails validation (422): each problem by field (``loc``), why (``msg``)
    and its kind. The input is not echoed: it may be large, or a number JSON cannot carry
    (NaN, Infinity; 1e400 reads as Infinity), which made FastAPI's own handler fail (500)."""
    assert isinstance(exc, RequestValidationError)
    detail = [problem(e["loc"], e["msg"], e["type"]) for e in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


async def _invalid_events(request: Request, exc: Exception) -> JSONResponse:
    """Stored events that break the event model (422), each violation by column."""
    assert isinstance(exc, EventValidationError)
    detail = [problem(["body", v.column], v.message, v.rule) for v in exc.violations]
    return JSONResponse({"detail": detail}, status_code=422)
