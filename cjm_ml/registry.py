"""The feature registry: every model feature with its journey stage, unit and meaning.

The explanations (``cjm_ml.explain``) turn SHAP values into dealer language from this
registry alone: each entry says how its value reads in a sentence (``Wording``), what it is
compared with (the group's standard or typical value), whether the dealer can act on it, and if
so which friction it expresses (``FrictionSpec``) and what its value would be once that friction
is removed (``Fix``, for the what-if). Features the dealer cannot act on are context.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Literal

from cjm_ml.events import catalogue
from cjm_ml.params import Task

Unit = Literal["minutes", "days", "count", "km", "flag", "category", "score"]
#: Where a feature's comparison value comes from: the group's median or share (of a flag) in
#: the data, or the group's response standard (``TaskParams.response_sla_minutes``).
Norm = Literal["median", "share", "sla"]


@dataclass(frozen=True)
class Wording:
    """How a feature reads in a driver sentence.

    Templates are ``str.format`` strings whose fields are ``value`` (this feature's value in
    dealer terms: "3 h 10 min", "9 days", "2 texts", "48 km"), ``standard`` (the group's norm in
    the same terms) or the name of another feature of the same task (its value in dealer terms).
    ``says`` reads the value (for a flag: the value 1); ``zero`` reads a flag's 0 or a count's 0;
    ``unknown`` reads a missing value; ``when`` = (feature, value, template) replaces ``says`` and
    ``zero`` where that other feature has that value; ``standard`` is the comparison appended
    after a semicolon. ``noun`` is a count's (singular, plural); ``levels`` maps a category's
    values to words (other values read with underscores as spaces).
    """

    label: str
    says: str
    zero: str = ""
    unknown: str = ""
    standard: str = ""
    norm: Norm | None = None
    noun: tuple[str, str] = ("", "")
    levels: tuple[tuple[str, str], ...] = ()
    when: tuple[str, float, str] | None = None


@dataclass(frozen=True)
class Fix:
    """A feature's value once its friction is removed (the what-if): ``set`` to ``value``,
    or ``at_most`` / ``at_least`` ``value`` (``None``: the feature's group norm). ``only_when``
    = (feature, value) limits the fix to instances where that feature has that value (a hold
    only for a specific vehicle). A missing value stays missing: a friction nobody can see is
    not there to fix."""

    kind: Literal["set", "at_most", "at_least"]
    value: float | str | None = None
    only_when: tuple[str, float] | None = None


@dataclass(frozen=True)
class FrictionSpec:
    """A process friction the dealer can fix: its name (the simulator's causal term where
    there is one), its label in dealer language, and where in the journey it sits."""

    name: str
    label: str
    stage: str
    touchpoint: str | None


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: name, stage, the touchpoint it reads, unit, meaning, actionability, how
    it reads in a sentence, the friction it expresses and its value once that is fixed."""

    name: str
    stage: str
    touchpoint: str | None
    unit: Unit
    description: str
    actionable: bool
    tasks: tuple[Task, ...]
    wording: Wording | None = None
    friction: str | None = None
    fix: Fix | None = None


_ALL: tuple[Task, ...] = ("lead_leakage", "no_show", "service_defection")
_LEAD: tuple[Task, ...] = ("lead_leakage",)
_APPT: tuple[Task, ...] = ("no_show",)
_SVC: tuple[Task, ...] = ("service_defection",)

FRICTION_SPECS: tuple[FrictionSpec, ...] = (
    FrictionSpec(
        "slow_first_response", "Slow first reply to the lead", "response", "outbound_call"
    ),
    FrictionSpec(
        "no_trade_credit_follow_up",
        "Trade-in or credit application not followed up",
        "response",
        "crm_task_created",
    ),
    FrictionSpec("open_crm_tasks", "CRM follow-up tasks left open", "response", "crm_task_created"),
    FrictionSpec(
        "no_confirmation",
        "Appointment not confirmed",
        "appointment",
        "appointment_confirmation_sent",
    ),
    FrictionSpec(
        "no_vehicle_hold", "Vehicle not held for the visit", "appointment", "vehicle_hold_placed"
    ),
    FrictionSpec(
        "vehicle_status_changed",
        "Vehicle sold or moved before the visit",
        "appointment",
        "vehicle_status_changed",
    ),
    FrictionSpec(
        "reminder_channel_mismatch",
        "Service reminder on the wrong channel",
        "service",
        "service_reminder",
    ),
    FrictionSpec(
        "online_booking_friction",
        "Online service booking abandoned",
        "service",
        "online_scheduling",
    ),
    FrictionSpec(
        "first_service_not_booked",
        "First service not booked at delivery",
        "delivery",
        "service_appointment_set",
    ),
    FrictionSpec(
        "no_delivery_education",
        "No feature walkthrough at delivery",
        "delivery",
        "delivery_education",
    ),
    FrictionSpec("open_recall", "Open recall not yet repaired", "service", "recall_notice"),
)

_SOURCES = (
    ("google_paid_search", "Google paid search"),
    ("oem_website", "the OEM website"),
    ("dealer_website_organic", "the dealer website (organic)"),
    ("facebook_ads", "Facebook ads"),
    ("autotrader", "Autotrader"),
    ("cars_com", "Cars.com"),
    ("email_campaign", "an email campaign"),
    ("referral", "a referral"),
)
_CHANNELS = (("sms", "text"), ("email", "email"), ("phone", "phone"))
_REPLY = "first reply took {first_response_minutes}"
_NO_REPLY = "no reply yet after {first_response_minutes}"

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
        Wording(
            "Vehicle pages viewed",
            "viewed {value} in the last 7 days",
            zero="no vehicle page viewed in the last 7 days",
            unknown="vehicle page views unknown",
            noun=("vehicle page", "vehicle pages"),
        ),
    ),
    FeatureSpec(
        "inventory_searches_7d",
        "research",
        "inventory_search",
        "count",
        "inventory searches in the 7 days before the prediction",
        False,
        _LEAD,
        Wording(
            "Inventory searches",
            "ran {value} in the last 7 days",
            zero="no inventory search in the last 7 days",
            unknown="inventory searches unknown",
            noun=("inventory search", "inventory searches"),
        ),
    ),
    FeatureSpec(
        "used_payment_calculator",
        "research",
        "payment_calculator",
        "flag",
        "used the payment calculator in the last 30 days",
        False,
        ("lead_leakage", "no_show"),
        Wording(
            "Payment calculator",
            "used the payment calculator in the last 30 days",
            zero="did not use the payment calculator in the last 30 days",
            unknown="payment calculator use unknown",
        ),
    ),
    FeatureSpec(
        "submitted_trade_in",
        "research",
        "trade_in_tool",
        "flag",
        "submitted the trade-in value tool in the last 30 days",
        False,
        ("lead_leakage", "no_show"),
        Wording(
            "Online trade-in request",
            "asked for a trade-in value online in the last 30 days",
            zero="no online trade-in request in the last 30 days",
            unknown="online trade-in request unknown",
        ),
    ),
    FeatureSpec(
        "online_credit_app",
        "credit_fi",
        "credit_application",
        "flag",
        "sent a credit application in the last 30 days",
        False,
        _LEAD,
        Wording(
            "Credit application",
            "sent a credit application in the last 30 days",
            zero="no credit application in the last 30 days",
            unknown="credit application unknown",
        ),
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
        Wording(
            "How the lead came in",
            "the lead came in through {value}",
            unknown="how the lead came in is unknown",
            levels=(
                ("form", "a web form"),
                ("call", "a phone call"),
                ("chat", "chat"),
                ("third_party", "a third-party site"),
            ),
        ),
    ),
    FeatureSpec(
        "prior_leads",
        "lead_intake",
        None,
        "count",
        "leads this customer sent before this one",
        False,
        _LEAD,
        Wording(
            "Earlier leads",
            "sent {value} before this one",
            zero="first lead from this customer",
            unknown="earlier leads unknown",
            noun=("earlier lead", "earlier leads"),
        ),
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
        Wording(
            "First reply time",
            "first reply took {value}",
            unknown="first reply time unknown",
            standard="the group standard is {standard}",
            norm="sla",
            when=("responded_before_cutoff", 0.0, "no reply yet after {value}"),
        ),
        friction="slow_first_response",
        fix=Fix("at_most"),
    ),
    FeatureSpec(
        "responded_before_cutoff",
        "response",
        "outbound_call",
        "flag",
        "the BDC had replied by the prediction moment",
        True,
        _LEAD,
        Wording(
            "Reply by now",
            _REPLY,
            zero=_NO_REPLY,
            unknown="whether the BDC has replied is unknown",
            standard="the group standard is {standard}",
            norm="sla",
        ),
        friction="slow_first_response",
        fix=Fix("set", 1.0),
    ),
    FeatureSpec(
        "responded_within_sla",
        "response",
        "outbound_call",
        "flag",
        "the first reply came within the group's response standard",
        True,
        _LEAD,
        Wording(
            "Reply within the standard",
            _REPLY + ", within the group standard of {standard}",
            zero=_REPLY + ", beyond the group standard of {standard}",
            unknown="whether the reply met the group standard is unknown",
            norm="sla",
            when=("responded_before_cutoff", 0.0, _NO_REPLY + "; the group standard is {standard}"),
        ),
        friction="slow_first_response",
        fix=Fix("set", 1.0),
    ),
    FeatureSpec(
        "outbound_calls",
        "response",
        "outbound_call",
        "count",
        "calls made to the customer since the lead",
        True,
        _LEAD,
        Wording(
            "Calls to the customer",
            "{value} made to the customer since the lead",
            zero="no call made to the customer since the lead",
            unknown="calls to the customer unknown",
            noun=("call", "calls"),
        ),
        friction="slow_first_response",
    ),
    FeatureSpec(
        "texts_sent",
        "response",
        "sms_sent",
        "count",
        "texts sent to the customer since the lead",
        True,
        _LEAD,
        Wording(
            "Texts to the customer",
            "{value} sent to the customer since the lead",
            zero="no text sent to the customer since the lead",
            unknown="texts to the customer unknown",
            noun=("text", "texts"),
        ),
        friction="slow_first_response",
    ),
    FeatureSpec(
        "emails_sent",
        "response",
        "email_sent",
        "count",
        "emails sent to the customer since the lead",
        True,
        _LEAD,
        Wording(
            "Emails to the customer",
            "{value} sent to the customer since the lead",
            zero="no email sent to the customer since the lead",
            unknown="emails to the customer unknown",
            noun=("email", "emails"),
        ),
        friction="slow_first_response",
    ),
    FeatureSpec(
        "missed_calls",
        "response",
        "missed_call",
        "count",
        "calls from the customer nobody picked up, since the lead",
        True,
        _LEAD,
        Wording(
            "Missed customer calls",
            "{value} from the customer nobody picked up",
            zero="no call from the customer went unanswered",
            unknown="missed customer calls unknown",
            noun=("call", "calls"),
        ),
        friction="slow_first_response",
        fix=Fix("set", 0.0),
    ),
    FeatureSpec(
        "unanswered_texts",
        "response",
        "sms_sent",
        "count",
        "texts sent since the customer last replied",
        False,
        _LEAD,
        Wording(
            "Unanswered texts",
            "{value} sent since the customer last replied",
            zero="no text waiting for the customer's reply",
            unknown="unanswered texts unknown",
            noun=("text", "texts"),
        ),
    ),
    FeatureSpec(
        "customer_engaged",
        "response",
        "sms_replied",
        "flag",
        "the customer talked, replied or opened an email since the lead",
        False,
        _LEAD,
        Wording(
            "Customer engaged",
            "the customer talked, replied or opened an email since the lead",
            zero="the customer has not talked, replied or opened an email since the lead",
            unknown="customer engagement unknown",
        ),
    ),
    FeatureSpec(
        "crm_tasks_open",
        "response",
        "crm_task_created",
        "count",
        "CRM tasks created since the lead and not yet completed",
        True,
        _LEAD,
        Wording(
            "Open CRM tasks",
            "{value} still open since the lead",
            zero="no CRM task left open",
            unknown="open CRM tasks unknown",
            noun=("CRM task", "CRM tasks"),
        ),
        friction="open_crm_tasks",
        fix=Fix("set", 0.0),
    ),
    FeatureSpec(
        "trade_in_without_follow_up",
        "response",
        "crm_task_created",
        "flag",
        "a trade-in submission with no follow-up task yet",
        True,
        _LEAD,
        Wording(
            "Trade-in not followed up",
            "the customer's trade-in request has no follow-up task yet",
            zero="no trade-in request waiting for follow-up",
            unknown="trade-in follow-up unknown",
        ),
        friction="no_trade_credit_follow_up",
        fix=Fix("set", 0.0),
    ),
    FeatureSpec(
        "credit_app_without_next_step",
        "response",
        "crm_task_created",
        "flag",
        "a credit application with no follow-up task or appointment yet",
        True,
        _LEAD,
        Wording(
            "Credit application not followed up",
            "the customer's credit application has no follow-up task or appointment yet",
            zero="no credit application waiting for a next step",
            unknown="credit application follow-up unknown",
        ),
        friction="no_trade_credit_follow_up",
        fix=Fix("set", 0.0),
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
        Wording(
            "Appointment kind",
            "a {value} appointment",
            unknown="appointment kind unknown",
            levels=(("sales", "sales"), ("service", "service")),
        ),
    ),
    FeatureSpec(
        "appointment_lead_days",
        "appointment",
        "appointment_set",
        "days",
        "days between booking and the appointment",
        False,
        _APPT,
        Wording(
            "Booked ahead",
            "booked {value} ahead",
            unknown="booking lead time unknown",
            standard="the group's median is {standard}",
            norm="median",
        ),
    ),
    FeatureSpec(
        "rescheduled",
        "appointment",
        "appointment_rescheduled",
        "flag",
        "this booking replaced an earlier appointment time",
        False,
        _APPT,
        Wording(
            "Rescheduled",
            "this booking replaced an earlier appointment time",
            zero="a first booking, not a reschedule",
            unknown="whether it was rescheduled is unknown",
        ),
    ),
    FeatureSpec(
        "confirmation_sent",
        "appointment",
        "appointment_confirmation_sent",
        "flag",
        "a confirmation was sent for this appointment",
        True,
        _APPT,
        Wording(
            "Confirmation sent",
            "confirmation sent by {confirmation_channel} for an appointment booked "
            "{appointment_lead_days} ahead",
            zero="no confirmation sent for an appointment booked {appointment_lead_days} ahead",
            unknown="whether a confirmation was sent is unknown",
            standard="the group confirms {standard} of appointments",
            norm="share",
        ),
        friction="no_confirmation",
        fix=Fix("set", 1.0),
    ),
    FeatureSpec(
        "confirmation_channel",
        "appointment",
        "appointment_confirmation_sent",
        "category",
        "how the confirmation went out: sms, email or none",
        True,
        _APPT,
        Wording(
            "Confirmation channel",
            "confirmation sent by {value}",
            unknown="confirmation sent by a channel not on record",
            levels=(("sms", "text"), ("email", "email only"), ("none", "no channel")),
            when=(
                "confirmation_sent",
                0.0,
                "no confirmation sent for an appointment booked {appointment_lead_days} ahead",
            ),
        ),
        friction="no_confirmation",
        fix=Fix("set", "sms"),
    ),
    FeatureSpec(
        "customer_confirmed",
        "appointment",
        "sms_replied",
        "flag",
        "the customer replied by text since booking",
        False,
        _APPT,
        Wording(
            "Customer replied",
            "the customer replied by text since booking",
            zero="no text reply from the customer since booking",
            unknown="customer reply unknown",
        ),
    ),
    FeatureSpec(
        "specific_vehicle",
        "appointment",
        "vdp_view",
        "flag",
        "the appointment is about a specific vehicle",
        False,
        _APPT,
        Wording(
            "Specific vehicle",
            "the visit is about a specific vehicle",
            zero="no specific vehicle chosen for the visit",
            unknown="whether a specific vehicle was chosen is unknown",
        ),
    ),
    FeatureSpec(
        "vehicle_on_hold",
        "appointment",
        "vehicle_hold_placed",
        "flag",
        "the vehicle was put on hold for the visit",
        True,
        _APPT,
        Wording(
            "Vehicle on hold",
            "the vehicle is on hold for the visit",
            zero="the vehicle the customer is coming to see is not on hold",
            unknown="whether the vehicle is on hold is unknown",
            when=("specific_vehicle", 0.0, "no specific vehicle to hold"),
        ),
        friction="no_vehicle_hold",
        fix=Fix("set", 1.0, only_when=("specific_vehicle", 1.0)),
    ),
    FeatureSpec(
        "vehicle_status_changed",
        "appointment",
        "vehicle_status_changed",
        "flag",
        "the vehicle was sold or moved since booking",
        True,
        _APPT,
        Wording(
            "Vehicle sold or moved",
            "the vehicle was sold or moved since booking",
            zero="the vehicle is still available",
            unknown="vehicle availability unknown",
        ),
        friction="vehicle_status_changed",
        fix=Fix("set", 0.0),
    ),
    FeatureSpec(
        "prior_appointments_kept",
        "appointment",
        "appointment_showed",
        "count",
        "appointments this customer kept before",
        False,
        _APPT,
        Wording(
            "Appointments kept before",
            "kept {value} before",
            zero="no earlier appointment kept",
            unknown="earlier appointments unknown",
            noun=("earlier appointment", "earlier appointments"),
        ),
    ),
    FeatureSpec(
        "prior_no_shows",
        "appointment",
        "appointment_no_show",
        "count",
        "appointments this customer missed before",
        False,
        _ALL,
        Wording(
            "Missed appointments before",
            "missed {value} before",
            zero="never missed an appointment",
            unknown="earlier missed appointments unknown",
            noun=("appointment", "appointments"),
        ),
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
        Wording(
            "Owner from the group",
            "bought a vehicle from the group before",
            zero="has not bought a vehicle from the group before",
            unknown="earlier purchases unknown",
        ),
    ),
    FeatureSpec(
        "online_booking_abandons",
        "service",
        "online_scheduling",
        "count",
        "online service bookings started and abandoned recently",
        True,
        ("no_show", "service_defection"),
        Wording(
            "Online bookings abandoned",
            "gave up on {value} recently",
            zero="no online service booking abandoned",
            unknown="online booking attempts unknown",
            noun=("online service booking", "online service bookings"),
        ),
        friction="online_booking_friction",
        fix=Fix("set", 0.0),
    ),
    FeatureSpec(
        "reminder_channel_matches_preference",
        "service",
        "service_reminder",
        "flag",
        "the last service reminder went out on the customer's preferred channel",
        True,
        ("no_show", "service_defection"),
        Wording(
            "Reminder on the preferred channel",
            "the last service reminder went out by {preferred_channel}, as the customer prefers",
            zero="the last service reminder did not go out by {preferred_channel}, "
            "the customer's preferred channel",
            unknown="no service reminder on record, or no known preferred channel",
            standard="the group matches {standard} of reminders",
            norm="share",
        ),
        friction="reminder_channel_mismatch",
        fix=Fix("set", 1.0),
    ),
    FeatureSpec(
        "messages_engaged_60d",
        "response",
        "sms_replied",
        "count",
        "texts replied to and emails opened in the 60 days before the prediction",
        False,
        _APPT,
        Wording(
            "Replies and opens",
            "{value} in the last 60 days",
            zero="no text reply or email open in the last 60 days",
            unknown="replies and opens unknown",
            noun=("text reply or email open", "text replies and email opens"),
        ),
    ),
    FeatureSpec(
        "delivery_education_done",
        "delivery",
        "delivery_education",
        "flag",
        "the vehicle's features were explained at delivery",
        True,
        _SVC,
        Wording(
            "Feature walkthrough at delivery",
            "the vehicle's features were explained at delivery",
            zero="nobody walked the owner through the vehicle's features at delivery",
            unknown="delivery walkthrough unknown",
            standard="the group does it for {standard} of deliveries",
            norm="share",
        ),
        friction="no_delivery_education",
        fix=Fix("set", 1.0),
    ),
    FeatureSpec(
        "first_service_booked_at_delivery",
        "delivery",
        "service_appointment_set",
        "flag",
        "the first service appointment was booked at delivery",
        True,
        _SVC,
        Wording(
            "First service booked at delivery",
            "first service booked at delivery",
            zero="first service not booked at delivery",
            unknown="first service booking unknown",
            standard="the group books {standard} at delivery",
            norm="share",
        ),
        friction="first_service_not_booked",
        fix=Fix("set", 1.0),
    ),
    FeatureSpec(
        "open_recall",
        "service",
        "recall_notice",
        "flag",
        "a recall notice is open with no repair order since",
        True,
        _SVC,
        Wording(
            "Open recall",
            "a recall notice is open with no repair order booked",
            zero="no open recall",
            unknown="recall status unknown",
        ),
        friction="open_recall",
        fix=Fix("set", 0.0),
    ),
    FeatureSpec(
        "welcome_message_engaged",
        "service",
        "sms_replied",
        "flag",
        "the owner replied to or opened the welcome-to-service message since delivery",
        False,
        _SVC,
        Wording(
            "Welcome message answered",
            "the owner replied to or opened the welcome-to-service message",
            zero="no reply to or open of the welcome-to-service message",
            unknown="welcome message engagement unknown",
        ),
    ),
    FeatureSpec(
        "sales_csi_score",
        "csi",
        "csi_survey",
        "score",
        "the customer's sales satisfaction score (0-10), if answered",
        False,
        _SVC,
        Wording(
            "Sales satisfaction",
            "sales satisfaction score {value} of 10",
            unknown="no sales satisfaction survey answered",
            standard="the group's median is {standard}",
            norm="median",
        ),
    ),
    FeatureSpec(
        "used_vehicle",
        "delivery",
        "vehicle_delivery",
        "flag",
        "the vehicle bought was used",
        False,
        _SVC,
        Wording(
            "Used vehicle",
            "bought a used vehicle",
            zero="bought a new vehicle",
            unknown="vehicle condition unknown",
        ),
    ),
    FeatureSpec(
        "prior_service_visits",
        "service",
        "repair_order_opened",
        "count",
        "repair orders this customer had before",
        False,
        _SVC,
        Wording(
            "Earlier repair orders",
            "had {value} before this purchase",
            zero="no repair order before this purchase",
            unknown="earlier repair orders unknown",
            noun=("repair order", "repair orders"),
        ),
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
        Wording(
            "Distance from home",
            "lives {value} from the rooftop",
            unknown="distance from home unknown",
            standard="the group's median is {standard}",
            norm="median",
        ),
    ),
    FeatureSpec(
        "preferred_channel",
        "lead_intake",
        "contact_preferences_set",
        "category",
        "the customer's preferred contact channel",
        False,
        _ALL,
        Wording(
            "Preferred channel",
            "prefers to be contacted by {value}",
            unknown="preferred channel unknown",
            levels=_CHANNELS,
        ),
    ),
    FeatureSpec(
        "days_since_last_contact",
        "response",
        None,
        "days",
        "days since the dealer last reached out",
        False,
        ("no_show", "service_defection"),
        Wording(
            "Last contact",
            "the dealer last reached out {value} ago",
            unknown="no outreach from the dealer on record",
            standard="the group's median is {standard}",
            norm="median",
        ),
    ),
    FeatureSpec(
        "rooftop_id",
        "lead_intake",
        None,
        "category",
        "the rooftop",
        False,
        _ALL,
        Wording("Rooftop", "at rooftop {value}", unknown="rooftop unknown"),
    ),
    FeatureSpec(
        "marketing_source",
        "research",
        None,
        "category",
        "the marketing source or campaign",
        False,
        _ALL,
        Wording(
            "Marketing source",
            "came from {value}",
            unknown="marketing source unknown",
            levels=_SOURCES,
        ),
    ),
)

