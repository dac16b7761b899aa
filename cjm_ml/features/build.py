"""Point-in-time features for the three predictions: one pure function per task.

``build_<task>_features(events, instances, params)`` returns the instances with their
features, computed only from each customer's events strictly before the instance's
``cutoff_ts``, plus columns of the instance itself that are known at the cutoff (the lead's
type, the appointment's booked and scheduled times). Serving calls the same functions with the
cutoff set to "now". ``events`` may be the canonical table or a prebuilt ``Timeline``;
``instances`` a DataFrame or its columns. ``feature_columns`` is the same computation returning
columns instead of a DataFrame (a request's few rows cost less that way).
All three take ``params`` for one signature; the cutoffs themselves come with the instances,
and only the lead task reads a parameter here (the group's response standard).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import cached_property
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cjm_ml.features.timeline import NS_DAY, STRING, Columns, Timeline, Window, to_ns
from cjm_ml.params import Task, TaskParams
from cjm_ml.registry import features_for
from cjm_ml.rules import (
    LEAD_TYPES,
    REPLIES,
    answered_live,
    first_response_minutes,
    responded_within_sla,
)

#: Up to this many values, Python beats a vectorised call's fixed cost.
_FEW = 100

#: Instances: a DataFrame, or its columns (name -> 1-D array, as ``open_instance_columns`` gives).
Instances: TypeAlias = pd.DataFrame | Mapping[str, Any]

#: Dealer outreach that counts as "contact" for days_since_last_contact.
OUTREACH = (
    "outbound_call",
    "sms_sent",
    "email_sent",
    "appointment_confirmation_sent",
    "service_reminder",
    "maintenance_reminder",
    "recall_notice",
    "mpi_sent",
)
#: The customer engaging with a dealer message: a text reply or an email opened.
ENGAGEMENT = ("sms_replied", "email_opened")
_REQUIRED = (
    "instance_id",
    "customer_id",
    "rooftop_id",
    "marketing_source",
    "anchor_ts",
    "cutoff_ts",
)
_TASK_REQUIRED: dict[Task, tuple[str, ...]] = {
    "lead_leakage": ("lead_type",),
    "no_show": ("appointment_kind", "booked_ts", "scheduled_ts", "rescheduled", "vehicle_id"),
    "service_defection": ("vehicle_condition",),
}


class _PointInTime:
    """The instances seen through the timeline: windows ending at each instance's cutoff, or
    earlier (``before``), each counting only the events known (recorded) before the cutoff."""

    def __init__(self, tl: Timeline, instances: Columns) -> None:
        self.tl = tl
        self.cust = tl.customer_codes(instances["customer_id"])
        self.cutoff = to_ns(instances["cutoff_ts"])
        self.anchor = to_ns(instances["anchor_ts"])

    def window(self, start: np.ndarray | None = None) -> Window:
        """Each customer's events in ``[start, cutoff)`` (from the first event if None)."""
        if start is None:
            return self.whole
        return self.tl.window(self.cust, start, self.cutoff, known_before=self.cutoff)

    def before(self, start: np.ndarray | None, end: np.ndarray) -> Window:
        """Each customer's events in ``[start, end)`` (``end`` at or before the cutoff) known
        before the cutoff."""
        return self.tl.window(self.cust, start, end, known_before=self.cutoff)

    @cached_property
    def whole(self) -> Window:
        """Each customer's events before the cutoff."""
        return self.tl.window(self.cust, None, self.cutoff, known_before=self.cutoff)

    def recent(self, days: float) -> Window:
        """Each customer's events in the ``days`` before the cutoff."""
        return self.window(self.cutoff - int(days * NS_DAY))

    def count(self, *types: str, start: np.ndarray | None = None) -> np.ndarray:
        """How many events of these types in ``[start, cutoff)``."""
        return Timeline.count(self.tl.positions(*types), self.window(start)).astype(float)

    def any(self, window: Window, *types: str) -> np.ndarray:
        """1.0 where at least one event of these types falls in the window, else 0.0."""
        return (Timeline.count(self.tl.positions(*types), window) > 0).astype(float)

    def days_before_cutoff(self, pos: np.ndarray) -> np.ndarray:
        """Days from the event at ``pos`` to the cutoff (NaN where there is none)."""
        return (self.cutoff - self.tl.ts_at(pos)) / NS_DAY

    def abandoned_bookings(self) -> np.ndarray:
        """Positions of online scheduling sessions left without a booking (value 0)."""
        pos = self.tl.positions("online_scheduling")
        return pos[self.tl.value[pos] == 0]

    def tasks_of_kind(self, kind: str) -> np.ndarray:
        """Positions of ``crm_task_created`` events whose ``task`` attribute is ``kind``."""
        pos = self.tl.positions("crm_task_created")
        return pos[_is(self.tl.attribute_array(pos, "task"), kind)]

    def submitted_without(self, submission: str, *follow_ups: np.ndarray) -> np.ndarray:
        """1 where the last ``submission`` of the last 30 days has no follow-up after it."""
        last = Timeline.last(self.tl.positions(submission), self.recent(30))
        since = np.where(last >= 0, self.tl.ts_at(last), self.cutoff).astype(np.int64)
        window = self.window(since)
        followed = sum(Timeline.count(p, window) for p in follow_ups)
        return ((last >= 0) & (followed == 0)).astype(float)


