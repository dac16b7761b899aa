"""One instance per task from three hand-written events: its id, anchor, cutoff and label,
worked out by hand, and the label left null until its window closes."""

from __future__ import annotations

import pandas as pd
import pytest

from cjm_ml.features.instances import NoInstancesError, build_instances
from cjm_ml.params import LeadLeakageParams, TaskParams
from tests.features.journeys import at, events

LATER = pd.Timestamp(at(400))


def _one(table: pd.DataFrame) -> pd.Series:
    assert len(table) == 1
    return table.iloc[0]


@pytest.mark.parametrize(
    ("next_step_day", "as_of_day", "label"),
    [(3, 400, 0), (31, 400, 1), (3, 10, None)],
    ids=["visit-in-window", "visit-after-window", "window-still-open"],
)
def test_a_lead_is_scored_two_hours_in_and_leaks_without_a_next_step_in_30_days(
    next_step_day: int, as_of_day: int, label: int | None
) -> None:
    ev = events(
        [
            {"ts": at(0, "10:00"), "event_type": "lead_form", "event_id": "lead-1",
             "source": "oem_website"},
            {"ts": at(0, "10:20"), "event_type": "sms_sent", "channel": "sms"},
            {"ts": at(next_step_day, "11:00"), "event_type": "showroom_visit"},
        ]
    )  # fmt: skip
    row = _one(build_instances(ev, "lead_leakage", as_of=pd.Timestamp(at(as_of_day))))
    assert row["instance_id"] == "lead-1"
    assert row["marketing_source"] == "oem_website" and row["lead_type"] == "form"
    assert row["anchor_ts"] == pd.Timestamp(at(0, "10:00"))
    assert row["cutoff_ts"] == pd.Timestamp(at(0, "12:00"))
    assert (None if pd.isna(row["label"]) else int(row["label"])) == label


def test_the_lead_cutoff_follows_the_task_parameters() -> None:
    ev = events([{"ts": at(0, "10:00"), "event_type": "lead_form", "event_id": "lead-1"}])
    params = TaskParams(lead_leakage=LeadLeakageParams(cutoff_after_lead_minutes=30))
    row = _one(build_instances(ev, "lead_leakage", params, as_of=LATER))
    assert row["cutoff_ts"] == pd.Timestamp(at(0, "10:30"))
    assert row["label"] == 1


def test_a_booking_is_scored_a_day_before_its_start_and_a_no_show_is_1() -> None:
    ev = events(
        [
            {"ts": at(0, "09:00"), "event_type": "appointment_set",
             "attributes": {"appointment_id": "a-1", "scheduled_ts": at(3, "10:00")}},
            {"ts": at(1, "09:00"), "event_type": "appointment_confirmation_sent",
             "channel": "sms", "attributes": {"appointment_id": "a-1"}},
            {"ts": at(3, "10:30"), "event_type": "appointment_no_show",
             "attributes": {"appointment_id": "a-1"}},
        ]
    )  # fmt: skip
    row = _one(build_instances(ev, "no_show", as_of=LATER))
    assert row["instance_id"] == "a-1" and row["appointment_kind"] == "sales"
    assert row["anchor_ts"] == row["booked_ts"] == pd.Timestamp(at(0, "09:00"))
    assert row["scheduled_ts"] == pd.Timestamp(at(3, "10:00"))
    assert row["cutoff_ts"] == pd.Timestamp(at(2, "10:00"))
    assert row["label"] == 1 and not row["rescheduled"]
    # before the outcome, the label is not known yet
    assert pd.isna(_one(build_instances(ev, "no_show", as_of=pd.Timestamp(at(3))))["label"])


def test_a_booking_made_less_than_a_day_ahead_is_scored_at_booking_and_a_show_is_0() -> None:
    ev = events(
        [
            {"ts": at(0, "09:00"), "event_type": "service_appointment_set",
             "attributes": {"appointment_id": "s-1", "scheduled_ts": at(0, "15:00")}},
            {"ts": at(0, "15:05"), "event_type": "appointment_showed",
             "attributes": {"appointment_id": "s-1"}},
            {"ts": at(0, "15:10"), "event_type": "repair_order_opened"},
        ]
    )  # fmt: skip
    row = _one(build_instances(ev, "no_show", as_of=LATER))
    assert row["appointment_kind"] == "service"
    assert row["cutoff_ts"] == pd.Timestamp(at(0, "09:00"))
    assert row["label"] == 0


@pytest.mark.parametrize(("repair_day", "label"), [(100, 0), (220, 1)])
def test_a_delivery_is_scored_a_week_in_and_defects_without_a_repair_order_in_210_days(
    repair_day: int, label: int
) -> None:
    ev = events(
        [
            {"ts": at(0, "12:00"), "event_type": "vehicle_delivery", "event_id": "del-1",
             "vehicle_id": "v-9", "attributes": {"condition": "used"}},
            {"ts": at(1, "09:00"), "event_type": "service_reminder", "channel": "email"},
            {"ts": at(repair_day), "event_type": "repair_order_opened"},
        ]
    )  # fmt: skip
    row = _one(build_instances(ev, "service_defection", as_of=LATER))
    assert row["instance_id"] == "del-1" and row["vehicle_id"] == "v-9"
    assert row["vehicle_condition"] == "used"
    assert row["cutoff_ts"] == pd.Timestamp(at(7, "12:00"))
    assert row["label"] == label


def test_instances_refuse_what_they_cannot_predict_on_by_name() -> None:
    ev = events([{"ts": at(0, "10:00"), "event_type": "lead_form"}])
    with pytest.raises(NoInstancesError, match="lead_leakage: no instance has reached its"):
        build_instances(ev, "lead_leakage", as_of=pd.Timestamp(at(0, "11:00")))
    with pytest.raises(ValueError, match="unknown task 'test_drive'"):
        build_instances(ev, "test_drive", as_of=LATER)  # type: ignore[arg-type]
    with pytest.raises(NoInstancesError, match="lead_leakage: the events table is empty"):
        build_instances(ev.head(0), "lead_leakage")
