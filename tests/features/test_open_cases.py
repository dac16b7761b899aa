"""Only open cases: an instance whose outcome is settled at its cutoff is neither trained on
nor scored. Exact rules on hand-made journeys, and the bar on a simulated group: cut the log at
each instance's cutoff, and no instance's outcome is already there."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from cjm_ml.events import validate_events
from cjm_ml.features.instances import NoInstancesError, build_instances, open_instances
from cjm_ml.features.pipeline import build_feature_table, feature_table_metadata
from cjm_ml.features.timeline import Timeline
from cjm_ml.params import TASKS, Task, TaskParams
from cjm_ml.simulation import SimulatedGroup
from tests.features.journeys import at, events

LEADS = ["lead_form", "lead_call", "lead_chat", "lead_third_party"]
NEXT_STEPS = ["appointment_set", "showroom_visit", "vehicle_delivery"]
OUTCOMES = {
    "appointment_no_show": "appointment_id",
    "appointment_showed": "appointment_id",
    "appointment_cancelled": "appointment_id",
    "appointment_rescheduled": "rescheduled_from",
}


def _row(customer: str, day: float, hhmm: str, event_type: str, **attrs: str) -> dict[str, Any]:
    return {
        "customer_id": customer,
        "ts": at(day, hhmm),
        "event_type": event_type,
        "attributes": attrs or None,
    }


def _labels(table: pd.DataFrame) -> dict[str, Any]:
    return {
        c: (None if pd.isna(v) else int(v))
        for c, v in zip(table["customer_id"], table["label"], strict=True)
    }


# --- the rules, exactly ---------------------------------------------------------------------


def test_a_lead_with_its_next_step_by_the_cutoff_is_left_out() -> None:
    ev = events(
        [
            _row("c-1", 0, "10:00", "lead_call"),
            _row("c-1", 0, "10:07", "appointment_set", appointment_id="a-1",
                 scheduled_ts=at(2, "10:00")),  # booked during the call
            _row("c-2", 0, "10:00", "lead_form"),
            _row("c-2", 0, "12:01", "appointment_set", appointment_id="a-2",
                 scheduled_ts=at(2, "10:00")),  # a minute after the cutoff: open
            _row("c-3", 0, "10:00", "lead_chat"),
            _row("c-3", 0, "12:00", "showroom_visit"),  # exactly at the cutoff: settled
            _row("c-4", 0, "10:00", "lead_form"),
            _row("c-4", 0, "11:00", "vehicle_delivery"),
            _row("c-5", 0, "10:00", "lead_form"),
            _row("c-5", 0, "11:00", "sms_sent"),  # a reply settles nothing
        ]
    )  # fmt: skip
    inst = build_instances(ev, "lead_leakage", as_of=pd.Timestamp(at(60)))
    assert _labels(inst) == {"c-2": 0, "c-5": 1}
    assert inst.attrs == {"settled_left_out": 3, "bad_or_duplicate_left_out": 0}


def test_a_booking_with_an_outcome_by_its_cutoff_is_left_out() -> None:
    def booked(aid: str, start: str) -> dict[str, Any]:
        return _row("c-1", 0, "09:00", "appointment_set", appointment_id=aid,
                    scheduled_ts=at(5, start))  # fmt: skip

    ev = events(
        [
            booked("a-1", "09:00"),  # cutoff: day 4, 09:00
            _row("c-1", 2, "09:00", "appointment_cancelled", appointment_id="a-1"),
            booked("a-2", "10:00"),
            _row("c-1", 5, "10:00", "appointment_showed", appointment_id="a-2"),
            booked("a-3", "11:00"),
            _row("c-1", 4, "11:00", "appointment_no_show", appointment_id="a-3"),  # at cutoff
            booked("a-4", "12:00"),
            _row("c-1", 3, "12:00", "appointment_rescheduled", appointment_id="a-5",
                 rescheduled_from="a-4", scheduled_ts=at(9, "12:00")),
            _row("c-1", 9, "12:00", "appointment_no_show", appointment_id="a-5"),
        ]
    )  # fmt: skip
    inst = build_instances(ev, "no_show", as_of=pd.Timestamp(at(30)))
    assert dict(zip(inst["instance_id"], inst["label"], strict=True)) == {"a-2": 0, "a-5": 1}
    assert inst.attrs == {"settled_left_out": 3}


def test_a_buyer_with_a_repair_order_by_the_defection_cutoff_is_left_out() -> None:
    ev = events(
        [
            _row("c-1", 0, "10:00", "vehicle_delivery"),
            _row("c-1", 7, "10:00", "repair_order_opened"),  # exactly at the cutoff
            _row("c-2", 0, "10:00", "vehicle_delivery"),
            _row("c-2", 7, "10:01", "repair_order_opened"),
            _row("c-3", 0, "10:00", "vehicle_delivery"),
        ]
    )
    inst = build_instances(ev, "service_defection", as_of=pd.Timestamp(at(300)))
    assert _labels(inst) == {"c-2": 0, "c-3": 1}
    assert inst.attrs == {"settled_left_out": 1}


def test_crm_closures_settle_leave_out_and_label_leads() -> None:
    ev = events(
        [
            _row("c-1", 0, "10:00", "lead_form"),
            _row("c-1", 0, "15:00", "lead_closed", status="bad_lead"),  # after the cutoff
            _row("c-2", 0, "10:00", "lead_form"),
            _row("c-2", 0, "11:00", "lead_closed", status="duplicate"),
            _row("c-3", 0, "10:00", "lead_form"),
            _row("c-3", 0, "11:00", "lead_closed", status="no_contact"),  # settles it
            _row("c-4", 0, "10:00", "lead_form"),
            _row("c-4", 1, "10:00", "appointment_set", appointment_id="a-4",
                 scheduled_ts=at(2, "10:00")),
            _row("c-4", 10, "10:00", "lead_closed", status="lost_other_dealer"),  # leakage
            _row("c-5", 0, "10:00", "lead_form"),
            _row("c-5", 10, "10:00", "lead_closed", status="no_contact"),
            _row("c-6", 0, "10:00", "lead_form"),  # dark, never closed
            _row("c-6", 40, "10:00", "lead_form"),
            _row("c-6", 40, "12:00", "lead_closed", status="bad_lead"),  # the second lead's
            _row("c-7", 0, "10:00", "lead_call"),
            _row("c-7", 3, "10:00", "showroom_visit"),
            _row("c-7", 20, "10:00", "vehicle_delivery"),
            _row("c-7", 20, "10:00", "lead_closed", status="sold"),
        ]
    )  # fmt: skip
    inst = build_instances(ev, "lead_leakage", as_of=pd.Timestamp(at(100)))
    assert sorted(zip(inst["customer_id"], inst["label"], strict=True)) == [
        ("c-4", 1), ("c-5", 1), ("c-6", 1), ("c-7", 0)
    ]  # fmt: skip
    assert inst.attrs == {"settled_left_out": 1, "bad_or_duplicate_left_out": 3}


def test_a_closure_after_the_window_neither_labels_nor_leaves_out() -> None:
    ev = events(
        [
            _row("c-1", 0, "10:00", "lead_form"),
            _row("c-1", 1, "10:00", "showroom_visit"),
            _row("c-1", 31, "10:00", "lead_closed", status="duplicate"),
        ]
    )
    inst = build_instances(ev, "lead_leakage", as_of=pd.Timestamp(at(100)))
    assert _labels(inst) == {"c-1": 0}


def test_everything_settled_is_a_clear_error() -> None:
    ev = events([_row("c-1", 0, "10:00", "lead_call"), _row("c-1", 0, "10:30", "showroom_visit")])
    with pytest.raises(
        NoInstancesError,
        match=r"lead_leakage: every instance that reached its prediction moment is left out "
        r"\(1 settled before their cutoff, 0 bad or duplicate leads\)",
    ):
        build_instances(ev, "lead_leakage", as_of=pd.Timestamp(at(1)))


def test_serving_applies_the_same_rule_at_now() -> None:
    ev = events(
        [
            _row("c-1", 0, "10:00", "lead_call"),
            _row("c-1", 0, "10:07", "appointment_set", appointment_id="a-1",
                 scheduled_ts=at(2, "10:00")),
            _row("c-2", 0, "10:00", "lead_form"),
            _row("c-2", 0, "11:00", "lead_closed", status="no_contact"),
            _row("c-3", 0, "10:00", "lead_form"),
            _row("c-3", 0, "13:00", "lead_closed", status="bad_lead"),
            _row("c-4", 0, "10:00", "lead_form"),
            _row("c-4", 0, "10:30", "vehicle_delivery"),
            _row("c-5", 0, "10:00", "lead_chat"),
        ]
    )  # fmt: skip
    # At 12:00 every closure and next step before then is known; c-3's closure is not yet.
    now = pd.Timestamp(at(0, "12:00"))
    assert sorted(open_instances(ev, "lead_leakage", now)["customer_id"]) == ["c-3", "c-5"]
    # Before any of it, every lead is open.
    early = pd.Timestamp(at(0, "10:05"))
    assert len(open_instances(ev, "lead_leakage", early)) == 5


def test_the_feature_table_and_its_metadata_carry_the_counts() -> None:
    ev = events(
        [
            _row("c-1", 0, "10:00", "lead_call"),
            _row("c-1", 0, "10:30", "showroom_visit"),
            _row("c-2", 0, "10:00", "lead_form"),
            _row("c-3", 0, "10:00", "lead_form"),
            _row("c-3", 0, "13:00", "lead_closed", status="duplicate"),
        ]
    )
    table = build_feature_table(ev, "lead_leakage", as_of=pd.Timestamp(at(60)))
    assert table["customer_id"].tolist() == ["c-2"]
    assert table.attrs == {"settled_left_out": 1, "bad_or_duplicate_left_out": 1, "declared": []}
    meta = feature_table_metadata(table, "lead_leakage", TaskParams())
    assert (meta["settled_left_out"], meta["bad_or_duplicate_left_out"]) == ("1", "1")


def test_a_closure_needs_a_known_status() -> None:
    rows = [
        {
            "event_id": f"e-{i}",
            "dealer_group_id": "dg-01",
            "rooftop_id": "rt-01",
            "customer_id": "c-1",
            "ts": at(0, "10:00"),
            "event_type": "lead_closed",
            "attributes": attributes,
        }
        for i, attributes in enumerate(['{"status": "lost"}', "{}", '{"status": "sold"}'])
    ]
    _, violations = validate_events(pd.DataFrame(rows), "crm")
    assert [(v.row, v.rule, v.message) for v in violations] == [
        (1, "attribute_word", "status must be one of sold, lost_other_dealer, bad_lead, "
         "duplicate, no_contact"),
        (2, "attribute_required", "lead_closed needs status in its attributes"),
    ]  # fmt: skip


# --- the bar, on a simulated group ----------------------------------------------------------


def _attr(ev: pd.DataFrame, key: str) -> pd.Series:
    return ev["attributes"].str.extract(f'"{key}": "([^"]*)"')[0]


def _of(ev: pd.DataFrame, *types: str) -> pd.DataFrame:
    return ev[ev["event_type"].astype(str).isin(types)]


def _any_between(
    anchors: pd.DataFrame, outcomes: pd.DataFrame, lo_inclusive: bool = False
) -> pd.Series:
    """Per anchor row (``customer_id``, ``anchor_ts``, ``cutoff_ts``): whether the customer has
    an outcome (``customer_id``, ``ts``) in ``(anchor, cutoff]`` (``[anchor, cutoff]``)."""
    pairs = anchors.reset_index().merge(outcomes[["customer_id", "ts"]], on="customer_id")
    after = pairs["ts"] >= pairs["anchor_ts"] if lo_inclusive else pairs["ts"] > pairs["anchor_ts"]
    hit = pairs[after & (pairs["ts"] <= pairs["cutoff_ts"])]
    return pd.Series(anchors.index.isin(hit["index"]), index=anchors.index)


def _closures(ev: pd.DataFrame, leads: pd.DataFrame) -> pd.DataFrame:
    """Each closure with the lead it closes: the customer's latest lead at or before it."""
    closed = _of(ev, "lead_closed").assign(status=lambda d: _attr(d, "status"))
    closed = closed[["customer_id", "ts", "status"]].sort_values("ts")
    ordered = leads[["customer_id", "anchor_ts", "instance_id"]].sort_values("anchor_ts")
    return pd.merge_asof(
        closed, ordered, left_on="ts", right_on="anchor_ts", by="customer_id"
    ).dropna(subset=["instance_id"])


