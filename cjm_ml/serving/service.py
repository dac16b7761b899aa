"""The scoring service's use cases, free of the web framework: what each endpoint (and
``cjm push``) does, with the refusals it answers.

``Service`` holds what they share: settings, tenants, the event store, the champions, the CRM
outbox and its deliverer, and the scorer thread that scores concurrent by-id requests together
(``ScoreBatcher``). ``open_service(settings)`` opens them all. A refusal is a ``Refused``: the
HTTP status the API answers with and a ``detail`` naming the field or item and why.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from cjm_ml.config import Settings
from cjm_ml.events import validate_events
from cjm_ml.explain.drivers import Driver, DriverExplainer, InstanceExplanation
from cjm_ml.journey.report import build_report
from cjm_ml.params import Task
from cjm_ml.serving.models import ModelHolder, ModelSet, ModelsUnavailable
from cjm_ml.serving.outbox import Deliverer, Delivery, DeliveryStatus, Outbox, RetryPolicy
from cjm_ml.serving.schemas import (
    EARLIEST,
    ActionOut,
    AppendOut,
    CustomerIn,
    CustomerScore,
    DriverOut,
    EventIn,
    InstanceScore,
    QueueItem,
    QueueOut,
    ScoreOut,
    WhatIfOut,
    check_time,
    events_frame,
    problem,
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


class Refused(Exception):
    """A request the service refuses: ``status_code`` (the HTTP status the API answers with)
    and ``detail`` (a message, or ``ProblemDetail`` entries naming the field or item)."""

    def __init__(self, status_code: int, detail: str | list[dict[str, Any]]) -> None:
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail


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
        """The loaded champions; refuses (503, naming what is missing) when there are none."""
        current = self.models.current
        if current is None:
            raise Refused(503, f"models not loaded: {self.models.last_error}")
        return current

    def explainer(self, models: ModelSet, task: Task) -> DriverExplainer:
        """The drivers engine for this task's loaded model (built once per model), quoting
        the group norms and task parameters the model was trained with."""
        model = models.models[task]
        key = (task, id(model))
        if key not in self.explainers:
            self.explainers[key] = DriverExplainer(model, threads=1)
        return self.explainers[key]

    def score_jobs(self, jobs: Sequence[ScoreJob]) -> list[ScoreOut | Refused]:
        """Score a batch of by-id requests: one access check, and one store read, feature
        pass, model call and explanation pass per (task, dealer group, cutoff). Each job gets
        its response, or its refusal (403/404, or 503 without models). ``as_of=None``: the
        cutoff is now, the moment the batch is scored."""
        try:
            models = self.ready_models()
        except Refused as exc:
            return [exc] * len(jobs)
        now = pd.Timestamp.now(tz="UTC")
        holdings = self.store.customer_rooftops({c for j in jobs for c in j.customer_ids})
        out: dict[int, ScoreOut | Refused] = {}
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

    def submit(self, job: ScoreJob) -> Future[ScoreOut]:
        """Queue a by-id request for the scorer (scored with the others waiting then); its
        future response, or its refusal (``Refused``)."""
        return self.scorer.submit(job)


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
    return Service(
        settings=settings,
        tenants=tenants,
        store=store,
        models=holder,
        outbox=outbox,
        deliverer=deliverer,
    )


# ------------------------------------------------------------------------------ use cases
def reload_models(service: Service) -> list[dict[str, object]]:
    """Load the current champions and swap them in (requests in flight finish on the old
    set); their description. Refuses (503) when some cannot be loaded, keeping the old set."""
    try:
        return service.models.reload().describe()
    except ModelsUnavailable as exc:
        raise Refused(503, f"kept the previous models: {exc}") from exc


def append_events(service: Service, principal: Principal, events: list[EventIn]) -> AppendOut:
    """Append journey events to the store (sending an event again is a no-op): how many were
    new and how many already stored. Refuses events breaking the event model (422), outside
    the key's scope (403), or reusing a stored ``event_id`` with other content (409)."""
    frame, _ = _checked_events(events, principal, ("body", "events"))
    try:
        result = service.store.append(frame, file="request")
    except EventConflictError as exc:
        detail = [
            problem(["body", "events", c.row - 1, "event_id"], str(c), "event_id_conflict")
            for c in exc.conflicts
        ]
        raise Refused(409, detail) from exc
    return AppendOut(inserted=result.inserted, duplicates=result.duplicates)


def score_given(
    service: Service,
    models: ModelSet,
    principal: Principal,
    task: Task,
    customers: list[CustomerIn],
    as_of: pd.Timestamp | None,
) -> ScoreOut:
    """Score customers given with their events inline (checked: 422/403) and others by id
    (403/404 as in ``Service.score_jobs``), at ``as_of`` (default now)."""
    frames = []
    by_id = [c.customer_id for c in customers if c.events is None]
    if by_id:
        access = principal.check_customers(service.store.customer_rooftops(by_id), by_id)
        refused = _refusal(access)
        if refused is not None:
            raise refused
        frames.append(service.store.customer_events(principal.dealer_group_id, access.allowed))
    for i, customer in enumerate(customers):
        if customer.events is not None:
            loc = ("body", "customers", i, "events")
            frame, typed = _checked_events(customer.events, principal, loc)
            others = frame["customer_id"].astype(str) != customer.customer_id
            if others.any():
                row = int(np.flatnonzero(others.to_numpy())[0])
                raise Refused(
                    422, [problem([*loc, row, "customer_id"], "not this customer's event")]
                )
            frames.append(typed)
    events = pd.concat(frames, ignore_index=True)
    scored = score_events(models, task, events, as_of or pd.Timestamp.now(tz="UTC"))
    ids = [c.customer_id for c in customers]
    return _score_out(scored, _instance_scores(service, models, scored), ids)


