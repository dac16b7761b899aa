"""The feature registry: every model feature with its journey stage, unit and meaning.

The explanations (``cjm_ml.explain``) turn SHAP values into dealer language from this
registry alone: each entry says how its value reads in a sentence (``Wording``), what it is
compared with (the group's standard or typical value), whether the dealer can act on it, and if
so which friction it expresses (``FrictionSpec``) and what its value would be once that friction
is removed (``Fix``, for the what-if). Features the dealer cannot act on are context.

Each feature is declared once, with keyword arguments, and lists the tasks that use it; a
task's features are the entries that name it, in declaration order (the feature table's column
order, which trained models depend on). The entry types take keywords only and refuse a value
outside their vocabulary when built, so an entry can come from a mapping (``FeatureSpec(**m)``
once its nested parts are built); ``check_registry`` checks the entries against each other and
against the journey catalogue.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any, Literal, get_args

from cjm_ml.events import catalogue
from cjm_ml.formatting import SOURCE_PHRASES
from cjm_ml.params import TASKS, Task

Unit = Literal[
    "minutes", "days", "days_until", "years", "count", "km", "flag", "category", "score", "number"
]
#: Where a feature's comparison value comes from: the group's median or share (of a flag) in
#: the data, or the group's response standard (``TaskParams.response_sla_minutes``).
Norm = Literal["median", "share", "sla"]
#: How a fix sets a feature: to a value, or no higher / no lower than a value.
FixKind = Literal["set", "at_most", "at_least"]


@dataclass(frozen=True, kw_only=True)
class Wording:
    """How a feature reads in a driver sentence.

    Templates are ``str.format`` strings whose fields are ``value`` (this feature's value in
    dealer terms: "3 h 10 min", "9 days", "2 texts", "48 km"), ``standard`` (the group's norm in
    the same terms), ``group`` (whose figures the norm is: "in the group", or "across groups"
    for a group quoting the pooled norms; ``cjm_ml.explain.render`` words it) or the name of
    another feature of the same task (its value in dealer terms).
    ``says`` reads the value (for a flag: the value 1); ``zero`` reads a flag's 0 or a count's 0;
    ``unknown`` reads a missing value; ``when`` = (feature, value, template) replaces ``says`` and
    ``zero`` where that other feature has that value; ``standard`` is the comparison appended
    after a semicolon. ``noun`` is a count's (singular, plural); ``levels`` maps a category's
    values to words (other values read with underscores as spaces).

    Refuses (``ValueError``) a norm outside ``Norm``, a template that is not a format string,
    and a ``noun``, ``levels`` or ``when`` of the wrong shape.
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

    def __post_init__(self) -> None:
        owner = f"wording {self.label!r}"
        if self.norm is not None:
            _refuse_outside(owner, "norm", self.norm, Norm)
        _refuse_unless(owner, "noun", _is_tuple_of(self.noun, (str, str)), "(singular, plural)")
        pairs = isinstance(self.levels, tuple) and all(
            _is_tuple_of(level, (str, str)) for level in self.levels
        )
        _refuse_unless(owner, "levels", pairs, "a tuple of (value, words) pairs")
        condition = self.when is None or _is_tuple_of(self.when, (str, int | float, str))
        _refuse_unless(owner, "when", condition, "(feature, value, template)")
        templates = (self.says, self.zero, self.unknown, self.standard)
        for template in (*templates, self.when[2] if self.when else ""):
            try:
                template_fields(template)
            except ValueError as e:
                raise ValueError(f"{owner}: {template!r} is not a format string ({e})") from None


@dataclass(frozen=True, kw_only=True)
class Fix:
    """A feature's value once its friction is removed (the what-if): ``set`` to ``value``,
    or ``at_most`` / ``at_least`` ``value`` (``None``: the feature's group norm). ``only_when``
    = (feature, value) limits the fix to instances where that feature has that value (a hold
    only for a specific vehicle). A missing value stays missing: a friction nobody can see is
    not there to fix.

    Refuses (``ValueError``) a kind outside ``FixKind`` and an ``only_when`` that is not a
    (feature, value) pair."""

    kind: FixKind
    value: float | str | None = None
    only_when: tuple[str, float] | None = None

    def __post_init__(self) -> None:
        owner = f"fix {self.kind!r}"
        _refuse_outside(owner, "kind", self.kind, FixKind)
        condition = self.only_when is None or _is_tuple_of(self.only_when, (str, int | float))
        _refuse_unless(owner, "only_when", condition, "(feature, value)")