def _lead_candidates(ev: pd.DataFrame, params: TaskParams) -> pd.DataFrame:
    leads = _of(ev, *LEADS)
    cutoff = leads["ts"] + pd.Timedelta(minutes=params.lead_leakage.cutoff_after_lead_minutes)
    out = pd.DataFrame(
        {
            "instance_id": leads["event_id"].astype(str),
            "customer_id": leads["customer_id"].astype(str),
            "anchor_ts": leads["ts"],
            "cutoff_ts": cutoff,
        }
    ).reset_index(drop=True)
    closures = _closures(ev, out)
    window = pd.Timedelta(days=params.lead_leakage.window_days)
    closures = closures[closures["ts"] <= closures["anchor_ts"] + window]
    first = closures.sort_values("ts").drop_duplicates("instance_id")
    status = out["instance_id"].map(first.set_index("instance_id")["status"])
    out["junk"] = status.isin(["bad_lead", "duplicate"]).to_numpy()
    closed_at = out["instance_id"].map(first.set_index("instance_id")["ts"])
    closed_by_cutoff = (closed_at <= out["cutoff_ts"]).fillna(False).astype(bool)
    out["settled"] = _any_between(out, _of(ev, *NEXT_STEPS)) | closed_by_cutoff
    return out


def _booking_candidates(ev: pd.DataFrame, params: TaskParams) -> pd.DataFrame:
    books = _of(ev, "appointment_set", "service_appointment_set", "appointment_rescheduled")
    books = books.assign(aid=_attr(books, "appointment_id"))
    books = books.assign(start=pd.to_datetime(_attr(books, "scheduled_ts"), utc=True))
    books = books.sort_values("ts", kind="stable").drop_duplicates("aid")
    before = pd.Timedelta(hours=params.no_show.cutoff_before_start_hours)
    out = pd.DataFrame(
        {
            "instance_id": books["aid"].to_numpy(),
            "anchor_ts": books["ts"].to_numpy(),
            "cutoff_ts": np.maximum(books["ts"], books["start"] - before).to_numpy(),
        }
    )
    outcomes = pd.concat(
        [_of(ev, t).assign(aid=lambda d, k=k: _attr(d, k)) for t, k in OUTCOMES.items()]
    )
    first = outcomes.groupby("aid")["ts"].min()
    out["settled"] = (out["instance_id"].map(first) <= out["cutoff_ts"]).to_numpy()
    out["junk"] = False
    return out


