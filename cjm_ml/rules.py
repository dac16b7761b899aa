"""The journey rules that features, analytics and the journey map share, each written once.

Pure, vectorised functions over plain arrays (the callers look the events up in their own
index, the point-in-time ``Timeline``, and hand the arrays here) and the domain constants
behind them:

- which booking is a **service booking**, followed through reschedules;
- what counts as the **first reply** to a lead (an inbound call picked up live is its own
  reply) and whether it came within the group's response standard;
- when a rooftop is **worse than the group** by a margin a manager would act on
  (``JourneyRules``: 1.5x and 10 minutes for response time, 5 points for rates, 0.5 for CSI,
  on at least 30 cases).
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from cjm_ml.events import catalogue

#: ``rooftop_id`` of the rows that pool the whole dealer group (roll-ups, KPIs, the map).
GROUP = "group"
#: ``marketing_source`` of leads that carry no source.
UNKNOWN_SOURCE = "unknown"
#: Event types of a lead: the customer asking the dealer for something.
LEAD_TYPES: tuple[str, ...] = ("lead_form", "lead_call", "lead_chat", "lead_third_party")
#: The lead type (``lead_call`` without its prefix) whose event can itself be the first reply.
CALL_LEAD = "call"
#: The dealer's replies to a lead: the first of these after it is the first reply.
REPLIES: tuple[str, ...] = ("outbound_call", "sms_sent", "email_sent")
#: Event types that book an appointment (a reschedule books a new one): the catalogue's.
BOOKING_TYPES: tuple[str, ...] = catalogue().booking_types()

#: How a KPI is measured: minutes (response time), a share (a rate), a score (CSI, of 10).
KpiUnit = Literal["minutes", "share", "score"]
#: Strings with missing values: a "string" array or Series, a pyarrow-backed string array, or a
#: sequence of str / None.
Strings: TypeAlias = Any

#: Slack for comparing a difference with a margin (a rate exactly 5 points lower counts).
_TOLERANCE = 1e-12
_NS_MIN = 60 * 1_000_000_000
#: Up to this many values, comparing Python strings beats a vectorised call.
_FEW = 100


class JourneyRules(BaseModel):
    """How the journey map counts and when it flags a rooftop against the group standard.

    The defaults are the group's policy: a rooftop is flagged only where it is worse than the
    group by a margin a manager would act on, and only on enough cases to trust the figure.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    sale_window_days: float = Field(
        60,
        gt=0,
        description="Days after a lead in which a show or a delivery counts as that lead's "
        "(90% of deliveries follow their lead within 3 weeks).",
    )
    quiet_after_days: float = Field(
        90,
        gt=0,
        description="A journey has gone quiet when the last touchpoint is this many days before "
        "the end of the data.",
    )
    response_ratio: float = Field(
        1.5,
        gt=1,
        description="Median first response flagged when above this multiple of the group's ...",
    )
    response_extra_minutes: float = Field(
        10, ge=0, description="... and at least this many minutes slower than the group's."
    )
    rate_margin: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="A rate (SLA share, conversion, show rate, service return) is flagged when "
        "at least this far below the group's (0.05 = 5 percentage points).",
    )
    csi_margin: float = Field(
        0.5, gt=0, description="CSI flagged when at least this many points (of 10) below the group."
    )
    min_sample: int = Field(
        30,
        ge=1,
        description="Fewest cases (leads, appointments, deliveries, surveys) behind a rooftop's "
        "figure before it can be flagged.",
    )


# --------------------------------------------------------------------------------------------
# Service bookings, through reschedules


def _arrow_strings(values: Strings) -> pa.Array:
    """``values`` (a Series, a pandas, pyarrow or numpy array of strings; missing as None/NA)
    as a pyarrow string array."""
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    return pa.array(pd.array(values, dtype="string"))


def service_bookings(
    appointment_id: Strings, rescheduled_from: Strings, booked_as_service: np.ndarray
) -> np.ndarray:
    """Which bookings are service appointments: booked as one (``service_appointment_set``),
    or a reschedule whose ``rescheduled_from`` is a service booking's ``appointment_id``, along
    chains of reschedules (a reschedule keeps the kind of the booking it moves).

    One value per booking, aligned arrays: ``appointment_id``, ``rescheduled_from`` (missing
    where the booking moves none) and ``booked_as_service`` (bool). Returns a bool array.
    Refuses arrays of different lengths (``ValueError``).
    """
    service = np.asarray(booked_as_service, dtype=bool).copy()
    ids, moved_from = _arrow_strings(appointment_id), _arrow_strings(rescheduled_from)
    if not len(ids) == len(moved_from) == len(service):
        raise ValueError(
            f"service_bookings: {len(ids)} appointment ids, {len(moved_from)} rescheduled_from "
            f"and {len(service)} booked_as_service values; expected one of each per booking"
        )
    # each reschedule's booking it moves (its position; -1: none, or not among the bookings)
    parent = pc.fill_null(pc.index_in(moved_from, value_set=ids, skip_nulls=True), -1)
    parent = np.asarray(parent.to_numpy(zero_copy_only=False))
    moves = np.flatnonzero(parent >= 0)
    for _ in range(len(moves)):  # each pass settles one more link of the longest chain
        found = moves[~service[moves] & service[parent[moves]]]
        if not len(found):
            break
        service[found] = True
    return service


