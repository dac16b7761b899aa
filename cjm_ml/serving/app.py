"""The scoring API (FastAPI): events in, scores with drivers out, call lists, the CRM outbox.

``create_app(settings)`` wires the pieces at startup (the lifespan): the tenants file (API keys
per dealer group), the event store, the champions (registry or bundles), the outbox and its
background deliverer, and the scorer thread. Scoring by id (the CRM's call) goes to the
scorer, which scores the requests waiting together (``ScoreBatcher``); other CPU-bound or
blocking endpoints are plain ``def`` and run on the threadpool. Every refusal is a 4xx with a
``detail`` naming the field or item and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, cast

import numpy as np
import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader, APIKeyQuery
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cjm_ml.config import Settings
from cjm_ml.events import EventValidationError, validate_events
from cjm_ml.explain.drivers import DriverExplainer, InstanceExplanation
from cjm_ml.journey.report import build_report
from cjm_ml.params import Task
from cjm_ml.serving.models import ModelHolder, ModelSet, ModelsUnavailable
from cjm_ml.serving.outbox import Deliverer, Delivery, DeliveryStatus, Outbox, RetryPolicy
from cjm_ml.serving.schemas import (
    EARLIEST,
    ActionOut,
    AppendOut,
    CustomerScore,
    DriverOut,
    EventIn,
    EventsIn,
    InstanceScore,
    ProblemOut,
    ScoreIn,
    ScoreOut,
    TaskName,
    WhatIfOut,
    check_time,
    events_frame,
)
from cjm_ml.serving.scoring import ScoreBatcher, Scored, queue, score_events
from cjm_ml.serving.store import EventConflictError, SqliteEventStore
from cjm_ml.serving.tenants import (
    AccessDenied,
    CustomerAccess,
    Principal,
    TenantRegistry,
    load_tenants,
)

log = logging.getLogger(__name__)
api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="cjm.<key_id>.<secret>"
)
#: For a browser opening /journey: the key as ``?api_key=`` (never logged: the access log
#: records the path only).
api_key_query = APIKeyQuery(name="api_key", auto_error=False, description="Same key, for browsers")
_ERRORS: dict[int | str, dict[str, Any]] = {
    c: {"model": ProblemOut} for c in (401, 403, 404, 409, 413, 422, 503)
}
#: Request bodies larger than this are refused (413) before they are parsed.
MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ScoreJob:
    """A request to score customers by id, for the key that asked (checked in the batch)."""

    task: Task
    principal: Principal
    customer_ids: tuple[str, ...]
    as_of: pd.Timestamp | None


@dataclass
class Service:
    """What the endpoints share: settings, tenants, store, models, outbox, deliverer and the
    scorer (which scores concurrent by-id requests together)."""

    settings: Settings
    tenants: TenantRegistry
    store: SqliteEventStore
    models: ModelHolder
    outbox: Outbox
    deliverer: Deliverer
    explainers: dict[tuple[Task, int], DriverExplainer] = field(default_factory=dict)
    scorer: ScoreBatcher[ScoreJob, ScoreOut] = field(init=False)

    def __post_init__(self) -> None:
        self.scorer = ScoreBatcher(self.score_jobs)

    def close(self) -> None:
        """Stop the scorer and the deliverer, and close the outbox and the store."""
        self.scorer.close()
        self.deliverer.stop()
        self.deliverer.close()
        self.outbox.close()
        self.store.close()

    def ready_models(self) -> ModelSet:
        """The loaded champions, or 503 naming what is missing."""
        current = self.models.current
        if current is None:
            raise HTTPException(503, f"models not loaded: {self.models.last_error}")
        return current

    def explainer(self, models: ModelSet, task: Task) -> DriverExplainer:
        """The drivers engine for this task's loaded model (built once per model), quoting
        the group norms stored with the model."""
        model = models.models[task]
        key = (task, id(model))
        if key not in self.explainers:
            self.explainers[key] = DriverExplainer(model, model.metadata_.get("norms"), threads=1)
        return self.explainers[key]

    def score_jobs(self, jobs: Sequence[ScoreJob]) -> list[ScoreOut | HTTPException]:
        """Score a batch of by-id requests: one access check, and one store read, feature
        pass, model call and explanation pass per (task, dealer group, cutoff). Each job gets
        its response, or its refusal (403/404, or 503 without models). ``as_of=None``: the
        cutoff is now, the moment the batch is scored."""
        try:
            models = self.ready_models()
        except HTTPException as exc:
            return [exc] * len(jobs)
        now = pd.Timestamp.now(tz="UTC")
        holdings = self.store.customer_rooftops({c for j in jobs for c in j.customer_ids})
        out: dict[int, ScoreOut | HTTPException] = {}
        groups: dict[tuple[Task, str, pd.Timestamp], list[int]] = {}
        for i, job in enumerate(jobs):
            refused = _refusal(job.principal.check_customers(holdings, job.customer_ids))
            if refused is not None:
                out[i] = refused
            else:
                key = (job.task, job.principal.dealer_group_id, job.as_of or now)
                groups.setdefault(key, []).append(i)
        for (task, group, cutoff), members in groups.items():
            ids = list(dict.fromkeys(c for i in members for c in jobs[i].customer_ids))
            scored = score_events(models, task, self.store.customer_events(group, ids), cutoff)
            instances = _instance_scores(self, models, scored)
            for i in members:
                out[i] = _score_out(scored, instances, jobs[i].customer_ids)
        return [out[i] for i in range(len(jobs))]


def open_service(settings: Settings) -> Service:
    """Open the tenants, store, outbox and deliverer, and load the champions (a failed load
    leaves the service not ready, with the reason)."""
    tenants = load_tenants(settings.tenants_file)
    store = SqliteEventStore(settings.event_store_file)
    outbox = Outbox(settings.outbox_file)
    policy = RetryPolicy(
        max_attempts=settings.outbox_max_attempts,
        base_delay_s=settings.outbox_base_delay_s,
        max_delay_s=settings.outbox_max_delay_s,
    )
    deliverer = Deliverer(outbox, tenants.webhook_targets(), policy)
    holder = ModelHolder(settings.models_dir)
    with contextlib.suppress(ModelsUnavailable):  # /readyz says why; a reload can fix it
        holder.reload()
    return Service(settings, tenants, store, holder, outbox, deliverer)


def create_app(
    settings: Settings | None = None,
    *,
    start_deliverer: bool = True,
    on_shutdown: Callable[[], None] | None = None,
) -> FastAPI:
    """The API with everything it needs opened at startup and closed at shutdown (then
    ``on_shutdown`` runs: ``cjm serve`` stops its other workers there)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = open_service(settings)
        app.state.service = service
        # What startup loaded lives as long as the process: keep it out of the cyclic garbage
        # collector, whose full passes over it took ~100 ms each (a p99 spike under load).
        gc.collect()
        gc.freeze()
        if start_deliverer:
            service.deliverer.start(settings.outbox_poll_s)
        try:
            yield
        finally:
            service.close()
            if on_shutdown is not None:
                on_shutdown()

    app = FastAPI(
        title="cjm-ml scoring API",
        version="1",
        description="Risk, friction drivers and actions for leads, appointments and deliveries.",
        lifespan=lifespan,
    )
    _install_error_handlers(app)
    app.add_middleware(LimitsAndAccessLog)
    app.include_router(_routes())
    return app