def _prepare(
    events: pd.DataFrame | Timeline, instances: Instances, task: Task
) -> tuple[Timeline, _PointInTime, Columns]:
    """Check the instances' columns, index the events (unless already a Timeline), and take
    the instances as columns."""
    missing = [c for c in (*_REQUIRED, *_TASK_REQUIRED[task]) if c not in instances]
    if missing:
        raise ValueError(f"{task} instances are missing column(s): {', '.join(missing)}")
    inst = _columns(instances)
    tl = Timeline.of(events)
    return tl, _PointInTime(tl, inst), inst


def _columns(instances: Instances) -> Columns:
    """The instances as columns (arrays; a DataFrame's index is dropped)."""
    if not isinstance(instances, pd.DataFrame):
        return dict(instances)
    out = {}
    for name, series in instances.items():
        values = series.array
        out[name] = (
            values.to_numpy() if isinstance(values, pd.arrays.NumpyExtensionArray) else values
        )
    return out


def _strings(values: Any) -> Any:
    """Values as a "string" array (missing stays <NA>)."""
    return values if getattr(values, "dtype", None) == STRING else pd.array(values, dtype=STRING)


def _is(values: Any, text: str) -> np.ndarray:
    """Where the strings ``values`` (a pyarrow or string array) equal ``text``; missing: False."""
    arrow = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(_strings(values))
    if len(arrow) <= _FEW:  # comparing a few Python strings beats a vectorised call's set-up
        return np.array([v == text for v in arrow.to_pylist()], dtype=bool)
    return np.asarray(pc.fill_null(pc.equal(arrow, text), False).to_numpy(zero_copy_only=False))


def _context(pit: _PointInTime, tl: Timeline, task: Task) -> dict[str, np.ndarray]:
    """Features about the customer that every task uses (distance, preference, history)."""
    prefs = tl.positions("contact_preferences_set")
    whole = pit.window()
    known_distance = prefs[~np.isnan(tl.value[prefs])]
    known_channel = prefs[tl.channel[prefs] >= 0]
    channel = tl.channel_at(Timeline.last(known_channel, whole))
    out: dict[str, np.ndarray] = {
        "distance_to_rooftop_km": tl.value_at(Timeline.last(known_distance, whole)),
        "preferred_channel": np.where(
            channel >= 0, tl.channel_names[np.maximum(channel, 0)], "unknown"
        ),
        "prior_no_shows": pit.count("appointment_no_show"),
    }
    if task != "lead_leakage":
        last = Timeline.last(tl.positions(*OUTREACH), whole)
        out["days_since_last_contact"] = pit.days_before_cutoff(last)
    return out


