"""Deliveries: handover, onboarding to service (delivery education, first service booked, the
welcome-to-service message), sales CSI, recall notices, and whether the buyer defects."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cjm_ml.simulation import causal
from cjm_ml.simulation.log import json_attrs
from cjm_ml.simulation.state import (
    DAY,
    HOUR,
    MINUTE,
    PREFERRED_CHANNELS,
    Appointments,
    GroupState,
    SalesVisits,
)
from cjm_ml.simulation.steps.service import book_service


def run_deliveries(state: GroupState) -> list[Appointments]:
    """Deliver every sale in ``state.sold`` and decide who defects (the service-defection
    truth); returns the service bookings that follow (first service booked at delivery, or
    booked later by returning buyers and by a few defectors after the window)."""
    rng = state.rng("deliveries")
    d = SalesVisits.concat(state.sold)
    cust, ts = d.cust, d.ts
    n = len(cust)
    r = state.customers.home[cust]
    keys, used, educ, profile = _deliver(state, rng, d)
    booked = rng.random(n) < state.p["first_service_booked_rate"][r]
    low_csi = _sales_csi(state, rng, d, educ)
    recall, notified = _recalls(state, rng, d, used)
    matched, channel, gave_up = _welcome(state, rng, d, booked)
    # An owner who gave up on the online scheduler carries the whole friction.
    felt_friction = np.where(gave_up, 1.0, state.p["online_booking_friction"][r])
    vehicles = state.assumptions.vehicles
    terms = causal.service_defection_terms(
        loyalty=state.customers.loyalty[cust],
        distance_km=state.customers.distance[cust],
        used_vehicle=used.astype(float),
        first_service_booked=booked.astype(float),
        delivery_education=educ.astype(float),
        reminder_channel_matched=matched.astype(float),
        open_recall=recall.astype(float),
        recall_notified=notified.astype(float),
        rooftop_online_friction=felt_friction,
        low_sales_csi=low_csi.astype(float),
        vehicle_age_years=profile.age_years.astype(float),
        warranty_ended=profile.warranty_ended.astype(float),
        age_band_effect=np.asarray(vehicles.defection_by_age_band)[profile.age_band],
        per_year_of_age=vehicles.defection_per_year_of_age,
        warranty_ended_effect=vehicles.defection_warranty_ended,
    )
    prob = causal.sigmoid(causal.total(terms))
    defect = rng.random(n) < prob
    params = state.params.service_defection
    window = params.window_days * DAY
    state.add_truth(
        "service_defection",
        {
            "instance_key": keys,
            "customer_idx": cust,
            "rooftop_idx": r,
            "event_ts": ts,
            "cutoff_ts": ts + params.cutoff_after_delivery_days * DAY,
            "true_prob": prob,
            "label": np.where(ts + window <= state.t_end, defect.astype(float), np.nan),
        },
        terms,
    )
    _maintenance_reminders(state, rng, d, channel, defect)
    return _service_bookings(state, rng, d, booked=booked, defect=defect)


@dataclass(frozen=True)
class DeliveryProfile:
    """What a deal records about the vehicle and its buyer at delivery, one element per
    delivery: age in model years, model year, odometer, warranty end, whether the warranty has
    ended by the first service, the model line and the buyer's age band (indices into the
    ``[vehicles]`` lists)."""

    age_years: np.ndarray
    model_year: np.ndarray
    mileage: np.ndarray
    warranty_end: np.ndarray  # datetime64[D]: 31 December of its last year
    warranty_ended: np.ndarray
    model_line: np.ndarray
    age_band: np.ndarray

    def attributes(self, state: GroupState, used: np.ndarray) -> np.ndarray:
        """The delivery events' JSON attributes: ``condition``, then the profile as strings
        (``model_line``, ``model_year``, ``mileage``, ``warranty_end`` as an ISO date,
        ``age_band``), in the order the shipped ``dms_deals`` mapping writes them."""
        v = state.assumptions.vehicles
        return json_attrs(
            condition=np.where(used, "used", "new"),
            model_line=np.asarray(v.model_lines)[self.model_line],
            model_year=self.model_year,
            mileage=self.mileage,
            warranty_end=np.datetime_as_string(self.warranty_end, unit="D"),
            age_band=np.asarray(v.buyer_age_bands)[self.age_band],
        )


def delivery_profile(state: GroupState, d: SalesVisits, used: np.ndarray) -> DeliveryProfile:
    """Draw the profile of each delivered vehicle and its buyer (``[vehicles]``): a new
    vehicle is of the delivery's year with a few miles, a used one some model years older with
    miles for each year; the warranty runs ``warranty_years`` from the model year. The buyer's
    age band is drawn once per customer. Draws from streams of their own, so the rest of the
    simulation's randomness stays aligned."""
    v = state.assumptions.vehicles
    rng = state.rng("vehicle_profile")
    n = len(d.cust)
    age = np.where(used, rng.integers(*v.used_age_years, n), 0)
    miles = np.where(used, age * rng.uniform(*v.miles_per_year, n), rng.uniform(*v.new_miles, n))
    delivered_s = np.floor(d.ts).astype(np.int64).astype("datetime64[s]")
    year = delivered_s.astype("datetime64[Y]").astype(np.int64) + 1970
    model_year = year - age
    last_year = model_year + v.warranty_years - 1
    warranty_end = (last_year + 1 - 1970).astype("datetime64[Y]").astype("datetime64[D]") - 1
    end_s = warranty_end.astype("datetime64[s]").astype(np.int64).astype(float)
    bands = state.rng("buyer_age_band").choice(
        len(v.buyer_age_bands), size=len(state.customers.home), p=v.buyer_age_band_shares
    )
    return DeliveryProfile(
        age_years=age,
        model_year=model_year,
        mileage=np.round(miles).astype(np.int64),
        warranty_end=warranty_end,
        warranty_ended=end_s < d.ts + v.warranty_horizon_days * DAY,
        model_line=rng.integers(0, len(v.model_lines), n),
        age_band=bands[d.cust],
    )


