"""The simulator's causal model: how frictions and customer traits change the odds of each outcome.

Each outcome is drawn from ``sigmoid(sum of log-odds terms)``. Every term is computed here from
what the simulator knows at the prediction moment (the task's cutoff), so the sum is the true
probability for that instance. Terms named in ``FRICTIONS`` are process frictions a rooftop can
fix; the others are customer traits (some hidden from the data) and context.
The README's "Simulator" section documents these figures and the assumptions behind them.
"""

from __future__ import annotations

import numpy as np

from cjm_ml.params import Task

FloatArray = np.ndarray

#: Marketing sources: (share of customers, leakage log-odds, no-show log-odds, buy log-odds).
SOURCES: dict[str, tuple[float, float, float, float]] = {
    "google_paid_search": (0.22, 0.0, 0.0, 0.0),
    "oem_website": (0.15, -0.2, -0.1, 0.1),
    "dealer_website_organic": (0.17, -0.3, -0.2, 0.2),
    "facebook_ads": (0.12, 0.6, 0.55, -0.3),
    "autotrader": (0.10, 0.35, 0.3, -0.1),
    "cars_com": (0.08, 0.3, 0.2, -0.1),
    "email_campaign": (0.08, 0.1, 0.0, 0.0),
    "referral": (0.08, -0.6, -0.5, 0.4),
}
THIRD_PARTY_SOURCES = ("autotrader", "cars_com")

#: Which named terms are process frictions, per task (the rest are traits and context).
FRICTIONS: dict[Task, tuple[str, ...]] = {
    "lead_leakage": ("slow_first_response", "no_trade_credit_follow_up"),
    "no_show": ("no_confirmation", "no_vehicle_hold", "vehicle_status_changed"),
    "service_defection": (
        "first_service_not_booked",
        "no_delivery_education",
        "reminder_channel_mismatch",
        "recall_not_notified",
        "online_booking_friction",
    ),
}


def sigmoid(x: FloatArray) -> FloatArray:
    """The logistic function."""
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=float)


def lead_leakage_terms(
    *,
    source_effect: FloatArray,
    intent: FloatArray,
    minutes_to_first_response: FloatArray,
    cutoff_minutes: float,
    sla_minutes: float,
    submitted_trade_or_credit: FloatArray,
    trade_credit_followed_up: FloatArray,
    lead_kind_effect: FloatArray,
    repeat_lead: FloatArray,
) -> dict[str, FloatArray]:
    """Log-odds terms that a lead goes dark, as known ``cutoff_minutes`` after the lead.

    The reply delay counts only up to the cutoff (``inf`` = not answered by then): what the BDC
    did in that window is what the customer lived through at the prediction moment.
    """
    waited = np.minimum(minutes_to_first_response, cutoff_minutes)
    slow = 0.5 * np.log(np.maximum(waited, sla_minutes) / sla_minutes)
    # After an hour the customer has usually contacted another dealer (a step, not a slope),
    # and an active shopper (trade-in or credit submitted) punishes a slow reply more.
    slow = slow + 0.3 * (waited > 60) + 0.35 * (minutes_to_first_response > cutoff_minutes)
    slow = slow * (1 + 0.6 * submitted_trade_or_credit)
    return {
        "base": np.full(len(intent), -1.25),
        "marketing_source": source_effect,
        "purchase_intent (hidden)": -0.6 * intent,
        "lead_kind": lead_kind_effect,
        "repeat_lead": 0.2 * repeat_lead,
        "slow_first_response": slow,
        "no_trade_credit_follow_up": 0.6
        * submitted_trade_or_credit
        * (1 - trade_credit_followed_up),
    }