_BY_NAME = {f.name: f for f in FEATURES}
_FRICTIONS = {f.name: f for f in FRICTION_SPECS}


def feature_spec(name: str) -> FeatureSpec:
    """The registry entry of a feature; raises KeyError naming the unknown feature."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown feature {name!r}") from None


def friction_spec(name: str) -> FrictionSpec:
    """The registry entry of a friction; raises KeyError naming the unknown friction."""
    try:
        return _FRICTIONS[name]
    except KeyError:
        raise KeyError(f"unknown friction {name!r}") from None


def features_for(task: Task) -> list[FeatureSpec]:
    """The task's features, in registry order (which is the feature table's column order)."""
    return [f for f in FEATURES if task in f.tasks]


def frictions_for(task: Task) -> list[FrictionSpec]:
    """The frictions the task's features express, in the order their features first appear."""
    names = dict.fromkeys(f.friction for f in features_for(task) if f.friction)
    return [_FRICTIONS[n] for n in names]


def template_fields(template: str) -> list[str]:
    """The field names of a wording template, in order (``value``, ``standard``, features)."""
    return [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]


def _check_wording(f: FeatureSpec) -> None:
    w = f.wording
    if w is None:
        raise ValueError(f"feature {f.name!r} has no wording")
    if not (w.label and w.says and w.unknown):
        raise ValueError(f"feature {f.name!r}: wording needs a label, says and unknown")
    if f.unit in ("flag", "count") and not w.zero:
        raise ValueError(f"feature {f.name!r}: a {f.unit} needs a zero wording")
    if f.unit == "count" and not all(w.noun):
        raise ValueError(f"feature {f.name!r}: a count needs a noun (singular, plural)")
    if (w.standard or (f.fix is not None and f.fix.value is None)) and w.norm is None:
        raise ValueError(f"feature {f.name!r}: a standard needs a norm")
    templates = [w.says, w.zero, w.unknown, w.standard, w.when[2] if w.when else ""]
    own = {"value", "standard"}
    for field in (x for t in templates for x in template_fields(t)):
        if field in own:
            continue
        other = _BY_NAME.get(field)
        if other is None or not set(f.tasks) <= set(other.tasks):
            raise ValueError(
                f"feature {f.name!r}: wording field {{{field}}} is not a feature of every "
                f"task of {f.name!r}"
            )
    if w.when is not None and w.when[0] not in _BY_NAME:
        raise ValueError(f"feature {f.name!r}: wording condition on unknown feature")


