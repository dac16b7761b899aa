"""The champions in use, and swapping in new ones (operator key)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from cjm_ml.serving import service as use
from cjm_ml.serving.api.deps import PrincipalDep, ServiceDep, require_operator
from cjm_ml.serving.schemas import ModelOut, ProblemOut, refusals

router = APIRouter(prefix="/v1", tags=["models"], responses=refusals(401, 503))


@router.get("/models", response_model=list[ModelOut])
def models(service: ServiceDep, principal: PrincipalDep) -> list[dict[str, object]]:
    """The champions in use: name, version, generation, source, test AUC and risk-band
    thresholds, and which version and generation each process of the service serves."""
    return use.describe_models(service)


@router.post(
    "/admin/reload-models",
    response_model=list[ModelOut],
    dependencies=[Depends(require_operator)],
    responses={
        409: {
            "model": ProblemOut,
            "description": "Some champion is damaged or unusable (detail: each task and why); "
            "the models served are kept.",
        },
        504: {
            "model": ProblemOut,
            "description": "Some process of the service did not switch to the new models in "
            "time (detail: each process and the generation it serves).",
        },
    },
)
def reload_models(service: ServiceDep) -> list[dict[str, object]]:
    """Load and validate the current champions and swap them in, in every process of the
    service; answers once each serves them (requests in flight finish on the old set). A
    damaged or unusable champion is a 409 naming the task and why, and the old set is kept
    (503 when there is none). Needs the operator key (CJM_ADMIN_KEY_HASH)."""
    return use.reload_models(service)