def _delivery_candidates(ev: pd.DataFrame, params: TaskParams) -> pd.DataFrame:
    sold = _of(ev, "vehicle_delivery")
    out = pd.DataFrame(
        {
            "instance_id": sold["event_id"].astype(str),
            "customer_id": sold["customer_id"].astype(str),
            "anchor_ts": sold["ts"],
            "cutoff_ts": sold["ts"]
            + pd.Timedelta(days=params.service_defection.cutoff_after_delivery_days),
        }
    ).reset_index(drop=True)
    out["settled"] = _any_between(out, _of(ev, "repair_order_opened"))
    out["junk"] = False
    return out


CANDIDATES = {
    "lead_leakage": _lead_candidates,
    "no_show": _booking_candidates,
    "service_defection": _delivery_candidates,
}


@pytest.mark.parametrize("task", TASKS)
def test_no_instance_has_its_outcome_in_the_log_cut_at_its_cutoff(
    small_group: SimulatedGroup, task: Task
) -> None:
    ev = small_group.events.assign(customer_id=lambda d: d["customer_id"].astype(str))
    as_of = pd.Timestamp(small_group.config.start) + pd.Timedelta(days=small_group.config.days)
    params = TaskParams()
    table = build_feature_table(Timeline(small_group.events), task, params, as_of=as_of)
    candidates = CANDIDATES[task](ev, params)
    candidates = candidates[candidates["cutoff_ts"] <= as_of]
    # Computed apart from the feature code: the instances are the open, non-junk candidates.
    kept = candidates[~candidates["settled"] & ~candidates["junk"]]
    assert sorted(table["instance_id"].astype(str)) == sorted(kept["instance_id"])
    assert table.attrs["settled_left_out"] == int(
        (candidates["settled"] & ~candidates["junk"]).sum()
    )
    # And the bar itself, instance by instance on the log cut at its cutoff.
    chosen = candidates.set_index("instance_id").loc[table["instance_id"].astype(str)]
    assert not chosen["settled"].any()
    if task == "lead_leakage":
        assert table.attrs["bad_or_duplicate_left_out"] == int(candidates["junk"].sum())
        # Phone-ups and chats that book during the first contact make this a real check.
        assert table.attrs["settled_left_out"] > 0.08 * len(candidates)


