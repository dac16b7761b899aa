"""The simulator's assumptions about customers and stores: every probability, share, median,
spread, delay and threshold its journey steps draw from, in one typed data file.

The embedded file is ``cjm_ml/data/simulation.toml``; ``load_assumptions(path)`` reads another
of the same shape. Every field is required (the file is the one home of each number) and
unknown keys are refused by name. Rooftop process settings stay in ``rooftops.py`` and the
causal model's log-odds in ``causal.py``; the README's "Simulator" section documents them.
Units are in the field names: ``_minutes``, ``_hours``, ``_days``, ``_seconds``, ``_usd``, ``_km``.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

Probability = Annotated[float, Field(ge=0, le=1)]


def _ordered(bounds: tuple[float, float]) -> tuple[float, float]:
    if bounds[0] > bounds[1]:
        raise ValueError(f"range {list(bounds)} has its low end above its high end")
    return bounds


#: A uniform draw between two bounds, in the unit of the field's name.
Range = Annotated[tuple[float, float], AfterValidator(_ordered)]
#: A uniform draw of whole numbers from the first bound up to (not including) the second.
IntRange = Annotated[tuple[int, int], AfterValidator(_ordered)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LogNormal(_Section):
    """A log-normal draw: its median, in the unit of the field's name, and its spread."""

    median: float = Field(gt=0, description="Median of the draw.")
    sigma: float = Field(gt=0, description="Log-normal sigma (spread of the log).")


class Logistic(_Section):
    """A probability ``sigmoid(intercept + slope * trait)``, the trait in standard deviations."""

    intercept: float = Field(description="Log-odds for an average customer.")
    slope: float = Field(description="Log-odds per standard deviation of the trait.")

    def log_odds(self, trait: np.ndarray) -> np.ndarray:
        """``intercept + slope * trait``, element-wise."""
        return np.asarray(self.intercept + self.slope * trait, dtype=float)


class ReplyShares(_Section):
    """Shares of first replies and follow-ups by channel (they sum to 1)."""

    call: Probability
    text: Probability
    email: Probability


class Customers(_Section):
    """Who the customers are: where they live, how they like to be contacted, when they come."""

    distance_km: LogNormal = Field(description="Distance from home to the home rooftop.")
    distance_km_bounds: Range = Field(description="Distances are clipped to this range.")
    distance_unknown_share: Probability = Field(description="Customers with no known distance.")
    preferred_channel_shares: tuple[Probability, Probability, Probability] = Field(
        description="Preferred contact channel: shares of sms, email, phone."
    )
    preferred_channel_unknown_share: Probability = Field(
        description="Customers whose preferred channel is not on record."
    )
    arrival_margin_days: float = Field(
        ge=0, description="Arrivals stop this long before the end, so journeys can unfold."
    )
    profile_delay_seconds: float = Field(
        ge=0, description="Contact preferences are recorded this long after the first contact."
    )


class Research(_Section):
    """Web research before a lead: VDP views, inventory searches, payment calculator, trade-in
    tool and the online credit application."""

    vehicle_price_usd: LogNormal = Field(description="Price of the vehicle the lead is about.")
    campaign_tracked_share: Probability = Field(
        description="Web sessions that carry the customer's marketing source."
    )
    vdp_views_mean: float = Field(
        ge=0, description="Mean extra VDP views (Poisson) for an average customer; one is sure."
    )
    vdp_views_intent_slope: float = Field(
        description="Log change of the mean extra VDP views per SD of purchase intent."
    )
    vdp_days_before_lead: Range
    vdp_price_factor: Range = Field(description="Price of other vehicles viewed, as a factor.")
    searches_mean: float = Field(ge=0, description="Mean extra searches (Poisson); one is sure.")
    search_days_before_lead: Range
    search_results: IntRange = Field(description="Vehicles a search returns.")
    calculator: Logistic = Field(description="Uses the payment calculator, by purchase intent.")
    calculator_days_before_lead: Range
    calculator_months: float = Field(gt=0, description="Term: payment = price / months.")
    calculator_payment_factor: Range = Field(description="Noise on the monthly payment.")
    trade_in_tool: Logistic = Field(description="Values a trade-in online, by purchase intent.")
    trade_in_days_before_lead: Range
    trade_in_value_usd: LogNormal
    credit_application: Logistic = Field(
        description="Applies for credit online, by purchase intent."
    )
    credit_days_before_lead: Range


