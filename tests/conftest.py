"""Shared fixtures: one small simulated group per test session (about a second to build), and
its three feature tables."""

from __future__ import annotations

import pandas as pd
import pytest

from cjm_ml.features.pipeline import build_feature_table
from cjm_ml.features.timeline import Timeline
from cjm_ml.params import TASKS, Task
from cjm_ml.simulation import SimulatedGroup, SimulationConfig, simulate


@pytest.fixture(scope="session")
def small_group() -> SimulatedGroup:
    """Six rooftops, 12,000 customers, two years: big enough for stable rates."""
    return simulate(SimulationConfig(rooftops=6, customers=12_000, seed=11))


@pytest.fixture(scope="session")
def tables(small_group: SimulatedGroup) -> dict[Task, pd.DataFrame]:
    """The small group's feature tables with labels, per task."""
    timeline = Timeline(small_group.events)
    return {t: build_feature_table(timeline, t) for t in TASKS}