def test_a_settling_event_recorded_after_the_cutoff_leaves_the_case_open() -> None:
    """Training sees the population serving saw: a booking cancelled on day 1 but entered into
    the scheduler only on day 4 was still open at its cutoff (day 2), with its label from when
    the cancellation happened."""
    ev = events(
        [
            _row("c-1", 0, "09:00", "appointment_set", appointment_id="a-1",
                 scheduled_ts=at(3, "09:00")),
            _row("c-1", 1, "09:00", "appointment_cancelled", appointment_id="a-1"),
            _row("c-2", 0, "09:00", "appointment_set", appointment_id="a-2",
                 scheduled_ts=at(3, "09:00")),
            _row("c-2", 1, "09:00", "appointment_cancelled", appointment_id="a-2"),
        ]
    )  # fmt: skip
    ev["recorded_ts"] = pd.Series(pd.NaT, index=ev.index, dtype=ev["ts"].dtype)
    late = ev["customer_id"].eq("c-1") & ev["event_type"].eq("appointment_cancelled")
    ev.loc[late, "recorded_ts"] = pd.Timestamp(at(4, "09:00"))
    table = build_instances(ev, "no_show", as_of=pd.Timestamp(at(5)))
    assert _labels(table) == {"c-1": 0}
    assert table.attrs["settled_left_out"] == 1
    open_then = open_instances(ev, "no_show", pd.Timestamp(at(2, "09:00")))
    assert open_then["instance_id"].tolist() == ["a-1"]