def _research(pit: _PointInTime, tl: Timeline) -> dict[str, np.ndarray]:
    week, month = pit.recent(7), pit.recent(30)
    return {
        "vdp_views_7d": Timeline.count(tl.positions("vdp_view"), week).astype(float),
        "inventory_searches_7d": Timeline.count(tl.positions("inventory_search"), week).astype(
            float
        ),
        "used_payment_calculator": pit.any(month, "payment_calculator"),
        "submitted_trade_in": pit.any(month, "trade_in_tool"),
        "online_credit_app": pit.any(month, "credit_application"),
    }


def _reminder_match(pit: _PointInTime, tl: Timeline, window: Window) -> np.ndarray:
    """1/0 whether the last reminder in ``window`` used the preferred channel (NaN: unknown)."""
    reminder = tl.channel_at(
        Timeline.last(tl.positions("service_reminder", "maintenance_reminder"), window)
    )
    prefs = tl.positions("contact_preferences_set")
    pref = tl.channel_at(Timeline.last(prefs[tl.channel[prefs] >= 0], pit.window()))
    return np.where((reminder >= 0) & (pref >= 0), (reminder == pref).astype(float), np.nan)


def _assemble(instances: Columns, task: Task, columns: dict[str, Any]) -> Columns:
    """Instance columns, then the task's features in registry order, with clean dtypes."""
    out = dict(instances)
    for spec in features_for(task):
        if spec.name in ("rooftop_id", "marketing_source"):
            out[spec.name] = _known_or_unknown(out[spec.name])
        elif spec.unit == "category":
            out[spec.name] = _known_or_unknown(columns[spec.name])
        else:
            out[spec.name] = np.asarray(columns[spec.name], dtype=float)
    return out


def _known_or_unknown(values: Any) -> Any:
    """Values as a "string" array with missing ones "unknown" (a category of its own)."""
    strings = _strings(values)
    return strings.fillna("unknown") if strings.isna().any() else strings


def _lead_leakage(
    tl: Timeline, pit: _PointInTime, inst: Columns, params: TaskParams
) -> dict[str, Any]:
    since_lead = pit.window(pit.anchor)
    cols = {**_research(pit, tl), **_context(pit, tl, "lead_leakage")}
    lead_type = _strings(inst["lead_type"])
    cols["lead_type"] = lead_type
    before_lead = pit.before(None, pit.anchor)
    cols["prior_leads"] = Timeline.count(tl.positions(*LEAD_TYPES), before_lead).astype(float)
    # The lead event itself: an inbound call picked up live is its own first reply.
    lead_pos = Timeline.first(tl.positions(*LEAD_TYPES), since_lead)
    live = answered_live(lead_type, tl.value_at(lead_pos))
    first_reply = Timeline.first(tl.positions(*REPLIES), since_lead)
    replied = live | (first_reply >= 0)
    minutes = first_response_minutes(pit.anchor, tl.ts_at(first_reply), live, pit.cutoff)
    cols["first_response_minutes"] = minutes
    cols["responded_before_cutoff"] = replied.astype(float)
    cols["responded_within_sla"] = responded_within_sla(
        minutes, replied, params.response_sla_minutes
    ).astype(float)
    for name, etype in (
        ("outbound_calls", "outbound_call"),
        ("texts_sent", "sms_sent"),
        ("emails_sent", "email_sent"),
        ("missed_calls", "missed_call"),
    ):
        cols[name] = Timeline.count(tl.positions(etype), since_lead).astype(float)
    last_reply = Timeline.last(tl.positions("sms_replied"), since_lead)
    after_reply = replace(since_lead, lo=np.maximum(since_lead.lo, last_reply + 1))
    cols["unanswered_texts"] = Timeline.count(tl.positions("sms_sent"), after_reply).astype(float)
    calls = tl.positions("outbound_call")
    talked = Timeline.count(calls[tl.value[calls] > 0], since_lead)
    customer_replies = Timeline.count(tl.positions("sms_replied", "email_opened"), since_lead)
    cols["customer_engaged"] = (live | (talked > 0) | (customer_replies > 0)).astype(float)
    created = Timeline.count(tl.positions("crm_task_created"), since_lead)
    completed = Timeline.count(tl.positions("crm_task_completed"), since_lead)
    cols["crm_tasks_open"] = np.maximum(created - completed, 0).astype(float)
    cols["trade_in_without_follow_up"] = pit.submitted_without(
        "trade_in_tool", pit.tasks_of_kind("trade_in_follow_up")
    )
    cols["credit_app_without_next_step"] = pit.submitted_without(
        "credit_application", pit.tasks_of_kind("credit_follow_up"), tl.positions("appointment_set")
    )
    return cols


