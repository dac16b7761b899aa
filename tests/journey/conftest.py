"""Hand-made journeys shared by the journey-map tests (exact values are worked out by hand in
the tests that use them)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from tests.features.journeys import at, events


def _booking(appointment_id: str, scheduled: str, **more: str) -> dict[str, str]:
    return {"appointment_id": appointment_id, "scheduled_ts": scheduled, **more}


def _rows(customer: str, rooftop: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"customer_id": customer, "rooftop_id": rooftop, **r} for r in rows]


@pytest.fixture(scope="session")
def funnel_journeys() -> pd.DataFrame:
    """Four customers: a buyer, a lead that stops after the reply, a walk-in, a service owner."""
    return events(
        _rows(
            "c-1",
            "rt-01",
            [
                {"ts": at(0, "09:00"), "event_type": "vdp_view"},
                {"ts": at(0, "09:01"), "event_type": "contact_preferences_set"},
                {"ts": at(0, "10:00"), "event_type": "lead_form"},
                {"ts": at(0, "10:01"), "event_type": "crm_task_created"},
                {"ts": at(0, "10:30"), "event_type": "outbound_call", "value": 60},
                {
                    "ts": at(1, "10:30"),
                    "event_type": "appointment_set",
                    "attributes": _booking("a-1", at(3, "10:30")),
                },
                {
                    "ts": at(3, "10:30"),
                    "event_type": "appointment_showed",
                    "attributes": {"appointment_id": "a-1"},
                },
                {"ts": at(3, "10:40"), "event_type": "showroom_visit"},
                {"ts": at(3, "12:40"), "event_type": "credit_application"},
                {"ts": at(4, "12:40"), "event_type": "vehicle_delivery"},
                {"ts": at(4, "13:00"), "event_type": "service_reminder"},
                {"ts": at(34, "12:40"), "event_type": "repair_order_opened"},
            ],
        )
        + _rows(
            "c-2",
            "rt-01",
            [
                {"ts": at(0, "09:00"), "event_type": "inventory_search"},
                {"ts": at(1, "09:00"), "event_type": "lead_call", "value": 0},
                {"ts": at(1, "09:01"), "event_type": "crm_task_created"},
                {"ts": at(1, "09:30"), "event_type": "sms_sent"},
            ],
        )
        + _rows(
            "c-3",
            "rt-01",
            [
                {"ts": at(2, "10:00"), "event_type": "lead_chat"},
                {"ts": at(2, "12:00"), "event_type": "email_sent"},
                {"ts": at(5, "12:00"), "event_type": "showroom_visit"},
            ],
        )
        + _rows(
            "c-4",
            "rt-02",
            [
                {
                    "ts": at(10, "09:00"),
                    "event_type": "service_appointment_set",
                    "attributes": _booking("a-2", at(12, "09:00")),
                },
                {
                    "ts": at(11, "09:00"),
                    "event_type": "appointment_rescheduled",
                    "attributes": _booking("a-3", at(13, "09:00"), rescheduled_from="a-2"),
                },
                {
                    "ts": at(13, "09:00"),
                    "event_type": "appointment_showed",
                    "attributes": {"appointment_id": "a-3"},
                },
                {"ts": at(13, "09:10"), "event_type": "repair_order_opened"},
            ],
        )
    )


@pytest.fixture(scope="session")
def lead_journeys() -> pd.DataFrame:
    """Leads at two rooftops: rt-01 answers fast and sells; rt-02 answers slowly or never."""
    return events(
        _rows(
            "c-a",
            "rt-01",
            [
                {"ts": at(0, "10:00"), "event_type": "lead_form", "source": "google_paid_search"},
                {"ts": at(0, "10:05"), "event_type": "outbound_call", "value": 60},
                {
                    "ts": at(1, "10:00"),
                    "event_type": "appointment_set",
                    "attributes": _booking("a-1", at(3, "10:00")),
                },
                {
                    "ts": at(3, "10:00"),
                    "event_type": "appointment_showed",
                    "attributes": {"appointment_id": "a-1"},
                },
                {"ts": at(3, "10:10"), "event_type": "showroom_visit"},
                {
                    "ts": at(5, "12:00"),
                    "event_type": "vehicle_delivery",
                    "source": "google_paid_search",
                    "value": 30000,
                    "attributes": {"condition": "new"},
                },
                {"ts": at(5, "12:30"), "event_type": "delivery_education", "value": 30},
                {
                    "ts": at(5, "12:40"),
                    "event_type": "service_appointment_set",
                    "attributes": _booking("a-10", at(100, "09:00")),
                },
                {"ts": at(6, "09:00"), "event_type": "csi_survey", "value": 9},
                {"ts": at(8, "09:00"), "event_type": "service_reminder"},
                {
                    "ts": at(100, "09:00"),
                    "event_type": "appointment_showed",
                    "attributes": {"appointment_id": "a-10"},
                },
                {"ts": at(100, "09:05"), "event_type": "repair_order_opened"},
                {"ts": at(100, "10:00"), "event_type": "mpi_sent", "value": 400},
                {"ts": at(100, "15:00"), "event_type": "repair_order_closed", "value": 250},
                {"ts": at(240, "09:00"), "event_type": "maintenance_reminder"},
            ],
        )
        + _rows(
            "c-b",
            "rt-01",
            [
                {
                    "ts": at(2, "10:00"),
                    "event_type": "lead_call",
                    "source": "google_paid_search",
                    "value": 0,
                },
                {"ts": at(2, "10:10"), "event_type": "sms_sent"},
                {
                    "ts": at(3, "09:00"),
                    "event_type": "appointment_set",
                    "attributes": _booking("a-2", at(4, "10:00")),
                },
                {
                    "ts": at(4, "10:00"),
                    "event_type": "appointment_no_show",
                    "attributes": {"appointment_id": "a-2"},
                },
                # a service visit for a car bought elsewhere: not a show of the sales lead
                {
                    "ts": at(10, "09:00"),
                    "event_type": "service_appointment_set",
                    "attributes": _booking("a-3", at(12, "09:00")),
                },
                {
                    "ts": at(12, "09:00"),
                    "event_type": "appointment_showed",
                    "attributes": {"appointment_id": "a-3"},
                },
            ],
        )
        + _rows(
            "c-c",
            "rt-02",
            [
                {"ts": at(0, "11:00"), "event_type": "lead_chat", "source": "facebook_ads"},
                {"ts": at(0, "12:00"), "event_type": "email_sent"},
                {
                    "ts": at(2, "12:00"),
                    "event_type": "appointment_set",
                    "attributes": _booking("a-4", at(4, "12:00")),
                },
                {
                    "ts": at(4, "12:00"),
                    "event_type": "appointment_no_show",
                    "attributes": {"appointment_id": "a-4"},
                },
            ],
        )
        + _rows("c-d", "rt-02", [{"ts": at(1, "09:00"), "event_type": "lead_form"}])
        + _rows(
            "c-e",
            "rt-02",
            [
                {
                    "ts": at(20, "12:00"),
                    "event_type": "vehicle_delivery",
                    "value": 25000,
                    "attributes": {"condition": "used"},
                },
                {"ts": at(22, "12:00"), "event_type": "csi_survey", "value": 6},
                {"ts": at(25, "09:00"), "event_type": "service_reminder"},
            ],
        )
    )


@pytest.fixture(scope="session")
def trade_in_journeys() -> pd.DataFrame:
    """Three shoppers submit a trade-in; one more customer marks the end of the data."""
    return events(
        _rows(
            "c-1",
            "rt-01",
            [
                {"ts": at(0, "09:00"), "event_type": "vdp_view"},
                {"ts": at(0, "09:05"), "event_type": "vdp_view"},
                {"ts": at(0, "09:06"), "event_type": "contact_preferences_set"},
                {"ts": at(0, "09:10"), "event_type": "trade_in_tool", "value": 9000},
                {"ts": at(0, "09:11"), "event_type": "crm_task_created"},
                {"ts": at(0, "09:40"), "event_type": "outbound_call", "value": 0},
            ],
        )
        + _rows(
            "c-2",
            "rt-01",
            [
                {"ts": at(1, "09:00"), "event_type": "trade_in_tool", "value": 7000},
                {"ts": at(1, "11:00"), "event_type": "outbound_call", "value": 30},
            ],
        )
        + _rows("c-3", "rt-02", [{"ts": at(2, "09:00"), "event_type": "trade_in_tool"}])
        + _rows(
            "c-4",
            "rt-02",
            [
                {"ts": at(0, "09:00"), "event_type": "vehicle_delivery", "value": 20000},
                {"ts": at(150, "09:00"), "event_type": "maintenance_reminder"},
                {"ts": at(200, "09:00"), "event_type": "vdp_view"},
            ],
        )
        + _rows(
            "c-5",
            "rt-02",
            [
                {"ts": at(3, "09:00"), "event_type": "vehicle_delivery", "value": 20000},
                {"ts": at(90, "09:00"), "event_type": "maintenance_reminder"},
            ],
        )
    )
