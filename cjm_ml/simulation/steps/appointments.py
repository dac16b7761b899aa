"""Appointments, sales and service: booking, confirmation, vehicle hold, and the outcome (show,
no-show, cancellation, reschedule), with the follow-on bookings they lead to."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cjm_ml.simulation import causal
from cjm_ml.simulation.log import json_attrs, padded_ids
from cjm_ml.simulation.state import (
    DAY,
    HOUR,
    MINUTE,
    Appointments,
    GroupState,
    SalesVisits,
    ServiceVisits,
)

SMS_CONFIRMATION, EMAIL_CONFIRMATION, NO_CONFIRMATION = 2, 1, 0


@dataclass(frozen=True)
class AppointmentOutcomes:
    """What follows a batch of appointments: follow-on bookings (reschedules, re-booked
    no-shows), the sales visitors for the showroom and the owners who come in for service."""

    follow: list[Appointments]
    sales_visits: SalesVisits
    service_visits: ServiceVisits


@dataclass(frozen=True)
class _Schedule:
    """When each appointment of a batch is, and what the booking knows about it."""

    ids: np.ndarray  # appointment numbers
    appt_id: np.ndarray  # appointment ids, "a-0000042"
    sched: np.ndarray  # scheduled start
    lead_hours: np.ndarray  # hours from booking to start
    cutoff: np.ndarray  # the no-show prediction moment
    applicable: np.ndarray  # booked early enough for a confirmation to matter


def run_appointments(state: GroupState, batch: Appointments, wave: int) -> AppointmentOutcomes:
    """Book, confirm and resolve a batch of appointments (sales and service); records the
    no-show truth and returns what follows."""
    rng = state.rng("appointments", wave)
    s = _schedule(state, rng, batch)
    _log_bookings(state, rng, batch, s)
    confirmation = _confirm(state, rng, batch, s)
    specific, hold_known, sold = _hold_vehicle(state, rng, batch, s)
    cust = batch.cust
    c = state.customers
    svc = batch.is_service.astype(bool)
    terms = causal.no_show_terms(
        is_service=svc.astype(float),
        source_effect=state.source_no_show[c.source[cust]],
        reliability=c.reliability[cust],
        intent=c.intent[cust],
        lead_days=s.lead_hours / 24,
        confirmation_applicable=s.applicable.astype(float),
        confirmation=confirmation.astype(float),
        specific_vehicle=(specific & s.applicable).astype(float),
        vehicle_on_hold=hold_known.astype(float),
        vehicle_sold=sold.astype(float),
        prior_no_shows=c.prior_no_shows[cust].astype(float),
        distance_km=c.distance[cust],
        rescheduled=(batch.rescheduled_from >= 0).astype(float),
        will_defect=batch.will_defect.astype(float),
    )
    prob = causal.sigmoid(causal.total(terms))
    return _resolve(state, rng, batch, s, prob, terms)


def _schedule(state: GroupState, rng: np.random.Generator, batch: Appointments) -> _Schedule:
    """A slot for each booking: its own lead time if set, else drawn from the near, mid and
    far bands; a slot too close to the booking moves a day later."""
    a = state.assumptions.appointments
    n = len(batch)
    ids = state.new_appointments(n)
    u = rng.random(n)
    drawn = np.select(
        [u < a.near_share, u < a.near_or_mid_share],
        [rng.uniform(*a.near_lead_hours, n), rng.uniform(*a.mid_lead_hours, n)],
        rng.uniform(*a.far_lead_hours, n),
    )
    lead_h = np.where(np.isnan(batch.lead_hours), drawn, batch.lead_hours)
    sched = state.slot(batch.t_book + lead_h * HOUR, batch.rooftop, rng)
    sched = np.where(sched < batch.t_book + a.min_notice_hours * HOUR, sched + DAY, sched)
    cutoff = np.maximum(batch.t_book, sched - state.params.no_show.cutoff_before_start_hours * HOUR)
    return _Schedule(
        ids=ids,
        appt_id=padded_ids("a-", ids, 7).to_numpy(dtype=object),
        sched=sched,
        lead_hours=(sched - batch.t_book) / HOUR,
        cutoff=cutoff,
        applicable=cutoff > batch.t_book,
    )


def _log_bookings(
    state: GroupState, rng: np.random.Generator, batch: Appointments, s: _Schedule
) -> None:
    """The booking events: sales and service bookings, and reschedules of earlier ones."""
    ch = state.ch
    n = len(batch)
    cust, r = batch.cust, batch.rooftop
    svc = batch.is_service.astype(bool)
    chan = np.where(
        batch.channel >= 0,
        batch.channel,
        rng.choice(
            [ch["phone"], ch["web"], ch["sms"]], n, p=state.assumptions.appointments.channel_shares
        ),
    )
    sched_iso = pd.Series(pd.to_datetime(s.sched.astype("int64"), unit="s", utc=True))
    sched_iso = sched_iso.dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(dtype=object)
    resched = batch.rescheduled_from >= 0
    fresh = ~resched
    for m, etype in ((fresh & ~svc, "appointment_set"), (fresh & svc, "service_appointment_set")):
        state.log.add(
            etype,
            cust[m],
            batch.t_book[m],
            r[m],
            channel=chan[m],
            source=batch.source[m],
            vehicle=batch.vehicle[m],
            value=np.round(s.lead_hours[m], 2),
            attrs=json_attrs(appointment_id=s.appt_id[m], scheduled_ts=sched_iso[m]),
        )
    old_id = padded_ids("a-", np.maximum(batch.rescheduled_from, 0), 7).to_numpy(dtype=object)
    state.log.add(
        "appointment_rescheduled",
        cust[resched],
        batch.t_book[resched],
        r[resched],
        channel="phone",
        vehicle=batch.vehicle[resched],
        value=np.round(s.lead_hours[resched], 2),
        attrs=json_attrs(
            appointment_id=s.appt_id[resched],
            scheduled_ts=sched_iso[resched],
            rescheduled_from=old_id[resched],
        ),
    )


def _confirm(
    state: GroupState, rng: np.random.Generator, batch: Appointments, s: _Schedule
) -> np.ndarray:
    """Confirmations by the rooftop's policy (far-ahead bookings get one more often) and the
    customers' replies to texted ones; returns the confirmation known at the cutoff
    (SMS_CONFIRMATION, EMAIL_CONFIRMATION or NO_CONFIRMATION)."""
    a = state.assumptions.appointments
    n = len(batch)
    cust, r = batch.cust, batch.rooftop
    far = s.lead_hours >= a.far_ahead_hours
    conf_channel = state.p["confirmation_channel"][r]
    rate = np.where(far, state.p["confirmation_rate_far"][r], state.p["confirmation_rate_near"][r])
    rate = np.where(conf_channel == "none", 0.0, rate)
    sent = rng.random(n) < rate
    t_conf = batch.t_book + rng.uniform(*a.confirmation_delay_minutes, n) * MINUTE
    for channel in ("sms", "email"):
        m = sent & (conf_channel == channel)
        state.log.add(
            "appointment_confirmation_sent",
            cust[m],
            t_conf[m],
            r[m],
            channel=channel,
            attrs=json_attrs(appointment_id=s.appt_id[m]),
        )
    known = sent & (t_conf < s.cutoff)
    by_sms = np.where(conf_channel == "sms", SMS_CONFIRMATION, EMAIL_CONFIRMATION)
    confirmation = np.where(known, by_sms, NO_CONFIRMATION)
    reliability = state.customers.reliability[cust]
    reply = (
        sent
        & (conf_channel == "sms")
        & (rng.random(n) < causal.sigmoid(a.confirmation_reply.log_odds(reliability)))
    )
    state.log.add(
        "sms_replied",
        cust[reply],
        t_conf[reply] + rng.exponential(a.confirmation_reply_minutes_mean, reply.sum()) * MINUTE,
        r[reply],
        channel="sms",
    )
    return np.asarray(confirmation)


def _hold_vehicle(
    state: GroupState, rng: np.random.Generator, batch: Appointments, s: _Schedule
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Holds on the specific vehicle of sales bookings, and the risk it is sold before the
    visit; returns (specific vehicle, hold known at the cutoff, sold before the cutoff)."""
    a = state.assumptions.appointments
    n = len(batch)
    cust, r, t_book = batch.cust, batch.rooftop, batch.t_book
    specific = ~batch.is_service.astype(bool) & (batch.vehicle >= 0)
    hold = specific & (rng.random(n) < state.p["vehicle_hold_rate"][r])
    t_hold = t_book + rng.uniform(*a.hold_delay_minutes, n) * MINUTE
    state.log.add(
        "vehicle_hold_placed",
        cust[hold],
        t_hold[hold],
        r[hold],
        channel="dms",
        vehicle=batch.vehicle[hold],
    )
    days_ahead = np.minimum(s.lead_hours / 24, a.unheld_vehicle_sold_cap_days)
    sold_p = np.where(
        hold, a.held_vehicle_sold_probability, a.unheld_vehicle_sold_rate * days_ahead / 3
    )
    sold = specific & s.applicable & (rng.random(n) < sold_p)
    t_sold = t_book + rng.uniform(*a.vehicle_sold_time_share, n) * (s.cutoff - t_book)
    state.log.add(
        "vehicle_status_changed",
        cust[sold],
        t_sold[sold],
        r[sold],
        channel="dms",
        vehicle=batch.vehicle[sold],
    )
    return specific, hold & (t_hold < s.cutoff), sold