# Dependencies are ``async def``: cheap, and FastAPI would run a plain ``def`` on the threadpool.
async def _service(request: Request) -> Service:
    return cast(Service, request.app.state.service)


async def _principal(
    request: Request,
    api_key: Annotated[str | None, Depends(api_key_header)],
    query_key: Annotated[str | None, Depends(api_key_query)],
) -> Principal:
    api_key = api_key or query_key
    principal = cast(Service, request.app.state.service).tenants.authenticate(api_key)
    if principal is None:
        raise HTTPException(
            401,
            "missing API key (X-API-Key header)" if not api_key else "invalid API key",
            headers={"WWW-Authenticate": "ApiKey"},
        )
    request.state.key_id = principal.key_id
    return principal


ServiceDep = Annotated[Service, Depends(_service)]
PrincipalDep = Annotated[Principal, Depends(_principal)]


def _routes() -> Any:
    from fastapi import APIRouter

    router = APIRouter(responses=_ERRORS)

    @router.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @router.get("/readyz", tags=["operations"])
    def readyz(service: ServiceDep) -> JSONResponse:
        """Ready only when all three models are loaded."""
        current = service.models.current
        if current is None:
            return JSONResponse(
                {"status": "not ready", "reason": service.models.last_error}, status_code=503
            )
        return JSONResponse({"status": "ready", "models": len(current.models)})

    @router.get("/v1/models", tags=["models"])
    def models(service: ServiceDep, principal: PrincipalDep) -> list[dict[str, Any]]:
        """The champions in use: name, version, source, test AUC and risk-band thresholds."""
        return service.ready_models().describe()

    @router.post("/v1/admin/reload-models", tags=["models"])
    def reload_models(
        service: ServiceDep, api_key: Annotated[str | None, Depends(api_key_header)]
    ) -> list[dict[str, Any]]:
        """Load the current champions and swap them in; requests in flight finish on the old
        set. Needs the operator key (CJM_ADMIN_KEY_HASH)."""
        expected = service.settings.admin_key_hash
        digest = "sha256:" + hashlib.sha256((api_key or "").encode()).hexdigest()
        if not api_key or not expected or not hmac.compare_digest(digest, expected):
            raise HTTPException(401, "the operator key is missing or wrong")
        try:
            return service.models.reload().describe()
        except ModelsUnavailable as exc:
            raise HTTPException(503, f"kept the previous models: {exc}") from exc

    @router.post("/v1/events", tags=["events"], response_model=AppendOut)
    def append_events(body: EventsIn, service: ServiceDep, principal: PrincipalDep) -> AppendOut:
        """Append journey events to the store; sending an event again is a no-op."""
        frame, _ = _checked_events(body.events, principal, ("body", "events"))
        try:
            result = service.store.append(frame, file="request")
        except EventConflictError as exc:
            detail = [
                {
                    "loc": ["body", "events", c.row - 1, "event_id"],
                    "msg": str(c),
                    "type": "event_id_conflict",
                }
                for c in exc.conflicts
            ]
            raise HTTPException(409, detail) from exc
        return AppendOut(inserted=result.inserted, duplicates=result.duplicates)

    @router.post("/v1/score/{task}", tags=["scoring"], response_model=ScoreOut)
    async def score(
        task: Annotated[TaskName, Path(description="What to predict.")],
        body: ScoreIn,
        service: ServiceDep,
        principal: PrincipalDep,
    ) -> ScoreOut:
        """Score customers given inline (their events) or by id (events from the store), with
        cutoff = now or ``as_of``: risk, band, drivers, action and what-if per open instance.
        Requests by id are scored together with the others waiting at that moment."""
        models = service.ready_models()
        as_of = None if body.as_of is None else pd.Timestamp(body.as_of).tz_convert("UTC")
        if all(c.events is None for c in body.customers):  # the CRM's usual call: by id
            ids = tuple(dict.fromkeys(c.customer_id for c in body.customers))
            job = ScoreJob(task, principal, ids, as_of)
            out = await asyncio.wrap_future(service.scorer.submit(job))
        else:
            out = await run_in_threadpool(
                _score_given, service, models, principal, task, body, as_of
            )
        if body.push:
            await run_in_threadpool(_push, service, principal, out)
        return out

    @router.get(
        "/v1/queues/{task}",
        tags=["scoring"],
        responses={200: {"content": {"text/csv": {}}}},
    )
    def call_list(
        task: Annotated[TaskName, Path(description="Which call list.")],
        service: ServiceDep,
        principal: PrincipalDep,
        rooftop_id: Annotated[str | None, Query(max_length=128)] = None,
        date_from: Annotated[
            datetime | None, Query(description="From this appointment/lead/delivery time.")
        ] = None,
        date_to: Annotated[datetime | None, Query(description="Before this time.")] = None,
        as_of: Annotated[datetime | None, Query(description="Cutoff; default now.")] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 100,
        format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
    ) -> Response:
        """Open instances ranked by risk, e.g. tomorrow's appointments by no-show risk
        (``date_from``/``date_to`` on the appointment time) or recent deliveries by
        defection risk; JSON or CSV (``format=csv``)."""
        models = service.ready_models()
        if rooftop_id is not None:
            _deny(lambda: principal.check_rooftops([rooftop_id]), ["query", "rooftop_id"])
        times = {"date_from": date_from, "date_to": date_to, "as_of": as_of}
        for name, value in times.items():
            if value is not None and value.tzinfo is None:
                raise HTTPException(
                    422, [_problem(["query", name], "give a timezone (e.g. Z or +00:00)")]
                )
            try:
                check_time(value)
            except ValueError as exc:
                raise HTTPException(422, [_problem(["query", name], str(exc))]) from exc
        now = pd.Timestamp(as_of or datetime.now(UTC)).tz_convert("UTC")
        scored = queue(
            models,
            service.store,
            principal,
            task,
            now,
            rooftop_id=rooftop_id,
            date_from=None if date_from is None else pd.Timestamp(date_from),
            date_to=None if date_to is None else pd.Timestamp(date_to),
            limit=limit,
        )
        instances = _instance_scores(service, models, scored)
        out = _score_out(scored, instances, scored.columns["customer_id"].tolist())
        rows = [
            {"customer_id": c.customer_id, **i.model_dump(mode="json")}
            for c in out.customers
            for i in c.instances
        ]
        rows.sort(key=lambda r: (-r["risk"], r["instance_id"]))
        if format == "csv":
            return Response(_csv(rows), media_type="text/csv")
        return JSONResponse(
            {
                "task": task,
                "model_name": out.model_name,
                "model_version": out.model_version,
                "cutoff": out.cutoff.isoformat(),
                "items": rows,
            }
        )

    @router.get("/journey", tags=["journey map"], response_class=HTMLResponse)
    def journey(
        service: ServiceDep,
        principal: PrincipalDep,
        rooftop_id: Annotated[str | None, Query(max_length=128)] = None,
    ) -> HTMLResponse:
        """The journey map (the page ``cjm map`` writes) of the key's rooftops, or of one
        rooftop, from the event store; friction hotspots from ``<models_dir>/hotspots.parquet``
        when the champions' roll-ups were exported there."""
        if rooftop_id is not None:
            _deny(lambda: principal.check_rooftops([rooftop_id]), ["query", "rooftop_id"])
        rooftops = sorted(principal.rooftops if rooftop_id is None else {rooftop_id})
        events = service.store.events_since(principal.dealer_group_id, EARLIEST, rooftops)
        if events.empty:
            raise HTTPException(404, [_problem(["query", "rooftop_id"], "no events stored")])
        path = service.settings.models_dir / "hotspots.parquet"
        hotspots = pd.read_parquet(path) if path.exists() else None
        if hotspots is not None:
            hotspots = hotspots[hotspots["rooftop_id"].isin(rooftops)]
        return HTMLResponse(build_report(events, hotspots=hotspots))

    @router.get("/v1/outbox", tags=["crm"], response_model=list[Delivery])
    def outbox(
        service: ServiceDep,
        principal: PrincipalDep,
        status: DeliveryStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        after_id: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    ) -> list[Delivery]:
        """The dealer group's CRM deliveries (parked ones show their last error)."""
        return service.outbox.deliveries(principal.dealer_group_id, status, limit, after_id)

    @router.post("/v1/outbox/requeue", tags=["crm"])
    def requeue(service: ServiceDep, principal: PrincipalDep) -> dict[str, int]:
        """Send the group's parked deliveries again (after fixing the CRM side)."""
        count = service.outbox.requeue(principal.dealer_group_id)
        service.deliverer.wake()
        return {"requeued": count}

    return router