class Leads(_Section):
    """The lead itself: kind, recorded source, hour, and what the customer does next."""

    kind_shares: tuple[Probability, Probability, Probability] = Field(
        description="Form, call, chat shares of leads not from a third-party site."
    )
    misattributed_share: Probability = Field(
        description="Leads recorded with a wrong source (call tracking noise)."
    )
    untracked_share: Probability = Field(description="Leads recorded with no source.")
    hour_weights: tuple[tuple[int, float], ...] = Field(
        description="Local hour of the lead: [until hour, relative weight] bands from midnight."
    )
    call_seconds: IntRange = Field(description="Length of an inbound call picked up live.")
    chat_messages: IntRange = Field(description="Messages in a chat lead.")
    missed_call_ring_seconds: IntRange = Field(description="Ringing before a call is missed.")
    missed_call_delay_seconds: float = Field(ge=0, description="Missed call logged after the lead.")
    crm_task_delay_seconds: float = Field(ge=0, description="CRM task created after the lead.")
    call_log_odds: float = Field(description="Leakage log-odds of a call lead (causal term).")
    chat_log_odds: float = Field(description="Leakage log-odds of a chat lead (causal term).")
    walk_in_share: Probability = Field(
        description="Kept leads that walk in instead of booking (all unanswered ones do)."
    )
    specific_vehicle_share: Probability = Field(
        description="Bookings made for the vehicle the lead was about."
    )
    dark_lead_returns_share: Probability = Field(
        description="Leads gone dark whose customer comes back months later with a new lead."
    )
    non_buyer_returns_share: Probability = Field(
        description="Showroom visitors who did not buy and come back with a new lead."
    )
    returns_after_days: Range = Field(description="Time to the returning lead.")
    booked_in_call_share: Probability = Field(
        description="Answered live calls not going dark that book a sales appointment during "
        "the call."
    )
    booked_in_chat_share: Probability = Field(
        description="Chats not going dark that book a sales appointment during the chat."
    )
    booked_in_contact_minutes: Range = Field(
        description="Booking during the call or chat: minutes after the lead."
    )


class LeadClosure(_Section):
    """The CRM closing leads (``lead_closed`` with its status): junk leads (bad contact data,
    duplicates) within hours, dark leads days later, sold leads at delivery."""

    junk_share_of_dark: Probability = Field(
        description="Dark leads that are bad leads or duplicates (closed within hours)."
    )
    duplicate_share_of_junk: Probability = Field(description="Junk leads closed as duplicates.")
    junk_closed_after_hours: Range = Field(description="Junk lead closed after the lead.")
    dark_closed_share: Probability = Field(
        description="Other dark leads the CRM closes (no_contact or lost_other_dealer)."
    )
    lost_other_dealer_share: Probability = Field(
        description="Closed dark leads marked lost to another dealer (the rest: no contact)."
    )
    dark_closed_after_days: Range = Field(description="Dark lead closed after the lead.")


class FirstResponse(_Section):
    """The BDC's first reply, the customer's answer, and the trade-in/credit follow-up task."""

    reply_shares: ReplyShares = Field(description="First reply channel to form and 3rd-party.")
    chat_reply_shares: tuple[Probability, Probability] = Field(
        description="First reply channel to chat leads: shares of call, text."
    )
    picked_up: Logistic = Field(description="Customer picks up the BDC's call, by intent.")
    call_seconds: IntRange = Field(description="Length of a call the customer picked up.")
    task_completed_delay_seconds: float = Field(ge=0)
    customer_reply: Logistic = Field(description="Customer answers a text or email, by intent.")
    customer_reply_minutes_mean: float = Field(gt=0, description="Exponential mean delay.")
    trade_credit_task_delay_minutes: Range = Field(description="Task created after the reply.")


class FollowUp(_Section):
    """The follow-up cadence after the first reply, up to the next step or the lead going dark."""

    next_step_gap_days_mean: float = Field(
        gt=0, description="Exponential mean time from the reply (or cutoff) to the next step."
    )
    next_step_after_cutoff_minutes: float = Field(ge=0)
    next_step_before_window_end_days: float = Field(ge=0)
    attempt_days: Range = Field(description="Follow-up attempts after the reply (or cutoff).")
    attempt_shares: ReplyShares
    attempt_call_answered_share: Probability = Field(
        description="Follow-up calls picked up by customers who have not gone dark."
    )
    attempt_call_seconds: IntRange