def _resolve(
    state: GroupState,
    rng: np.random.Generator,
    batch: Appointments,
    s: _Schedule,
    prob: np.ndarray,
    terms: dict[str, np.ndarray],
) -> AppointmentOutcomes:
    """Draw each outcome (no-show with ``prob``; otherwise cancelled, rescheduled once, or
    showed), log it and record the truth; returns what follows."""
    a = state.assumptions.appointments
    n = len(batch)
    cust = batch.cust
    no_show = rng.random(n) < prob
    v = rng.random(n)
    defect = batch.will_defect.astype(bool)
    cancel = ~no_show & ((v < a.cancelled_share) | defect)
    fresh = batch.rescheduled_from < 0
    reschedule = ~no_show & ~cancel & fresh & (v < a.cancelled_or_rescheduled_share)
    showed = ~no_show & ~cancel & ~reschedule
    outcome = np.select(
        [no_show, cancel, reschedule], ["no_show", "cancelled", "rescheduled"], "showed"
    )
    t_change = s.cutoff + rng.uniform(*a.change_time_share, n) * (s.sched - s.cutoff)
    t_no_show = s.sched + a.no_show_logged_after_minutes * MINUTE
    t_arrive = _log_outcomes(
        state,
        rng,
        batch,
        s,
        {"no_show": (no_show, t_no_show), "cancelled": (cancel, t_change)},
        showed,
    )
    outcome_ts = np.where(showed, t_arrive, np.where(no_show, t_no_show, t_change))
    label = np.where(outcome_ts <= state.t_end, no_show.astype(float), np.nan)
    _record_truth(state, batch, s, prob, terms, outcome=outcome, label=label)
    np.add.at(state.customers.prior_no_shows, cust[no_show], 1)
    follow = _follow_ons(
        state, rng, batch, s, no_show=no_show, reschedule=reschedule, t_change=t_change
    )
    svc = batch.is_service.astype(bool)
    return AppointmentOutcomes(
        follow=follow,
        sales_visits=SalesVisits(
            cust=cust[showed & ~svc],
            ts=t_arrive[showed & ~svc],
            vehicle=batch.vehicle[showed & ~svc],
            source=batch.source[showed & ~svc],
        ),
        service_visits=_service_visits(
            state, rng, batch, s, came=showed & svc, t_arrive=t_arrive, missed=no_show | cancel
        ),
    )


