"""The coverage report: which features are constant or mostly missing in a feature table (exact
names, kinds and wording), the events counted per touchpoint, rooftop and month, each task's
instances and outcomes, the sample of a large task, and the simulator's events."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from cjm_ml.features.coverage import (
    FeatureIssue,
    feature_issues,
    feature_warnings,
    profile_events,
    task_coverage,
)
from cjm_ml.features.pipeline import build_feature_table
from cjm_ml.params import TASKS
from cjm_ml.registry import features_for
from cjm_ml.simulation import SimulatedGroup
from tests.features.journeys import at, events


def _varied_table(rows: int) -> dict[str, Any]:
    """A service_defection feature table where every feature varies and is always known."""
    table: dict[str, Any] = {}
    for spec in features_for("service_defection"):
        if spec.unit == "category":
            table[spec.name] = pd.array(["a", "b"] * (rows // 2) + ["a"] * (rows % 2), "string")
        else:
            table[spec.name] = np.arange(rows, dtype=float)
    return table


def test_three_rows_name_the_constant_and_the_missing_features_exactly() -> None:
    table = _varied_table(3)
    table["open_recall"] = [0.0, 0.0, 0.0]  # constant
    table["sales_csi_score"] = [np.nan, np.nan, 9.0]  # 2 of 3 missing: mostly, at 50%
    table["preferred_channel"] = pd.array([None, "unknown", None], "string")  # all missing
    table["used_vehicle"] = [1.0, np.nan, 1.0]  # one value where known: knowing it still tells
    issues = feature_issues(pd.DataFrame(table), "service_defection", mostly_missing=0.5)
    assert issues == [
        FeatureIssue(
            feature="open_recall",
            label="Open recall",
            kind="constant",
            missing_share=0.0,
            value="0",
        ),
        FeatureIssue(
            feature="sales_csi_score",
            label="Sales satisfaction",
            kind="mostly_missing",
            missing_share=2 / 3,
        ),
        FeatureIssue(
            feature="preferred_channel",
            label="Preferred channel",
            kind="all_missing",
            missing_share=1.0,
        ),
    ]
    assert [i.finding for i in issues] == [
        "constant (always 0)",
        "missing for 66.7% of instances",
        "missing for every instance",
    ]


def test_mostly_missing_is_more_than_95_percent_and_the_warning_has_one_wording() -> None:
    table = _varied_table(40)
    table["sales_csi_score"] = [np.nan] * 39 + [8.0]  # 97.5% missing
    table["days_since_last_contact"] = [np.nan] * 38 + [1.0, 2.0]  # exactly 95%: not flagged
    table["rooftop_id"] = pd.array(["rt-01"] * 40, "string")
    table = pd.DataFrame(table)
    assert feature_warnings(table, "service_defection") == [
        "service_defection: 2 of 15 features are constant or mostly missing on this data; a "
        "model learns little or nothing from them:",
        "  sales_csi_score (Sales satisfaction): missing for 97.5% of instances",
        "  rooftop_id (Rooftop): constant (always rt-01)",
    ]
    table["rooftop_id"] = pd.array(["rt-01", "rt-02"] * 20, "string")
    assert feature_warnings(table, "service_defection")[0].startswith(
        "service_defection: 1 of 15 features is constant or mostly missing"
    )


def test_a_table_without_issues_or_rows_warns_nothing_and_missing_columns_are_refused() -> None:
    table = pd.DataFrame(_varied_table(4))
    assert feature_issues(table, "service_defection") == []
    assert feature_warnings(table, "service_defection") == []
    assert feature_issues(table.iloc[:0], "service_defection") == []
    with pytest.raises(
        ValueError, match=r"^service_defection: feature table lacks open_recall, used_vehicle$"
    ):
        feature_issues(table.drop(columns=["open_recall", "used_vehicle"]), "service_defection")


def two_customers(with_booking: bool = True) -> pd.DataFrame:
    """c-1 at rt-01 in June: a lead answered, a sales appointment kept, a delivery; c-2 at
    rt-02 in July: a phone lead, still in its window."""
    booking: list[dict[str, Any]] = [
        {
            "ts": at(1, "10:30"),
            "event_type": "appointment_set",
            "attributes": {"appointment_id": "a-1", "scheduled_ts": at(3, "10:30")},
        },
        {
            "ts": at(3, "10:30"),
            "event_type": "appointment_showed",
            "attributes": {"appointment_id": "a-1"},
        },
    ]
    c1: list[dict[str, Any]] = [
        {"ts": at(0, "10:00"), "event_type": "lead_form", "source": "oem_website"},
        {"ts": at(0, "10:30"), "event_type": "outbound_call", "value": 60},
        *(booking if with_booking else []),
        {"ts": at(3, "10:40"), "event_type": "showroom_visit"},
        {"ts": at(4, "12:00"), "event_type": "vehicle_delivery", "vehicle_id": "v-1"},
    ]
    c2: list[dict[str, Any]] = [
        {"ts": at(40, "09:00"), "event_type": "lead_call", "value": 0},
        {"ts": at(40, "09:30"), "event_type": "sms_sent"},
        {"ts": at(41, "09:30"), "event_type": "sms_sent"},
    ]
    return events(
        [{"customer_id": "c-1", **r} for r in c1]
        + [{"customer_id": "c-2", "rooftop_id": "rt-02", **r} for r in c2]
    )


def test_the_report_counts_events_per_touchpoint_rooftop_and_month() -> None:
    report = profile_events(two_customers())
    assert (report.events, report.customers, report.dealer_groups) == (9, 2, ("dg-01",))
    assert (report.first_ts, report.last_ts) == (
        pd.Timestamp(at(0, "10:00")),
        pd.Timestamp(at(41, "09:30")),
    )
    present = {s.key: [(t.key, t.events) for t in s.present] for s in report.stages}
    assert present == {
        "research": [],
        "lead_intake": [("lead_form", 1), ("lead_call", 1)],
        "response": [("outbound_call", 1), ("sms_sent", 2)],
        "appointment": [("appointment_set", 1), ("appointment_showed", 1)],
        "showroom": [("showroom_visit", 1)],
        "credit_fi": [],
        "delivery": [("vehicle_delivery", 1)],
        "service": [],
        "csi": [],
    }
    stages = {s.key: s for s in report.stages}
    assert [t.key for t in stages["delivery"].absent] == ["delivery_education"]
    assert (stages["response"].events, len(stages["response"].touchpoints)) == (3, 9)
    assert [(r.rooftop_id, r.events, r.customers) for r in report.rooftops] == [
        ("rt-01", 6, 1),
        ("rt-02", 3, 1),
    ]
    assert report.rooftops[1].first_ts == pd.Timestamp(at(40, "09:00"))
    assert [(m.month, m.events, m.by_rooftop) for m in report.months] == [
        ("2025-06", 6, {"rt-01": 6}),
        ("2025-07", 3, {"rt-02": 3}),
    ]
    assert report.summary == (
        "Dealer group dg-01 · 2 rooftops · 2 customers · 9 events · 02 Jun 2025 to 13 Jul 2025"
    )


def test_each_task_says_its_instances_outcomes_and_state() -> None:
    report = profile_events(two_customers())
    states = {
        t.task: (t.instances, t.positives, t.negatives, t.unlabelled, t.verdict)
        for t in report.tasks
    }
    assert states == {
        "lead_leakage": (2, 0, 1, 1, "can be built, not trained: every known outcome is 0"),
        "no_show": (1, 0, 1, 0, "can be built, not trained: every known outcome is 0"),
        "service_defection": (1, 0, 0, 1, "can be built, not trained: no outcome is known yet"),
    }
    for t in report.tasks:  # the same issues as `cjm features` finds in the task's table
        table = build_feature_table(two_customers(), t.task)
        assert list(t.issues) == feature_issues(table, t.task)
        assert (t.buildable, t.trainable, t.sampled, t.profiled) == (
            True,
            False,
            False,
            t.instances,
        )
    no_booking = profile_events(two_customers(with_booking=False)).tasks[1]
    assert (no_booking.buildable, no_booking.instances, no_booking.issues) == (False, 0, ())
    assert no_booking.verdict == (
        "cannot be built: no_show: the events hold no booking "
        "(appointment_set, service_appointment_set, appointment_rescheduled)"
    )


def test_a_large_task_is_judged_on_a_seeded_sample_of_its_instances() -> None:
    sampled = task_coverage(two_customers(), "lead_leakage", max_instances=1)
    assert (sampled.instances, sampled.negatives, sampled.unlabelled) == (2, 1, 1)
    assert (sampled.profiled, sampled.sampled) == (1, True)
    assert sampled == task_coverage(two_customers(), "lead_leakage", max_instances=1)
    with pytest.raises(ValueError, match="max_instances must be at least 1, not 0"):
        task_coverage(two_customers(), "lead_leakage", max_instances=0)
    with pytest.raises(ValueError, match="the events table is empty"):
        profile_events(two_customers().iloc[:0])


def test_the_simulators_events_build_every_task_and_name_its_constant_feature(
    small_group: SimulatedGroup,
) -> None:
    report = profile_events(small_group.events)
    assert [t.task for t in report.tasks] == list(TASKS)
    assert all(t.buildable and t.trainable and not t.sampled for t in report.tasks)
    assert all(not s.absent for s in report.stages)  # the simulator emits every touchpoint
    issues = {t.task: [(i.feature, i.kind, i.value) for i in t.issues] for t in report.tasks}
    assert issues == {
        "lead_leakage": [],
        "no_show": [],
        # nobody in the simulated group had a repair order before buying from it
        "service_defection": [("prior_service_visits", "constant", "0")],
    }
    assert sum(r.events for r in report.rooftops) == len(small_group.events)
    assert sum(m.events for m in report.months) == len(small_group.events)
