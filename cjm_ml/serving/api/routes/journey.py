"""The journey map page, per key and rooftop."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from cjm_ml.serving import service as use
from cjm_ml.serving.api.deps import PrincipalDep, ServiceDep
from cjm_ml.serving.schemas import ERROR_RESPONSES

router = APIRouter(prefix="/journey", tags=["journey map"], responses=ERROR_RESPONSES)


@router.get("", response_class=HTMLResponse)
def journey(
    service: ServiceDep,
    principal: PrincipalDep,
    rooftop_id: Annotated[str | None, Query(max_length=128)] = None,
) -> HTMLResponse:
    """The journey map (the page ``cjm map`` writes) of the key's rooftops, or of one
    rooftop, from the event store; friction hotspots from ``<models_dir>/hotspots.parquet``
    when the champions' roll-ups were exported there."""
    return HTMLResponse(use.journey_page(service, principal, rooftop_id))