class OpeningHours(_Section):
    """Local business hours of every rooftop (Sunday closed) and the appointment grid."""

    opens_hour: float = Field(ge=0, le=24)
    weekday_closes_hour: float = Field(ge=0, le=24, description="Monday to Friday.")
    saturday_closes_hour: float = Field(ge=0, le=24)
    first_slot_hour: float = Field(ge=0, le=24, description="First half-hour appointment slot.")
    last_slot_hour: float = Field(ge=0, le=24, description="Last half-hour appointment slot.")


class Appointments(_Section):
    """Booking, confirmation, vehicle hold and outcome of sales and service appointments."""

    near_share: Probability = Field(description="Bookings for the same or next days.")
    near_or_mid_share: Probability = Field(description="Bookings up to a week ahead.")
    near_lead_hours: Range
    mid_lead_hours: Range
    far_lead_hours: Range
    min_notice_hours: float = Field(
        ge=0, description="A slot closer than this to the booking moves a day later."
    )
    channel_shares: tuple[Probability, Probability, Probability] = Field(
        description="Booking channel of sales bookings: shares of phone, web, sms."
    )
    far_ahead_hours: float = Field(
        gt=0, description="Bookings this far ahead get the rooftop's far confirmation rate."
    )
    confirmation_delay_minutes: Range
    confirmation_reply: Logistic = Field(
        description="Texted confirmation answered, by reliability."
    )
    confirmation_reply_minutes_mean: float = Field(gt=0, description="Exponential mean delay.")
    hold_delay_minutes: Range
    held_vehicle_sold_probability: Probability
    unheld_vehicle_sold_rate: Probability = Field(
        description="Chance an unheld vehicle is sold before the visit, per three days ahead."
    )
    unheld_vehicle_sold_cap_days: float = Field(gt=0, description="Days ahead counted at most.")
    vehicle_sold_time_share: Range = Field(description="When it sells, between booking and cutoff.")
    cancelled_share: Probability = Field(description="Appointments that are cancelled.")
    cancelled_or_rescheduled_share: Probability = Field(
        description="Cancelled or rescheduled (a reschedule happens once)."
    )
    change_time_share: Range = Field(
        description="When a cancellation or reschedule happens, between cutoff and start."
    )
    no_show_logged_after_minutes: float = Field(ge=0)
    arrival_minutes: Range = Field(description="Arrival relative to the slot.")
    reschedule_lead_hours: Range = Field(description="How far ahead the new slot is booked.")
    rebooked_no_show_share: Probability = Field(description="Sales no-shows the BDC re-books once.")
    rebooked_after_days: Range
    service_walk_in_after_days: Range = Field(
        description="A returning owner who missed a service visit comes in without one."
    )


class Showroom(_Section):
    """A showroom visit: test drive, appraisal, credit, desking, the buying decision."""

    visit_minutes: Range
    test_drive_share: Probability
    test_drive_after_minutes: float = Field(ge=0)
    appraisal_with_trade_in_share: Probability = Field(
        description="Appraisals of customers who valued a trade-in online."
    )
    appraisal_share: Probability = Field(description="Appraisals of any other visitor.")
    appraisal_after_minutes: float = Field(ge=0)
    appraisal_usd: LogNormal
    credit_application_share: Probability = Field(
        description="Visitors without an online credit application who apply in the store."
    )
    credit_application_after_minutes: float = Field(ge=0)
    desking_share: Probability
    desking_after_minutes: float = Field(ge=0)
    desking_price_usd: LogNormal
    buy_intercept: float = Field(description="Log-odds that a desked visitor buys.")
    buy_intent_slope: float = Field(description="Per SD of purchase intent.")
    buy_test_drive: float = Field(description="Added by a test drive.")
    fi_after_minutes: float = Field(ge=0)
    fi_products: IntRange = Field(description="F&I products sold.")
    delivery_days: tuple[float, ...] = Field(description="Delivery this many days after the sale.")
    delivery_day_shares: tuple[Probability, ...] = Field(description="Shares of delivery_days.")
    delivery_after_hours: float = Field(ge=0)