def _deliver(
    state: GroupState, rng: np.random.Generator, d: SalesVisits
) -> tuple[np.ndarray, np.ndarray, np.ndarray, DeliveryProfile]:
    """The handover (new or used, with the deal's profile) and delivery education at the
    rooftop's rate; returns (delivery event keys, used vehicle, educated, profile)."""
    a = state.assumptions.deliveries
    cust, ts = d.cust, d.ts
    n = len(cust)
    r = state.customers.home[cust]
    used = rng.random(n) < a.used_share
    profile = delivery_profile(state, d, used)
    keys = state.log.add(
        "vehicle_delivery",
        cust,
        ts,
        r,
        channel="in_person",
        source=d.source,
        vehicle=d.vehicle,
        value=np.round(rng.lognormal(np.log(a.price_usd.median), a.price_usd.sigma, n), -2),
        attrs=profile.attributes(state, used),
    )
    # The CRM closes the buyer's lead as sold at delivery.
    state.log.add(
        "lead_closed", cust, ts, r, channel="crm", attrs=json_attrs(status=np.full(n, "sold"))
    )
    educ = rng.random(n) < state.p["delivery_education_rate"][r]
    state.log.add(
        "delivery_education",
        cust[educ],
        ts[educ] + a.education_after_minutes * MINUTE,
        r[educ],
        channel="in_person",
        value=rng.integers(*a.education_minutes, educ.sum()).astype(float),
    )
    return keys, used, educ, profile