def no_show_terms(
    *,
    is_service: FloatArray,
    source_effect: FloatArray,
    reliability: FloatArray,
    intent: FloatArray,
    lead_days: FloatArray,
    confirmation_applicable: FloatArray,
    confirmation: FloatArray,
    specific_vehicle: FloatArray,
    vehicle_on_hold: FloatArray,
    vehicle_sold: FloatArray,
    prior_no_shows: FloatArray,
    distance_km: FloatArray,
    rescheduled: FloatArray,
    will_defect: FloatArray,
) -> dict[str, FloatArray]:
    """Log-odds terms that a booked appointment ends in a no-show, as known at its cutoff.

    ``confirmation`` is 0 none, 1 email, 2 SMS, counted only when sent before the cutoff and
    the appointment was booked at least a day ahead (``confirmation_applicable``).
    ``will_defect`` marks service appointments of buyers the simulator has already decided will
    not return (they cancel or miss the visit: their no-show probability is 0.5).
    """
    # A missing confirmation matters more the further ahead the booking (people forget).
    conf_gap = np.select([confirmation == 2, confirmation == 1], [0.0, 0.4], 0.85)
    conf_gap = conf_gap * (0.4 + 0.15 * np.minimum(lead_days, 8))
    terms = {
        "base": np.where(is_service == 1, -2.6, -1.9),
        "marketing_source": source_effect * (1 - is_service),
        "reliability (hidden)": -0.5 * reliability,
        "purchase_intent (hidden)": -0.3 * intent * (1 - is_service),
        "appointment_lead_time": 0.3 * np.log1p(np.minimum(lead_days, 30)) * (1 - is_service)
        + 0.1 * np.log1p(lead_days) * is_service,
        "prior_no_shows": 0.45 * np.minimum(prior_no_shows, 3),
        "distance": 0.012 * np.minimum(distance_km, 120) + 0.5 * (distance_km > 40),
        "rescheduled": 0.25 * rescheduled,
        "no_confirmation": conf_gap * confirmation_applicable,
        "no_vehicle_hold": 0.35 * specific_vehicle * (1 - vehicle_on_hold) * (1 - is_service),
        "vehicle_status_changed": 1.2 * vehicle_sold,
    }
    # A buyer who will not come back: the visit is missed or cancelled, 50/50.
    defect = will_defect.astype(bool)
    if defect.any():
        for k in terms:
            terms[k] = np.where(defect, 0.0, terms[k])
    return terms


def service_defection_terms(
    *,
    loyalty: FloatArray,
    distance_km: FloatArray,
    used_vehicle: FloatArray,
    first_service_booked: FloatArray,
    delivery_education: FloatArray,
    reminder_channel_matched: FloatArray,
    open_recall: FloatArray,
    recall_notified: FloatArray,
    rooftop_online_friction: FloatArray,
    low_sales_csi: FloatArray,
    vehicle_age_years: FloatArray,
    warranty_ended: FloatArray,
    age_band_effect: FloatArray,
    per_year_of_age: float,
    warranty_ended_effect: float,
) -> dict[str, FloatArray]:
    """Log-odds terms that a buyer has no repair order in the window, as known at the cutoff.

    ``rooftop_online_friction`` is the rooftop's abandoned-online-booking share: a process
    friction customers feel later, which the data shows only through the rooftop. The
    vehicle's age at delivery (``per_year_of_age`` per model year), a warranty ended by the
    first service (``warranty_ended_effect``) and the buyer's age band (``age_band_effect``)
    are context from the deal's profile (``[vehicles]`` in the assumptions file).
    """
    return {
        # -1.45 before the profile's terms; they add about +0.4 on average.
        "base": np.full(len(loyalty), -1.85),
        "loyalty (hidden)": -0.6 * loyalty,
        "distance": 0.02 * (np.minimum(distance_km, 120) - 15),
        "used_vehicle": 0.35 * used_vehicle,
        "low_sales_csi": 0.4 * low_sales_csi,
        "vehicle_age": per_year_of_age * vehicle_age_years,
        "warranty_ended": warranty_ended_effect * warranty_ended,
        "buyer_age_band": age_band_effect,
        # Unbooked owners who live far away drift to a shop near home.
        "first_service_not_booked": (0.55 + 0.7 * (distance_km > 25)) * (1 - first_service_booked),
        "no_delivery_education": 0.35 * (1 - delivery_education),
        "reminder_channel_mismatch": 0.55 * (1 - reminder_channel_matched),
        "recall_not_notified": open_recall * np.where(recall_notified == 1, -0.5, 0.3),
        "online_booking_friction": 1.2 * np.maximum(rooftop_online_friction - 0.15, 0),
    }


def total(terms: dict[str, FloatArray]) -> FloatArray:
    """Sum of the log-odds terms."""
    return np.asarray(np.sum(np.vstack(list(terms.values())), axis=0), dtype=float)