def check_registry() -> None:
    """Refuse a registry entry whose stage or touchpoint is not in the journey catalogue, a
    feature without complete wording, an actionable feature without a known friction, or a
    context feature with one."""
    cat = catalogue()
    for fr in FRICTION_SPECS:
        cat.stage(fr.stage)
        if fr.touchpoint is not None:
            cat.event_type(fr.touchpoint)
    for f in FEATURES:
        cat.stage(f.stage)
        if f.touchpoint is not None:
            cat.event_type(f.touchpoint)
        _check_wording(f)
        if f.actionable != (f.friction is not None):
            raise ValueError(
                f"feature {f.name!r}: actionable features, and only they, name a friction"
            )
        if f.friction is not None:
            friction_spec(f.friction)
        if f.fix is not None and f.friction is None:
            raise ValueError(f"feature {f.name!r}: a fix belongs to a friction")
        if f.fix is not None and f.fix.only_when is not None:
            other = _BY_NAME.get(f.fix.only_when[0])
            if other is None or not set(f.tasks) <= set(other.tasks):
                raise ValueError(f"feature {f.name!r}: its fix depends on an unknown feature")
    for fr in FRICTION_SPECS:
        if not any(f.friction == fr.name and f.fix is not None for f in FEATURES):
            raise ValueError(f"friction {fr.name!r}: no feature expresses it with a fix")
