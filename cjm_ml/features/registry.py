"""The feature registry: every model feature with its journey stage, unit and meaning.

Later parts turn SHAP values into dealer language from this registry, so each entry says what
the value means to a dealer and whether the dealer can act on it (a friction) or not (context).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cjm_ml.events import catalogue
from cjm_ml.params import Task

Unit = Literal["minutes", "days", "count", "km", "flag", "category", "score"]


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: name, stage, the touchpoint it reads, unit, meaning, and actionability."""

    name: str
    stage: str
    touchpoint: str | None
    unit: Unit
    description: str
    actionable: bool
    tasks: tuple[Task, ...]


_ALL: tuple[Task, ...] = ("lead_leakage", "no_show", "service_defection")
_LEAD: tuple[Task, ...] = ("lead_leakage",)
_APPT: tuple[Task, ...] = ("no_show",)
_SVC: tuple[Task, ...] = ("service_defection",)

FEATURES: tuple[FeatureSpec, ...] = (
    # --- research
    FeatureSpec(
        "vdp_views_7d",
        "research",
        "vdp_view",
        "count",
        "vehicle detail pages viewed in the 7 days before the prediction",
        False,
        ("lead_leakage", "no_show"),
    ),
    FeatureSpec(
        "inventory_searches_7d",
        "research",
        "inventory_search",
        "count",
        "inventory searches in the 7 days before the prediction",
        False,
        _LEAD,
    ),
    FeatureSpec(
        "used_payment_calculator",
        "research",
        "payment_calculator",
        "flag",
        "used the payment calculator in the last 30 days",
        False,
        ("lead_leakage", "no_show"),
    ),
    FeatureSpec(
        "submitted_trade_in",
        "research",
        "trade_in_tool",
        "flag",
        "submitted the trade-in value tool in the last 30 days",
        False,
        ("lead_leakage", "no_show"),
    ),
    FeatureSpec(
        "online_credit_app",
        "credit_fi",
        "credit_application",
        "flag",
        "sent a credit application in the last 30 days",
        False,
        _LEAD,
    ),
    # --- lead intake
    FeatureSpec(
        "lead_type",
        "lead_intake",
        None,
        "category",
        "how the lead came in: form, call, chat or third_party",
        False,
        _LEAD,
    ),
    FeatureSpec(
        "prior_leads",
        "lead_intake",
        None,
        "count",
        "leads this customer sent before this one",
        False,
        _LEAD,
    ),
    # --- response and follow-up
    FeatureSpec(
        "first_response_minutes",
        "response",
        "outbound_call",
        "minutes",
        "minutes from the lead to the first reply (or the wait so far, if none yet)",
        True,
        _LEAD,
    ),
    FeatureSpec(
        "responded_before_cutoff",
        "response",
        "outbound_call",
        "flag",
        "the BDC had replied by the prediction moment",
        True,
        _LEAD,
    ),
    FeatureSpec(
        "responded_within_sla",
        "response",
        "outbound_call",
        "flag",
        "the first reply came within the group's response standard",
        True,
        _LEAD,
    ),
    FeatureSpec(
        "outbound_calls",
        "response",
        "outbound_call",
        "count",
        "calls made to the customer since the lead",
        True,
        _LEAD,
    ),
    FeatureSpec(
        "texts_sent",
        "response",
        "sms_sent",
        "count",
        "texts sent to the customer since the lead",
        True,
        _LEAD,
    ),
    FeatureSpec(
        "emails_sent",
        "response",
        "email_sent",
        "count",
        "emails sent to the customer since the lead",
        True,
        _LEAD,
    ),
    FeatureSpec(
        "missed_calls",
        "response",
        "missed_call",
        "count",
        "calls from the customer nobody picked up, since the lead",
        True,
        _LEAD,
    ),
    FeatureSpec(
        "unanswered_texts",
        "response",
        "sms_sent",
        "count",
        "texts sent since the customer last replied",
        False,
        _LEAD,
    ),
    FeatureSpec(
        "customer_engaged",
        "response",
        "sms_replied",
        "flag",
        "the customer talked, replied or opened an email since the lead",
        False,
        _LEAD,
    ),
    FeatureSpec(
        "crm_tasks_open",
        "response",
        "crm_task_created",
        "count",
        "CRM tasks created since the lead and not yet completed",
        True,
        _LEAD,
    ),
    FeatureSpec(
        "trade_in_without_follow_up",
        "response",
        "crm_task_created",
        "flag",
        "a trade-in submission with no follow-up task yet",
        True,
        _LEAD,
    ),
    FeatureSpec(
        "credit_app_without_next_step",
        "response",
        "crm_task_created",
        "flag",
        "a credit application with no follow-up task or appointment yet",
        True,
        _LEAD,
    ),
    # --- appointment
    FeatureSpec(
        "appointment_kind",
        "appointment",
        None,
        "category",
        "sales or service appointment",
        False,
        _APPT,
    ),
    FeatureSpec(
        "appointment_lead_days",
        "appointment",
        "appointment_set",
        "days",
        "days between booking and the appointment",
        False,
        _APPT,
    ),
    FeatureSpec(
        "rescheduled",
        "appointment",
        "appointment_rescheduled",
        "flag",
        "this booking replaced an earlier appointment time",
        False,
        _APPT,
    ),
    FeatureSpec(
        "confirmation_sent",
        "appointment",
        "appointment_confirmation_sent",
        "flag",
        "a confirmation was sent for this appointment",
        True,
        _APPT,
    ),
    FeatureSpec(
        "confirmation_channel",
        "appointment",
        "appointment_confirmation_sent",
        "category",
        "how the confirmation went out: sms, email or none",
        True,
        _APPT,
    ),
    FeatureSpec(
        "customer_confirmed",
        "appointment",
        "sms_replied",
        "flag",
        "the customer replied by text since booking",
        False,
        _APPT,
    ),
    FeatureSpec(
        "specific_vehicle",
        "appointment",
        "vdp_view",
        "flag",
        "the appointment is about a specific vehicle",
        False,
        _APPT,
    ),
    FeatureSpec(
        "vehicle_on_hold",
        "appointment",
        "vehicle_hold_placed",
        "flag",
        "the vehicle was put on hold for the visit",
        True,
        _APPT,
    ),
    FeatureSpec(
        "vehicle_status_changed",
        "appointment",
        "vehicle_status_changed",
        "flag",
        "the vehicle was sold or moved since booking",
        True,
        _APPT,
    ),
    FeatureSpec(
        "prior_appointments_kept",
        "appointment",
        "appointment_showed",
        "count",
        "appointments this customer kept before",
        False,
        _APPT,
    ),
    FeatureSpec(
        "prior_no_shows",
        "appointment",
        "appointment_no_show",
        "count",
        "appointments this customer missed before",
        False,
        _ALL,
    ),
    # --- service and ownership
    FeatureSpec(
        "owns_vehicle_from_group",
        "delivery",
        "vehicle_delivery",
        "flag",
        "bought a vehicle from the group before",
        False,
        _APPT,
    ),
    FeatureSpec(
        "online_booking_abandons",
        "service",
        "online_scheduling",
        "count",
        "online service bookings started and abandoned recently",
        True,
        ("no_show", "service_defection"),
    ),
    FeatureSpec(
        "reminder_channel_matches_preference",
        "service",
        "service_reminder",
        "flag",
        "the last service reminder went out on the customer's preferred channel",
        True,
        ("no_show", "service_defection"),
    ),
    FeatureSpec(
        "messages_engaged_60d",
        "response",
        "sms_replied",
        "count",
        "texts replied to and emails opened in the 60 days before the prediction",
        False,
        _APPT,
    ),
    FeatureSpec(
        "delivery_education_done",
        "delivery",
        "delivery_education",
        "flag",
        "the vehicle's features were explained at delivery",
        True,
        _SVC,
    ),
    FeatureSpec(
        "first_service_booked_at_delivery",
        "delivery",
        "service_appointment_set",
        "flag",
        "the first service appointment was booked at delivery",
        True,
        _SVC,
    ),
    FeatureSpec(
        "open_recall",
        "service",
        "recall_notice",
        "flag",
        "a recall notice is open with no repair order since",
        True,
        _SVC,
    ),
    FeatureSpec(
        "welcome_message_engaged",
        "service",
        "sms_replied",
        "flag",
        "the owner replied to or opened the welcome-to-service message since delivery",
        False,
        _SVC,
    ),
    FeatureSpec(
        "sales_csi_score",
        "csi",
        "csi_survey",
        "score",
        "the customer's sales satisfaction score (0-10), if answered",
        False,
        _SVC,
    ),
    FeatureSpec(
        "used_vehicle",
        "delivery",
        "vehicle_delivery",
        "flag",
        "the vehicle bought was used",
        False,
        _SVC,
    ),
    FeatureSpec(
        "prior_service_visits",
        "service",
        "repair_order_opened",
        "count",
        "repair orders this customer had before",
        False,
        _SVC,
    ),
    # --- context
    FeatureSpec(
        "distance_to_rooftop_km",
        "lead_intake",
        "contact_preferences_set",
        "km",
        "distance from the customer's home to the rooftop",
        False,
        _ALL,
    ),
    FeatureSpec(
        "preferred_channel",
        "lead_intake",
        "contact_preferences_set",
        "category",
        "the customer's preferred contact channel",
        False,
        _ALL,
    ),
    FeatureSpec(
        "days_since_last_contact",
        "response",
        None,
        "days",
        "days since the dealer last reached out",
        True,
        ("no_show", "service_defection"),
    ),
    FeatureSpec("rooftop_id", "lead_intake", None, "category", "the rooftop", False, _ALL),
    FeatureSpec(
        "marketing_source",
        "research",
        None,
        "category",
        "the marketing source or campaign",
        False,
        _ALL,
    ),
)

_BY_NAME = {f.name: f for f in FEATURES}


def feature_spec(name: str) -> FeatureSpec:
    """The registry entry of a feature; raises KeyError naming the unknown feature."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown feature {name!r}") from None


def features_for(task: Task) -> list[FeatureSpec]:
    """The task's features, in registry order (which is the feature table's column order)."""
    return [f for f in FEATURES if task in f.tasks]


def check_registry() -> None:
    """Refuse a registry entry whose stage or touchpoint is not in the journey catalogue."""
    cat = catalogue()
    for f in FEATURES:
        cat.stage(f.stage)
        if f.touchpoint is not None:
            cat.event_type(f.touchpoint)
