"""Liveness and readiness: ``/healthz`` and ``/readyz`` (no key needed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from cjm_ml.serving.api.deps import ServiceDep
from cjm_ml.serving.schemas import HealthOut, NotReadyOut, ReadyOut, refusals

router = APIRouter(tags=["operations"], responses=refusals())


@router.get("/healthz", response_model=HealthOut)
def healthz() -> HealthOut:
    """The process is up."""
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": NotReadyOut, "description": "Some model is not loaded"}},
)
def readyz(service: ServiceDep) -> ReadyOut | JSONResponse:
    """Ready only when all three models are loaded."""
    current = service.models.current
    if current is None:
        not_ready = NotReadyOut(status="not ready", reason=service.models.last_error)
        return JSONResponse(not_ready.model_dump(), status_code=503)
    return ReadyOut(status="ready", models=len(current.models))
