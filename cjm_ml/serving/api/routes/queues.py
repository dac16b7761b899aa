"""The call lists: open instances ranked by risk, as JSON or CSV."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Path, Query, Response

from cjm_ml.serving import service as use
from cjm_ml.serving.api.deps import PrincipalDep, ServiceDep
from cjm_ml.serving.api.routes.journey import run_heavy
from cjm_ml.serving.schemas import QueueItem, QueueOut, TaskName, When, refusals

router = APIRouter(prefix="/v1/queues", tags=["scoring"], responses=refusals(401, 403, 422, 503))

#: The call list's CSV columns (``format=csv``): one row per instance, the top driver only.
CSV_COLUMNS = (
    "customer_id",
    "instance_id",
    "rooftop_id",
    "anchor_ts",
    "scheduled_ts",
    "risk",
    "band",
    "top_driver",
    "action",
)


@router.get(
    "/{task}",
    response_model=QueueOut,
    responses={200: {"content": {"text/csv": {}}}},
)
async def call_list(
    task: Annotated[TaskName, Path(description="Which call list.")],
    service: ServiceDep,
    principal: PrincipalDep,
    rooftop_id: Annotated[str | None, Query(max_length=128)] = None,
    date_from: Annotated[
        When | None, Query(description="From this appointment/lead/delivery time.")
    ] = None,
    date_to: Annotated[When | None, Query(description="Before this time.")] = None,
    as_of: Annotated[When | None, Query(description="Cutoff; default now.")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 100,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> QueueOut | Response:
    """Open instances ranked by risk, e.g. tomorrow's appointments by no-show risk
    (``date_from``/``date_to`` on the appointment time) or recent deliveries by
    defection risk; JSON or CSV (``format=csv``). Built on the heavy-work thread, one call
    list or journey page at a time per process (503 with ``Retry-After`` when it stays busy).
    """

    def build() -> QueueOut | Response:
        out = use.call_list(
            service,
            principal,
            task,
            rooftop_id=rooftop_id,
            date_from=date_from,
            date_to=date_to,
            as_of=as_of,
            limit=limit,
        )
        if format == "csv":
            return Response(call_list_csv(out.items), media_type="text/csv")
        return out

    return await run_heavy(service, build)


def call_list_csv(items: list[QueueItem]) -> str:
    """The call list as CSV (``CSV_COLUMNS``): one row per instance, its top driver's
    sentence and its action ("" when none)."""
    rows: list[dict[str, Any]] = []
    for item in items:
        row = item.model_dump(mode="json")
        row["top_driver"] = row["drivers_up"][0]["sentence"] if row["drivers_up"] else ""
        row["action"] = row["action"]["action"] if row["action"] else ""
        rows.append(row)
    return str(pd.DataFrame(rows, columns=list(CSV_COLUMNS)).to_csv(index=False))