def _record_truth(
    state: GroupState,
    batch: Appointments,
    s: _Schedule,
    prob: np.ndarray,
    terms: dict[str, np.ndarray],
    *,
    outcome: np.ndarray,
    label: np.ndarray,
) -> None:
    """The no-show truth of a batch: one row per appointment (null label when the outcome
    falls after the end of the history)."""
    svc = batch.is_service.astype(bool)
    state.add_truth(
        "no_show",
        {
            "instance_key": s.ids,
            "customer_idx": batch.cust,
            "rooftop_idx": batch.rooftop,
            "appointment_kind": np.where(svc, "service", "sales"),
            "booked_ts": batch.t_book,
            "scheduled_ts": s.sched,
            "cutoff_ts": s.cutoff,
            "true_prob": prob,
            "outcome": outcome,
            "label": label,
        },
        terms,
    )


def _log_outcomes(
    state: GroupState,
    rng: np.random.Generator,
    batch: Appointments,
    s: _Schedule,
    missed: dict[str, tuple[np.ndarray, np.ndarray]],
    showed: np.ndarray,
) -> np.ndarray:
    """Log no-shows and cancellations (``missed``: mask and time, by outcome) and arrivals
    around the slot; returns the arrival times."""
    cust, r = batch.cust, batch.rooftop
    for outcome, channel in (("no_show", None), ("cancelled", "phone")):
        m, ts = missed[outcome]
        state.log.add(
            f"appointment_{outcome}",
            cust[m],
            ts[m],
            r[m],
            channel=channel,
            attrs=json_attrs(appointment_id=s.appt_id[m]),
        )
    t_arrive = (
        s.sched + rng.uniform(*state.assumptions.appointments.arrival_minutes, len(batch)) * MINUTE
    )
    state.log.add(
        "appointment_showed",
        cust[showed],
        t_arrive[showed],
        r[showed],
        channel="in_person",
        attrs=json_attrs(appointment_id=s.appt_id[showed]),
    )
    return np.asarray(t_arrive, dtype=float)


