"""Journey analytics on the canonical events: where customers go, how fast, and where they stop.

Pure, vectorised functions (events in, DataFrame out, no I/O) behind the journey map: the stage
funnel and the time between stages, transitions between touchpoints, the most common paths,
the flow between stages, where journeys go quiet, rooftop KPIs against the group standard,
source attribution and the post-sale journey. Each takes the canonical event table or a
prebuilt ``Timeline`` (so a report indexes the events once). Outputs keep machine names (stage
and event-type keys, KPI keys) next to their catalogue labels; the report turns them into
dealer language.

Counting rules, in one place:

- A customer belongs to their **home rooftop**: the rooftop of their first touchpoint.
- A customer **reaches a stage** with their first event of that stage in the catalogue, with
  two exceptions: the contact-preference record and the dealer's broadcasts (service and
  maintenance reminders, recall notices) move nobody into a stage, and the events of a service
  booking (its confirmation, reschedule, show, no-show or cancellation, linked by
  ``appointment_id``) count in the service stage, not as a sales appointment.
- **Conversion** from one stage to the next: of the customers who reached a stage, the share
  with an event of the next stage at or after their first event of the stage. Customers who
  skip a stage (a walk-in without an appointment) enter the funnel again where they reappear.
- A journey has **gone quiet** when the customer's last touchpoint is more than
  ``JourneyRules.quiet_after_days`` before the end of the data.
- Lead, booking and delivery figures use the prediction tasks' instances
  (``features.instances.build_instances``), counting only those whose window has closed.
- The ``group`` row pools every customer, lead, booking or delivery of the group: it is the
  group standard rooftops are compared against.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cjm_ml.events import catalogue
from cjm_ml.features.instances import NoInstancesError, build_instances
from cjm_ml.features.timeline import NS_DAY, NS_HOUR, Timeline, to_ns
from cjm_ml.params import Task, TaskParams
from cjm_ml.rules import (
    GROUP,
    LEAD_TYPES,
    REPLIES,
    UNKNOWN_SOURCE,
    JourneyRules,
    KpiUnit,
    answered_live,
    first_response_minutes,
    responded_within_sla,
    service_bookings,
    worse_than_group,
)

#: Records that are not touchpoints at all (left out of paths, transitions and journey ends).
NOT_TOUCHPOINTS: tuple[str, ...] = ("contact_preferences_set",)
#: Messages the dealer sends to everyone on a schedule: touchpoints, but reaching no stage.
BROADCASTS: tuple[str, ...] = ("service_reminder", "maintenance_reminder", "recall_notice")
#: The dealer's own CRM bookkeeping: touchpoints (what the dealer did next), but the customer
#: reaches no stage by it (the CRM opens a task seconds after every lead).
INTERNAL_RECORDS: tuple[str, ...] = ("crm_task_created", "crm_task_completed")
#: Appointment events that carry their booking's ``appointment_id``.
BOOKING_EVENTS: tuple[str, ...] = (
    "appointment_confirmation_sent",
    "appointment_rescheduled",
    "appointment_cancelled",
    "appointment_showed",
    "appointment_no_show",
)
#: End nodes of the journey flow.
WENT_QUIET = "went_quiet"
STILL_ACTIVE = "still_active"
#: Journey-end segments: customers who never bought or serviced, and owners.
SHOPPER = "shopper"
OWNER = "owner"
#: Touchpoint paths are encoded as integers; this many steps always fit.
MAX_TOUCHPOINT_STEPS = 11
#: Default length of a touchpoint path (stage paths are whole journeys).
DEFAULT_TOUCHPOINT_STEPS = 6

_NO_TIME = np.iinfo(np.int64).max
_T = TypeVar("_T")
#: Results derived from a Timeline, kept while it lives: a report asks the same questions of
#: one Timeline several times (a Timeline is never changed after it is built).
_DERIVED: weakref.WeakKeyDictionary[Timeline, dict[str, Any]] = weakref.WeakKeyDictionary()

Events: TypeAlias = pd.DataFrame | Timeline
PathLevel = Literal["stage", "touchpoint"]


@dataclass(frozen=True)
class Kpi:
    """A rooftop KPI: key, dealer-language label, unit, which direction is better, meaning."""

    key: str
    label: str
    unit: KpiUnit
    higher_is_better: bool
    description: str


KPIS: tuple[Kpi, ...] = (
    Kpi(
        key="first_response_minutes",
        label="First response (median)",
        unit="minutes",
        higher_is_better=False,
        description="median minutes from a lead to the first call, text or email (an inbound "
        "call picked up live counts as 0); leads not answered within the lead window count "
        "against the SLA share instead",
    ),
    Kpi(
        key="responded_within_sla",
        label="Answered within SLA",
        unit="share",
        higher_is_better=True,
        description="share of leads answered within the group's response SLA",
    ),
    Kpi(
        key="lead_to_appointment",
        label="Lead to appointment",
        unit="share",
        higher_is_better=True,
        description="share of leads with a sales appointment set within the lead window",
    ),
    Kpi(
        key="appointment_show_rate",
        label="Appointment show rate",
        unit="share",
        higher_is_better=True,
        description="share of sales appointments with a known outcome where the customer showed",
    ),
    Kpi(
        key="lead_to_sale",
        label="Lead to sale",
        unit="share",
        higher_is_better=True,
        description="share of leads followed by a vehicle delivery within the sale window",
    ),
    Kpi(
        key="first_service_return",
        label="Back for first service",
        unit="share",
        higher_is_better=True,
        description="share of deliveries followed by a repair order at any rooftop of the group "
        "within the first-service window",
    ),
    Kpi(
        key="csi_score",
        label="CSI score",
        unit="score",
        higher_is_better=True,
        description="mean CSI survey score (0 worst to 10 best), sales and service surveys",
    ),
)

PostSaleWindow = Literal["delivery_day", "first_week", "service_window"]


@dataclass(frozen=True)
class PostSaleStep:
    """One step of the owner's journey after delivery, counted per delivery in a window.

    ``window``: ``delivery_day`` is the first 24 h from the delivery, ``first_week`` runs to the
    service-defection cutoff, ``service_window`` is the first-service window. ``label`` is None
    where the catalogue's label of the event type says it already.
    """

    key: str
    event_types: tuple[str, ...]
    window: PostSaleWindow
    label: str | None = None


POST_SALE_STEPS: tuple[PostSaleStep, ...] = (
    PostSaleStep("delivery_education", ("delivery_education",), "first_week"),
    PostSaleStep(
        "first_service_booked_at_delivery",
        ("service_appointment_set",),
        "delivery_day",
        "First service booked at delivery",
    ),
    PostSaleStep(
        "service_reminder", ("service_reminder", "maintenance_reminder"), "service_window"
    ),
    PostSaleStep("service_appointment_set", ("service_appointment_set",), "service_window"),
    PostSaleStep(
        "service_check_in",
        ("repair_order_opened",),
        "service_window",
        "Checked in for service (repair order opened)",
    ),
    PostSaleStep("mpi_sent", ("mpi_sent",), "service_window"),
    PostSaleStep("mpi_approved", ("mpi_approved",), "service_window"),
    PostSaleStep(
        "vehicle_picked_up",
        ("repair_order_closed",),
        "service_window",
        "Picked up after service (repair order closed)",
    ),
)


def post_sale_step_label(step: PostSaleStep) -> str:
    """The dealer-language label of a post-sale step (its own, or the catalogue's)."""
    return step.label or catalogue().event_type(step.event_types[0]).label


# --------------------------------------------------------------------------------------------
# Shared building blocks


def _memo(tl: Timeline, key: str, compute: Callable[[], _T]) -> _T:
    """``compute()``, once per Timeline and key."""
    derived = _DERIVED.setdefault(tl, {})
    if key not in derived:
        derived[key] = compute()
    return derived[key]


def _rooftop_codes(tl: Timeline, column: str = "rooftop_id") -> tuple[np.ndarray, list[str]]:
    """Per timeline position, the code of its rooftop (or group), and the ids by code, sorted."""
    codes, names = pd.factorize(tl.column(np.arange(len(tl)), column), sort=True)
    return np.asarray(codes, dtype=np.int64), [str(n) for n in names]


def _type_codes(*event_types: str) -> np.ndarray:
    """Timeline codes of event types (catalogue order)."""
    keys = catalogue().event_type_keys
    return np.array([keys.index(t) for t in event_types], dtype=np.int64)


def _end_ns(tl: Timeline) -> int:
    """The end of the data: the last event's time."""
    return int(tl.ts.max())


def _isin(values: pd.Series, ids: pd.Series) -> np.ndarray:
    """Boolean array: which ``values`` (strings, missing allowed) are among ``ids``."""
    found = pc.is_in(
        pa.array(values.astype("string"), type=pa.string()),
        value_set=pa.array(ids.astype("string").dropna(), type=pa.string()),
    )
    return np.asarray(pc.fill_null(found, False).to_numpy(zero_copy_only=False), dtype=bool)


def _service_bookings(tl: Timeline) -> pd.Series:
    """Appointment ids of service bookings, following reschedules of them to the new booking."""
    return _memo(tl, "service_bookings", lambda: _find_service_bookings(tl))


def _find_service_bookings(tl: Timeline) -> pd.Series:
    pos = tl.positions("service_appointment_set", "appointment_rescheduled")
    ids = tl.attribute(pos, "appointment_id")
    moved = tl.etype[pos] == tl.event_type_code("appointment_rescheduled")
    moved_from = tl.attribute(pos, "rescheduled_from").where(moved)
    service = service_bookings(ids, moved_from, ~moved)
    return ids[service].dropna().drop_duplicates().reset_index(drop=True)


def _event_stages(tl: Timeline, service_ids: pd.Series) -> np.ndarray:
    """Stage code of each timeline position; -1 where the event moves nobody into a stage."""
    cat = catalogue()
    stage_index = {s.key: i for i, s in enumerate(cat.stages)}
    by_type = np.array([stage_index[e.stage] for e in cat.event_types], dtype=np.int64)
    stage = by_type[tl.etype]
    not_a_step = _type_codes(*NOT_TOUCHPOINTS, *BROADCASTS, *INTERNAL_RECORDS)
    stage[np.isin(tl.etype, not_a_step)] = -1
    booking = tl.positions(*BOOKING_EVENTS)
    of_service = _isin(tl.attribute(booking, "appointment_id"), service_ids)
    stage[booking[of_service]] = stage_index[cat.stage_of("service_appointment_set").key]
    return stage


@dataclass(frozen=True)
class _Customers:
    """Per-customer facts shared by the customer-level analyses (arrays by customer code)."""

    home: np.ndarray  # home rooftop code, -1 for a customer with no touchpoint
    rooftops: np.ndarray  # rooftop id by code
    last_touch: np.ndarray  # timeline position of the last touchpoint, -1 if none


def _customers(tl: Timeline) -> _Customers:
    """Home rooftop and last touchpoint of every customer."""
    return _memo(tl, "customers", lambda: _find_customers(tl))


def _find_customers(tl: Timeline) -> _Customers:
    codes, names = _rooftop_codes(tl)
    touch = np.flatnonzero(~np.isin(tl.etype, _type_codes(*NOT_TOUCHPOINTS)))
    cust = tl.cust[touch]
    n = len(tl.customers)
    home = np.full(n, -1, dtype=np.int64)
    last = np.full(n, -1, dtype=np.int64)
    if len(touch):
        first = np.r_[True, cust[1:] != cust[:-1]]
        final = np.r_[cust[1:] != cust[:-1], True]
        home[cust[first]] = codes[touch[first]]
        last[cust[final]] = touch[final]
    return _Customers(home=home, rooftops=np.asarray(names, dtype=object), last_touch=last)


def _groups(people: _Customers, by_rooftop: bool) -> list[tuple[str, np.ndarray]]:
    """(rooftop_id, customer mask) per rooftop when asked, then the whole group."""
    out = []
    if by_rooftop:
        out = [(str(r), people.home == i) for i, r in enumerate(people.rooftops)]
    out.append((GROUP, people.home >= 0))
    return out


def _reached(tl: Timeline, stage: np.ndarray) -> np.ndarray:
    """First time (ns) each customer reached each stage (customers x stages; _NO_TIME: never)."""
    n_stages = len(catalogue().stages)
    pos = np.flatnonzero(stage >= 0)
    key = tl.cust[pos] * n_stages + stage[pos]
    uniq, first = np.unique(key, return_index=True)  # positions are time-sorted per customer
    out = np.full(len(tl.customers) * n_stages, _NO_TIME, dtype=np.int64)
    out[uniq] = tl.ts[pos[first]]
    return out.reshape(len(tl.customers), n_stages)


def _share(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


# --------------------------------------------------------------------------------------------
# Stage funnel, times, flows


@dataclass(frozen=True)
class _Funnel:
    people: _Customers
    first: np.ndarray  # customers x stages, first time reached
    converted: np.ndarray  # customers x stages, reached the stage after the previous one
    hours: np.ndarray  # customers x stages, hours from the previous stage (NaN if not)


def _funnel(tl: Timeline) -> _Funnel:
    """Stage arrivals and steps of every customer (computed once per Timeline)."""
    return _memo(tl, "funnel", lambda: _find_funnel(tl))


def _find_funnel(tl: Timeline) -> _Funnel:
    stage = _event_stages(tl, _service_bookings(tl))
    first = _reached(tl, stage)
    n_cust, n_stages = first.shape
    converted = np.zeros((n_cust, n_stages), dtype=bool)
    hours = np.full((n_cust, n_stages), np.nan)
    end = np.int64(_end_ns(tl) + 1)
    for k in range(1, n_stages):  # one vectorised pass per stage, never per customer
        cust = np.flatnonzero(first[:, k - 1] != _NO_TIME)
        start = first[cust, k - 1]
        window = tl.window(cust, start, np.full(len(cust), end))
        nxt = Timeline.first(np.flatnonzero(stage == k), window)
        ok = nxt >= 0
        converted[cust[ok], k] = True
        hours[cust[ok], k] = (tl.ts[nxt[ok]] - start[ok]) / NS_HOUR
    return _Funnel(people=_customers(tl), first=first, converted=converted, hours=hours)


def stage_funnel(events: Events, by_rooftop: bool = True) -> pd.DataFrame:
    """Customers reaching each journey stage, per home rooftop (if asked) and for the group.

    One row per rooftop and stage, in journey order: ``customers`` who reached the stage,
    ``from_previous`` (reached the previous stage and this one at or after it), ``conversion``
    (``from_previous`` over the previous stage's customers), ``drop_off`` (customers of the
    previous stage who never reached this one after it) and ``drop_off_rate``. The first stage
    has no previous one (NaN). Rooftops in id order, then ``group``.
    """
    f = _funnel(Timeline.of(events))
    stages = catalogue().stages
    reached = f.first != _NO_TIME
    rows = []
    for rooftop, mask in _groups(f.people, by_rooftop):
        counts = reached[mask].sum(axis=0)
        conv = f.converted[mask].sum(axis=0)
        for k, s in enumerate(stages):
            prev = int(counts[k - 1]) if k else 0
            rows.append(
                {
                    "rooftop_id": rooftop,
                    "stage": s.key,
                    "stage_label": s.label,
                    "stage_order": k,
                    "customers": int(counts[k]),
                    "from_previous": int(conv[k]) if k else pd.NA,
                    "conversion": _share(conv[k], prev) if k else float("nan"),
                    "drop_off": prev - int(conv[k]) if k else pd.NA,
                    "drop_off_rate": 1 - _share(conv[k], prev) if k else float("nan"),
                }
            )
    out = pd.DataFrame(rows)
    for c in ("from_previous", "drop_off"):
        out[c] = out[c].astype("Int64")
    return out


def stage_times(events: Events, by_rooftop: bool = True) -> pd.DataFrame:
    """Time from reaching one stage to reaching the next, per home rooftop and for the group.

    One row per rooftop and step (``from_stage`` -> ``to_stage``, consecutive in journey
    order): ``customers`` who made the step, ``median_hours`` and ``p90_hours`` (linear
    interpolation; NaN when nobody made it). Time runs from the first event of ``from_stage``
    to the first event of ``to_stage`` at or after it.
    """
    f = _funnel(Timeline.of(events))
    stages = catalogue().stages
    rows = []
    for rooftop, mask in _groups(f.people, by_rooftop):
        for k in range(1, len(stages)):
            h = f.hours[mask & f.converted[:, k], k]
            q = np.quantile(h, [0.5, 0.9]) if len(h) else np.array([np.nan, np.nan])
            rows.append(
                {
                    "rooftop_id": rooftop,
                    "from_stage": stages[k - 1].key,
                    "to_stage": stages[k].key,
                    "from_label": stages[k - 1].label,
                    "to_label": stages[k].label,
                    "customers": len(h),
                    "median_hours": float(q[0]),
                    "p90_hours": float(q[1]),
                }
            )
    return pd.DataFrame(rows)


def journey_flows(
    events: Events, rules: JourneyRules | None = None, leave_out_stages: Sequence[str] = ()
) -> pd.DataFrame:
    """Customers flowing between the stages they reached, for a Sankey of the group.

    Each customer's stages are taken in journey order (the catalogue's), and the flow runs from
    each stage reached to the next one reached, then from the last one to ``went_quiet`` or
    ``still_active`` (their last touchpoint within ``quiet_after_days`` of the data's end).
    Stages in ``leave_out_stages`` are skipped (the flow runs around them). Columns:
    ``source``, ``target`` (stage keys or the end nodes), ``customers``; sorted by source and
    target in journey order. Refuses unknown stages (``ValueError``).
    """
    rules = rules or JourneyRules()
    stage_keys = list(catalogue().stage_keys)
    unknown = [s for s in leave_out_stages if s not in stage_keys]
    if unknown:
        raise ValueError(f"unknown stage(s) to leave out: {', '.join(unknown)}")
    tl = Timeline.of(events)
    f = _funnel(tl)
    keys = [*stage_keys, WENT_QUIET, STILL_ACTIVE]
    reached = f.first != _NO_TIME
    reached[:, [stage_keys.index(s) for s in leave_out_stages]] = False
    cust, stage = np.nonzero(reached)  # row-major: by customer, then journey order
    same = cust[1:] == cust[:-1]
    src = [stage[:-1][same]]
    dst = [stage[1:][same]]
    final = np.r_[~same, True] if len(cust) else np.zeros(0, dtype=bool)
    last = f.people.last_touch[cust[final]]
    quiet = tl.ts[last] < _end_ns(tl) - int(rules.quiet_after_days * NS_DAY)
    src.append(stage[final])
    dst.append(np.where(quiet, keys.index(WENT_QUIET), keys.index(STILL_ACTIVE)))
    pair = np.concatenate(src) * len(keys) + np.concatenate(dst)
    uniq, counts = np.unique(pair, return_counts=True)
    return pd.DataFrame(
        {
            "source": [keys[i] for i in uniq // len(keys)],
            "target": [keys[i] for i in uniq % len(keys)],
            "customers": counts.astype(np.int64),
        }
    )


# --------------------------------------------------------------------------------------------
# Touchpoints: transitions, paths, journey ends


def _touchpoints(tl: Timeline, collapse_repeats: bool, leave_out: Sequence[str] = ()) -> np.ndarray:
    """Positions of touchpoints; with ``collapse_repeats`` a run of one type counts once."""
    pos = np.flatnonzero(~np.isin(tl.etype, _type_codes(*NOT_TOUCHPOINTS, *leave_out)))
    if collapse_repeats and len(pos):
        cust, et = tl.cust[pos], tl.etype[pos]
        repeat = np.r_[False, (cust[1:] == cust[:-1]) & (et[1:] == et[:-1])]
        pos = pos[~repeat]
    return pos


def transitions(
    events: Events, collapse_repeats: bool = True, leave_out: Sequence[str] = ()
) -> pd.DataFrame:
    """What follows each touchpoint: counts and probabilities between consecutive touchpoints.

    Each customer's touchpoints in time order (the contact-preference record left out, and the
    event types in ``leave_out``, e.g. ``INTERNAL_RECORDS`` to see the next thing the customer
    experiences); with ``collapse_repeats`` a run of the same touchpoint (five VDP views in a
    row) counts once. Refuses unknown event types in ``leave_out`` (``ValueError``).
    Columns: ``from_event_type``, ``to_event_type``, their catalogue labels and stages,
    ``count`` and ``probability`` (``count`` over all transitions out of ``from_event_type``).
    Sorted by ``from_event_type`` in catalogue order, then most frequent first.
    """
    tl = Timeline.of(events)
    cat = catalogue()
    unknown = [t for t in leave_out if t not in cat.event_type_keys]
    if unknown:
        raise ValueError(f"unknown event type(s) to leave out: {', '.join(unknown)}")
    pos = _touchpoints(tl, collapse_repeats, leave_out)
    cust, et = tl.cust[pos], tl.etype[pos]
    same = cust[1:] == cust[:-1]
    n_types = len(cat.event_types)
    uniq, counts = np.unique(et[:-1][same] * n_types + et[1:][same], return_counts=True)
    frm, to = uniq // n_types, uniq % n_types
    out = pd.DataFrame(
        {
            "from_event_type": [cat.event_types[i].key for i in frm],
            "to_event_type": [cat.event_types[i].key for i in to],
            "from_label": [cat.event_types[i].label for i in frm],
            "to_label": [cat.event_types[i].label for i in to],
            "from_stage": [cat.event_types[i].stage for i in frm],
            "to_stage": [cat.event_types[i].stage for i in to],
            "count": counts.astype(np.int64),
            "_from": frm,
            "_to": to,
        }
    )
    out["probability"] = out["count"] / out.groupby("_from")["count"].transform("sum")
    out = out.sort_values(["_from", "count", "_to"], ascending=[True, False, True])
    return out.drop(columns=["_from", "_to"]).reset_index(drop=True)


def top_paths(
    events: Events, n: int = 10, level: PathLevel = "stage", max_steps: int | None = None
) -> pd.DataFrame:
    """The most common journey paths: the order in which customers first reached each stage
    (``level="stage"``) or first used each touchpoint (``level="touchpoint"``).

    A path keeps each stage or touchpoint once, at its first occurrence, cut to ``max_steps``
    (stage paths default to the whole journey, touchpoint paths to
    ``DEFAULT_TOUCHPOINT_STEPS``). Columns: ``rank``, ``path`` (tuple of keys), ``path_label``
    (catalogue labels joined by arrows), ``steps``, ``customers`` and ``share`` of the
    customers with a path. Ties are broken by the label. Refuses ``n < 1`` or a touchpoint
    path longer than ``MAX_TOUCHPOINT_STEPS``.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    tl = Timeline.of(events)
    units = _path_units(tl, level, max_steps)
    base = len(units.keys) + 1
    paths, counts = _path_codes(tl, units.unit, base, units.steps)
    table = pd.DataFrame({"code": paths, "customers": counts.astype(np.int64)})
    table["path"] = [tuple(units.keys[u] for u in _digits(int(c), base)) for c in table["code"]]
    label = dict(zip(units.keys, units.labels, strict=True))
    table["path_label"] = [" → ".join(label[k] for k in p) for p in table["path"]]
    table = table.sort_values(["customers", "path_label"], ascending=[False, True]).head(n)
    table["steps"] = table["path"].map(len)
    table["share"] = table["customers"] / counts.sum()
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table[["rank", "path", "path_label", "steps", "customers", "share"]].reset_index(
        drop=True
    )


@dataclass(frozen=True)
class _PathUnits:
    """What a path is made of: the unit code of each timeline position (-1: none), the units'
    keys and labels by code, and how many steps a path keeps."""

    unit: np.ndarray
    keys: list[str]
    labels: list[str]
    steps: int


def _path_units(tl: Timeline, level: PathLevel, max_steps: int | None) -> _PathUnits:
    """Stages or touchpoints as path units; refuses an unknown level or too many steps."""
    cat = catalogue()
    if level == "stage":
        keys = list(cat.stage_keys)
        unit = _event_stages(tl, _service_bookings(tl))
        return _PathUnits(unit, keys, [s.label for s in cat.stages], max_steps or len(keys))
    if level != "touchpoint":
        raise ValueError(f"unknown path level {level!r}; expected 'stage' or 'touchpoint'")
    steps = max_steps or DEFAULT_TOUCHPOINT_STEPS
    if steps > MAX_TOUCHPOINT_STEPS:
        raise ValueError(f"touchpoint paths hold at most {MAX_TOUCHPOINT_STEPS} steps")
    unit = tl.etype.copy()
    unit[np.isin(unit, _type_codes(*NOT_TOUCHPOINTS))] = -1
    labels = [e.label for e in cat.event_types]
    return _PathUnits(unit, list(cat.event_type_keys), labels, steps)


def _path_codes(
    tl: Timeline, unit: np.ndarray, base: int, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's path as one integer (unit + 1 as digits in ``base``, first step lowest),
    over the first occurrence of each unit, cut to ``steps``: the distinct codes and counts."""
    pos = np.flatnonzero(unit >= 0)
    _, first = np.unique(tl.cust[pos] * base + unit[pos], return_index=True)
    pos = np.sort(pos[first])  # first occurrence of each unit, back in time order
    cust = tl.cust[pos]
    start = np.r_[True, cust[1:] != cust[:-1]]
    step = np.arange(len(pos)) - np.maximum.accumulate(np.where(start, np.arange(len(pos)), 0))
    keep = step < steps
    digits = (unit[pos][keep] + 1) * (base ** step[keep].astype(np.int64))
    code = np.add.reduceat(digits, np.flatnonzero(start[keep])) if len(digits) else digits
    return np.unique(code, return_counts=True)


def _digits(code: int, base: int) -> list[int]:
    """The unit codes of a path code, first step first."""
    out = []
    while code:
        out.append(int(code % base) - 1)
        code //= base
    return out


def _group_last(df: pd.DataFrame, by: list[str], ascending: list[bool]) -> pd.DataFrame:
    """``df`` sorted by ``rooftop_id`` then ``by``, with the group's rows after the rooftops'."""
    order = df.assign(_group_last=df["rooftop_id"] == GROUP).sort_values(
        ["_group_last", "rooftop_id", *by], ascending=[True, True, *ascending]
    )
    return order.drop(columns="_group_last")


def journey_ends(
    events: Events, rules: JourneyRules | None = None, by_rooftop: bool = False
) -> pd.DataFrame:
    """Where journeys go quiet: the last touchpoint of customers who have gone quiet.

    A customer has gone quiet when their last touchpoint is more than ``quiet_after_days``
    before the end of the data. ``segment`` is ``owner`` for customers with a delivery or a
    repair order, else ``shopper``. Columns: ``rooftop_id`` (home rooftop, or ``group``),
    ``segment``, ``event_type``, ``label``, ``stage``, ``customers`` and ``share`` of the
    quiet customers of that rooftop and segment; most frequent first.
    """
    rules = rules or JourneyRules()
    tl = Timeline.of(events)
    cat = catalogue()
    people = _customers(tl)
    owner = np.zeros(len(tl.customers), dtype=bool)
    owner[tl.cust[tl.positions("vehicle_delivery", "repair_order_opened")]] = True
    cutoff = _end_ns(tl) - int(rules.quiet_after_days * NS_DAY)
    last = people.last_touch
    quiet = (last >= 0) & (np.where(last >= 0, tl.ts[np.maximum(last, 0)], _NO_TIME) < cutoff)
    frames = []
    for rooftop, mask in _groups(people, by_rooftop):
        sel = quiet & mask
        frames.append(
            pd.DataFrame(
                {
                    "rooftop_id": rooftop,
                    "segment": np.where(owner[sel], OWNER, SHOPPER),
                    "code": tl.etype[last[sel]],
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    out = df.groupby(["rooftop_id", "segment", "code"], sort=False).size().rename("customers")
    out = out.reset_index()
    out["share"] = out["customers"] / out.groupby(["rooftop_id", "segment"])["customers"].transform(
        "sum"
    )
    out["event_type"] = [cat.event_types[i].key for i in out["code"]]
    out["label"] = [cat.event_types[i].label for i in out["code"]]
    out["stage"] = [cat.event_types[i].stage for i in out["code"]]
    out = _group_last(out, ["segment", "customers", "code"], [True, False, True])
    cols = ["rooftop_id", "segment", "event_type", "label", "stage", "customers", "share"]
    return out[cols].astype({"customers": np.int64}).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Leads, bookings and deliveries: KPIs and attribution


def _instances(tl: Timeline, task: Task, params: TaskParams) -> pd.DataFrame | None:
    """The task's instances whose outcome is known, or None when the events hold none."""
    return _memo(
        tl, f"instances:{task}:{params.model_dump_json()}", lambda: _known(tl, task, params)
    )


def _known(tl: Timeline, task: Task, params: TaskParams) -> pd.DataFrame | None:
    try:
        inst = build_instances(tl, task, params)
    except NoInstancesError:
        return None
    return inst[inst["label"].notna()].reset_index(drop=True)


def _returned(deliveries: pd.DataFrame | None) -> pd.Series:
    """1.0 where a delivery (by event id) was followed by a first service, 0.0 where not."""
    if deliveries is None:
        return pd.Series(dtype=float)
    return pd.Series(
        1.0 - deliveries["label"].astype(float).to_numpy(),
        index=deliveries["instance_id"].astype("string"),
    )


_LEAD_COLUMNS = (
    "rooftop_id",
    "marketing_source",
    "response_minutes",
    "within_sla",
    "appointment",
    "sale_window_closed",
    "show",
    "sale",
    "first_service",
)


def _leads(
    tl: Timeline,
    params: TaskParams,
    rules: JourneyRules,
    service_ids: pd.Series,
    returned: pd.Series,
) -> pd.DataFrame:
    """One row per lead whose lead window has closed, with what followed it.

    ``response_minutes`` (NaN: no reply in the lead window), ``within_sla``, ``appointment``
    (a sales appointment set in the lead window); for leads whose sale window has also closed
    (``sale_window_closed``): ``show`` (an appointment and a sales show in the sale window),
    ``sale`` (a delivery in the sale window) and ``first_service`` (that delivery's return for
    service; NaN while its window is open).
    """
    leads = _instances(tl, "lead_leakage", params)
    if leads is None or leads.empty:
        return pd.DataFrame(columns=list(_LEAD_COLUMNS))
    cust = tl.customer_codes(leads["customer_id"])
    lead = to_ns(leads["anchor_ts"])
    minutes, within_sla = _first_responses(tl, leads, cust, lead, params)
    followed = _followed(tl, cust, lead, params, rules, service_ids, returned)
    closed = lead + int(rules.sale_window_days * NS_DAY) <= _end_ns(tl)
    source = leads["marketing_source"].astype("string").fillna(UNKNOWN_SOURCE)
    return pd.DataFrame(
        {
            "rooftop_id": leads["rooftop_id"].astype("string").to_numpy(),
            "marketing_source": source.to_numpy(),
            "response_minutes": minutes,
            "within_sla": within_sla.astype(float),
            "appointment": followed["appointment"].astype(float),
            "sale_window_closed": closed,
            **{k: np.where(closed, followed[k], np.nan) for k in ("show", "sale", "first_service")},
        }
    )


def _first_responses(
    tl: Timeline, leads: pd.DataFrame, cust: np.ndarray, lead: np.ndarray, params: TaskParams
) -> tuple[np.ndarray, np.ndarray]:
    """Minutes to each lead's first reply in the lead window (NaN: none; ``rules``' first
    reply, a live call counting as 0) and whether it came within the response SLA."""
    lead_window = int(params.lead_leakage.window_days * NS_DAY)
    since = tl.window(cust, lead, lead + lead_window)
    lead_pos = Timeline.first(tl.positions(*LEAD_TYPES), since)
    live = answered_live(leads["lead_type"], tl.value_at(lead_pos))
    reply = Timeline.first(tl.positions(*REPLIES), since)
    minutes = first_response_minutes(lead, tl.ts_at(reply), live)
    within = responded_within_sla(minutes, live | (reply >= 0), params.response_sla_minutes)
    return minutes, within


def _followed(
    tl: Timeline,
    cust: np.ndarray,
    lead: np.ndarray,
    params: TaskParams,
    rules: JourneyRules,
    service_ids: pd.Series,
    returned: pd.Series,
) -> dict[str, np.ndarray]:
    """What followed each lead: ``appointment`` (bool, in the lead window), and in the sale
    window ``show`` and ``sale`` (bool) and ``first_service`` (1.0/0.0; NaN: no sale, or its
    first-service window still open)."""
    after = tl.window(cust, lead + 1, lead + int(params.lead_leakage.window_days * NS_DAY) + 1)
    appointment = Timeline.count(tl.positions("appointment_set"), after) > 0
    sale_window = tl.window(cust, lead + 1, lead + int(rules.sale_window_days * NS_DAY) + 1)
    showed = tl.positions("appointment_showed")
    sales_show = showed[~_isin(tl.attribute(showed, "appointment_id"), service_ids)]
    delivery = Timeline.first(tl.positions("vehicle_delivery"), sale_window)
    sale = delivery >= 0
    delivery_id = tl.column(np.maximum(delivery, 0), "event_id").astype("string")
    return {
        "appointment": appointment,
        "show": appointment & (Timeline.count(sales_show, sale_window) > 0),
        "sale": sale,
        "first_service": np.where(
            sale, returned.reindex(delivery_id).to_numpy(dtype=float), np.nan
        ),
    }


def _kpi_cases(tl: Timeline, params: TaskParams, rules: JourneyRules) -> dict[str, pd.DataFrame]:
    """Per KPI, one row per case (lead, booking, delivery, survey): ``rooftop_id`` and ``x``."""
    service_ids = _service_bookings(tl)
    deliveries = _instances(tl, "service_defection", params)
    leads = _leads(tl, params, rules, service_ids, _returned(deliveries))
    cases = {
        "first_response_minutes": leads[["rooftop_id", "response_minutes"]],
        "responded_within_sla": leads[["rooftop_id", "within_sla"]],
        "lead_to_appointment": leads[["rooftop_id", "appointment"]],
        "lead_to_sale": leads[["rooftop_id", "sale"]],
    }
    bookings = _instances(tl, "no_show", params)
    if bookings is not None:
        cases["appointment_show_rate"] = _show_cases(tl, bookings, service_ids)
    if deliveries is not None:
        cases["first_service_return"] = pd.DataFrame(
            {"rooftop_id": deliveries["rooftop_id"], "x": 1.0 - deliveries["label"].astype(float)}
        )
    csi = tl.positions("csi_survey")
    cases["csi_score"] = pd.DataFrame(
        {"rooftop_id": tl.column(csi, "rooftop_id").astype("string").to_numpy(), "x": tl.value[csi]}
    )
    out = {}
    for key, df in cases.items():
        df = df.set_axis(["rooftop_id", "x"], axis=1)
        out[key] = df.astype({"rooftop_id": "string", "x": float}).dropna(subset=["x"])
    return out


def _show_cases(tl: Timeline, bookings: pd.DataFrame, service_ids: pd.Series) -> pd.DataFrame:
    """One row per sales booking with a known outcome: ``x`` 1.0 where the customer showed."""
    sales = bookings[~_isin(bookings["instance_id"], service_ids)]
    showed = tl.attribute(tl.positions("appointment_showed"), "appointment_id")
    return pd.DataFrame(
        {"rooftop_id": sales["rooftop_id"], "x": _isin(sales["instance_id"], showed).astype(float)}
    )


def rooftop_kpis(
    events: Events, params: TaskParams | None = None, rules: JourneyRules | None = None
) -> pd.DataFrame:
    """Each rooftop's KPIs against the group standard, with a deviation flag.

    KPIs are those of ``KPIS`` (first response median and share within
    ``params.response_sla_minutes``, lead to appointment, appointment show rate, lead to sale,
    back for first service, CSI). Leads count once their lead window has closed (lead to sale:
    once the sale window has), bookings and deliveries once their outcome is known. The group
    standard pools all the group's cases. ``flagged`` is true where the rooftop is worse by the
    margins of ``rules`` (``rules.worse_than_group``: median response above ``response_ratio``
    times the group's and at least ``response_extra_minutes`` slower; a rate ``rate_margin``
    below; CSI ``csi_margin`` below) on at least ``min_sample`` cases. Columns:
    ``rooftop_id``, ``kpi``, ``kpi_label``, ``unit``, ``value``, ``group_standard``,
    ``difference`` (value minus group, in the KPI's unit), ``flagged``, ``sample``. Rooftops in
    id order, then ``group``.
    """
    params = params or TaskParams()
    rules = rules or JourneyRules()
    tl = Timeline.of(events)
    rooftops = _rooftop_codes(tl)[1]
    cases = _kpi_cases(tl, params, rules)
    empty = pd.DataFrame({"rooftop_id": [], "x": []})
    frames = [_kpi_rows(kpi, cases.get(kpi.key, empty), rooftops, rules) for kpi in KPIS]
    return pd.concat(frames, ignore_index=True)


def _kpi_rows(
    kpi: Kpi, cases: pd.DataFrame, rooftops: list[str], rules: JourneyRules
) -> pd.DataFrame:
    """One KPI's rows of ``rooftop_kpis``: each rooftop's figure, then the group's."""
    agg = "median" if kpi.unit == "minutes" else "mean"
    per = cases.groupby("rooftop_id")["x"].agg([agg, "count"]).reindex(rooftops)
    group = float(cases["x"].agg(agg)) if len(cases) else float("nan")
    value = np.append(per[agg].to_numpy(dtype=float), group)
    sample = np.append(per["count"].fillna(0).to_numpy(dtype=np.int64), len(cases))
    flagged = worse_than_group(
        value, group, kpi.unit, rules, higher_is_better=kpi.higher_is_better, sample=sample
    )
    flagged[-1] = False  # the group is the standard, never flagged against itself
    return pd.DataFrame(
        {
            "rooftop_id": [*rooftops, GROUP],
            "kpi": kpi.key,
            "kpi_label": kpi.label,
            "unit": kpi.unit,
            "value": value,
            "group_standard": group,
            "difference": value - group,
            "flagged": flagged,
            "sample": sample,
        }
    )


def source_attribution(
    events: Events,
    params: TaskParams | None = None,
    rules: JourneyRules | None = None,
    by_rooftop: bool = False,
) -> pd.DataFrame:
    """From marketing source to lead, appointment, show, sale and first service.

    Counts leads whose sale window has closed, by the lead's ``marketing_source`` (``unknown``
    where the lead has none): ``appointments`` (a sales appointment within the lead window),
    ``shows`` (of those, a sales show within the sale window), ``sales`` (a delivery within the
    sale window), ``sales_due_service`` (sales whose first-service window has closed) and
    ``first_services`` (of those, back for a repair order). Rates: ``appointment_rate`` and
    ``sale_rate`` per lead, ``show_rate`` per appointment (low: traffic that books and does not
    come, wasted spend), ``first_service_rate`` per sale due service. Per rooftop when asked,
    then the group; most leads first.
    """
    params = params or TaskParams()
    rules = rules or JourneyRules()
    tl = Timeline.of(events)
    returned = _returned(_instances(tl, "service_defection", params))
    leads = _leads(tl, params, rules, _service_bookings(tl), returned)
    leads = leads[leads["sale_window_closed"].astype(bool)].assign(
        due=lambda d: d["first_service"].notna().astype(float)
    )
    frames = [leads.assign(rooftop_id=GROUP)]
    if by_rooftop:
        frames.insert(0, leads)
    out = _with_source_rates(_source_counts(pd.concat(frames, ignore_index=True)))
    out = _group_last(out, ["leads", "marketing_source"], [False, True])
    return out.reset_index(drop=True)


_SOURCE_COUNTS = ("leads", "appointments", "shows", "sales", "sales_due_service", "first_services")


def _source_counts(leads: pd.DataFrame) -> pd.DataFrame:
    """Leads, appointments, shows, sales, sales due service and first services per rooftop
    (or group) and marketing source."""
    out = (
        leads.groupby(["rooftop_id", "marketing_source"], sort=False)
        .agg(
            leads=("appointment", "size"),
            appointments=("appointment", "sum"),
            shows=("show", "sum"),
            sales=("sale", "sum"),
            sales_due_service=("due", "sum"),
            first_services=("first_service", "sum"),
        )
        .reset_index()
    )
    return out.astype(dict.fromkeys(_SOURCE_COUNTS, np.int64)).astype(
        {"rooftop_id": "string", "marketing_source": "string"}
    )


def _with_source_rates(out: pd.DataFrame) -> pd.DataFrame:
    """The counts of ``_source_counts`` with their rates (NaN where nothing to divide by)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out["appointment_rate"] = out["appointments"] / out["leads"]
        out["show_rate"] = out["shows"] / out["appointments"].where(out["appointments"] > 0)
        out["sale_rate"] = out["sales"] / out["leads"]
        out["first_service_rate"] = out["first_services"] / out["sales_due_service"].where(
            out["sales_due_service"] > 0
        )
    return out


def post_sale_journey(
    events: Events, params: TaskParams | None = None, by_rooftop: bool = True
) -> pd.DataFrame:
    """The owner's journey after delivery: the share of deliveries reaching each step.

    Counts deliveries whose first-service window has closed, by delivering rooftop (if asked)
    and for the group, against ``POST_SALE_STEPS`` (delivery education, first service booked at
    delivery, service reminder, service appointment, check-in, inspection sent and approved,
    pick-up). A step counts the customer's events at any rooftop in the step's window after
    the delivery. Columns: ``rooftop_id``, ``step``, ``step_label``, ``stage``,
    ``step_order``, ``deliveries``, ``owners`` (deliveries reaching the step) and ``share``.
    """
    params = params or TaskParams()
    tl = Timeline.of(events)
    deliveries = _instances(tl, "service_defection", params)
    if deliveries is None or deliveries.empty:
        raise NoInstancesError("post-sale journey: no delivery has a closed first-service window")
    cust = tl.customer_codes(deliveries["customer_id"])
    start = to_ns(deliveries["anchor_ts"])
    p = params.service_defection
    windows = {
        "delivery_day": tl.window(cust, start, start + NS_DAY),
        "first_week": tl.window(cust, start, start + int(p.cutoff_after_delivery_days * NS_DAY)),
        "service_window": tl.window(cust, start + 1, start + int(p.window_days * NS_DAY) + 1),
    }
    cat = catalogue()
    reached = {
        s.key: Timeline.count(tl.positions(*s.event_types), windows[s.window]) > 0
        for s in POST_SALE_STEPS
    }
    rooftop = deliveries["rooftop_id"].astype("string").to_numpy()
    groups = [(str(r), rooftop == r) for r in sorted(set(rooftop))] if by_rooftop else []
    groups.append((GROUP, np.ones(len(rooftop), dtype=bool)))
    rows = []
    for rid, mask in groups:
        n = int(mask.sum())
        for order, s in enumerate(POST_SALE_STEPS):
            owners = int(reached[s.key][mask].sum())
            rows.append(
                {
                    "rooftop_id": rid,
                    "step": s.key,
                    "step_label": post_sale_step_label(s),
                    "stage": cat.event_type(s.event_types[0]).stage,
                    "step_order": order,
                    "deliveries": n,
                    "owners": owners,
                    "share": _share(owners, n),
                }
            )
    return pd.DataFrame(rows)