def _no_show(tl: Timeline, pit: _PointInTime, inst: Columns, params: TaskParams) -> dict[str, Any]:
    booked = to_ns(inst["booked_ts"])
    since_booking = pit.window(booked)
    cols = {**_research(pit, tl), **_context(pit, tl, "no_show")}
    kind = _strings(inst["appointment_kind"])
    cols["appointment_kind"] = kind
    cols["appointment_lead_days"] = (to_ns(inst["scheduled_ts"]) - booked) / NS_DAY
    cols["rescheduled"] = np.asarray(inst["rescheduled"].astype(bool), dtype=float)
    at = _first_confirmations(tl, pit, inst["instance_id"])
    sent = at >= 0
    channel = tl.channel_at(at)
    cols["confirmation_sent"] = sent.astype(float)
    cols["confirmation_channel"] = np.where(
        sent, np.where(channel >= 0, tl.channel_names[np.maximum(channel, 0)], "unknown"), "none"
    )
    cols["customer_confirmed"] = pit.any(since_booking, "sms_replied")
    specific = _is(kind, "sales") & ~pd.isna(inst["vehicle_id"])
    cols["specific_vehicle"] = specific.astype(float)
    cols["vehicle_on_hold"] = pit.any(since_booking, "vehicle_hold_placed")
    cols["vehicle_status_changed"] = pit.any(since_booking, "vehicle_status_changed")
    cols["prior_appointments_kept"] = pit.count("appointment_showed")
    cols["owns_vehicle_from_group"] = pit.any(pit.window(), "vehicle_delivery")
    cols["online_booking_abandons"] = Timeline.count(pit.abandoned_bookings(), pit.recent(14))
    cols["reminder_channel_matches_preference"] = _reminder_match(pit, tl, pit.window())
    cols["messages_engaged_60d"] = Timeline.count(tl.positions(*ENGAGEMENT), pit.recent(60)).astype(
        float
    )
    return cols


def _first_confirmations(tl: Timeline, pit: _PointInTime, appointment_ids: Any) -> np.ndarray:
    """Each appointment's first confirmation known at its cutoff, as a timeline position (-1:
    none). Confirmations are matched by id; the earliest sent counts (at the same moment: the
    first in the timeline)."""
    conf = tl.positions("appointment_confirmation_sent")
    by_time = conf[np.argsort(tl.ts[conf], kind="stable")]
    sent_ids = tl.attribute_array(by_time, "appointment_id")
    wanted = pa.array(_strings(appointment_ids))
    if not len(conf):
        return np.full(len(wanted), -1, dtype=np.int64)
    if tl.recorded is None or not tl.recorded.late[conf].any():
        # Known as sent: the earliest is known before the cutoff if any is.
        found = pc.fill_null(pc.index_in(wanted, value_set=sent_ids), -1)
        found = np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int64)
        at = by_time[np.maximum(found, 0)]
        return np.where((found >= 0) & (tl.known[at] < pit.cutoff), at, -1)
    # Some were recorded late: every (appointment, confirmation) pair, the earliest known.
    sent = pd.DataFrame({"id": pd.Series(sent_ids, dtype=STRING), "rank": np.arange(len(conf))})
    asked = pd.DataFrame({"id": pd.Series(wanted, dtype=STRING), "inst": np.arange(len(wanted))})
    pairs = asked.merge(sent.dropna(), on="id")
    at = by_time[pairs["rank"].to_numpy()]
    pairs = pairs[tl.known[at] < pit.cutoff[pairs["inst"].to_numpy()]]
    first = pairs.sort_values(["inst", "rank"]).drop_duplicates("inst")
    out = np.full(len(wanted), -1, dtype=np.int64)
    out[first["inst"].to_numpy()] = by_time[first["rank"].to_numpy()]
    return out