def _problem(loc: Iterable[str | int], msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": kind}


def _deny(check: Callable[[], None], loc: list[str | int]) -> None:
    try:
        check()
    except AccessDenied as exc:
        raise HTTPException(403, [_problem(loc, d, "forbidden") for d in exc.details]) from exc


def _checked_events(
    events: list[EventIn], principal: Principal, loc: tuple[str | int, ...]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Request events checked against the event-model rules (422) and the key's scope (403):
    the raw table (for the store) and the typed one (for scoring)."""
    frame = events_frame(events, principal.dealer_group_id)
    typed, violations = validate_events(frame, "request")
    if violations:
        raise HTTPException(
            422,
            [_problem([*loc, (v.row or 1) - 1, v.column], v.message, v.rule) for v in violations],
        )
    _deny(lambda: principal.check_events(frame), list(loc))
    return frame, typed


def _score_given(
    service: Service,
    models: ModelSet,
    principal: Principal,
    task: Task,
    body: ScoreIn,
    as_of: pd.Timestamp | None,
) -> ScoreOut:
    """Score a request that gives some customers' events inline (checked: 422/403) and
    others by id (403/404 as in ``Service.score_jobs``)."""
    frames = []
    by_id = [c.customer_id for c in body.customers if c.events is None]
    if by_id:
        access = principal.check_customers(service.store.customer_rooftops(by_id), by_id)
        refused = _refusal(access)
        if refused is not None:
            raise refused
        frames.append(service.store.customer_events(principal.dealer_group_id, access.allowed))
    for i, customer in enumerate(body.customers):
        if customer.events is not None:
            loc = ("body", "customers", i, "events")
            frame, typed = _checked_events(customer.events, principal, loc)
            others = frame["customer_id"].astype(str) != customer.customer_id
            if others.any():
                row = int(np.flatnonzero(others.to_numpy())[0])
                raise HTTPException(
                    422, [_problem([*loc, row, "customer_id"], "not this customer's event")]
                )
            frames.append(typed)
    events = pd.concat(frames, ignore_index=True)
    scored = score_events(models, task, events, as_of or pd.Timestamp.now(tz="UTC"))
    customers = [c.customer_id for c in body.customers]
    return _score_out(scored, _instance_scores(service, models, scored), customers)


def _refusal(access: CustomerAccess) -> HTTPException | None:
    """403 when the key may not read some customers asked for by id (another group's or
    rooftop's), else 404 when some were never seen; None when all may be scored."""
    if access.forbidden:
        return HTTPException(
            403,
            [
                _problem(["body", "customers", c], "not a customer of this key's rooftops")
                for c in access.forbidden
            ],
        )
    if access.unknown:
        return HTTPException(
            404, [_problem(["body", "customers", c], "no events stored") for c in access.unknown]
        )
    return None


#: The columns of a scored instance that its response shows (``scheduled_ts``: no-shows only).
_SHOWN = ("customer_id", "instance_id", "rooftop_id", "anchor_ts", "scheduled_ts", "risk", "band")


def _instance_scores(
    service: Service, models: ModelSet, scored: Scored
) -> dict[str, list[InstanceScore]]:
    """Each customer's scored instances with their explanations (one explanation pass)."""
    per_customer: dict[str, list[InstanceScore]] = {}
    if not len(scored):
        return per_customer
    explanations = service.explainer(models, scored.task).explain_each(scored.columns)
    columns = scored.columns
    values = {name: columns[name].tolist() for name in _SHOWN if name in columns}
    for i, why in enumerate(explanations):
        row = {name: v[i] for name, v in values.items()}
        per_customer.setdefault(str(row["customer_id"]), []).append(_instance_score(row, why))
    return per_customer


def _score_out(
    scored: Scored, instances: dict[str, list[InstanceScore]], customers: Iterable[str]
) -> ScoreOut:
    """The response for these customers (each once, in order; none open: an empty list)."""
    return ScoreOut(
        task=scored.task,
        model_name=scored.model_name,
        model_version=scored.model_version,
        cutoff=scored.cutoff.to_pydatetime(),
        customers=[
            CustomerScore(customer_id=c, instances=instances.get(c, []))
            for c in dict.fromkeys(customers)
        ],
    )


def _instance_score(row: dict[str, Any], why: InstanceExplanation) -> InstanceScore:
    """One scored instance (its table row's values) with its drivers, action and what-ifs,
    as the API returns it."""
    action = why.action
    return InstanceScore(
        instance_id=str(row["instance_id"]),
        rooftop_id=str(row["rooftop_id"]),
        anchor_ts=row["anchor_ts"],
        scheduled_ts=row.get("scheduled_ts"),
        risk=round(float(row["risk"]), 4),
        band=row["band"],
        drivers_up=[_driver(d) for d in why.up],
        drivers_down=[_driver(d) for d in why.down],
        action=None
        if action is None
        else ActionOut(
            friction=action.friction,
            action=action.action,
            owner=action.owner,
            channel=action.channel,
            urgency=action.urgency,
        ),
        what_if=[
            WhatIfOut(
                friction=d.driver,
                label=d.label,
                risk=round(d.what_if_risk, 4),
                current_risk=round(why.risk, 4),
            )
            for d in why.up
            if d.what_if_risk is not None
        ],
    )


def _driver(d: Any) -> DriverOut:
    return DriverOut(
        sentence=d.sentence,
        friction=d.driver if d.kind == "friction" else None,
        kind=d.kind,
        stage=d.stage,
        touchpoint=d.touchpoint,
        share=round(d.share, 4),
        direction="raises" if d.direction == "up" else "lowers",
    )


def _push(service: Service, principal: Principal, out: ScoreOut) -> int:
    """Queue each customer's update for the CRM; the outbox skips unchanged ones. Returns how
    many were queued."""
    updates = [
        (
            principal.dealer_group_id,
            c.customer_id,
            out.task,
            {
                "model_name": out.model_name,
                "model_version": out.model_version,
                "scored_at": out.cutoff.isoformat(),
                "instances": [
                    {
                        "instance_id": i.instance_id,
                        "rooftop_id": i.rooftop_id,
                        "risk": round(i.risk, 3),
                        "band": i.band,
                        "drivers": [d.sentence for d in i.drivers_up],
                        "action": None if i.action is None else i.action.action,
                    }
                    for i in c.instances
                ],
            },
        )
        for c in out.customers
    ]
    results = service.outbox.enqueue_many(updates)
    service.deliverer.wake()
    return sum(r.created for r in results)


#: The call list's CSV columns (``format=csv``): one row per instance, the top driver only.
_CSV_COLUMNS = (
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


def _csv(rows: list[dict[str, Any]]) -> str:
    flat = [
        {
            **r,
            "top_driver": r["drivers_up"][0]["sentence"] if r["drivers_up"] else "",
            "action": r["action"]["action"] if r["action"] else "",
        }
        for r in rows
    ]
    return str(pd.DataFrame(flat, columns=list(_CSV_COLUMNS)).to_csv(index=False))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EventValidationError)
    async def _invalid_events(request: Request, exc: EventValidationError) -> JSONResponse:
        detail = [_problem(["body", v.column], v.message, v.rule) for v in exc.violations]
        return JSONResponse({"detail": detail}, status_code=422)


class LimitsAndAccessLog:
    """Pure ASGI middleware: refuses a body over ``MAX_BODY_BYTES`` (413) before it is read,
    and logs each request: method, path, status, time and key id (never the key, never the
    query string, which may carry it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            refusal = JSONResponse(
                {"detail": f"request body over {MAX_BODY_BYTES // (1024 * 1024)} MiB"},
                status_code=413,
            )
            await refusal(scope, receive, send)
            return
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_noting_status)
        log.info(
            "%s %s %d %.1f ms key=%s",
            scope["method"],
            scope["path"],
            status,
            1000 * (time.perf_counter() - started),
            scope.get("state", {}).get("key_id", "-"),
        )


def push_task(service: Service, task: Task, now: pd.Timestamp) -> dict[str, int]:
    """Batch write-back (``cjm push``): score every dealer group's open instances and queue
    the changed ones for its CRM. Returns instances scored and updates queued."""
    models = service.ready_models()
    scored_total = queued = 0
    for tenant in service.tenants.tenants:
        principal = Principal(tenant=tenant, key_id="batch", rooftops=frozenset(tenant.rooftops))
        scored = queue(models, service.store, principal, task, now, limit=10**9)
        instances = _instance_scores(service, models, scored)
        out = _score_out(scored, instances, scored.columns["customer_id"].tolist())
        queued += _push(service, principal, out)
        scored_total += len(scored)
    return {"scored": scored_total, "queued": queued}
