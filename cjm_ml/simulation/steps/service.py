"""Service: bookings made by owners (online, with the rooftop's abandon rate, or by phone),
repair orders with their inspection (MPI), service CSI, and owners coming back."""

from __future__ import annotations

import numpy as np

from cjm_ml.simulation import causal
from cjm_ml.simulation.log import json_attrs, padded_ids
from cjm_ml.simulation.state import DAY, HOUR, MINUTE, Appointments, GroupState, ServiceVisits
from cjm_ml.simulation.steps.customers import log_profiles


def book_service(
    state: GroupState,
    rng: np.random.Generator,
    cust: np.ndarray,
    ts: np.ndarray,
    rooftop: np.ndarray,
    vehicle: np.ndarray,
    deadline: np.ndarray,
) -> Appointments:
    """Service bookings made by owners at ``ts``: online (abandoned attempts before it are
    logged, at the rooftop's abandon rate) or by phone. Returns the bookings; ``deadline`` is
    the latest walk-in repair order of an owner who misses the visit."""
    a = state.assumptions.service
    n = len(cust)
    online = rng.random(n) < a.online_share
    friction = state.p["online_booking_friction"][rooftop]
    abandons = np.where(online, rng.geometric(1 - np.minimum(friction, a.max_abandon_rate)) - 1, 0)
    idx = np.repeat(np.arange(n), abandons)
    state.log.add(
        "online_scheduling",
        cust[idx],
        ts[idx] - rng.uniform(*a.abandoned_hours_before, len(idx)) * HOUR,
        rooftop[idx],
        channel="web",
        value=np.zeros(len(idx)),
    )
    state.log.add(
        "online_scheduling",
        cust[online],
        ts[online] - a.online_booking_minutes_before * MINUTE,
        rooftop[online],
        channel="web",
        value=np.ones(online.sum()),
    )
    return Appointments(
        cust=cust,
        rooftop=rooftop,
        t_book=ts,
        is_service=np.ones(n),
        vehicle=vehicle,
        source=np.full(n, -1),
        rescheduled_from=np.full(n, -1),
        will_defect=np.zeros(n),
        walk_in_deadline=deadline,
        lead_hours=rng.uniform(*a.booking_lead_hours, n),
        channel=np.where(online, state.ch["web"], state.ch["phone"]),
    )


def service_only_customers(state: GroupState) -> Appointments:
    """Owners who bought elsewhere or long ago and start their journey with a service booking."""
    rng = state.rng("service_only")
    c = state.customers
    cust = np.flatnonzero(c.service_only)
    ts = c.arrival[cust]
    log_profiles(state, cust, ts - HOUR)
    vehicle = state.new_vehicles(len(cust))
    no_deadline = np.full(len(cust), np.inf)
    return book_service(state, rng, cust, ts, c.home[cust], vehicle, no_deadline)


def run_service_visits(state: GroupState, visits: ServiceVisits, wave: int) -> Appointments:
    """Repair orders with inspection, approval, close and survey; returns the next
    maintenance bookings of owners who keep coming back (loyal ones, and more so after a
    transparent inspection)."""
    a = state.assumptions.service
    rng = state.rng("service", wave)
    cust, r, ts, vehicle = visits.cust, visits.rooftop, visits.ts, visits.vehicle
    n = len(cust)
    ro = padded_ids("ro-", state.new_repair_orders(n), 7).to_numpy(dtype=object)
    state.log.add(
        "repair_order_opened",
        cust,
        ts + a.repair_order_after_minutes * MINUTE,
        r,
        channel="in_person",
        vehicle=vehicle,
        attrs=json_attrs(ro_id=ro),
    )
    transparent = _inspect(state, rng, visits, ro)
    t_close = ts + rng.uniform(*a.close_after_hours, n) * HOUR
    state.log.add(
        "repair_order_closed",
        cust,
        t_close,
        r,
        channel="dms",
        vehicle=vehicle,
        value=np.round(
            rng.lognormal(np.log(a.repair_order_usd.median), a.repair_order_usd.sigma, n)
        ),
        attrs=json_attrs(ro_id=ro),
    )
    answered = rng.random(n) < a.csi_answered_share
    score = np.clip(
        np.round(
            a.csi_mean + a.csi_transparent_mpi * transparent + a.csi_noise_sd * rng.normal(0, 1, n)
        ),
        0,
        10,
    )
    state.log.add(
        "csi_survey",
        cust[answered],
        t_close[answered] + rng.uniform(*a.csi_days, answered.sum()) * DAY,
        r[answered],
        channel="email",
        value=score[answered],
        attrs=json_attrs(survey=np.full(answered.sum(), "service")),
    )
    log_odds = (
        a.comes_back.log_odds(state.customers.loyalty[cust])
        + a.comes_back_transparent_mpi * transparent
    )
    again = rng.random(n) < causal.sigmoid(log_odds)
    t_again = ts + rng.uniform(*a.next_visit_days, n) * DAY
    no_deadline = np.full(again.sum(), np.inf)
    return book_service(
        state, rng, cust[again], t_again[again], r[again], vehicle[again], no_deadline
    )


def _inspect(
    state: GroupState, rng: np.random.Generator, visits: ServiceVisits, ro: np.ndarray
) -> np.ndarray:
    """The multi-point inspection: sent with photos and prices at the rooftop's transparency
    rate, and partly approved. Returns who got a transparent inspection."""
    a = state.assumptions.service
    cust, r, vehicle = visits.cust, visits.rooftop, visits.vehicle
    n = len(cust)
    transparent = rng.random(n) < state.p["mpi_transparency_rate"][r]
    t_mpi = visits.ts + rng.uniform(*a.mpi_after_minutes, n) * MINUTE
    state.log.add(
        "mpi_sent",
        cust[transparent],
        t_mpi[transparent],
        r[transparent],
        channel="sms",
        vehicle=vehicle[transparent],
        value=np.round(rng.lognormal(np.log(a.mpi_usd.median), a.mpi_usd.sigma, transparent.sum())),
        attrs=json_attrs(ro_id=ro[transparent]),
    )
    approved = transparent & (rng.random(n) < a.mpi_approved_share)
    usd = a.mpi_approved_usd
    state.log.add(
        "mpi_approved",
        cust[approved],
        t_mpi[approved] + a.mpi_approved_after_minutes * MINUTE,
        r[approved],
        channel="sms",
        value=np.round(rng.lognormal(np.log(usd.median), usd.sigma, approved.sum())),
        attrs=json_attrs(ro_id=ro[approved]),
    )
    return np.asarray(transparent, dtype=bool)