@dataclass(frozen=True, kw_only=True)
class FrictionSpec:
    """A process friction the dealer can fix: its name (the simulator's causal term where
    there is one), its label in dealer language, and where in the journey it sits (checked
    against the catalogue by ``check_registry``). Refuses (``ValueError``) a name that is not
    an identifier and an empty label or stage."""

    name: str
    label: str
    stage: str
    touchpoint: str | None

    def __post_init__(self) -> None:
        owner = f"friction {self.name!r}"
        _refuse_unless(owner, "name", self.name.isidentifier(), "an identifier")
        _refuse_unless(owner, "label", bool(self.label), "given")
        _refuse_unless(owner, "stage", bool(self.stage), "given")


@dataclass(frozen=True, kw_only=True)
class FeatureSpec:
    """One feature: name, stage, the touchpoint it reads, unit, meaning, actionability, the
    tasks that use it, how it reads in a sentence, the friction it expresses and its value
    once that is fixed.

    Refuses (``ValueError``) a name that is not an identifier (wording templates name features
    as fields), a unit outside ``Unit``, and tasks that are not a non-empty tuple of distinct
    known tasks; ``check_registry`` checks the rest."""

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

    def __post_init__(self) -> None:
        owner = f"feature {self.name!r}"
        _refuse_unless(owner, "name", self.name.isidentifier(), "an identifier")
        _refuse_outside(owner, "unit", self.unit, Unit)
        _refuse_unless(owner, "actionable", isinstance(self.actionable, bool), "True or False")
        tasks_ok = (
            isinstance(self.tasks, tuple)
            and len(self.tasks) > 0
            and len(set(self.tasks)) == len(self.tasks)
        )
        _refuse_unless(owner, "tasks", tasks_ok, "a non-empty tuple of distinct tasks")
        for task in self.tasks:
            _refuse_outside(owner, "task", task, Task)


def _refuse_outside(owner: str, field: str, value: object, vocabulary: Any) -> None:
    """Raise ValueError naming ``owner`` when ``value`` is not one of the Literal's values."""
    allowed = get_args(vocabulary)
    if value not in allowed:
        raise ValueError(
            f"{owner}: {field} {value!r} is not one of {', '.join(repr(a) for a in allowed)}"
        )


def _refuse_unless(owner: str, field: str, ok: bool, expected: str) -> None:
    """Raise ValueError naming ``owner`` and what ``field`` should be, unless ``ok``."""
    if not ok:
        raise ValueError(f"{owner}: {field} must be {expected}")


def _is_tuple_of(value: object, kinds: tuple[Any, ...]) -> bool:
    """Whether ``value`` is a tuple whose items have these types, in order (never a bool)."""
    return (
        isinstance(value, tuple)
        and len(value) == len(kinds)
        and all(
            isinstance(item, kind) and not isinstance(item, bool)
            for item, kind in zip(value, kinds, strict=True)
        )
    )


def template_fields(template: str) -> list[str]:
    """The field names of a wording template, in order (``value``, ``standard``, features);
    raises ValueError for a malformed template (an unmatched brace)."""
    return [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]


# Wording several features share.
_GROUP_STANDARD = "the group standard is {standard}"
_GROUP_MEDIAN = "the median {group} is {standard}"
_REPLY = "first reply took {first_response_minutes}"
_NO_REPLY = "no reply yet after {first_response_minutes}"

#: The frictions the dealer can fix; features name theirs in ``FeatureSpec.friction``.
FRICTION_SPECS: tuple[FrictionSpec, ...] = (
    FrictionSpec(
        name="slow_first_response",
        label="Slow first reply to the lead",
        stage="response",
        touchpoint="outbound_call",
    ),
    FrictionSpec(
        name="no_trade_credit_follow_up",
        label="Trade-in or credit application not followed up",
        stage="response",
        touchpoint="crm_task_created",
    ),
    FrictionSpec(
        name="open_crm_tasks",
        label="CRM follow-up tasks left open",
        stage="response",
        touchpoint="crm_task_created",
    ),
    FrictionSpec(
        name="no_confirmation",
        label="Appointment not confirmed",
        stage="appointment",
        touchpoint="appointment_confirmation_sent",
    ),
    FrictionSpec(
        name="no_vehicle_hold",
        label="Vehicle not held for the visit",
        stage="appointment",
        touchpoint="vehicle_hold_placed",
    ),
    FrictionSpec(
        name="vehicle_status_changed",
        label="Vehicle sold or moved before the visit",
        stage="appointment",
        touchpoint="vehicle_status_changed",
    ),
    FrictionSpec(
        name="reminder_channel_mismatch",
        label="Service reminder on the wrong channel",
        stage="service",
        touchpoint="service_reminder",
    ),
    FrictionSpec(
        name="online_booking_friction",
        label="Online service booking abandoned",
        stage="service",
        touchpoint="online_scheduling",
    ),
    FrictionSpec(
        name="first_service_not_booked",
        label="First service not booked at delivery",
        stage="delivery",
        touchpoint="service_appointment_set",
    ),
    FrictionSpec(
        name="no_delivery_education",
        label="No feature walkthrough at delivery",
        stage="delivery",
        touchpoint="delivery_education",
    ),
    FrictionSpec(
        name="open_recall",
        label="Open recall not yet repaired",
        stage="service",
        touchpoint="recall_notice",
    ),
)

