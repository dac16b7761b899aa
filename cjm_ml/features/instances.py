"""Prediction instances and their labels, one table per task.

Every table has ``instance_id``, ``customer_id``, ``dealer_group_id``, ``rooftop_id``,
``marketing_source``, ``anchor_ts`` (the event the instance is about), ``cutoff_ts`` (the
prediction moment) and ``label`` (null while the outcome is not yet knowable), plus a few
task columns known at the cutoff. Labels look into the future on purpose; features never do.

How outcomes count:
- lead_leakage: 1 when no sales appointment is set and no showroom visit happens in
  ``(lead, lead + window]``, or when the CRM closes the lead as lost to another dealer. A
  ``lead_closed`` event closes the customer's latest lead at or before it; a lead closed as a
  bad lead or a duplicate is no instance at all (``attrs["bad_or_duplicate_left_out"]``).
- no_show: one instance per booking (``appointment_set``, ``service_appointment_set``, and the
  new booking an ``appointment_rescheduled`` creates). 1 for ``appointment_no_show``; 0 for a
  show, a cancellation, or a reschedule (the customer engaged; the new time is a new instance).
- service_defection: 1 when no repair order opens at any rooftop of the group in
  ``(delivery, delivery + window]``.

Only open cases: an instance whose outcome is already settled at its cutoff is neither trained
on nor scored (``build_instances`` leaves it out and counts it in ``attrs["settled_left_out"]``;
``open_instances`` applies the same rule at "now"). Settled means, in ``(anchor, cutoff]``:
- lead_leakage: a sales appointment set, a showroom visit, a delivery, or the CRM closing it;
- no_show: the booking's first outcome (no-show, show, cancellation, reschedule);
- service_defection: a repair order opened.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.tseries.api import guess_datetime_format

from cjm_ml.features.timeline import (
    NS_DAY,
    NS_HOUR,
    NS_MIN,
    STRING,
    Columns,
    Timeline,
    timestamp_ns,
    to_ns,
    to_timestamps,
)
from cjm_ml.featureset import INSTANCE_COLUMNS
from cjm_ml.params import Task, TaskParams
from cjm_ml.rules import BOOKING_TYPES, LEAD_TYPES, service_bookings

#: The settling moment of an instance whose outcome is not settled (yet).
NEVER_NS = np.iinfo(np.int64).max
#: Events that settle a lead: its next step has happened (the lead_leakage label's outcome).
LEAD_SETTLED_BY = ("appointment_set", "showroom_visit", "vehicle_delivery")
#: CRM lead statuses (``lead_closed``): leads that are no instance at all, and lost leads.
JUNK_LEAD_STATUSES = ("bad_lead", "duplicate")
LOST_LEAD_STATUS = "lost_other_dealer"
#: How far ahead ``open_instances`` looks for anchors: as if the data were extracted then
#: (in ns, capped at the int64 range instead of overflowing pandas' time range).
_FAR_FUTURE_NS = 36_500 * NS_DAY
_APPOINTMENT_KINDS = pd.array(["sales", "service"], dtype="str")


class NoInstancesError(ValueError):
    """The events hold nothing this task can predict on."""


@dataclass(frozen=True)
class _Found:
    """A task's instances before any filtering, one per row: their ids (strings), anchor and
    cutoff times (ns), whether each label is known by ``as_of`` and its value where known;
    ``columns(rows, cutoff_ts, label)`` builds the table's columns for the chosen rows (the
    strings only for those). ``none`` says why there is no instance at all, if so.
    ``settled_ns``: when each instance's settling became known (the first settling event after
    the anchor, by when it was recorded; ``NEVER_NS`` for none); ``settled`` says which were
    settled by the cutoff.
    ``junk``: anchors that are no instance at all (leads closed as bad or duplicate)."""

    ids: Any
    anchor_ns: np.ndarray
    cutoff_ns: np.ndarray
    known: np.ndarray
    y: np.ndarray
    columns: Callable[[np.ndarray, Any, Any], Columns]
    none: str | None
    settled_ns: np.ndarray
    scheduled_ns: np.ndarray | None = None
    junk: np.ndarray | None = None

    @property
    def settled(self) -> np.ndarray:
        """Whether each instance's outcome was settled at or before its cutoff (left out)."""
        return self.settled_ns <= self.cutoff_ns


