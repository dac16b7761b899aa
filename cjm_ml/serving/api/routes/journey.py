"""The journey map page, per key and rooftop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, ParamSpec, TypeVar

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from cjm_ml.serving import service as use
from cjm_ml.serving.api.deps import PrincipalDep, ServiceDep
from cjm_ml.serving.heavy import Busy
from cjm_ml.serving.schemas import refusals

P = ParamSpec("P")
T = TypeVar("T")

router = APIRouter(
    prefix="/journey", tags=["journey map"], responses=refusals(401, 403, 404, 422, 503)
)


@router.get("", response_class=HTMLResponse)
async def journey(
    service: ServiceDep,
    principal: PrincipalDep,
    rooftop_id: Annotated[str | None, Query(max_length=128)] = None,
) -> HTMLResponse:
    """The journey map (the page ``cjm map`` writes) of the key's rooftops, or of one
    rooftop, from the event store; friction hotspots from ``<models_dir>/hotspots.parquet``
    when the champions' roll-ups were exported there. Built once per rooftops and store
    version, on the heavy-work thread (503 with ``Retry-After`` when it stays busy)."""
    scope = await run_in_threadpool(use.journey_scope, service, principal, rooftop_id)
    page = use.cached_journey_page(service, scope)
    if page is None:
        page = await run_heavy(service, use.journey_page, service, scope)
    return HTMLResponse(page)


async def run_heavy(
    service: use.Service, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """``fn``'s result, computed on the service's heavy-work thread (the call lists use it
    too); 503 with ``Retry-After`` when no heavy-work slot comes free in time."""
    try:
        return await service.heavy.run(fn, *args, **kwargs)
    except Busy as exc:
        headers = {"Retry-After": str(exc.retry_after_s)}
        raise HTTPException(503, exc.message, headers=headers) from exc