def call_list(
    service: Service,
    principal: Principal,
    task: Task,
    *,
    rooftop_id: str | None = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    as_of: datetime | None = None,
    limit: int = 100,
) -> QueueOut:
    """The key's open instances ranked by risk (ties by instance id), at ``as_of`` (default
    now), optionally for one rooftop and a date range (``QUEUE_DATE``). Refuses without
    models (503), another rooftop (403), or naive or out-of-range times (422)."""
    models = service.ready_models()
    if rooftop_id is not None:
        _deny(lambda: principal.check_rooftops([rooftop_id]), ["query", "rooftop_id"])
    for name, value in {"date_from": date_from, "date_to": date_to, "as_of": as_of}.items():
        if value is not None and value.tzinfo is None:
            raise Refused(422, [problem(["query", name], "give a timezone (e.g. Z or +00:00)")])
        try:
            check_time(value)
        except ValueError as exc:
            raise Refused(422, [problem(["query", name], str(exc))]) from exc
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
    items = [
        QueueItem(customer_id=c.customer_id, **dict(i)) for c in out.customers for i in c.instances
    ]
    items.sort(key=lambda i: (-i.risk, i.instance_id))
    return QueueOut(
        task=task,
        model_name=out.model_name,
        model_version=out.model_version,
        cutoff=out.cutoff.isoformat(),
        items=items,
    )


def journey_page(service: Service, principal: Principal, rooftop_id: str | None = None) -> str:
    """The journey map (HTML) of the key's rooftops, or of one, from the event store, with
    the champions' friction hotspots (``<models_dir>/hotspots.parquet``) when exported.
    Refuses another rooftop (403) and rooftops with no events (404)."""
    if rooftop_id is not None:
        _deny(lambda: principal.check_rooftops([rooftop_id]), ["query", "rooftop_id"])
    rooftops = sorted(principal.rooftops if rooftop_id is None else {rooftop_id})
    events = service.store.events_since(principal.dealer_group_id, EARLIEST, rooftops)
    if events.empty:
        raise Refused(404, [problem(["query", "rooftop_id"], "no events stored")])
    path = service.settings.models_dir / "hotspots.parquet"
    hotspots = pd.read_parquet(path) if path.exists() else None
    if hotspots is not None:
        hotspots = hotspots[hotspots["rooftop_id"].isin(rooftops)]
    return build_report(events, hotspots=hotspots)


def deliveries(
    service: Service,
    principal: Principal,
    status: DeliveryStatus | None = None,
    limit: int = 100,
    after_id: int = 0,
) -> list[Delivery]:
    """The key's dealer group's CRM deliveries (parked ones show their last error), by id
    after ``after_id``."""
    return service.outbox.deliveries(principal.dealer_group_id, status, limit, after_id)


def requeue(service: Service, principal: Principal) -> int:
    """Send the key's dealer group's parked deliveries again; how many were queued."""
    count = service.outbox.requeue(principal.dealer_group_id)
    service.deliverer.wake()
    return count


def push_scores(service: Service, principal: Principal, out: ScoreOut) -> int:
    """Queue each scored customer's update for the CRM; the outbox skips unchanged ones.
    Returns how many were queued."""
    updates = [
        (principal.dealer_group_id, c.customer_id, out.task, _crm_update(out, c))
        for c in out.customers
    ]
    results = service.outbox.enqueue_many(updates)
    service.deliverer.wake()
    return sum(r.created for r in results)


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
        queued += push_scores(service, principal, out)
        scored_total += len(scored)
    return {"scored": scored_total, "queued": queued}


# ------------------------------------------------------------------------------ checks
def _deny(check: Callable[[], None], loc: list[str | int]) -> None:
    try:
        check()
    except AccessDenied as exc:
        raise Refused(403, [problem(loc, d, "forbidden") for d in exc.details]) from exc


def _checked_events(
    events: list[EventIn], principal: Principal, loc: tuple[str | int, ...]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Request events checked against the event-model rules (422) and the key's scope (403):
    the raw table (for the store) and the typed one (for scoring)."""
    frame = events_frame(events, principal.dealer_group_id)
    typed, violations = validate_events(frame, "request")
    if violations:
        raise Refused(
            422,
            [problem([*loc, (v.row or 1) - 1, v.column], v.message, v.rule) for v in violations],
        )
    _deny(lambda: principal.check_events(frame), list(loc))
    return frame, typed


def _refusal(access: CustomerAccess) -> Refused | None:
    """403 when the key may not read some customers asked for by id (another group's or
    rooftop's), else 404 when some were never seen; None when all may be scored."""
    if access.forbidden:
        return Refused(
            403,
            [
                problem(["body", "customers", c], "not a customer of this key's rooftops")
                for c in access.forbidden
            ],
        )
    if access.unknown:
        return Refused(
            404, [problem(["body", "customers", c], "no events stored") for c in access.unknown]
        )
    return None


# ------------------------------------------------------------------------------ responses
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


def _driver(d: Driver) -> DriverOut:
    return DriverOut(
        sentence=d.sentence,
        friction=d.driver if d.kind == "friction" else None,
        kind=d.kind,
        stage=d.stage,
        touchpoint=d.touchpoint,
        share=round(d.share, 4),
        direction="raises" if d.direction == "up" else "lowers",
    )


def _crm_update(out: ScoreOut, customer: CustomerScore) -> dict[str, Any]:
    """What the CRM gets for one customer: the model, when, and each instance's risk, band,
    driver sentences and action."""
    return {
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
            for i in customer.instances
        ],
    }