def _anchor_columns(tl: Timeline, positions: np.ndarray, ids: Any) -> Columns:
    """Instance columns taken from anchor events at ``positions`` of the timeline."""
    return {
        "instance_id": ids,
        "customer_id": tl.text(positions, "customer_id"),
        "dealer_group_id": tl.text(positions, "dealer_group_id"),
        "rooftop_id": tl.text(positions, "rooftop_id"),
        "marketing_source": tl.text(positions, "source"),
        "anchor_ts": to_timestamps(tl.ts[positions]),
    }


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


def _first_after(
    tl: Timeline, anchors: np.ndarray, event_types: tuple[str, ...], window_ns: int
) -> np.ndarray:
    """For the anchor events at ``anchors``: when the first of ``event_types`` that follows in
    ``(anchor, anchor + window]`` became known (ns: recorded, ``Timeline.known``), or
    ``NEVER_NS``. A case settles when the dealer can know it has: what happened but was
    recorded after the cutoff leaves the case open there, as serving sees it at that moment."""
    start = tl.ts[anchors]
    first = Timeline.first(
        tl.positions(*event_types), tl.window(tl.cust[anchors], start + 1, start + window_ns + 1)
    )
    return np.where(first >= 0, tl.known[np.maximum(first, 0)], NEVER_NS)


def _label(y: np.ndarray, known: np.ndarray) -> Any:
    """Int8 labels: ``y`` where known, <NA> elsewhere."""
    return pd.arrays.IntegerArray(np.where(known, y, 0).astype(np.int8), ~known)


def _by_id(found: _Found, rows: np.ndarray) -> np.ndarray:
    """``rows`` in order of instance id (stable, missing ids last), as ``sort_values`` does."""
    return rows[found.ids[rows].argsort()] if len(rows) > 1 else rows


def _found(tl: Timeline, task: Task, params: TaskParams, as_of_ns: int) -> _Found:
    if task == "lead_leakage":
        return _lead_instances(tl, params, as_of_ns)
    if task == "no_show":
        return _appointment_instances(tl, params, as_of_ns)
    if task == "service_defection":
        return _delivery_instances(tl, params, as_of_ns)
    raise ValueError(f"unknown task {task!r}; expected lead_leakage, no_show or service_defection")


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
    found = _found(tl, task, params, as_of_ns)
    if found.none is not None:
        raise NoInstancesError(found.none)
    reached = found.cutoff_ns <= as_of_ns
    if not reached.any():
        raise NoInstancesError(f"{task}: no instance has reached its prediction moment by as_of")
    junk = reached & found.junk if found.junk is not None else np.zeros(len(reached), bool)
    settled = reached & found.settled & ~junk
    rows = np.flatnonzero(reached & ~settled & ~junk)
    if not len(rows):
        raise NoInstancesError(
            f"{task}: every instance that reached its prediction moment is left out "
            f"({int(settled.sum())} settled before their cutoff, {int(junk.sum())} bad or "
            "duplicate leads)"
        )
    rows = _by_id(found, rows)
    label = _label(found.y[rows], found.known[rows])
    table = pd.DataFrame(found.columns(rows, to_timestamps(found.cutoff_ns[rows]), label))
    table.attrs["settled_left_out"] = int(settled.sum())
    if task == "lead_leakage":
        table.attrs["bad_or_duplicate_left_out"] = int(junk.sum())
    return table


def _lead_instances(tl: Timeline, params: TaskParams, as_of_ns: int) -> _Found:
    pos = tl.positions(*LEAD_TYPES)
    ids = tl.text(pos, "event_id")
    lead_ns = tl.ts[pos]
    p = params.lead_leakage
    dark, window_end = _none_within(
        tl, pos, ("appointment_set", "showroom_visit"), int(p.window_days * NS_DAY)
    )

    def columns(rows: np.ndarray, cutoff_ts: Any, label: Any) -> Columns:
        at = pos[rows]
        return {
            **_anchor_columns(tl, at, ids[rows]),
            "cutoff_ts": cutoff_ts,
            "label": label,
            "lead_type": _lead_type_names().take(tl.etype[at]),
        }

    none = (
        None
        if len(pos)
        else "lead_leakage: the events hold no lead "
        "(lead_form, lead_call, lead_chat, lead_third_party)"
    )
    cutoff = lead_ns + int(p.cutoff_after_lead_minutes * NS_MIN)
    window_ns = int(p.window_days * NS_DAY)
    closed_ns, status = _lead_closures(tl, pos, window_ns)
    settled_ns = np.minimum(_first_after(tl, pos, LEAD_SETTLED_BY, window_ns), closed_ns)
    lost = dark | (status == LOST_LEAD_STATUS)
    junk = np.isin(status, JUNK_LEAD_STATUSES)
    known = window_end <= as_of_ns
    return _Found(ids, lead_ns, cutoff, known, lost, columns, none, settled_ns, junk=junk)


