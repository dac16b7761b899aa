"""The CRM outbox of the key (its dealer group's, or its rooftops'): list deliveries, send
parked ones again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cjm_ml.serving import service as use
from cjm_ml.serving.api.deps import PrincipalDep, ServiceDep
from cjm_ml.serving.outbox import Delivery, DeliveryStatus
from cjm_ml.serving.schemas import RequeueOut, refusals

router = APIRouter(prefix="/v1/outbox", tags=["crm"], responses=refusals(401))


@router.get("", response_model=list[Delivery], responses=refusals(422))
def outbox(
    service: ServiceDep,
    principal: PrincipalDep,
    status: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after_id: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> list[Delivery]:
    """The key's CRM deliveries, parked ones with their last error: its dealer group's, or
    for a key of some rooftops, the updates of those rooftops only."""
    return use.deliveries(service, principal, status, limit, after_id)


@router.post("/requeue", response_model=RequeueOut)
def requeue(service: ServiceDep, principal: PrincipalDep) -> RequeueOut:
    """Send the key's parked deliveries again (its group's, or its rooftops'), after fixing
    the CRM side."""
    return RequeueOut(requeued=use.requeue(service, principal))