class Deliveries(_Section):
    """Delivery, onboarding to service, sales CSI, recalls, reminders, and the first service."""

    used_share: Probability
    price_usd: LogNormal
    education_after_minutes: float = Field(ge=0)
    education_minutes: IntRange
    csi_answered: Logistic = Field(description="Sales CSI survey answered, by loyalty.")
    csi_days: Range
    csi_mean: float = Field(description="Mean sales CSI score (0-10) before the effects below.")
    csi_noise_sd: float = Field(ge=0)
    csi_education: float = Field(description="Points added by delivery education.")
    csi_loyalty_slope: float = Field(description="Points per SD of loyalty.")
    low_csi_max_score: float = Field(description="Scores at most this count as low (causal).")
    open_recall_share: Probability = Field(description="Used vehicles with an open recall.")
    recall_notice_days: Range
    welcome_days: Range = Field(description="Welcome-to-service message after delivery.")
    wrong_channels: tuple[str, str, str] = Field(
        description="Channel used when not the preferred one, for sms, email, phone preference."
    )
    welcome_engagement: Logistic = Field(description="Reply or open, by loyalty.")
    welcome_engagement_matched: float = Field(description="Added on the preferred channel.")
    early_online_share: Probability = Field(
        description="Owners with no first service booked who open the online scheduler soon."
    )
    early_online_hours: Range = Field(description="After the welcome message.")
    maintenance_reminder_days: Range
    maintenance_engagement: Logistic = Field(description="Reply or open, by loyalty.")
    maintenance_engagement_defecting: float = Field(
        description="Added when the owner has decided to go elsewhere."
    )
    defector_returns_share: Probability = Field(
        description="Defectors who come back for service after the window."
    )
    defector_returns_after_window_days: float = Field(ge=0)
    defector_returns_by_days: float = Field(gt=0, description="Latest return after delivery.")
    returning_booking_days: Range = Field(description="Later first-service bookings.")
    other_rooftop_share: Probability = Field(description="Service at another rooftop.")
    first_service_booking_delay_minutes: float = Field(ge=0)
    first_service_days_ahead: Range = Field(description="First service booked at delivery.")
    walk_in_before_window_end_days: float = Field(
        ge=0, description="A missed first service is made up by a walk-in this long before."
    )


class Service(_Section):
    """Service bookings by the owner, repair orders, inspections, service CSI, coming back."""

    online_share: Probability = Field(description="Owners who book online (the rest by phone).")
    max_abandon_rate: Probability = Field(description="Abandon rates above this are capped.")
    abandoned_hours_before: Range = Field(description="Abandoned sessions before the booking.")
    online_booking_minutes_before: float = Field(ge=0)
    booking_lead_hours: Range
    repair_order_after_minutes: float = Field(ge=0)
    mpi_after_minutes: Range
    mpi_usd: LogNormal = Field(description="Work the inspection recommends.")
    mpi_approved_share: Probability
    mpi_approved_after_minutes: float = Field(ge=0)
    mpi_approved_usd: LogNormal
    close_after_hours: Range
    repair_order_usd: LogNormal
    csi_answered_share: Probability
    csi_mean: float = Field(description="Mean service CSI score (0-10) before the effects below.")
    csi_transparent_mpi: float = Field(description="Points added by an inspection with photos.")
    csi_noise_sd: float = Field(ge=0)
    csi_days: Range
    comes_back: Logistic = Field(description="Owner returns for maintenance, by loyalty.")
    comes_back_transparent_mpi: float = Field(description="Added by a transparent inspection.")
    next_visit_days: Range


class Engagement(_Section):
    """Replies to texts and opens of emails sent to owners."""

    reply_hours_mean: float = Field(gt=0, description="Exponential mean delay.")


class LateRecord(_Section):
    """How often an event type is written into its system after it happened, and how late."""

    share: Probability = Field(description="Events of the type recorded late.")
    delay_hours: Range = Field(description="How long after, uniform.")


class Recording(_Section):
    """Outcomes the dealer's systems record after the fact (``recorded_ts``): a no-show
    entered the next morning, a lost lead closed at the weekly clean-up, a repair order posted
    in the DMS later. By event type; other events are recorded as they happen."""

    late: dict[str, LateRecord]