def _lead_closures(tl: Timeline, leads: np.ndarray, window_ns: int) -> tuple[np.ndarray, Any]:
    """For the leads at ``leads`` (sorted positions): when the CRM's first closure of each one
    became known (``NEVER_NS`` when none) and with which status ("" when not). A
    ``lead_closed`` closes the customer's latest lead at or before it; only closures in
    ``[lead, lead + window]`` count."""
    start = tl.ts[leads]
    cust = tl.cust[leads]
    end = start + window_ns + 1
    if len(leads) > 1:  # a closure from the customer's next lead on is the next lead's
        same = cust[1:] == cust[:-1]
        end[:-1] = np.where(same, np.minimum(end[:-1], start[1:]), end[:-1])
    closed = tl.positions("lead_closed")
    first = Timeline.first(closed, tl.window(cust, start, np.maximum(end, start)))
    found = np.flatnonzero(first >= 0)
    status = np.full(len(leads), "", dtype=object)
    if len(found):
        status[found] = tl.attribute_array(first[found], "status").to_numpy(zero_copy_only=False)
    return np.where(first >= 0, tl.known[np.maximum(first, 0)], NEVER_NS), status


@cache
def _lead_type_names() -> Any:
    """Event type codes -> lead type ("form" for lead_form, ...), as strings."""
    return pd.array([t.removeprefix("lead_") for t in Timeline.event_type_names()], dtype=STRING)


def _appointment_instances(tl: Timeline, params: TaskParams, as_of_ns: int) -> _Found:
    booking = tl.positions(*BOOKING_TYPES)
    appointment_id = tl.attribute_array(booking, "appointment_id")
    scheduled = _parse_moments(tl.attribute_array(booking, "scheduled_ts"))
    unusable = appointment_id.is_null().to_numpy(zero_copy_only=False) | scheduled.isna()
    # Usable bookings, the first of each appointment id.
    usable = np.flatnonzero(~unusable)
    usable_ids = appointment_id.take(pa.array(usable))
    first = pc.index_in(usable_ids, value_set=usable_ids).to_numpy(zero_copy_only=False)
    keep = usable[first == np.arange(len(usable))]
    pos = booking[keep]
    ids = pd.arrays.ArrowStringArray(appointment_id.take(pa.array(keep)))
    booked_ns = tl.ts[pos]
    scheduled_ns = to_ns(scheduled[keep])
    cutoff = np.maximum(
        booked_ns, scheduled_ns - int(params.no_show.cutoff_before_start_hours * NS_HOUR)
    )
    y, when, known_at = _first_outcomes(tl, ids)
    known = (y >= 0) & (when <= as_of_ns)
    service_kind = _service_bookings(tl, pos, ids)

    def columns(rows: np.ndarray, cutoff_ts: Any, label: Any) -> Columns:
        at = pos[rows]
        etype = tl.etype[at]
        service = service_kind[rows]
        anchor = _anchor_columns(tl, at, ids[rows])
        return {
            **anchor,
            "cutoff_ts": cutoff_ts,
            "label": label,
            "booked_ts": anchor["anchor_ts"],
            "scheduled_ts": to_timestamps(scheduled_ns[rows]),
            "appointment_kind": _APPOINTMENT_KINDS.take(service.astype(np.intp)),
            "rescheduled": etype == tl.event_type_code("appointment_rescheduled"),
            "vehicle_id": tl.text(at, "vehicle_id"),
        }

    none = None
    if not len(booking):
        none = (
            "no_show: the events hold no booking "
            "(appointment_set, service_appointment_set, appointment_rescheduled)"
        )
    elif not len(usable):
        none = "no_show: no booking carries both 'appointment_id' and 'scheduled_ts' in attributes"
    settled_ns = np.where(y >= 0, known_at, NEVER_NS)
    return _Found(
        ids, booked_ns, cutoff, known, np.maximum(y, 0), columns, none, settled_ns, scheduled_ns
    )


