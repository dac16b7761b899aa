"""Customers: home rooftop, marketing source, hidden traits, distance, contact preferences."""

from __future__ import annotations

import numpy as np

from cjm_ml.simulation import causal
from cjm_ml.simulation.state import DAY, PREFERRED_CHANNELS, Customers, GroupState


def make_customers(state: GroupState, n: int, days: int, service_only_share: float) -> Customers:
    """``n`` customers arriving over ``days``; ``service_only_share`` of them start as owners
    who only come for service. Returns them (and keeps them in ``state``)."""
    a = state.assumptions.customers
    rng = state.rng("customers")
    weights = np.array([r.size_weight for r in state.rooftops])
    home = rng.choice(len(state.rooftops), n, p=weights / weights.sum())
    shares = np.array([v[0] for v in causal.SOURCES.values()])
    source = rng.choice(len(state.sources), n, p=shares / shares.sum())
    intent = rng.normal(0, 1, n)
    reliability = rng.normal(0, 1, n)
    loyalty = rng.normal(0, 1, n)
    distance = np.clip(
        rng.lognormal(np.log(a.distance_km.median), a.distance_km.sigma, n), *a.distance_km_bounds
    )
    distance_known = rng.random(n) > a.distance_unknown_share
    pref = rng.choice(len(PREFERRED_CHANNELS), n, p=a.preferred_channel_shares)
    pref_known = rng.random(n) > a.preferred_channel_unknown_share
    service_only = rng.random(n) < service_only_share
    # Arrivals spread over the history, leaving room for journeys to unfold.
    arrival = state.t_start + rng.uniform(0, days - a.arrival_margin_days, n) * DAY
    state.customers = Customers(
        home=home,
        source=source,
        intent=intent,
        reliability=reliability,
        loyalty=loyalty,
        distance=distance,
        distance_known=distance_known,
        pref=pref,
        pref_known=pref_known,
        service_only=service_only,
        arrival=arrival,
        prior_no_shows=np.zeros(n, dtype=np.int64),
        had_trade=np.zeros(n, dtype=bool),
        had_credit=np.zeros(n, dtype=bool),
        profile_logged=np.zeros(n, dtype=bool),
    )
    return state.customers


def log_profiles(state: GroupState, cust: np.ndarray, ts: np.ndarray) -> None:
    """Record contact preferences (channel, distance) the first time a customer becomes known."""
    c = state.customers
    new = ~c.profile_logged[cust]
    cust, ts = cust[new], ts[new]
    c.profile_logged[cust] = True
    ch = np.array([state.ch[ch] for ch in PREFERRED_CHANNELS])[c.pref[cust]]
    ch = np.where(c.pref_known[cust], ch, -1)
    dist = np.where(c.distance_known[cust], np.round(c.distance[cust], 1), np.nan)
    state.log.add(
        "contact_preferences_set",
        cust,
        ts + state.assumptions.customers.profile_delay_seconds,
        c.home[cust],
        channel=ch,
        value=dist,
    )
