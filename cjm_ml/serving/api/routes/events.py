"""Appending journey events to the event store."""

from __future__ import annotations

from fastapi import APIRouter

from cjm_ml.serving import service as use
from cjm_ml.serving.api.deps import PrincipalDep, ServiceDep
from cjm_ml.serving.schemas import AppendOut, EventsIn, refusals

router = APIRouter(
    prefix="/v1/events", tags=["events"], responses=refusals(400, 401, 403, 409, 413, 422)
)


@router.post("", response_model=AppendOut)
def append_events(body: EventsIn, service: ServiceDep, principal: PrincipalDep) -> AppendOut:
    """Append journey events to the store; sending an event again is a no-op."""
    return use.append_events(service, principal, body.events)