def _service_defection(
    tl: Timeline, pit: _PointInTime, inst: Columns, params: TaskParams
) -> dict[str, Any]:
    since_delivery = pit.window(pit.anchor)
    cols = _context(pit, tl, "service_defection")
    cols["delivery_education_done"] = pit.any(since_delivery, "delivery_education")
    first_day = pit.before(pit.anchor, np.minimum(pit.anchor + NS_DAY, pit.cutoff))
    cols["first_service_booked_at_delivery"] = pit.any(first_day, "service_appointment_set")
    cols["reminder_channel_matches_preference"] = _reminder_match(pit, tl, since_delivery)
    cols["welcome_message_engaged"] = pit.any(since_delivery, *ENGAGEMENT)
    recall = Timeline.last(tl.positions("recall_notice"), pit.window())
    recall_ts = np.where(recall >= 0, tl.ts_at(recall), pit.cutoff).astype(np.int64)
    repaired = Timeline.count(tl.positions("repair_order_opened"), pit.window(recall_ts))
    cols["open_recall"] = ((recall >= 0) & (repaired == 0)).astype(float)
    surveys = tl.positions("csi_survey")
    sales_surveys = surveys[_is(tl.attribute_array(surveys, "survey"), "sales")]
    cols["sales_csi_score"] = tl.value_at(Timeline.last(sales_surveys, since_delivery))
    cols["used_vehicle"] = _is(inst["vehicle_condition"], "used").astype(float)
    before_delivery = pit.before(None, pit.anchor)
    cols["prior_service_visits"] = Timeline.count(
        tl.positions("repair_order_opened"), before_delivery
    ).astype(float)
    cols["online_booking_abandons"] = Timeline.count(pit.abandoned_bookings(), since_delivery)
    return cols


_FEATURES: dict[Task, Callable[[Timeline, _PointInTime, Columns, TaskParams], dict[str, Any]]] = {
    "lead_leakage": _lead_leakage,
    "no_show": _no_show,
    "service_defection": _service_defection,
}


def feature_columns(
    events: pd.DataFrame | Timeline,
    instances: Instances,
    task: Task,
    params: TaskParams | None = None,
) -> Columns:
    """``BUILDERS[task]`` as columns: ``pd.DataFrame(feature_columns(...))`` is that table.
    The scoring path uses it to skip building a DataFrame; the feature code is the same."""
    if task not in _FEATURES:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(_FEATURES)}")
    tl, pit, inst = _prepare(events, instances, task)
    return _assemble(inst, task, _FEATURES[task](tl, pit, inst, params or TaskParams()))


def build_lead_leakage_features(
    events: pd.DataFrame | Timeline, instances: Instances, params: TaskParams | None = None
) -> pd.DataFrame:
    """Features of each lead as known at its cutoff: research, reply speed, follow-up, context.

    Refuses instances missing required columns (``ValueError`` naming them).
    """
    return pd.DataFrame(feature_columns(events, instances, "lead_leakage", params))


def build_no_show_features(
    events: pd.DataFrame | Timeline, instances: Instances, params: TaskParams | None = None
) -> pd.DataFrame:
    """Features of each booked appointment as known at its cutoff: confirmation, vehicle,
    history, reminders and context. Refuses instances missing required columns."""
    return pd.DataFrame(feature_columns(events, instances, "no_show", params))


def build_service_defection_features(
    events: pd.DataFrame | Timeline, instances: Instances, params: TaskParams | None = None
) -> pd.DataFrame:
    """Features of each delivery as known at its cutoff: onboarding to service, reminders,
    recalls, satisfaction and context. Refuses instances missing required columns."""
    return pd.DataFrame(feature_columns(events, instances, "service_defection", params))


BUILDERS: dict[
    Task, Callable[[pd.DataFrame | Timeline, Instances, TaskParams | None], pd.DataFrame]
] = {
    "lead_leakage": build_lead_leakage_features,
    "no_show": build_no_show_features,
    "service_defection": build_service_defection_features,
}
