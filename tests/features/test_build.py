"""Feature values on hand-written journeys, each worked out by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from cjm_ml.features.build import (
    build_lead_leakage_features,
    build_no_show_features,
    build_service_defection_features,
)
from cjm_ml.features.instances import build_instances
from cjm_ml.params import TASKS
from cjm_ml.registry import FEATURES, check_registry, features_for
from tests.features.journeys import at, events

AS_OF = pd.Timestamp("2026-06-01T00:00:00Z")

LEAD_JOURNEY = [
    # a year earlier: a lead and a missed appointment
    {"ts": at(-365, "10:00"), "event_type": "lead_chat", "channel": "chat"},
    {
        "ts": at(-360, "15:00"),
        "event_type": "appointment_no_show",
        "attributes": {"appointment_id": "a-old"},
    },
    # research before this lead
    {"ts": at(-10, "09:00"), "event_type": "vdp_view", "value": 30000},
    {"ts": at(-3, "09:00"), "event_type": "vdp_view", "value": 31000},
    {"ts": at(-1, "20:00"), "event_type": "payment_calculator", "value": 520},
    {"ts": at(0, "08:00"), "event_type": "trade_in_tool", "value": 12000},
    # the lead at 10:00, cutoff at 12:00
    {
        "ts": at(0, "10:00"),
        "event_type": "lead_form",
        "channel": "web",
        "source": "oem_website",
        "event_id": "lead-1",
    },
    {
        "ts": at(0, "10:00:30"[:5]),
        "event_type": "contact_preferences_set",
        "channel": "sms",
        "value": 12.5,
        "event_id": "pref",
    },
    {
        "ts": at(0, "10:01"),
        "event_type": "crm_task_created",
        "attributes": {"task": "lead_follow_up"},
    },
    {"ts": at(0, "10:40"), "event_type": "sms_sent", "channel": "sms"},
    {"ts": at(0, "10:50"), "event_type": "sms_replied", "channel": "sms"},
    {"ts": at(0, "11:00"), "event_type": "sms_sent", "channel": "sms"},
    {"ts": at(0, "11:10"), "event_type": "outbound_call", "channel": "phone", "value": 0},
    {"ts": at(0, "11:15"), "event_type": "missed_call", "channel": "phone"},
    {"ts": at(0, "11:20"), "event_type": "crm_task_completed"},
    {"ts": at(0, "11:30"), "event_type": "sms_sent", "channel": "sms"},
    # at and after the cutoff: must not count
    {"ts": at(0, "12:00"), "event_type": "outbound_call", "channel": "phone", "value": 300},
    {"ts": at(0, "13:00"), "event_type": "email_sent", "channel": "email"},
    {
        "ts": at(1, "10:00"),
        "event_type": "crm_task_created",
        "attributes": {"task": "trade_in_follow_up"},
    },
]


def _only(table: pd.DataFrame, instance_id: str) -> pd.Series:
    return table.set_index("instance_id").loc[instance_id]


def test_lead_features_by_hand() -> None:
    ev = events(LEAD_JOURNEY)
    inst = build_instances(ev, "lead_leakage", as_of=AS_OF)
    row = _only(build_lead_leakage_features(ev, inst), "lead-1")
    expected = {
        "vdp_views_7d": 1.0,  # day -3 is inside the 7 days before 12:00, day -10 is not
        "inventory_searches_7d": 0.0,
        "used_payment_calculator": 1.0,
        "submitted_trade_in": 1.0,
        "online_credit_app": 0.0,
        "lead_type": "form",
        "prior_leads": 1.0,
        "first_response_minutes": 40.0,
        "responded_before_cutoff": 1.0,
        "responded_within_sla": 0.0,  # 40 min against a 15 min standard
        "outbound_calls": 1.0,  # the 12:00 call is at the cutoff, not before it
        "texts_sent": 3.0,
        "emails_sent": 0.0,
        "missed_calls": 1.0,
        "unanswered_texts": 2.0,  # 11:00 and 11:30, after the 10:50 reply
        "customer_engaged": 1.0,
        "crm_tasks_open": 0.0,
        "trade_in_without_follow_up": 1.0,  # the follow-up task came a day later
        "credit_app_without_next_step": 0.0,
        "prior_no_shows": 1.0,
        "distance_to_rooftop_km": 12.5,
        "preferred_channel": "sms",
        "rooftop_id": "rt-01",
        "marketing_source": "oem_website",
    }
    assert row[list(expected)].to_dict() == expected
    assert [f.name for f in features_for("lead_leakage")] == list(expected)


def test_unanswered_lead_waits_until_the_cutoff_and_live_call_is_an_instant_reply() -> None:
    ev = events(
        [
            {"ts": at(0, "19:30"), "event_type": "lead_form", "event_id": "late"},
            {"ts": at(1, "09:20"), "event_type": "outbound_call", "value": 90},
            {
                "ts": at(3, "14:00"),
                "event_type": "lead_call",
                "value": 240,
                "event_id": "call",
                "customer_id": "c-2",
            },
        ]
    )
    table = build_lead_leakage_features(ev, build_instances(ev, "lead_leakage", as_of=AS_OF))
    late, call = _only(table, "late"), _only(table, "call")
    assert (late["first_response_minutes"], late["responded_before_cutoff"]) == (120.0, 0.0)
    assert late["preferred_channel"] == "unknown"
    assert pd.isna(late["distance_to_rooftop_km"])
    assert (call["first_response_minutes"], call["responded_within_sla"]) == (0.0, 1.0)
    assert call["customer_engaged"] == 1.0


APPOINTMENT_JOURNEY = [
    {"ts": at(-30, "12:00"), "event_type": "contact_preferences_set", "channel": "sms", "value": 8},
    {
        "ts": at(-20, "12:00"),
        "event_type": "appointment_showed",
        "attributes": {"appointment_id": "a-0"},
    },
    {
        "ts": at(0, "10:00"),
        "event_type": "appointment_set",
        "vehicle_id": "v-9",
        "source": "facebook_ads",
        "value": 125,
        "attributes": {"appointment_id": "a-1", "scheduled_ts": at(5, "15:00")},
    },
    {
        "ts": at(0, "10:05"),
        "event_type": "appointment_confirmation_sent",
        "channel": "sms",
        "attributes": {"appointment_id": "a-1"},
    },
    {
        "ts": at(0, "10:06"),
        "event_type": "appointment_confirmation_sent",
        "channel": "email",
        "attributes": {"appointment_id": "a-other"},
    },
    {"ts": at(0, "10:20"), "event_type": "vehicle_hold_placed", "vehicle_id": "v-9"},
    {"ts": at(-70, "12:00"), "event_type": "email_opened", "channel": "email"},  # > 60 days
    {"ts": at(1, "08:00"), "event_type": "sms_replied", "channel": "sms"},
    {"ts": at(2, "09:00"), "event_type": "maintenance_reminder", "channel": "email"},
    {"ts": at(4, "15:00"), "event_type": "email_opened", "channel": "email"},  # at the cutoff
    {"ts": at(4, "15:00"), "event_type": "vehicle_status_changed", "vehicle_id": "v-9"},
    {
        "ts": at(5, "15:10"),
        "event_type": "appointment_no_show",
        "attributes": {"appointment_id": "a-1"},
    },
]


def test_appointment_features_by_hand() -> None:
    ev = events(APPOINTMENT_JOURNEY)
    inst = build_instances(ev, "no_show", as_of=AS_OF)
    assert _only(inst, "a-1")["cutoff_ts"] == pd.Timestamp(at(4, "15:00"))
    assert _only(inst, "a-1")["label"] == 1
    row = _only(build_no_show_features(ev, inst), "a-1")
    expected = {
        "vdp_views_7d": 0.0,
        "used_payment_calculator": 0.0,
        "submitted_trade_in": 0.0,
        "appointment_kind": "sales",
        "appointment_lead_days": 5 + 5 / 24,
        "rescheduled": 0.0,
        "confirmation_sent": 1.0,
        "confirmation_channel": "sms",  # the email went to another appointment
        "customer_confirmed": 1.0,
        "specific_vehicle": 1.0,
        "vehicle_on_hold": 1.0,
        "vehicle_status_changed": 0.0,  # at the cutoff, not before
        "prior_appointments_kept": 1.0,
        "prior_no_shows": 0.0,
        "owns_vehicle_from_group": 0.0,
        "online_booking_abandons": 0.0,
        "reminder_channel_matches_preference": 0.0,  # email reminder, prefers sms
        "messages_engaged_60d": 1.0,  # the text reply; one open is too old, one at the cutoff
        "distance_to_rooftop_km": 8.0,
        "preferred_channel": "sms",
        # last outreach: the 2-day reminder at 09:00, 2 days 6 hours before the cutoff
        "days_since_last_contact": 2.25,
        "rooftop_id": "rt-01",
        "marketing_source": "facebook_ads",
    }
    assert row[list(expected)].to_dict() == pytest.approx(expected)
    assert [f.name for f in features_for("no_show")] == list(expected)


def test_reschedule_closes_the_booking_as_kept_and_opens_a_new_instance() -> None:
    ev = events(
        [
            {
                "ts": at(0, "09:00"),
                "event_type": "appointment_set",
                "attributes": {"appointment_id": "a-1", "scheduled_ts": at(3, "10:00")},
            },
            {
                "ts": at(2, "12:00"),
                "event_type": "appointment_rescheduled",
                "attributes": {
                    "appointment_id": "a-2",
                    "scheduled_ts": at(2, "16:00"),
                    "rescheduled_from": "a-1",
                },
            },
            {
                "ts": at(2, "16:20"),
                "event_type": "appointment_no_show",
                "attributes": {"appointment_id": "a-2"},
            },
            {
                "ts": at(4, "09:00"),
                "event_type": "service_appointment_set",
                "attributes": {"appointment_id": "a-3", "scheduled_ts": at(9, "09:00")},
            },
        ]
    )
    inst = build_instances(ev, "no_show", as_of=pd.Timestamp(at(8, "12:00")))
    got = inst.set_index("instance_id")[["label", "cutoff_ts", "appointment_kind"]]
    assert got["label"].astype("object").where(got["label"].notna(), None).to_dict() == {
        "a-1": 0,
        "a-2": 1,
        "a-3": None,
    }
    # booked 4 hours ahead: the prediction moment is the booking itself
    assert got.loc["a-2", "cutoff_ts"] == pd.Timestamp(at(2, "12:00"))
    assert got.loc["a-3", "appointment_kind"] == "service"


DELIVERY_JOURNEY = [
    {"ts": at(-400, "10:00"), "event_type": "repair_order_opened", "attributes": {"ro_id": "ro-0"}},
    {
        "ts": at(-200, "10:00"),
        "event_type": "contact_preferences_set",
        "channel": "sms",
        "value": 40,
    },
    {
        "ts": at(0, "12:00"),
        "event_type": "vehicle_delivery",
        "event_id": "d-1",
        "source": "referral",
        "attributes": {"condition": "used"},
    },
    {"ts": at(0, "12:30"), "event_type": "delivery_education"},
    {
        "ts": at(0, "12:40"),
        "event_type": "service_appointment_set",
        "attributes": {"appointment_id": "a-9", "scheduled_ts": at(150, "09:00")},
    },
    {
        "ts": at(2, "10:00"),
        "event_type": "csi_survey",
        "value": 6,
        "attributes": {"survey": "sales"},
    },
    {"ts": at(-3, "10:00"), "event_type": "sms_replied", "channel": "sms"},  # before delivery
    {"ts": at(3, "10:00"), "event_type": "service_reminder", "channel": "sms"},
    {"ts": at(3, "13:00"), "event_type": "sms_replied", "channel": "sms"},
    {"ts": at(4, "10:00"), "event_type": "recall_notice", "channel": "mail"},
    {"ts": at(10, "10:00"), "event_type": "repair_order_opened", "attributes": {"ro_id": "ro-1"}},
]


def test_delivery_features_by_hand() -> None:
    ev = events(DELIVERY_JOURNEY)
    inst = build_instances(ev, "service_defection", as_of=AS_OF)
    assert _only(inst, "d-1")["label"] == 0  # a repair order on day 10
    row = _only(build_service_defection_features(ev, inst), "d-1")
    expected = {
        "prior_no_shows": 0.0,
        "online_booking_abandons": 0.0,
        "reminder_channel_matches_preference": 1.0,
        "delivery_education_done": 1.0,
        "first_service_booked_at_delivery": 1.0,
        "open_recall": 1.0,  # the repair order after it is past the cutoff
        "welcome_message_engaged": 1.0,  # the reply on day 3, not the one before delivery
        "sales_csi_score": 6.0,
        "used_vehicle": 1.0,
        "prior_service_visits": 1.0,
        "distance_to_rooftop_km": 40.0,
        "preferred_channel": "sms",
        "days_since_last_contact": 3 + 2 / 24,  # recall notice day 4 10:00 -> day 7 12:00
        "rooftop_id": "rt-01",
        "marketing_source": "referral",
    }
    assert row[list(expected)].to_dict() == pytest.approx(expected)
    assert [f.name for f in features_for("service_defection")] == list(expected)


def test_every_feature_is_registered_with_a_stage_and_a_one_line_description() -> None:
    check_registry()
    assert len({f.name for f in FEATURES}) == len(FEATURES)
    for f in FEATURES:
        assert f.description and "\n" not in f.description
    for task in TASKS:
        assert features_for(task), task


def test_instances_missing_columns_are_refused_by_name() -> None:
    ev = events(LEAD_JOURNEY)
    inst = build_instances(ev, "lead_leakage", as_of=AS_OF).drop(columns=["lead_type"])
    with pytest.raises(
        ValueError, match="lead_leakage instances are missing column\\(s\\): lead_type"
    ):
        build_lead_leakage_features(ev, inst)
