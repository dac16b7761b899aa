"""Prediction instances and their labels, one table per task.

Every table has ``instance_id``, ``customer_id``, ``dealer_group_id``, ``rooftop_id``,
``marketing_source``, ``anchor_ts`` (the event the instance is about), ``cutoff_ts`` (the
prediction moment) and ``label`` (null while the outcome is not yet knowable), plus a few
task columns known at the cutoff. Labels look into the future on purpose; features never do.

How outcomes count:
- lead_leakage: 1 when no sales appointment is set and no showroom visit happens in
  ``(lead, lead + window]``.
- no_show: one instance per booking (``appointment_set``, ``service_appointment_set``, and the
  new booking an ``appointment_rescheduled`` creates). 1 for ``appointment_no_show``; 0 for a
  show, a cancellation, or a reschedule (the customer engaged; the new time is a new instance).
- service_defection: 1 when no repair order opens at any rooftop of the group in
  ``(delivery, delivery + window]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cjm_ml.features.timeline import NS_DAY, NS_HOUR, NS_MIN, Timeline, to_ns
from cjm_ml.params import Task, TaskParams

LEAD_TYPES = ("lead_form", "lead_call", "lead_chat", "lead_third_party")
BOOKING_TYPES = ("appointment_set", "service_appointment_set", "appointment_rescheduled")
INSTANCE_COLUMNS = (
    "instance_id",
    "customer_id",
    "dealer_group_id",
    "rooftop_id",
    "marketing_source",
    "anchor_ts",
    "cutoff_ts",
    "label",
)


class NoInstancesError(ValueError):
    """The events hold nothing this task can predict on."""


def _anchor_frame(tl: Timeline, positions: np.ndarray) -> pd.DataFrame:
    """Instance columns taken from anchor events at ``positions`` of the timeline."""
    return pd.DataFrame(
        {
            "instance_id": tl.column(positions, "event_id").astype("string"),
            "customer_id": tl.column(positions, "customer_id").astype("string"),
            "dealer_group_id": tl.column(positions, "dealer_group_id").astype("string"),
            "rooftop_id": tl.column(positions, "rooftop_id").astype("string"),
            "marketing_source": tl.column(positions, "source").astype("string"),
            "anchor_ts": pd.to_datetime(tl.ts[positions], utc=True),
        }
    )


def _ts(ns: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(ns.astype("int64"), utc=True))


def _none_within(
    tl: Timeline, anchors: np.ndarray, event_types: tuple[str, ...], window_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """For the anchor events at ``anchors``: 1 where none of ``event_types`` follows within
    ``(anchor, anchor + window]``, and whether that window has ended (its end, in ns)."""
    start = tl.ts[anchors]
    end = start + window_ns
    found = Timeline.count(
        tl.positions(*event_types), tl.window(tl.cust[anchors], start + 1, end + 1)
    )
    return (found == 0).astype(int), end


def _finish(
    df: pd.DataFrame, label: np.ndarray, known: np.ndarray, as_of_ns: int, task: Task
) -> pd.DataFrame:
    df["label"] = pd.array(np.where(known, label, pd.NA), dtype="Int8")
    cutoff = to_ns(df["cutoff_ts"])
    df = df[cutoff <= as_of_ns]
    if df.empty:
        raise NoInstancesError(f"{task}: no instance has reached its prediction moment by as_of")
    extra = [c for c in df.columns if c not in INSTANCE_COLUMNS]
    return df[[*INSTANCE_COLUMNS, *extra]].sort_values("instance_id", ignore_index=True)


def build_instances(
    events: pd.DataFrame | Timeline,
    task: Task,
    params: TaskParams | None = None,
    as_of: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The task's prediction instances with labels, from the canonical events.

    ``as_of`` is the moment the data was extracted (default: the last event); instances whose
    cutoff is later are left out, and labels whose window has not closed by then are null.
    Raises ``NoInstancesError`` naming what is missing when the events hold no instance.
    """
    params = params or TaskParams()
    tl = Timeline.of(events)
    if len(tl) == 0:
        raise NoInstancesError(f"{task}: the events table is empty")
    as_of_ns = int(tl.ts.max()) if as_of is None else int(to_ns(pd.Series([as_of]))[0])
    if task == "lead_leakage":
        return _lead_instances(tl, params, as_of_ns)
    if task == "no_show":
        return _appointment_instances(tl, params, as_of_ns)
    if task == "service_defection":
        return _delivery_instances(tl, params, as_of_ns)
    raise ValueError(f"unknown task {task!r}; expected lead_leakage, no_show or service_defection")


def _lead_instances(tl: Timeline, params: TaskParams, as_of_ns: int) -> pd.DataFrame:
    pos = tl.positions(*LEAD_TYPES)
    if len(pos) == 0:
        raise NoInstancesError(
            "lead_leakage: the events hold no lead "
            "(lead_form, lead_call, lead_chat, lead_third_party)"
        )
    df = _anchor_frame(tl, pos)
    lead_ns = tl.ts[pos]
    p = params.lead_leakage
    df["cutoff_ts"] = _ts(lead_ns + int(p.cutoff_after_lead_minutes * NS_MIN))
    df["lead_type"] = tl.column(pos, "event_type").astype("string").str.removeprefix("lead_")
    dark, window_end = _none_within(
        tl, pos, ("appointment_set", "showroom_visit"), int(p.window_days * NS_DAY)
    )
    return _finish(df, dark, window_end <= as_of_ns, as_of_ns, "lead_leakage")


