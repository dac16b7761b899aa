"""A vectorised simulator of a dealer group's customer journeys, with recorded ground truth.

Every step (``steps/<stage>.py``) works on arrays of journeys at once (leads, appointments,
deliveries, visits); the only Python loops are over steps and over "waves" of follow-on
appointments. Each step draws from its own random stream, so the same seed gives the same
group, and a what-if run that changes one rooftop's process keeps the rest of the randomness
aligned. What the steps draw from is in ``cjm_ml/data/simulation.toml`` (``assumptions.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from cjm_ml.params import Task, TaskParams
from cjm_ml.simulation.assumptions import Assumptions, load_assumptions
from cjm_ml.simulation.rooftops import PlantedDeviation, Rooftop, default_rooftops, fix_rooftop
from cjm_ml.simulation.state import (
    DAY,
    Appointments,
    GroupState,
    SalesVisits,
    ServiceVisits,
    merge_appointments,
)
from cjm_ml.simulation.steps.appointments import run_appointments
from cjm_ml.simulation.steps.customers import make_customers
from cjm_ml.simulation.steps.deliveries import run_deliveries
from cjm_ml.simulation.steps.leads import lead_time_of_day, run_leads
from cjm_ml.simulation.steps.service import run_service_visits, service_only_customers
from cjm_ml.simulation.steps.showroom import run_showroom
from cjm_ml.simulation.tables import events_frame, truth_frames

#: Lead waves: first leads, then customers coming back with a new lead.
LEAD_WAVES = 2
_STEPS = ("customers", "first leads", "returning leads", "deliveries", "service")


class SimulationConfig(BaseModel):
    """What to simulate. ``fixes`` resets named process settings of a rooftop to the group
    standard, for what-if runs (everything else, seed included, stays the same).
    ``assumptions`` replaces the embedded ``simulation.toml`` (None: the embedded one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    rooftops: int = Field(6, ge=2, le=50)
    customers: int = Field(30_000, ge=10)
    seed: int = 7
    start: datetime = datetime(2024, 11, 1, tzinfo=UTC)
    days: int = Field(730, ge=60, description="Length of the simulated history.")
    dealer_group_id: str = "dg-01"
    service_only_share: float = Field(0.15, ge=0, le=1)
    params: TaskParams = TaskParams()
    fixes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    assumptions: Assumptions | None = None


@dataclass
class SimulatedGroup:
    """The simulator's output: canonical events, truth per task, and the rooftops' processes."""

    events: pd.DataFrame
    truth: dict[Task, pd.DataFrame]
    rooftops: list[Rooftop]
    planted: list[PlantedDeviation]
    config: SimulationConfig


def simulate(config: SimulationConfig, progress: bool = False) -> SimulatedGroup:
    """Simulate a dealer group: its events in the canonical model and the truth per task.

    Deterministic for ``config.seed``. ``config.fixes`` resets named settings of a rooftop to
    the group standard (what-if runs keep every other random draw the same); an unknown
    rooftop or setting is refused with a ``KeyError``.
    """
    rooftops, planted = default_rooftops(config.rooftops, config.seed)
    for rooftop_id, settings in config.fixes:
        rooftops = fix_rooftop(rooftops, rooftop_id, list(settings))
        planted = [p for p in planted if not (p.rooftop_id == rooftop_id and p.setting in settings)]
    t_start = config.start.timestamp()
    state = GroupState(
        seed=config.seed,
        params=config.params,
        assumptions=config.assumptions or load_assumptions(),
        rooftops=rooftops,
        t_start=t_start,
        t_end=t_start + config.days * DAY,
    )
    bar = tqdm(total=len(_STEPS), desc="simulating", unit="step", disable=not progress)
    make_customers(state, config.customers, config.days, config.service_only_share)
    bar.update()
    shoppers = np.flatnonzero(~state.customers.service_only)
    for wave in range(LEAD_WAVES):
        bar.set_postfix_str(_STEPS[1 + wave])
        shoppers = _sales_wave(state, shoppers, wave)
        bar.update()
    bar.set_postfix_str("deliveries")
    pending = run_deliveries(state)
    pending.append(service_only_customers(state))
    bar.update()
    bar.set_postfix_str("service")
    _service_waves(state, pending)
    bar.update()
    bar.close()
    return SimulatedGroup(
        events=events_frame(state, config.dealer_group_id),
        truth=truth_frames(state),
        rooftops=rooftops,
        planted=planted,
        config=config,
    )


def _sales_wave(state: GroupState, cust: np.ndarray, wave: int) -> np.ndarray:
    """Leads of one wave (all shoppers first, then those who come back) at the customers'
    arrival, their appointments and showroom visits. Returns the customers who come back
    with a new lead (their arrival set to it)."""
    c = state.customers
    leads = run_leads(state, cust, lead_time_of_day(state, c.arrival[cust], cust, wave), wave)
    rng = state.rng("bookings", wave)
    sales_visits, _ = _drain(state, [leads.booked], wave0=100 * wave)
    visits = SalesVisits.concat([*sales_visits, leads.walk_ins])
    buy = run_showroom(state, visits, wave)
    # Who comes back with a new lead: some dark leads, and some visitors who did not buy.
    a = state.assumptions.leads
    non_buyers = visits.cust[~buy]
    non_buyers = non_buyers[rng.random(len(non_buyers)) < a.non_buyer_returns_share]
    back = np.unique(np.r_[leads.returning, non_buyers])
    back = back[~np.isin(back, state.sold[-1].cust)]
    c.arrival[back] = c.arrival[back] + rng.uniform(*a.returns_after_days, len(back)) * DAY
    return np.asarray(back)


def _service_waves(state: GroupState, pending: list[Appointments]) -> None:
    """Resolve service bookings and repair orders until nothing falls inside the history."""
    wave = 1000
    while pending:
        _, service_visits = _drain(state, pending, wave0=wave)
        wave += 100
        if not service_visits:
            break
        visits = ServiceVisits.concat(service_visits).until(state.t_end)
        if not len(visits.cust):
            break
        pending = [run_service_visits(state, visits, wave)]


def _drain(
    state: GroupState, pending: list[Appointments], wave0: int
) -> tuple[list[SalesVisits], list[ServiceVisits]]:
    """Resolve appointment batches until no follow-on booking falls inside the history;
    returns the sales and service visits of every round."""
    sales_visits, service_visits = [], []
    wave = wave0
    while pending:
        batch = merge_appointments([b for b in pending if len(b)], state.t_end)
        if batch is None:
            break
        out = run_appointments(state, batch, wave)
        pending = out.follow
        sales_visits.append(out.sales_visits)
        service_visits.append(out.service_visits)
        wave += 1
    return sales_visits, service_visits