# --------------------------------------------------------------------------------------------
# The first reply to a lead


def answered_live(lead_type: Strings, lead_value: np.ndarray) -> np.ndarray:
    """Where the lead is its own first reply: an inbound call (``lead_type`` ``call``) that
    was picked up (the call's ``value``, seconds talked, above 0; NaN: not). Bool array."""
    if len(lead_type) <= _FEW:  # a few Python strings beat a vectorised call's set-up
        texts = lead_type.tolist() if hasattr(lead_type, "tolist") else list(lead_type)
        calls = np.array([isinstance(t, str) and t == CALL_LEAD for t in texts], dtype=bool)
    else:
        found = pc.equal(_arrow_strings(lead_type), CALL_LEAD)
        calls = np.asarray(pc.fill_null(found, False).to_numpy(zero_copy_only=False), dtype=bool)
    return calls & (np.asarray(lead_value, dtype=float) > 0)


def first_response_minutes(
    lead_ns: np.ndarray,
    reply_ns: np.ndarray,
    live: np.ndarray,
    waited_until_ns: np.ndarray | None = None,
) -> np.ndarray:
    """Minutes from each lead to its first reply: 0 where the lead was ``answered_live``;
    where no reply came (``reply_ns`` NaN), the minutes waited until ``waited_until_ns`` (the
    prediction moment) or NaN when that is not given. Times in ns since the epoch."""
    reply = np.asarray(reply_ns, dtype=float)
    if waited_until_ns is not None:
        reply = np.where(np.isnan(reply), waited_until_ns, reply)
    return np.where(live, 0.0, (reply - lead_ns) / _NS_MIN)


def responded_within_sla(
    minutes: np.ndarray, replied: np.ndarray, sla_minutes: float
) -> np.ndarray:
    """Where a lead had its first reply (``replied``) within ``sla_minutes`` (bool array)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(replied, dtype=bool) & (np.asarray(minutes, dtype=float) <= sla_minutes)


# --------------------------------------------------------------------------------------------
# Worse than the group


def worse_than_group(
    value: Any,
    group: Any,
    unit: KpiUnit,
    rules: JourneyRules,
    *,
    higher_is_better: bool = True,
    sample: Any = None,
) -> np.ndarray:
    """Where a rooftop's figure is worse than the group's by the margins of ``rules``.

    ``unit`` ``minutes`` (a response time, lower is better): above ``response_ratio`` times the
    group's and at least ``response_extra_minutes`` slower; ``share``: at least ``rate_margin``
    worse; ``score``: at least ``csi_margin`` worse (``higher_is_better`` says which way is
    worse). With ``sample`` (cases behind each figure), only on at least ``min_sample`` cases.
    A NaN figure is never flagged. Scalars or aligned arrays; returns a bool array.
    Refuses an unknown unit (``ValueError``).
    """
    v, g = np.asarray(value, dtype=float), np.asarray(group, dtype=float)
    with np.errstate(invalid="ignore"):
        if unit == "minutes":
            worse = (v > rules.response_ratio * g) & (v - g >= rules.response_extra_minutes)
        elif unit in ("share", "score"):
            margin = rules.rate_margin if unit == "share" else rules.csi_margin
            worse_by = g - v if higher_is_better else v - g
            worse = worse_by >= margin - _TOLERANCE
        else:
            raise ValueError(f"unknown KPI unit {unit!r}; expected minutes, share or score")
    worse = np.asarray(worse & ~np.isnan(v) & ~np.isnan(g), dtype=bool)
    if sample is not None:
        worse &= np.asarray(sample) >= rules.min_sample
    return worse


def better_than_group(
    value: Any,
    group: Any,
    unit: Literal["share", "score"],
    rules: JourneyRules,
    *,
    sample: Any = None,
) -> np.ndarray:
    """Where a rate or score is better than the group's by the margin of ``rules`` (a source
    that sells 5 points above the group): ``worse_than_group`` the other way round."""
    if unit not in ("share", "score"):
        raise ValueError(f"better_than_group compares shares or scores, not {unit!r}")
    return worse_than_group(value, group, unit, rules, higher_is_better=False, sample=sample)