class Exports(_Section):
    """The mess of the raw exports (``exports.py``): time zones, spellings, gaps, duplicates."""

    time_zones: dict[int, str] = Field(
        description="IANA time zone of a rooftop, by its UTC offset in hours."
    )
    duplicate_row_share: Probability = Field(
        description="Rows written twice, exactly, in each export (and ADF documents re-sent)."
    )
    name_case_shares: tuple[Probability, Probability, Probability] = Field(
        description="Names written as on the profile, in upper case, in lower case."
    )
    first_initial_share: Probability = Field(
        description="First names written as an initial with a dot (``J.``)."
    )
    email_case_share: Probability = Field(description="Emails written in another letter case.")
    phone_format_shares: tuple[Probability, Probability, Probability, Probability] = Field(
        description="Phones as (NPA) NXX-XXXX, NPA-NXX-XXXX, +1 NPA NXX XXXX, NPANXXXXXX."
    )
    call_lead_email_share: Probability = Field(description="Phone-up leads with an email.")
    chat_lead_phone_share: Probability = Field(description="Chat leads with a phone.")
    users_per_rooftop: int = Field(ge=1, description="Staff per role who log CRM activities.")


class Vehicles(_Section):
    """The vehicle and buyer profile a deal records at delivery (the ``vehicle_delivery``
    event's attributes: model line, model year, odometer, warranty end, the buyer's age band),
    and what the profile does to service defection (context terms, not frictions)."""

    model_lines: tuple[str, ...] = Field(min_length=1, description="Vehicle model lines.")
    inventory_used_share: Probability = Field(
        description="Vehicles never delivered (inventory viewed, serviced) that are used."
    )
    used_age_years: IntRange = Field(description="Age of a used vehicle, in model years.")
    miles_per_year: Range = Field(description="Mileage a used vehicle adds per year.")
    new_miles: Range = Field(description="Odometer of a new vehicle at delivery.")
    warranty_years: int = Field(
        ge=1, description="Warranty years from the model year (it ends on 31 December)."
    )
    buyer_age_bands: tuple[str, ...] = Field(min_length=1, description="Buyers' age bands.")
    buyer_age_band_shares: tuple[Probability, ...] = Field(
        description="Shares of buyer_age_bands (one per band)."
    )
    defection_per_year_of_age: float = Field(
        description="Defection log-odds per model year of the vehicle's age at delivery "
        "(owners of older vehicles go to independent shops)."
    )
    defection_warranty_ended: float = Field(
        description="Defection log-odds when the warranty has ended by the first service "
        "(warranty_horizon_days after delivery): nothing ties the owner to the dealer."
    )
    warranty_horizon_days: float = Field(
        ge=0, description="A warranty ending within this many days of delivery counts as ended."
    )
    defection_by_age_band: tuple[float, ...] = Field(
        description="Defection log-odds of each buyer age band (one per band)."
    )

    @model_validator(mode="after")
    def _one_share_and_effect_per_band(self) -> Vehicles:
        n = len(self.buyer_age_bands)
        if len(self.buyer_age_band_shares) != n or len(self.defection_by_age_band) != n:
            raise ValueError("buyer_age_band_shares and defection_by_age_band need one per band")
        if abs(sum(self.buyer_age_band_shares) - 1) > 1e-9:
            raise ValueError("buyer_age_band_shares must sum to 1")
        return self


class Assumptions(_Section):
    """Everything the simulator's journey steps draw from, by step."""

    customers: Customers
    research: Research
    leads: Leads
    lead_closure: LeadClosure
    first_response: FirstResponse
    follow_up: FollowUp
    opening_hours: OpeningHours
    appointments: Appointments
    showroom: Showroom
    deliveries: Deliveries
    service: Service
    engagement: Engagement
    recording: Recording
    vehicles: Vehicles
    exports: Exports


def default_assumptions_path() -> Path:
    """The embedded assumptions file."""
    return Path(str(resources.files("cjm_ml") / "data" / "simulation.toml"))


@lru_cache(maxsize=1)
def _default_assumptions() -> Assumptions:
    return load_assumptions(default_assumptions_path())


def load_assumptions(path: Path | None = None) -> Assumptions:
    """The assumptions in ``path`` (default: the embedded file, read once and cached).

    Refuses a missing file, invalid TOML, a missing or unknown key and an out-of-range value,
    with an error naming the file.
    """
    if path is None:
        return _default_assumptions()
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{path}: assumptions file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return Assumptions.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"{path}: {exc}") from exc