def _sales_csi(
    state: GroupState, rng: np.random.Generator, d: SalesVisits, educ: np.ndarray
) -> np.ndarray:
    """The sales CSI survey: loyal buyers answer more often and score higher, and delivery
    education adds points. Returns who answered with a low score."""
    a = state.assumptions.deliveries
    n = len(d.cust)
    loyalty = state.customers.loyalty[d.cust]
    answered = rng.random(n) < causal.sigmoid(a.csi_answered.log_odds(loyalty))
    t_csi = d.ts + rng.uniform(*a.csi_days, n) * DAY
    score = np.clip(
        np.round(
            a.csi_mean
            + a.csi_noise_sd * rng.normal(0, 1, n)
            + a.csi_education * educ
            + a.csi_loyalty_slope * loyalty
        ),
        0,
        10,
    )
    r = state.customers.home[d.cust]
    state.log.add(
        "csi_survey",
        d.cust[answered],
        t_csi[answered],
        r[answered],
        channel="email",
        value=score[answered],
        attrs=json_attrs(survey=np.full(answered.sum(), "sales")),
    )
    return np.asarray(answered & (score <= a.low_csi_max_score), dtype=bool)


def _recalls(
    state: GroupState, rng: np.random.Generator, d: SalesVisits, used: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Open recalls on used vehicles, and whether the rooftop tells the owner; returns
    (open recall, notified)."""
    a = state.assumptions.deliveries
    n = len(d.cust)
    r = state.customers.home[d.cust]
    recall = used & (rng.random(n) < a.open_recall_share)
    notified = recall & (rng.random(n) < state.p["recall_outreach_rate"][r])
    state.log.add(
        "recall_notice",
        d.cust[notified],
        d.ts[notified] + rng.uniform(*a.recall_notice_days, notified.sum()) * DAY,
        r[notified],
        channel="mail",
        vehicle=d.vehicle[notified],
    )
    return recall, notified


def _welcome(
    state: GroupState, rng: np.random.Generator, d: SalesVisits, booked: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The welcome-to-service message, on the preferred channel at the rooftop's match rate,
    the replies or opens of loyal owners (only texts and emails show them), and the early
    online booking attempts it prompts. Returns (channel matched, channel code used, gave up
    on the online scheduler) per buyer."""
    a = state.assumptions.deliveries
    cust = d.cust
    n = len(cust)
    r = state.customers.home[cust]
    pref = state.customers.pref[cust]
    matched = rng.random(n) < state.p["reminder_channel_match_rate"][r]
    preferred = np.array([state.ch[c] for c in PREFERRED_CHANNELS])[pref]
    other = np.array([state.ch[c] for c in a.wrong_channels])[pref]
    channel = np.where(matched, preferred, other)
    t_welcome = d.ts + rng.uniform(*a.welcome_days, n) * DAY
    state.log.add("service_reminder", cust, t_welcome, r, channel=channel, vehicle=d.vehicle)
    loyalty = state.customers.loyalty[cust]
    log_odds = a.welcome_engagement.log_odds(loyalty) + a.welcome_engagement_matched * matched
    _log_engagement(state, cust, t_welcome, r, channel, log_odds)
    gave_up = _early_online_attempts(state, d, t_welcome, unbooked=~booked)
    return matched, channel, gave_up


def _early_online_attempts(
    state: GroupState, d: SalesVisits, welcome: np.ndarray, *, unbooked: np.ndarray
) -> np.ndarray:
    """Owners with no first service booked open the online scheduler the welcome message
    points to, soon after it (before the defection cutoff); each gives up with the rooftop's
    abandon rate. Logs the abandoned sessions (value 0); returns who gave up. Owners who get
    through book later, when the service is due."""
    a = state.assumptions.deliveries
    rng = state.rng("early_online_booking")
    n = len(d.cust)
    r = state.customers.home[d.cust]
    tries = unbooked & (rng.random(n) < a.early_online_share)
    gave_up = tries & (rng.random(n) < state.p["online_booking_friction"][r])
    t = welcome + rng.uniform(*a.early_online_hours, n) * HOUR
    state.log.add(
        "online_scheduling",
        d.cust[gave_up],
        t[gave_up],
        r[gave_up],
        channel="web",
        vehicle=d.vehicle[gave_up],
        value=np.zeros(int(gave_up.sum())),
    )
    return np.asarray(gave_up, dtype=bool)


def _log_engagement(
    state: GroupState,
    cust: np.ndarray,
    sent: np.ndarray,
    rooftop: np.ndarray,
    channel: np.ndarray,
    log_odds: np.ndarray,
) -> None:
    """A reply to a text or an open of an email, hours after the message was ``sent`` on
    ``channel``, with probability ``sigmoid(log_odds)``; other channels are not tracked."""
    rng = state.rng("engagement", state.engagement_calls)
    state.engagement_calls += 1
    engaged = rng.random(len(cust)) < causal.sigmoid(log_odds)
    t = sent + rng.exponential(state.assumptions.engagement.reply_hours_mean, len(cust)) * HOUR
    for reply, via in (("sms_replied", "sms"), ("email_opened", "email")):
        m = engaged & (channel == state.ch[via])
        state.log.add(reply, cust[m], t[m], rooftop[m], channel=via)


def _maintenance_reminders(
    state: GroupState,
    rng: np.random.Generator,
    d: SalesVisits,
    channel: np.ndarray,
    defect: np.ndarray,
) -> None:
    """Maintenance reminders on the welcome message's channel; owners who have already
    decided to go elsewhere stop engaging."""
    a = state.assumptions.deliveries
    r = state.customers.home[d.cust]
    t_rem = d.ts + rng.uniform(*a.maintenance_reminder_days, len(d.cust)) * DAY
    state.log.add("maintenance_reminder", d.cust, t_rem, r, channel=channel, vehicle=d.vehicle)
    loyalty = state.customers.loyalty[d.cust]
    log_odds = (
        a.maintenance_engagement.log_odds(loyalty) + a.maintenance_engagement_defecting * defect
    )
    _log_engagement(state, d.cust, t_rem, r, channel, log_odds)


def _service_bookings(
    state: GroupState,
    rng: np.random.Generator,
    d: SalesVisits,
    *,
    booked: np.ndarray,
    defect: np.ndarray,
) -> list[Appointments]:
    """First service booked at delivery; otherwise returning buyers book later (some at
    another rooftop of the group), and a few defectors come back after the window."""
    a = state.assumptions.deliveries
    cust, ts, vehicle = d.cust, d.ts, d.vehicle
    n = len(cust)
    r = state.customers.home[cust]
    window = state.params.service_defection.window_days * DAY
    deadline = ts + window - a.walk_in_before_window_end_days * DAY
    late = ~booked & ((~defect) | (rng.random(n) < a.defector_returns_share))
    t_late = np.where(
        defect,
        ts
        + rng.uniform(
            window / DAY + a.defector_returns_after_window_days, a.defector_returns_by_days, n
        )
        * DAY,
        ts + rng.uniform(*a.returning_booking_days, n) * DAY,
    )
    elsewhere = rng.random(n) < a.other_rooftop_share
    svc_rooftop = np.where(elsewhere, rng.integers(0, len(state.rooftops), n), r)
    k = int(booked.sum())
    first = Appointments(
        cust=cust[booked],
        rooftop=r[booked],
        t_book=ts[booked] + a.first_service_booking_delay_minutes * MINUTE,
        is_service=np.ones(k),
        vehicle=vehicle[booked],
        source=np.full(k, -1),
        rescheduled_from=np.full(k, -1),
        will_defect=defect[booked].astype(float),
        walk_in_deadline=deadline[booked],
        lead_hours=rng.uniform(*a.first_service_days_ahead, k) * 24,
        channel=np.full(k, state.ch["in_person"]),
    )
    walk_in_deadline = np.where(defect[late], np.inf, deadline[late])
    later = book_service(
        state, rng, cust[late], t_late[late], svc_rooftop[late], vehicle[late], walk_in_deadline
    )
    return [first, later]
