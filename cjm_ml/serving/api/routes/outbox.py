"""The CRM outbox of the key's dealer group: list deliveries, send parked ones again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cjm_ml.serving import service as use
from cjm_ml.serving.api.deps import PrincipalDep, ServiceDep
from cjm_ml.serving.outbox import Delivery, DeliveryStatus
from cjm_ml.serving.schemas import ERROR_RESPONSES, RequeueOut

router = APIRouter(prefix="/v1/outbox", tags=["crm"], responses=ERROR_RESPONSES)


@router.get("", response_model=list[Delivery])
def outbox(
    service: ServiceDep,
    principal: PrincipalDep,
    status: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after_id: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> list[Delivery]:
    """The dealer group's CRM deliveries (parked ones show their last error)."""
    return use.deliveries(service, principal, status, limit, after_id)


@router.post("/requeue", response_model=RequeueOut)
def requeue(service: ServiceDep, principal: PrincipalDep) -> RequeueOut:
    """Send the group's parked deliveries again (after fixing the CRM side)."""
    return RequeueOut(requeued=use.requeue(service, principal))
