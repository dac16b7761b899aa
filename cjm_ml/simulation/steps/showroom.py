"""Showroom visits: test drive, appraisal, credit application, desking, and the buying decision."""

from __future__ import annotations

import numpy as np

from cjm_ml.simulation import causal
from cjm_ml.simulation.state import DAY, HOUR, MINUTE, GroupState, SalesVisits


def run_showroom(state: GroupState, visits: SalesVisits, wave: int) -> np.ndarray:
    """Log the visits and what happens in the store; buyers go to F&I and wait for their
    delivery (kept in ``state.sold``). Returns a boolean mask of the visitors who bought."""
    a = state.assumptions.showroom
    rng = state.rng("showroom", wave)
    cust, ts = visits.cust, visits.ts
    n = len(cust)
    r = state.customers.home[cust]
    log = state.log
    log.add(
        "showroom_visit",
        cust,
        ts,
        r,
        channel="in_person",
        source=visits.source,
        value=np.round(rng.uniform(*a.visit_minutes, n)),
    )
    vehicle = np.where(visits.vehicle >= 0, visits.vehicle, state.new_vehicles(n))
    drive = rng.random(n) < a.test_drive_share
    log.add(
        "test_drive",
        cust[drive],
        ts[drive] + a.test_drive_after_minutes * MINUTE,
        r[drive],
        channel="in_person",
        vehicle=vehicle[drive],
    )
    _appraise_and_apply(state, rng, cust, ts)
    desk = rng.random(n) < a.desking_share
    log.add(
        "desking",
        cust[desk],
        ts[desk] + a.desking_after_minutes * MINUTE,
        r[desk],
        channel="dms",
        vehicle=vehicle[desk],
        value=np.round(
            rng.lognormal(
                np.log(a.desking_price_usd.median), a.desking_price_usd.sigma, desk.sum()
            ),
            -2,
        ),
    )
    return _close(state, rng, visits, vehicle, drive=drive, desk=desk)


def _close(
    state: GroupState,
    rng: np.random.Generator,
    visits: SalesVisits,
    vehicle: np.ndarray,
    *,
    drive: np.ndarray,
    desk: np.ndarray,
) -> np.ndarray:
    """Desked visitors buy (more likely with purchase intent, a test drive and a good
    source), go to F&I and wait for their delivery; returns who bought."""
    a = state.assumptions.showroom
    cust, ts = visits.cust, visits.ts
    n = len(cust)
    r = state.customers.home[cust]
    c = state.customers
    log_odds = (
        a.buy_intercept
        + a.buy_intent_slope * c.intent[cust]
        + a.buy_test_drive * drive
        + state.source_buy[c.source[cust]]
    )
    buy = desk & (rng.random(n) < causal.sigmoid(log_odds))
    state.log.add(
        "fi_session",
        cust[buy],
        ts[buy] + a.fi_after_minutes * MINUTE,
        r[buy],
        channel="in_person",
        value=rng.integers(*a.fi_products, buy.sum()).astype(float),
    )
    t_deliv = ts + rng.choice(a.delivery_days, n, p=a.delivery_day_shares) * DAY
    state.sold.append(
        SalesVisits(
            cust=cust[buy],
            ts=t_deliv[buy] + a.delivery_after_hours * HOUR,
            vehicle=vehicle[buy],
            source=visits.source[buy],
        )
    )
    return np.asarray(buy, dtype=bool)


def _appraise_and_apply(
    state: GroupState, rng: np.random.Generator, cust: np.ndarray, ts: np.ndarray
) -> None:
    """Appraisals (mostly of customers who valued a trade-in online) and credit applications
    in the store (of customers who did not apply online)."""
    a = state.assumptions.showroom
    n = len(cust)
    r = state.customers.home[cust]
    appraise = (
        state.customers.had_trade[cust] & (rng.random(n) < a.appraisal_with_trade_in_share)
    ) | (rng.random(n) < a.appraisal_share)
    state.log.add(
        "appraisal",
        cust[appraise],
        ts[appraise] + a.appraisal_after_minutes * MINUTE,
        r[appraise],
        channel="in_person",
        value=np.round(
            rng.lognormal(np.log(a.appraisal_usd.median), a.appraisal_usd.sigma, appraise.sum()),
            -2,
        ),
    )
    credit = ~state.customers.had_credit[cust] & (rng.random(n) < a.credit_application_share)
    state.log.add(
        "credit_application",
        cust[credit],
        ts[credit] + a.credit_application_after_minutes * MINUTE,
        r[credit],
        channel="in_person",
    )
