"""The champions in use, and swapping in new ones (operator key)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from cjm_ml.serving import service as use
from cjm_ml.serving.api.deps import PrincipalDep, ServiceDep, require_operator
from cjm_ml.serving.schemas import ERROR_RESPONSES, ModelOut

router = APIRouter(prefix="/v1", tags=["models"], responses=ERROR_RESPONSES)


@router.get("/models", response_model=list[ModelOut])
def models(service: ServiceDep, principal: PrincipalDep) -> list[dict[str, object]]:
    """The champions in use: name, version, source, test AUC and risk-band thresholds."""
    return service.ready_models().describe()


@router.post(
    "/admin/reload-models",
    response_model=list[ModelOut],
    dependencies=[Depends(require_operator)],
)
def reload_models(service: ServiceDep) -> list[dict[str, object]]:
    """Load the current champions and swap them in; requests in flight finish on the old
    set. Needs the operator key (CJM_ADMIN_KEY_HASH)."""
    return use.reload_models(service)