#: Every feature, declared once; ``features_for`` gives a task's, in this order.
FEATURES: tuple[FeatureSpec, ...] = (
    # --- research
    FeatureSpec(
        name="vdp_views_7d",
        stage="research",
        touchpoint="vdp_view",
        unit="count",
        description="vehicle detail pages viewed in the 7 days before the prediction",
        actionable=False,
        tasks=("lead_leakage", "no_show"),
        wording=Wording(
            label="Vehicle pages viewed",
            says="viewed {value} in the last 7 days",
            zero="no vehicle page viewed in the last 7 days",
            unknown="vehicle page views unknown",
            noun=("vehicle page", "vehicle pages"),
        ),
    ),
    FeatureSpec(
        name="inventory_searches_7d",
        stage="research",
        touchpoint="inventory_search",
        unit="count",
        description="inventory searches in the 7 days before the prediction",
        actionable=False,
        tasks=("lead_leakage",),
        wording=Wording(
            label="Inventory searches",
            says="ran {value} in the last 7 days",
            zero="no inventory search in the last 7 days",
            unknown="inventory searches unknown",
            noun=("inventory search", "inventory searches"),
        ),
    ),
    FeatureSpec(
        name="used_payment_calculator",
        stage="research",
        touchpoint="payment_calculator",
        unit="flag",
        description="used the payment calculator in the last 30 days",
        actionable=False,
        tasks=("lead_leakage", "no_show"),
        wording=Wording(
            label="Payment calculator",
            says="used the payment calculator in the last 30 days",
            zero="did not use the payment calculator in the last 30 days",
            unknown="payment calculator use unknown",
        ),
    ),
    FeatureSpec(
        name="submitted_trade_in",
        stage="research",
        touchpoint="trade_in_tool",
        unit="flag",
        description="submitted the trade-in value tool in the last 30 days",
        actionable=False,
        tasks=("lead_leakage", "no_show"),
        wording=Wording(
            label="Online trade-in request",
            says="asked for a trade-in value online in the last 30 days",
            zero="no online trade-in request in the last 30 days",
            unknown="online trade-in request unknown",
        ),
    ),
    FeatureSpec(
        name="online_credit_app",
        stage="credit_fi",
        touchpoint="credit_application",
        unit="flag",
        description="sent a credit application in the last 30 days",
        actionable=False,
        tasks=("lead_leakage",),
        wording=Wording(
            label="Credit application",
            says="sent a credit application in the last 30 days",
            zero="no credit application in the last 30 days",
            unknown="credit application unknown",
        ),
    ),
    # --- lead intake
    FeatureSpec(
        name="lead_type",
        stage="lead_intake",
        touchpoint=None,
        unit="category",
        description="how the lead came in: form, call, chat or third_party",
        actionable=False,
        tasks=("lead_leakage",),
        wording=Wording(
            label="How the lead came in",
            says="the lead came in through {value}",
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
        name="prior_leads",
        stage="lead_intake",
        touchpoint=None,
        unit="count",
        description="leads this customer sent before this one",
        actionable=False,
        tasks=("lead_leakage",),
        wording=Wording(
            label="Earlier leads",
            says="sent {value} before this one",
            zero="first lead from this customer",
            unknown="earlier leads unknown",
            noun=("earlier lead", "earlier leads"),
        ),
    ),
    # --- response and follow-up
    FeatureSpec(
        name="first_response_minutes",
        stage="response",
        touchpoint="outbound_call",
        unit="minutes",
        description="minutes from the lead to the first reply (or the wait so far, if none yet)",
        actionable=True,
        tasks=("lead_leakage",),
        wording=Wording(
            label="First reply time",
            says="first reply took {value}",
            unknown="first reply time unknown",
            standard=_GROUP_STANDARD,
            norm="sla",
            when=("responded_before_cutoff", 0.0, "no reply yet after {value}"),
        ),
        friction="slow_first_response",
        fix=Fix(kind="at_most"),
    ),
    FeatureSpec(
        name="responded_before_cutoff",
        stage="response",
        touchpoint="outbound_call",
        unit="flag",
        description="the BDC had replied by the prediction moment",
        actionable=True,
        tasks=("lead_leakage",),
        wording=Wording(
            label="Reply by now",
            says=_REPLY,
            zero=_NO_REPLY,
            unknown="whether the BDC has replied is unknown",
            standard=_GROUP_STANDARD,
            norm="sla",
        ),
        friction="slow_first_response",
        fix=Fix(kind="set", value=1.0),
    ),
    FeatureSpec(
        name="responded_within_sla",
        stage="response",
        touchpoint="outbound_call",
        unit="flag",
        description="the first reply came within the group's response standard",
        actionable=True,
        tasks=("lead_leakage",),
        wording=Wording(
            label="Reply within the standard",
            says=_REPLY + ", within the group standard of {standard}",
            zero=_REPLY + ", beyond the group standard of {standard}",
            unknown="whether the reply met the group standard is unknown",
            norm="sla",
            when=("responded_before_cutoff", 0.0, _NO_REPLY + "; " + _GROUP_STANDARD),
        ),
        friction="slow_first_response",
        fix=Fix(kind="set", value=1.0),
    ),
    FeatureSpec(
        name="outbound_calls",
        stage="response",
        touchpoint="outbound_call",
        unit="count",
        description="calls made to the customer since the lead",
        actionable=True,
        tasks=("lead_leakage",),
        wording=Wording(
            label="Calls to the customer",
            says="{value} made to the customer since the lead",
            zero="no call made to the customer since the lead",
            unknown="calls to the customer unknown",
            noun=("call", "calls"),
        ),
        friction="slow_first_response",
    ),
    FeatureSpec(
        name="texts_sent",
        stage="response",
        touchpoint="sms_sent",
        unit="count",
        description="texts sent to the customer since the lead",
        actionable=True,
        tasks=("lead_leakage",),
        wording=Wording(
            label="Texts to the customer",
            says="{value} sent to the customer since the lead",
            zero="no text sent to the customer since the lead",
            unknown="texts to the customer unknown",
            noun=("text", "texts"),
        ),
        friction="slow_first_response",
    ),
    FeatureSpec(
        name="emails_sent",
        stage="response",
        touchpoint="email_sent",
        unit="count",
        description="emails sent to the customer since the lead",
        actionable=True,
        tasks=("lead_leakage",),
        wording=Wording(
            label="Emails to the customer",
            says="{value} sent to the customer since the lead",
            zero="no email sent to the customer since the lead",
            unknown="emails to the customer unknown",
            noun=("email", "emails"),
        ),
        friction="slow_first_response",
    ),
    FeatureSpec(
        name="missed_calls",
        stage="response",
        touchpoint="missed_call",
        unit="count",
        description="calls from the customer nobody picked up, since the lead",
        actionable=True,
        tasks=("lead_leakage",),
        wording=Wording(
            label="Missed customer calls",
            says="{value} from the customer nobody picked up",
            zero="no call from the customer went unanswered",
            unknown="missed customer calls unknown",
            noun=("call", "calls"),
        ),
        friction="slow_first_response",
        fix=Fix(kind="set", value=0.0),
    ),
    FeatureSpec(
        name="unanswered_texts",
        stage="response",
        touchpoint="sms_sent",
        unit="count",
        description="texts sent since the customer last replied",
        actionable=False,
        tasks=("lead_leakage",),
        wording=Wording(
            label="Unanswered texts",
            says="{value} sent since the customer last replied",
            zero="no text waiting for the customer's reply",
            unknown="unanswered texts unknown",
            noun=("text", "texts"),
        ),
    ),
    FeatureSpec(
        name="customer_engaged",
        stage="response",
        touchpoint="sms_replied",
        unit="flag",
        description="the customer talked, replied or opened an email since the lead",
        actionable=False,
        tasks=("lead_leakage",),
        wording=Wording(
            label="Customer engaged",
            says="the customer talked, replied or opened an email since the lead",
            zero="the customer has not talked, replied or opened an email since the lead",
            unknown="customer engagement unknown",
        ),
    ),
    FeatureSpec(
        name="crm_tasks_open",
        stage="response",
        touchpoint="crm_task_created",
        unit="count",
        description="CRM tasks created since the lead and not yet completed",
        actionable=True,
        tasks=("lead_leakage",),
        wording=Wording(
            label="Open CRM tasks",
            says="{value} still open since the lead",
            zero="no CRM task left open",
            unknown="open CRM tasks unknown",
            noun=("CRM task", "CRM tasks"),
        ),
        friction="open_crm_tasks",
        fix=Fix(kind="set", value=0.0),
    ),
    FeatureSpec(
        name="trade_in_without_follow_up",
        stage="response",
        touchpoint="crm_task_created",
        unit="flag",
        description="a trade-in submission with no follow-up task yet",
        actionable=True,
        tasks=("lead_leakage",),
        wording=Wording(
            label="Trade-in not followed up",
            says="the customer's trade-in request has no follow-up task yet",
            zero="no trade-in request waiting for follow-up",
            unknown="trade-in follow-up unknown",
        ),
        friction="no_trade_credit_follow_up",
        fix=Fix(kind="set", value=0.0),
    ),
    FeatureSpec(
        name="credit_app_without_next_step",
        stage="response",
        touchpoint="crm_task_created",
        unit="flag",
        description="a credit application with no follow-up task or appointment yet",
        actionable=True,
        tasks=("lead_leakage",),
        wording=Wording(
            label="Credit application not followed up",
            says="the customer's credit application has no follow-up task or appointment yet",
            zero="no credit application waiting for a next step",
            unknown="credit application follow-up unknown",
        ),
        friction="no_trade_credit_follow_up",
        fix=Fix(kind="set", value=0.0),
    ),
    # --- appointment
    FeatureSpec(
        name="appointment_kind",
        stage="appointment",
        touchpoint=None,
        unit="category",
        description="sales or service appointment",
        actionable=False,
        tasks=("no_show",),
        wording=Wording(
            label="Appointment kind",
            says="a {value} appointment",
            unknown="appointment kind unknown",
            levels=(("sales", "sales"), ("service", "service")),
        ),
    ),
    FeatureSpec(
        name="appointment_lead_days",
        stage="appointment",
        touchpoint="appointment_set",
        unit="days",
        description="days between booking and the appointment",
        actionable=False,
        tasks=("no_show",),
        wording=Wording(
            label="Booked ahead",
            says="booked {value} ahead",
            unknown="booking lead time unknown",
            standard=_GROUP_MEDIAN,
            norm="median",
        ),
    ),
    FeatureSpec(
        name="rescheduled",
        stage="appointment",
        touchpoint="appointment_rescheduled",
        unit="flag",
        description="this booking replaced an earlier appointment time",
        actionable=False,
        tasks=("no_show",),
        wording=Wording(
            label="Rescheduled",
            says="this booking replaced an earlier appointment time",
            zero="a first booking, not a reschedule",
            unknown="whether it was rescheduled is unknown",
        ),
    ),
    FeatureSpec(
        name="confirmation_sent",
        stage="appointment",
        touchpoint="appointment_confirmation_sent",
        unit="flag",
        description="a confirmation was sent for this appointment",
        actionable=True,
        tasks=("no_show",),
        wording=Wording(
            label="Confirmation sent",
            says="confirmation sent by {confirmation_channel} for an appointment booked "
            "{appointment_lead_days} ahead",
            zero="no confirmation sent for an appointment booked {appointment_lead_days} ahead",
            unknown="whether a confirmation was sent is unknown",
            standard="{standard} of appointments {group} are confirmed",
            norm="share",
        ),
        friction="no_confirmation",
        fix=Fix(kind="set", value=1.0),
    ),
    FeatureSpec(
        name="confirmation_channel",
        stage="appointment",
        touchpoint="appointment_confirmation_sent",
        unit="category",
        description="how the confirmation went out: sms, email or none",
        actionable=True,
        tasks=("no_show",),
        wording=Wording(
            label="Confirmation channel",
            says="confirmation sent by {value}",
            unknown="confirmation sent by a channel not on record",
            levels=(("sms", "text"), ("email", "email only"), ("none", "no channel")),
            when=(
                "confirmation_sent",
                0.0,
                "no confirmation sent for an appointment booked {appointment_lead_days} ahead",
            ),
        ),
        friction="no_confirmation",
        fix=Fix(kind="set", value="sms"),
    ),
    FeatureSpec(
        name="customer_confirmed",
        stage="appointment",
        touchpoint="sms_replied",
        unit="flag",
        description="the customer replied by text since booking",
        actionable=False,
        tasks=("no_show",),
        wording=Wording(
            label="Customer replied",
            says="the customer replied by text since booking",
            zero="no text reply from the customer since booking",
            unknown="customer reply unknown",
        ),
    ),
    FeatureSpec(
        name="specific_vehicle",
        stage="appointment",
        touchpoint="vdp_view",
        unit="flag",
        description="the appointment is about a specific vehicle",
        actionable=False,
        tasks=("no_show",),
        wording=Wording(
            label="Specific vehicle",
            says="the visit is about a specific vehicle",
            zero="no specific vehicle chosen for the visit",
            unknown="whether a specific vehicle was chosen is unknown",
        ),
    ),
    FeatureSpec(
        name="vehicle_on_hold",
        stage="appointment",
        touchpoint="vehicle_hold_placed",
        unit="flag",
        description="the vehicle was put on hold for the visit",
        actionable=True,
        tasks=("no_show",),
        wording=Wording(
            label="Vehicle on hold",
            says="the vehicle is on hold for the visit",
            zero="the vehicle the customer is coming to see is not on hold",
            unknown="whether the vehicle is on hold is unknown",
            when=("specific_vehicle", 0.0, "no specific vehicle to hold"),
        ),
        friction="no_vehicle_hold",
        fix=Fix(kind="set", value=1.0, only_when=("specific_vehicle", 1.0)),
    ),
    FeatureSpec(
        name="vehicle_status_changed",
        stage="appointment",
        touchpoint="vehicle_status_changed",
        unit="flag",
        description="the vehicle was sold or moved since booking",
        actionable=True,
        tasks=("no_show",),
        wording=Wording(
            label="Vehicle sold or moved",
            says="the vehicle was sold or moved since booking",
            zero="the vehicle is still available",
            unknown="vehicle availability unknown",
        ),
        friction="vehicle_status_changed",
        fix=Fix(kind="set", value=0.0),
    ),
    FeatureSpec(
        name="prior_appointments_kept",
        stage="appointment",
        touchpoint="appointment_showed",
        unit="count",
        description="appointments this customer kept before",
        actionable=False,
        tasks=("no_show",),
        wording=Wording(
            label="Appointments kept before",
            says="kept {value} before",
            zero="no earlier appointment kept",
            unknown="earlier appointments unknown",
            noun=("earlier appointment", "earlier appointments"),
        ),
    ),
    FeatureSpec(
        name="prior_no_shows",
        stage="appointment",
        touchpoint="appointment_no_show",
        unit="count",
        description="appointments this customer missed before",
        actionable=False,
        tasks=TASKS,
        wording=Wording(
            label="Missed appointments before",
            says="missed {value} before",
            zero="never missed an appointment",
            unknown="earlier missed appointments unknown",
            noun=("appointment", "appointments"),
        ),
    ),
    # --- service and ownership
    FeatureSpec(
        name="owns_vehicle_from_group",
        stage="delivery",
        touchpoint="vehicle_delivery",
        unit="flag",
        description="bought a vehicle from the group before",
        actionable=False,
        tasks=("no_show",),
        wording=Wording(
            label="Owner from the group",
            says="bought a vehicle from the group before",
            zero="has not bought a vehicle from the group before",
            unknown="earlier purchases unknown",
        ),
    ),
    FeatureSpec(
        name="online_booking_abandons",
        stage="service",
        touchpoint="online_scheduling",
        unit="count",
        description="online service bookings started and abandoned recently",
        actionable=True,
        tasks=("no_show", "service_defection"),
        wording=Wording(
            label="Online bookings abandoned",
            says="gave up on {value} recently",
            zero="no online service booking abandoned",
            unknown="online booking attempts unknown",
            noun=("online service booking", "online service bookings"),
        ),
        friction="online_booking_friction",
        fix=Fix(kind="set", value=0.0),
    ),
    FeatureSpec(
        name="reminder_channel_matches_preference",
        stage="service",
        touchpoint="service_reminder",
        unit="flag",
        description="the last service reminder went out on the customer's preferred channel",
        actionable=True,
        tasks=("no_show", "service_defection"),
        wording=Wording(
            label="Reminder on the preferred channel",
            says="the last service reminder went out by {preferred_channel}, "
            "as the customer prefers",
            zero="the last service reminder did not go out by {preferred_channel}, "
            "the customer's preferred channel",
            unknown="no service reminder on record, or no known preferred channel",
            standard="{standard} of reminders {group} go out on the preferred channel",
            norm="share",
        ),
        friction="reminder_channel_mismatch",
        fix=Fix(kind="set", value=1.0),
    ),
    FeatureSpec(
        name="messages_engaged_60d",
        stage="response",
        touchpoint="sms_replied",
        unit="count",
        description="texts replied to and emails opened in the 60 days before the prediction",
        actionable=False,
        tasks=("no_show",),
        wording=Wording(
            label="Replies and opens",
            says="{value} in the last 60 days",
            zero="no text reply or email open in the last 60 days",
            unknown="replies and opens unknown",
            noun=("text reply or email open", "text replies and email opens"),
        ),
    ),
    FeatureSpec(
        name="delivery_education_done",
        stage="delivery",
        touchpoint="delivery_education",
        unit="flag",
        description="the vehicle's features were explained at delivery",
        actionable=True,
        tasks=("service_defection",),
        wording=Wording(
            label="Feature walkthrough at delivery",
            says="the vehicle's features were explained at delivery",
            zero="nobody walked the owner through the vehicle's features at delivery",
            unknown="delivery walkthrough unknown",
            standard="{standard} of deliveries {group} include the walkthrough",
            norm="share",
        ),
        friction="no_delivery_education",
        fix=Fix(kind="set", value=1.0),
    ),
    FeatureSpec(
        name="first_service_booked_at_delivery",
        stage="delivery",
        touchpoint="service_appointment_set",
        unit="flag",
        description="the first service appointment was booked at delivery",
        actionable=True,
        tasks=("service_defection",),
        wording=Wording(
            label="First service booked at delivery",
            says="first service booked at delivery",
            zero="first service not booked at delivery",
            unknown="first service booking unknown",
            standard="{standard} of first services {group} are booked at delivery",
            norm="share",
        ),
        friction="first_service_not_booked",
        fix=Fix(kind="set", value=1.0),
    ),
    FeatureSpec(
        name="open_recall",
        stage="service",
        touchpoint="recall_notice",
        unit="flag",
        description="a recall notice is open with no repair order since",
        actionable=True,
        tasks=("service_defection",),
        wording=Wording(
            label="Open recall",
            says="a recall notice is open with no repair order booked",
            zero="no open recall",
            unknown="recall status unknown",
        ),
        friction="open_recall",
        fix=Fix(kind="set", value=0.0),
    ),
    FeatureSpec(
        name="welcome_message_engaged",
        stage="service",
        touchpoint="sms_replied",
        unit="flag",
        description="the owner replied to or opened the welcome-to-service message since delivery",
        actionable=False,
        tasks=("service_defection",),
        wording=Wording(
            label="Welcome message answered",
            says="the owner replied to or opened the welcome-to-service message",
            zero="no reply to or open of the welcome-to-service message",
            unknown="welcome message engagement unknown",
        ),
    ),
    FeatureSpec(
        name="sales_csi_score",
        stage="csi",
        touchpoint="csi_survey",
        unit="score",
        description="the customer's sales satisfaction score (0-10), if answered",
        actionable=False,
        tasks=("service_defection",),
        wording=Wording(
            label="Sales satisfaction",
            says="sales satisfaction score {value} of 10",
            unknown="no sales satisfaction survey answered",
            standard=_GROUP_MEDIAN,
            norm="median",
        ),
    ),
    FeatureSpec(
        name="used_vehicle",
        stage="delivery",
        touchpoint="vehicle_delivery",
        unit="flag",
        description="the vehicle bought was used",
        actionable=False,
        tasks=("service_defection",),
        wording=Wording(
            label="Used vehicle",
            says="bought a used vehicle",
            zero="bought a new vehicle",
            unknown="vehicle condition unknown",
        ),
    ),
    FeatureSpec(
        name="prior_service_visits",
        stage="service",
        touchpoint="repair_order_opened",
        unit="count",
        description="repair orders this customer had before",
        actionable=False,
        tasks=("service_defection",),
        wording=Wording(
            label="Earlier repair orders",
            says="had {value} before this purchase",
            zero="no repair order before this purchase",
            unknown="earlier repair orders unknown",
            noun=("repair order", "repair orders"),
        ),
    ),
    # --- context
    FeatureSpec(
        name="distance_to_rooftop_km",
        stage="lead_intake",
        touchpoint="contact_preferences_set",
        unit="km",
        description="distance from the customer's home to the rooftop",
        actionable=False,
        tasks=TASKS,
        wording=Wording(
            label="Distance from home",
            says="lives {value} from the rooftop",
            unknown="distance from home unknown",
            standard=_GROUP_MEDIAN,
            norm="median",
        ),
    ),
    FeatureSpec(
        name="preferred_channel",
        stage="lead_intake",
        touchpoint="contact_preferences_set",
        unit="category",
        description="the customer's preferred contact channel",
        actionable=False,
        tasks=TASKS,
        wording=Wording(
            label="Preferred channel",
            says="prefers to be contacted by {value}",
            unknown="preferred channel unknown",
            levels=(("sms", "text"), ("email", "email"), ("phone", "phone")),
        ),
    ),
    FeatureSpec(
        name="days_since_last_contact",
        stage="response",
        touchpoint=None,
        unit="days",
        description="days since the dealer last reached out",
        actionable=False,
        tasks=("no_show", "service_defection"),
        wording=Wording(
            label="Last contact",
            says="the dealer last reached out {value} ago",
            unknown="no outreach from the dealer on record",
            standard=_GROUP_MEDIAN,
            norm="median",
        ),
    ),
    FeatureSpec(
        name="rooftop_id",
        stage="lead_intake",
        touchpoint=None,
        unit="category",
        description="the rooftop",
        actionable=False,
        tasks=TASKS,
        wording=Wording(
            label="Rooftop",
            says="at rooftop {value}",
            unknown="rooftop unknown",
        ),
    ),
    FeatureSpec(
        name="marketing_source",
        stage="research",
        touchpoint=None,
        unit="category",
        description="the marketing source or campaign",
        actionable=False,
        tasks=TASKS,
        wording=Wording(
            label="Marketing source",
            says="came from {value}",
            unknown="marketing source unknown",
            levels=SOURCE_PHRASES,
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


def check_registry() -> None:
    """Refuse (``ValueError``, or ``KeyError`` naming the unknown stage, touchpoint or
    friction) a registry entry whose stage or touchpoint is not in the journey catalogue, a
    feature name declared twice, a feature without complete wording, an actionable feature
    without a known friction, a context feature with one, and a friction no feature fixes."""
    for fr in FRICTION_SPECS:
        _check_journey_place(fr.stage, fr.touchpoint)
    _check_names_unique()
    for f in FEATURES:
        _check_journey_place(f.stage, f.touchpoint)
        _check_wording_complete(f)
        _check_wording_fields(f)
        _check_friction(f)
    for fr in FRICTION_SPECS:
        if not any(f.friction == fr.name and f.fix is not None for f in FEATURES):
            raise ValueError(f"friction {fr.name!r}: no feature expresses it with a fix")


def _check_journey_place(stage: str, touchpoint: str | None) -> None:
    """KeyError for a stage or touchpoint the journey catalogue does not know."""
    cat = catalogue()
    cat.stage(stage)
    if touchpoint is not None:
        cat.event_type(touchpoint)


def _check_names_unique() -> None:
    seen: set[str] = set()
    for f in FEATURES:
        if f.name in seen:
            raise ValueError(f"feature {f.name!r} is declared twice")
        seen.add(f.name)


def _check_wording_complete(f: FeatureSpec) -> None:
    """The wording a feature's unit needs is there, and a standard has a norm."""
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


def _check_wording_fields(f: FeatureSpec) -> None:
    """Every feature a template names (and the ``when`` condition's) is one of every task of
    ``f``."""
    w = f.wording
    assert w is not None  # _check_wording_complete ran first
    templates = [w.says, w.zero, w.unknown, w.standard, w.when[2] if w.when else ""]
    for field in (x for t in templates for x in template_fields(t)):
        if field in ("value", "standard", "group"):
            continue
        if not _serves_every_task_of(f, field):
            raise ValueError(
                f"feature {f.name!r}: wording field {{{field}}} is not a feature of every "
                f"task of {f.name!r}"
            )
    if w.when is not None and w.when[0] not in _BY_NAME:
        raise ValueError(f"feature {f.name!r}: wording condition on unknown feature")


def _check_friction(f: FeatureSpec) -> None:
    """Actionable features, and only they, name a known friction; a fix belongs to one and
    depends only on features of every task of ``f``."""
    if f.actionable != (f.friction is not None):
        raise ValueError(f"feature {f.name!r}: actionable features, and only they, name a friction")
    if f.friction is not None:
        friction_spec(f.friction)
    if f.fix is not None and f.friction is None:
        raise ValueError(f"feature {f.name!r}: a fix belongs to a friction")
    only_when = f.fix.only_when if f.fix is not None else None
    if only_when is not None and not _serves_every_task_of(f, only_when[0]):
        raise ValueError(f"feature {f.name!r}: its fix depends on an unknown feature")


def _serves_every_task_of(f: FeatureSpec, other: str) -> bool:
    """Whether feature ``other`` exists and is a feature of every task of ``f``."""
    spec = _BY_NAME.get(other)
    return spec is not None and set(f.tasks) <= set(spec.tasks)