def _service_bookings(tl: Timeline, pos: np.ndarray, ids: Any) -> np.ndarray:
    """Whether each booking at ``pos`` (appointment ``ids``) is a service appointment
    (``rules.service_bookings``: a reschedule keeps the kind of the booking it moves)."""
    service = tl.etype[pos] == tl.event_type_code("service_appointment_set")
    moved = np.flatnonzero(tl.etype[pos] == tl.event_type_code("appointment_rescheduled"))
    if not len(moved):
        return service
    moved_from = np.full(len(pos), None, dtype=object)
    moved_from[moved] = tl.attribute_array(pos[moved], "rescheduled_from").to_pylist()
    return service_bookings(ids, moved_from, service)


def _parse_moments(texts: pa.Array) -> pd.DatetimeIndex:
    """ISO 8601 strings as UTC moments (NaT where missing or unparsable): exactly
    ``pd.to_datetime(texts, utc=True, errors="coerce")``. When every string has the same strict
    ISO shape, the format pandas would infer from the first is reused for that shape (the
    inference alone costs more than the parsing)."""
    values = pd.arrays.ArrowStringArray(texts)
    present = [t for t in texts.to_pylist() if t is not None]
    shape = _iso_shape(present[0]) if present else None
    if shape is None or any(_iso_shape(t) != shape for t in present[1:]):
        return pd.to_datetime(values, utc=True, errors="coerce")
    return pd.to_datetime(values, utc=True, errors="coerce", format=_iso_format(shape, present[0]))


_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")
_ISO_FORMATS: dict[tuple[int, bool], str | None] = {}


def _iso_shape(text: str) -> tuple[int, bool] | None:
    """(fraction digits, ends in Z) of a strict ISO 8601 moment with a timezone, else None."""
    m = _ISO.fullmatch(text)
    if m is None:
        return None
    return (len(m.group(1) or ""), m.group(2) == "Z")


def _iso_format(shape: tuple[int, bool], text: str) -> str | None:
    """The format pandas infers for ``text`` (the same for every string of its ISO shape)."""
    if shape not in _ISO_FORMATS:
        _ISO_FORMATS[shape] = guess_datetime_format(text)
    return _ISO_FORMATS[shape]


#: Appointment outcomes: event type, the attribute naming the appointment, the label.
_OUTCOMES = (
    ("appointment_no_show", "appointment_id", 1),
    ("appointment_showed", "appointment_id", 0),
    ("appointment_cancelled", "appointment_id", 0),
    ("appointment_rescheduled", "rescheduled_from", 0),
)
_OUTCOME_TYPES = tuple(t for t, _, _ in _OUTCOMES)