def _follow_ons(
    state: GroupState,
    rng: np.random.Generator,
    batch: Appointments,
    s: _Schedule,
    *,
    no_show: np.ndarray,
    reschedule: np.ndarray,
    t_change: np.ndarray,
) -> list[Appointments]:
    """Reschedules become bookings of their own; the BDC re-books some sales no-shows once."""
    a = state.assumptions.appointments
    m = reschedule
    rescheduled = Appointments(
        cust=batch.cust[m],
        rooftop=batch.rooftop[m],
        t_book=t_change[m],
        is_service=batch.is_service[m],
        vehicle=batch.vehicle[m],
        source=batch.source[m],
        rescheduled_from=s.ids[m],
        will_defect=batch.will_defect[m],
        walk_in_deadline=batch.walk_in_deadline[m],
        lead_hours=rng.uniform(*a.reschedule_lead_hours, m.sum()),
        attempt=batch.attempt[m],
    )
    svc = batch.is_service.astype(bool)
    u = rng.random(len(batch))
    m = no_show & ~svc & (batch.attempt == 0) & (u < a.rebooked_no_show_share)
    rebooked = Appointments(
        cust=batch.cust[m],
        rooftop=batch.rooftop[m],
        t_book=s.sched[m] + rng.uniform(*a.rebooked_after_days, m.sum()) * DAY,
        is_service=batch.is_service[m],
        vehicle=batch.vehicle[m],
        source=batch.source[m],
        rescheduled_from=np.full(m.sum(), -1),
        will_defect=batch.will_defect[m],
        walk_in_deadline=batch.walk_in_deadline[m],
        attempt=np.ones(m.sum(), np.int64),
    )
    return [rescheduled, rebooked]


def _service_visits(
    state: GroupState,
    rng: np.random.Generator,
    batch: Appointments,
    s: _Schedule,
    *,
    came: np.ndarray,
    t_arrive: np.ndarray,
    missed: np.ndarray,
) -> ServiceVisits:
    """Owners who came to their service appointment, and returning owners who missed or
    cancelled theirs and come in without one (before their walk-in deadline)."""
    a = state.assumptions.appointments
    m = missed & batch.is_service.astype(bool) & ~batch.will_defect.astype(bool)
    walk_ts = np.minimum(
        s.sched + rng.uniform(*a.service_walk_in_after_days, len(batch)) * DAY,
        batch.walk_in_deadline,
    )
    r = batch.rooftop
    return ServiceVisits(
        cust=np.r_[batch.cust[came], batch.cust[m]],
        rooftop=np.r_[r[came], r[m]],
        ts=np.r_[t_arrive[came], state.next_open(walk_ts[m], r[m])],
        vehicle=np.r_[batch.vehicle[came], batch.vehicle[m]],
    )