def _appointment_instances(tl: Timeline, params: TaskParams, as_of_ns: int) -> pd.DataFrame:
    pos = tl.positions(*BOOKING_TYPES)
    if len(pos) == 0:
        raise NoInstancesError(
            "no_show: the events hold no booking "
            "(appointment_set, service_appointment_set, appointment_rescheduled)"
        )
    df = _anchor_frame(tl, pos)
    appointment_id = tl.attribute(pos, "appointment_id")
    scheduled = pd.to_datetime(tl.attribute(pos, "scheduled_ts"), utc=True, errors="coerce")
    unusable = appointment_id.isna() | scheduled.isna()
    if unusable.all():
        raise NoInstancesError(
            "no_show: no booking carries both 'appointment_id' and 'scheduled_ts' in attributes"
        )
    booked_ns = tl.ts[pos]
    scheduled_ns = to_ns(scheduled.fillna(pd.Timestamp(0, tz="UTC")))
    cutoff = np.maximum(
        booked_ns, scheduled_ns - int(params.no_show.cutoff_before_start_hours * NS_HOUR)
    )
    etype = tl.column(pos, "event_type").astype("string")
    df["instance_id"] = appointment_id
    df["booked_ts"] = df["anchor_ts"]
    df["scheduled_ts"] = _ts(scheduled_ns)
    df["cutoff_ts"] = _ts(cutoff)
    df["appointment_kind"] = np.where(etype == "service_appointment_set", "service", "sales")
    df["rescheduled"] = (etype == "appointment_rescheduled").to_numpy()
    df["vehicle_id"] = tl.column(pos, "vehicle_id").astype("string")
    df = df[~unusable.to_numpy()].drop_duplicates("instance_id", keep="first")
    # Outcomes, matched by appointment id.
    outcomes = []
    for etype_name, label in (
        ("appointment_no_show", 1),
        ("appointment_showed", 0),
        ("appointment_cancelled", 0),
    ):
        p = tl.positions(etype_name)
        outcomes.append(
            pd.DataFrame(
                {
                    "instance_id": tl.attribute(p, "appointment_id"),
                    "outcome_ns": tl.ts[p],
                    "y": label,
                }
            )
        )
    p = tl.positions("appointment_rescheduled")
    outcomes.append(
        pd.DataFrame(
            {"instance_id": tl.attribute(p, "rescheduled_from"), "outcome_ns": tl.ts[p], "y": 0}
        )
    )
    first = (
        pd.concat(outcomes, ignore_index=True)
        .dropna(subset=["instance_id"])
        .sort_values("outcome_ns", kind="stable")
        .drop_duplicates("instance_id", keep="first")
        .set_index("instance_id")
    )
    y = first["y"].reindex(df["instance_id"]).to_numpy()
    when = first["outcome_ns"].reindex(df["instance_id"]).to_numpy()
    known = ~np.isnan(y) & (when <= as_of_ns)
    return _finish(df, np.nan_to_num(y).astype(int), known, as_of_ns, "no_show")


def _delivery_instances(tl: Timeline, params: TaskParams, as_of_ns: int) -> pd.DataFrame:
    pos = tl.positions("vehicle_delivery")
    if len(pos) == 0:
        raise NoInstancesError("service_defection: the events hold no vehicle_delivery")
    df = _anchor_frame(tl, pos)
    p = params.service_defection
    delivery_ns = tl.ts[pos]
    df["cutoff_ts"] = _ts(delivery_ns + int(p.cutoff_after_delivery_days * NS_DAY))
    df["vehicle_id"] = tl.column(pos, "vehicle_id").astype("string")
    df["vehicle_condition"] = tl.attribute(pos, "condition")
    defected, window_end = _none_within(
        tl, pos, ("repair_order_opened",), int(p.window_days * NS_DAY)
    )
    return _finish(df, defected, window_end <= as_of_ns, as_of_ns, "service_defection")


def open_instances(
    events: pd.DataFrame, task: Task, now: pd.Timestamp, params: TaskParams | None = None
) -> pd.DataFrame:
    """The instances a dealer can still act on at ``now`` (the serving view), scored at
    ``now``: ``cutoff_ts`` is ``now`` and ``label`` null. Only events before ``now`` count.

    - lead_leakage: leads with no sales appointment or showroom visit yet, window running;
    - no_show: bookings with no outcome yet whose start is still ahead;
    - service_defection: deliveries with no repair order yet, window running.

    Returns an empty table (same columns) when nothing is open.
    """
    params = params or TaskParams()
    known = events[events["ts"] < now]
    try:
        # As if extracted far in the future: every anchor before now is in, and a label is 1
        # (leads, deliveries) or set (bookings) exactly when no outcome has happened by now.
        inst = build_instances(known, task, params, as_of=now + pd.Timedelta(days=36_500))
    except NoInstancesError:
        return pd.DataFrame(columns=[*INSTANCE_COLUMNS]).astype({"label": "Int8"})
    anchor = inst["anchor_ts"]
    if task == "no_show":
        still_open = inst["label"].isna() & (inst["scheduled_ts"] > now)
    else:
        window = (
            params.lead_leakage.window_days
            if task == "lead_leakage"
            else params.service_defection.window_days
        )
        still_open = (inst["label"] == 1) & (anchor + pd.Timedelta(days=window) > now)
    out = inst[still_open.fillna(False).to_numpy(dtype=bool)].reset_index(drop=True)
    out["cutoff_ts"] = now
    out["label"] = pd.array([pd.NA] * len(out), dtype="Int8")
    return out