def _first_outcomes(
    tl: Timeline, appointment_ids: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each appointment's first outcome: 1 for a no-show, 0 for a show, a cancellation or a
    reschedule, -1 for none yet; when it happened and when it became known (ns, recorded).
    Outcomes are matched by appointment id; at the same moment, no-show, show, cancellation,
    reschedule win in turn."""
    ids, when, outcome = [], [], []
    for etype_name, key, label in _OUTCOMES:
        p = tl.positions(etype_name)
        ids.append(tl.attribute_array(p, key))
        when.append(tl.ts[p])
        outcome.append(np.full(len(p), label))
    every_when, every_outcome = np.concatenate(when), np.concatenate(outcome)
    by_time = np.argsort(every_when, kind="stable")
    matched = pc.index_in(
        pa.array(appointment_ids), value_set=pa.concat_arrays(ids).take(pa.array(by_time))
    )
    at = pc.fill_null(matched, -1).to_numpy(zero_copy_only=False)
    if not len(by_time):
        return np.full(len(at), -1), np.zeros(len(at), np.int64), np.zeros(len(at), np.int64)
    pick = by_time[np.maximum(at, 0)]
    every_known = np.concatenate([tl.known[tl.positions(t)] for t in _OUTCOME_TYPES])
    return (
        np.where(at >= 0, every_outcome[pick], -1),
        np.where(at >= 0, every_when[pick], 0),
        np.where(at >= 0, every_known[pick], 0),
    )


def _delivery_instances(tl: Timeline, params: TaskParams, as_of_ns: int) -> _Found:
    pos = tl.positions("vehicle_delivery")
    ids = tl.text(pos, "event_id")
    p = params.service_defection
    delivery_ns = tl.ts[pos]
    defected, window_end = _none_within(
        tl, pos, ("repair_order_opened",), int(p.window_days * NS_DAY)
    )

    def columns(rows: np.ndarray, cutoff_ts: Any, label: Any) -> Columns:
        at = pos[rows]
        return {
            **_anchor_columns(tl, at, ids[rows]),
            "cutoff_ts": cutoff_ts,
            "label": label,
            "vehicle_id": tl.text(at, "vehicle_id"),
            "vehicle_condition": pd.arrays.ArrowStringArray(tl.attribute_array(at, "condition")),
        }

    none = None if len(pos) else "service_defection: the events hold no vehicle_delivery"
    cutoff = delivery_ns + int(p.cutoff_after_delivery_days * NS_DAY)
    window_ns = int(p.window_days * NS_DAY)
    settled_ns = _first_after(tl, pos, ("repair_order_opened",), window_ns)
    known = window_end <= as_of_ns
    return _Found(ids, delivery_ns, cutoff, known, defected, columns, none, settled_ns)


def open_instances(
    events: pd.DataFrame | Timeline,
    task: Task,
    now: pd.Timestamp,
    params: TaskParams | None = None,
) -> pd.DataFrame:
    """The instances a dealer can still act on at ``now`` (the serving view), scored at
    ``now``: ``cutoff_ts`` is ``now`` and ``label`` null. Only events before ``now`` count.

    - lead_leakage: leads with no sales appointment, showroom visit or delivery yet, window
      running;
    - no_show: bookings with no outcome yet whose start is still ahead;
    - service_defection: deliveries with no repair order yet, window running.

    ``events``: the canonical table or a ``Timeline`` (events at or after ``now`` are ignored
    either way). Returns an empty table (instance columns only) when nothing is open.
    """
    columns, any_instance = _open(events, task, now, params)
    if not any_instance:
        return pd.DataFrame(columns=[*INSTANCE_COLUMNS]).astype({"label": "Int8"})
    return pd.DataFrame(columns)


def open_instance_columns(
    events: pd.DataFrame | Timeline,
    task: Task,
    now: pd.Timestamp,
    params: TaskParams | None = None,
) -> Columns:
    """``open_instances`` as columns, for the scoring path (no DataFrame is built): the
    same rows and values; with no open instance, every column of the task, empty."""
    return _open(events, task, now, params)[0]


def _open(
    events: pd.DataFrame | Timeline, task: Task, now: pd.Timestamp, params: TaskParams | None
) -> tuple[Columns, bool]:
    """The open instances' columns, and whether the events hold any instance at all."""
    params = params or TaskParams()
    now = pd.Timestamp(now)
    tl = events.before(now) if isinstance(events, Timeline) else Timeline(events, until=now)
    now_ns = timestamp_ns(now)
    # As if extracted far in the future: every anchor before now is in, and a label is 1
    # (leads, deliveries) or set (bookings) exactly when no outcome has happened by now.
    as_of_ns = min(now_ns + _FAR_FUTURE_NS, np.iinfo(np.int64).max)
    found = _found(tl, task, params, as_of_ns)
    rows = np.flatnonzero(found.cutoff_ns <= as_of_ns)
    # The rule ``build_instances`` applies at the cutoff, at "now": nothing has settled the
    # outcome yet (the timeline holds only events before now).
    unsettled = found.settled_ns == NEVER_NS
    if found.scheduled_ns is not None:  # bookings: no outcome yet, start still ahead
        still_open = unsettled & (found.scheduled_ns > now_ns)
    else:  # leads, deliveries: no next step yet, window still running
        window = (
            params.lead_leakage.window_days
            if task == "lead_leakage"
            else params.service_defection.window_days
        )
        ends = found.anchor_ns + pd.Timedelta(days=window).value
        still_open = unsettled & (ends > now_ns)
    any_instance = found.none is None and len(rows) > 0
    rows = _by_id(found, rows[still_open[rows]])
    n = len(rows)
    label = pd.arrays.IntegerArray(np.zeros(n, np.int8), np.ones(n, bool))
    return found.columns(rows, _constant(now, n), label), any_instance


def _constant(moment: pd.Timestamp, n: int) -> Any:
    """``moment`` repeated ``n`` times, in its own resolution and timezone."""
    return pd.array(np.full(n, moment.asm8)).tz_localize("UTC").tz_convert(moment.tz)
