"""Scoring customers by id or with their events inline (the CRM's call)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from cjm_ml.serving import service as use
from cjm_ml.serving.api.deps import PrincipalDep, ServiceDep
from cjm_ml.serving.schemas import ScoreIn, ScoreOut, TaskName, refusals

router = APIRouter(
    prefix="/v1/score", tags=["scoring"], responses=refusals(400, 401, 403, 404, 413, 422, 503)
)


@router.post("/{task}", response_model=ScoreOut)
async def score(
    task: Annotated[TaskName, Path(description="What to predict.")],
    body: ScoreIn,
    service: ServiceDep,
    principal: PrincipalDep,
) -> ScoreOut:
    """Score customers given inline (their events) or by id (events from the store), with
    cutoff = now or ``as_of``: risk, band, drivers, action and what-if per open instance at
    the key's rooftops. Requests by id are scored together with the others waiting at that
    moment. An id with no events in the key's group is a 404 (whatever other groups hold);
    one of the group held only at rooftops the key does not cover, a 403."""
    models = service.ready_models()
    as_of = None if body.as_of is None else pd.Timestamp(body.as_of).tz_convert("UTC")
    if all(c.events is None for c in body.customers):  # the CRM's usual call: by id
        ids = tuple(dict.fromkeys(c.customer_id for c in body.customers))
        job = use.ScoreJob(task=task, principal=principal, customer_ids=ids, as_of=as_of)
        out = await asyncio.wrap_future(service.submit(job))
    else:
        out = await run_in_threadpool(
            use.score_given, service, models, principal, task, body.customers, as_of
        )
    if body.push:
        await run_in_threadpool(use.push_scores, service, principal, out)
    return out
