"""Research before a lead: VDP views, inventory searches, payment calculator, trade-in tool and
the online credit application."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cjm_ml.simulation import causal
from cjm_ml.simulation.assumptions import Logistic
from cjm_ml.simulation.state import DAY, GroupState


@dataclass(frozen=True)
class Research:
    """What a batch of shoppers did before their lead, one element per lead."""

    vehicle: np.ndarray  # the vehicle the lead is about
    price: np.ndarray  # its price, USD
    trade_in: np.ndarray  # valued a trade-in online
    credit: np.ndarray  # applied for credit online


def research(
    state: GroupState, rng: np.random.Generator, cust: np.ndarray, t_lead: np.ndarray
) -> Research:
    """Log the web research of each customer before their lead at ``t_lead`` (the recorded
    campaign is sometimes missing); returns what the lead and the showroom build on."""
    a = state.assumptions.research
    n = len(cust)
    vid = state.new_vehicles(n)
    price = np.round(
        rng.lognormal(np.log(a.vehicle_price_usd.median), a.vehicle_price_usd.sigma, n), -2
    )
    src = np.where(rng.random(n) < a.campaign_tracked_share, state.customers.source[cust], -1)
    intent = state.customers.intent[cust]
    _browse_inventory(state, rng, cust, t_lead, src, vid, price)
    calc = _tool_used(rng, a.calculator, intent)
    _log_web(
        state,
        "payment_calculator",
        cust[calc],
        t_lead[calc] - rng.uniform(*a.calculator_days_before_lead, calc.sum()) * DAY,
        src[calc],
        value=np.round(
            price[calc]
            / a.calculator_months
            * rng.uniform(*a.calculator_payment_factor, calc.sum())
        ),
    )
    trade = _tool_used(rng, a.trade_in_tool, intent)
    trade_in = a.trade_in_value_usd
    _log_web(
        state,
        "trade_in_tool",
        cust[trade],
        t_lead[trade] - rng.uniform(*a.trade_in_days_before_lead, trade.sum()) * DAY,
        src[trade],
        value=np.round(rng.lognormal(np.log(trade_in.median), trade_in.sigma, trade.sum()), -2),
    )
    credit = _tool_used(rng, a.credit_application, intent)
    _log_web(
        state,
        "credit_application",
        cust[credit],
        t_lead[credit] - rng.uniform(*a.credit_days_before_lead, credit.sum()) * DAY,
        src[credit],
    )
    state.customers.had_trade[cust] = trade
    state.customers.had_credit[cust] = credit
    return Research(vehicle=vid, price=price, trade_in=trade, credit=credit)


def _browse_inventory(
    state: GroupState,
    rng: np.random.Generator,
    cust: np.ndarray,
    t_lead: np.ndarray,
    src: np.ndarray,
    vid: np.ndarray,
    price: np.ndarray,
) -> None:
    """VDP views (the last one of the lead's vehicle, the others of similar vehicles) and
    inventory searches, more of them for customers with higher purchase intent."""
    a = state.assumptions.research
    n = len(cust)
    intent = state.customers.intent[cust]
    n_vdp = 1 + rng.poisson(a.vdp_views_mean * np.exp(a.vdp_views_intent_slope * intent))
    idx = np.repeat(np.arange(n), n_vdp)
    last = np.r_[np.cumsum(n_vdp) - 1]
    vehicle = np.where(np.isin(np.arange(len(idx)), last), vid[idx], state.new_vehicles(len(idx)))
    ts = t_lead[idx] - rng.uniform(*a.vdp_days_before_lead, len(idx)) * DAY
    vdp_price = np.round(price[idx] * rng.uniform(*a.vdp_price_factor, len(idx)), -2)
    _log_web(state, "vdp_view", cust[idx], ts, src[idx], vehicle=vehicle, value=vdp_price)
    n_search = 1 + rng.poisson(a.searches_mean, n)
    idx = np.repeat(np.arange(n), n_search)
    _log_web(
        state,
        "inventory_search",
        cust[idx],
        t_lead[idx] - rng.uniform(*a.search_days_before_lead, len(idx)) * DAY,
        src[idx],
        value=rng.integers(*a.search_results, len(idx)).astype(float),
    )


def _tool_used(rng: np.random.Generator, odds: Logistic, intent: np.ndarray) -> np.ndarray:
    """Who used an online tool, with probability ``sigmoid(intercept + slope * intent)``."""
    return rng.random(len(intent)) < causal.sigmoid(odds.log_odds(intent))


def _log_web(
    state: GroupState,
    etype: str,
    cust: np.ndarray,
    ts: np.ndarray,
    source: np.ndarray,
    *,
    vehicle: np.ndarray | None = None,
    value: np.ndarray | None = None,
) -> None:
    """Log web sessions at the customers' home rooftop."""
    home = state.customers.home[cust]
    state.log.add(etype, cust, ts, home, channel="web", source=source, vehicle=vehicle, value=value)
