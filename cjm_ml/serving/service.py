"""The scoring service's use cases, free of the web framework: what each endpoint (and
``cjm push``) does, with the refusals it answers.

``Service`` holds what they share: settings, tenants, the event store, the champions, the CRM
outbox and its deliverer, and the scorer thread that scores concurrent by-id requests together
(``ScoreBatcher``). ``open_service(settings)`` opens them all. A refusal is a ``Refused``: the
HTTP status the API answers with and a ``detail`` naming the field or item and why.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from cjm_ml.config import Settings
from cjm_ml.events import validate_events
from cjm_ml.explain.drivers import Driver, DriverExplainer, InstanceExplanation
from cjm_ml.journey.report import build_report
from cjm_ml.params import Task
from cjm_ml.serving.heavy import HeavyWork, PageCache
from cjm_ml.serving.models import ModelHolder, ModelSet, ModelsUnavailable, ReloadIncomplete
from cjm_ml.serving.outbox import (
    CrmUpdate,
    Deliverer,
    Delivery,
    DeliveryStatus,
    Outbox,
    RetryPolicy,
)
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
    #: drivers engines per loaded set (by ``id``; dropped when the set is freed), each per
    #: (task, dealer group): see ``explainer``
    explainers: dict[int, dict[tuple[Task, str], DriverExplainer]] = field(default_factory=dict)
    #: journey pages and call lists run here, one at a time, away from the scorer
    heavy: HeavyWork = field(default_factory=HeavyWork)
    #: built journey pages by (group, rooftops), with the store version they show
    pages: PageCache = field(default_factory=PageCache)
    scorer: ScoreBatcher[ScoreJob, ScoreOut] = field(init=False)

    def __post_init__(self) -> None:
        self.scorer = ScoreBatcher(self.score_jobs)

    def close(self) -> None:
        """Stop the scorer, the heavy work and the deliverer, and close the outbox and the
        store."""
        self.scorer.close()
        self.heavy.close()
        self.models.close()
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

    def explainer(self, models: ModelSet, task: Task, group: str) -> DriverExplainer:
        """The drivers engine for this task's model in ``models``, explaining dealer group
        ``group``'s instances: quoting that group's norms (or the pooled ones, "across
        groups", where the model has too little of its data) and the task parameters the model
        was trained with. Built once per set, task and group, and kept as long as the set is:
        a reload frees the old set's engines with it."""
        per_set = self.explainers.get(id(models))
        if per_set is None:
            per_set = self.explainers.setdefault(id(models), {})
            weakref.finalize(models, self.explainers.pop, id(models), None)
        key = (task, group)
        if key not in per_set:
            per_set[key] = DriverExplainer(models.models[task], group=group, threads=1)
        return per_set[key]

    def score_jobs(self, jobs: Sequence[ScoreJob]) -> list[ScoreOut | Refused]:
        """Score a batch of by-id requests: one access check, and one store read, feature
        pass, model call and explanation pass per (task, dealer group, cutoff). Each job gets
        its response, or its refusal (403/404, or 503 without models), with the instances at
        its key's rooftops only. ``as_of=None``: the cutoff is now, the moment the batch is
        scored."""
        try:
            models = self.ready_models()
        except Refused as exc:
            return [exc] * len(jobs)
        now = pd.Timestamp.now(tz="UTC")
        holdings = self.store.customer_rooftops({c for j in jobs for c in j.customer_ids})
        out: dict[int, ScoreOut | Refused] = {}
        groups: dict[tuple[Task, str, pd.Timestamp], list[int]] = {}
        for i, job in enumerate(jobs):
            refused = _refusal(_access(job.principal, holdings, job.customer_ids))
            if refused is not None:
                out[i] = refused
            else:
                key = (job.task, job.principal.dealer_group_id, job.as_of or now)
                groups.setdefault(key, []).append(i)
        for (task, group, cutoff), members in groups.items():
            ids = list(dict.fromkeys(c for i in members for c in jobs[i].customer_ids))
            scored = score_events(models, task, self.store.customer_events(group, ids), cutoff)
            seen = frozenset().union(*(jobs[i].principal.rooftops for i in members))
            scored = _at_rooftops(scored, seen)
            instances = _instance_scores(self, models, scored)
            for i in members:
                principal, customers = jobs[i].principal, jobs[i].customer_ids
                out[i] = _score_out(
                    scored, instances, customers, models.generation, principal.rooftops
                )
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
    holder = ModelHolder(settings.models_dir, floor=outbox.newest_generation())
    holder.start()  # not loaded: /readyz says why; a reload can fix it
    holder.watch()  # follow the generations the other processes publish
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
    """Load and validate the current champions, swap them in here and in every process of the
    service (requests in flight finish on the old set); their description, once every live
    process serves them. Refuses, keeping the set served, when some champion is damaged or
    unusable (409, each task and why; 503 when no set is served at all), and answers 504
    (naming each process and what it serves) when some process did not switch in time."""
    try:
        service.models.reload()
    except ModelsUnavailable as exc:
        current = service.models.current
        kept = "nothing served" if current is None else f"kept generation {current.generation}"
        detail = [
            problem(["models", task], f"{why} ({kept})", "model_unusable")
            for task, why in exc.problems.items()
        ]
        raise Refused(409 if current is not None else 503, detail) from exc
    except ReloadIncomplete as exc:
        detail = [
            problem(
                ["processes", p.pid],
                f"serves generation {p.generation}, not {exc.generation}"
                + (f": {p.error}" if p.error else " (did not switch in time)"),
                "reload_incomplete",
            )
            for p in exc.lagging
        ]
        raise Refused(504, detail) from exc
    return describe_models(service)


def describe_models(service: Service) -> list[dict[str, object]]:
    """The champions served here (``ModelSet.describe``), each with what every live process
    of the service serves of it (pid, generation, version). Refuses (503) without models."""
    processes = service.models.processes()
    out = service.ready_models().describe()
    for item in out:
        item["processes"] = [
            {"pid": p.pid, "generation": p.generation, "version": p.versions.get(str(item["task"]))}
            for p in processes
        ]
    return out


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
    (403/404 as in ``Service.score_jobs``), at ``as_of`` (default now); the instances at the
    key's rooftops only."""
    frames = []
    by_id = [c.customer_id for c in customers if c.events is None]
    if by_id:
        access = _access(principal, service.store.customer_rooftops(by_id), by_id)
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
    scored = _at_rooftops(scored, principal.rooftops)
    ids = [c.customer_id for c in customers]
    instances = _instance_scores(service, models, scored)
    return _score_out(scored, instances, ids, models.generation)


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


@dataclass(frozen=True)
class JourneyScope:
    """One journey page: a dealer group's rooftops, and the version of what it shows (the
    group's stored event count, which only grows, since the store only appends; and the
    hotspots file's size and time, or None)."""

    dealer_group_id: str
    rooftops: tuple[str, ...]
    version: tuple[int, tuple[int, int] | None]


def journey_scope(
    service: Service, principal: Principal, rooftop_id: str | None = None
) -> JourneyScope:
    """The journey page the key asks for: its rooftops, or one of them, at the store's
    current version. Refuses another rooftop (403)."""
    if rooftop_id is not None:
        _deny(lambda: principal.check_rooftops([rooftop_id]), ["query", "rooftop_id"])
    rooftops = tuple(sorted(principal.rooftops if rooftop_id is None else {rooftop_id}))
    path = service.settings.models_dir / "hotspots.parquet"
    try:
        stat = path.stat()
        hotspots: tuple[int, int] | None = (stat.st_size, stat.st_mtime_ns)
    except FileNotFoundError:
        hotspots = None
    count = service.store.count(principal.dealer_group_id)
    return JourneyScope(principal.dealer_group_id, rooftops, (count, hotspots))


def cached_journey_page(service: Service, scope: JourneyScope) -> bytes | None:
    """The page of ``scope`` if it was built at its version (and is still cached), else None."""
    return service.pages.get((scope.dealer_group_id, scope.rooftops), scope.version)


def journey_page(service: Service, scope: JourneyScope) -> bytes:
    """The journey map (HTML, UTF-8) of the scope's rooftops from the event store, with the
    champions' friction hotspots (``<models_dir>/hotspots.parquet``) when exported; built once
    per version and then served from the cache. Refuses rooftops with no events (404)."""
    cached = cached_journey_page(service, scope)
    if cached is not None:
        return cached
    # Read after the version was taken: the page shows at least what its version says.
    started = time.perf_counter()
    rooftops = list(scope.rooftops)
    events = service.store.events_since(scope.dealer_group_id, EARLIEST, rooftops)
    if events.empty:
        raise Refused(404, [problem(["query", "rooftop_id"], "no events stored")])
    path = service.settings.models_dir / "hotspots.parquet"
    hotspots = pd.read_parquet(path) if path.exists() else None
    if hotspots is not None:
        hotspots = hotspots[hotspots["rooftop_id"].isin(rooftops)]
    page = build_report(events, hotspots=hotspots).encode()
    log.info(
        "built the journey page of %d rooftop(s) of %s from %d events in %.1f s",
        len(rooftops),
        scope.dealer_group_id,
        len(events),
        time.perf_counter() - started,
    )
    service.pages.put((scope.dealer_group_id, scope.rooftops), scope.version, page)
    return page


def deliveries(
    service: Service,
    principal: Principal,
    status: DeliveryStatus | None = None,
    limit: int = 100,
    after_id: int = 0,
) -> list[Delivery]:
    """The key's CRM deliveries (parked ones show their last error), by id after
    ``after_id``: its dealer group's, or for a key of some rooftops, those rooftops' only."""
    return service.outbox.deliveries(
        principal.dealer_group_id, status, limit, after_id, _outbox_rooftops(principal)
    )


def requeue(service: Service, principal: Principal) -> int:
    """Send the key's parked deliveries again (its group's, or its rooftops'); how many were
    queued."""
    count = service.outbox.requeue(principal.dealer_group_id, rooftops=_outbox_rooftops(principal))
    service.deliverer.wake()
    return count


def push_scores(service: Service, principal: Principal, out: ScoreOut) -> dict[str, int]:
    """Queue each scored customer's update for the CRM, one per rooftop of its instances, and
    one with no instances for each of the key's rooftops where the CRM still shows some that
    have closed. The outbox skips unchanged updates and drops stale ones (scored by older
    models than an update already queued or sent for the customer and task). Returns how many
    were ``queued`` and how many were ``stale``."""
    group = principal.dealer_group_id
    ids = [c.customer_id for c in out.customers]
    shown = service.outbox.open_rooftops(group, out.task, ids, principal.rooftops)
    updates = []
    for customer in out.customers:
        per_rooftop: dict[str, list[InstanceScore]] = {
            r: [] for r in shown.get(customer.customer_id, ())
        }
        for instance in customer.instances:
            per_rooftop.setdefault(instance.rooftop_id, []).append(instance)
        updates += [
            CrmUpdate(
                dealer_group_id=group,
                customer_id=customer.customer_id,
                task=out.task,
                payload=_crm_update(out, instances),
                rooftop_id=rooftop,
                generation=out.model_generation,
            )
            for rooftop, instances in sorted(per_rooftop.items())
        ]
    results = service.outbox.enqueue_many(updates)
    service.deliverer.wake()
    return {"queued": sum(r.created for r in results), "stale": sum(r.stale for r in results)}


def push_task(service: Service, task: Task, now: pd.Timestamp) -> dict[str, int]:
    """Batch write-back (``cjm push``): score every dealer group's open instances and queue
    the changed ones for its CRM. Returns instances ``scored``, updates ``queued`` and
    ``stale`` ones dropped (older models than an update already queued)."""
    models = service.ready_models()
    counts = {"scored": 0, "queued": 0, "stale": 0}
    for tenant in service.tenants.tenants:
        principal = Principal(tenant=tenant, key_id="batch", rooftops=frozenset(tenant.rooftops))
        scored = queue(models, service.store, principal, task, now, limit=10**9)
        instances = _instance_scores(service, models, scored)
        customers = scored.columns["customer_id"].tolist()
        out = _score_out(scored, instances, customers, models.generation)
        pushed = push_scores(service, principal, out)
        counts["scored"] += len(scored)
        counts["queued"] += pushed["queued"]
        counts["stale"] += pushed["stale"]
    return counts


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


def _access(
    principal: Principal, holdings: Iterable[tuple[str, str, str]], customer_ids: Iterable[str]
) -> CustomerAccess:
    """``Principal.check_customers`` over the key's own dealer group's holdings only: a
    customer only another group holds is unknown to the key, like one held nowhere (the same
    404), so no key can tell which ids other groups hold."""
    own = [h for h in holdings if h[1] == principal.dealer_group_id]
    return principal.check_customers(own, customer_ids)


def _refusal(access: CustomerAccess) -> Refused | None:
    """403 when the key may not read some customers asked for by id (its group's, at none of
    its rooftops), else 404 when some have no events in its group (``_access``); None when all
    may be scored."""
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
    """Each customer's scored instances with their explanations (one explanation pass per
    dealer group in the batch)."""
    per_customer: dict[str, list[InstanceScore]] = {}
    if not len(scored):
        return per_customer
    explanations = _explanations(service, models, scored)
    columns = scored.columns
    values = {name: columns[name].tolist() for name in _SHOWN if name in columns}
    for i, why in enumerate(explanations):
        row = {name: v[i] for name, v in values.items()}
        per_customer.setdefault(str(row["customer_id"]), []).append(_instance_score(row, why))
    return per_customer


def _explanations(service: Service, models: ModelSet, scored: Scored) -> list[InstanceExplanation]:
    """Each scored instance's explanation, in row order, each by its dealer group's explainer
    (the sentences quote the group's own norms)."""
    groups = np.array([str(g) for g in scored.columns["dealer_group_id"].tolist()], dtype=object)
    unique = list(dict.fromkeys(groups.tolist()))
    if len(unique) == 1:
        return service.explainer(models, scored.task, unique[0]).explain_each(scored.columns)
    out: list[InstanceExplanation | None] = [None] * len(groups)
    for group in unique:
        at = np.flatnonzero(groups == group)
        part = {name: _take(col, at) for name, col in scored.columns.items()}
        explainer = service.explainer(models, scored.task, group)
        for i, why in zip(at.tolist(), explainer.explain_each(part), strict=True):
            out[i] = why
    return [why for why in out if why is not None]


def _take(column: Any, at: np.ndarray) -> Any:
    """The values of a column (numpy or pandas array, or list) at positions ``at``."""
    return column[at] if hasattr(column, "dtype") else np.asarray(column, dtype=object)[at]


def _score_out(
    scored: Scored,
    instances: dict[str, list[InstanceScore]],
    customers: Iterable[str],
    generation: int = 0,
    rooftops: frozenset[str] | None = None,
) -> ScoreOut:
    """The response for these customers (each once, in order; none open: an empty list),
    scored by models of ``generation``; with ``rooftops``, their instances there only."""
    return ScoreOut(
        task=scored.task,
        model_name=scored.model_name,
        model_version=scored.model_version,
        cutoff=scored.cutoff.to_pydatetime(),
        customers=[
            CustomerScore(
                customer_id=c,
                instances=[
                    i for i in instances.get(c, []) if rooftops is None or i.rooftop_id in rooftops
                ],
            )
            for c in dict.fromkeys(customers)
        ],
        model_generation=generation,
    )


def _at_rooftops(scored: Scored, rooftops: frozenset[str]) -> Scored:
    """The scored instances at these rooftops only (``scored`` itself when all are)."""
    keep = np.array([str(r) in rooftops for r in scored.columns["rooftop_id"]], dtype=bool)
    if keep.all():
        return scored
    at = np.flatnonzero(keep)
    return replace(scored, columns={name: _take(c, at) for name, c in scored.columns.items()})


def _outbox_rooftops(principal: Principal) -> frozenset[str] | None:
    """The rooftops whose CRM deliveries a key sees: None (all, whole-group updates too) for
    a key of its whole dealer group."""
    return None if principal.rooftops >= set(principal.tenant.rooftops) else principal.rooftops


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


def _crm_update(out: ScoreOut, instances: Iterable[InstanceScore]) -> dict[str, Any]:
    """What the CRM gets for one customer at one rooftop (the outbox adds whose, and the
    rooftop): the model, when, and each instance's risk, band, driver sentences and action."""
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
            for i in instances
        ],
    }
