"""Shared fixtures: one small simulated group per test session (about a second to build)."""

from __future__ import annotations

import pytest

from cjm_ml.simulation import SimulatedGroup, SimulationConfig, simulate


@pytest.fixture(scope="session")
def small_group() -> SimulatedGroup:
    """Six rooftops, 12,000 customers, two years: big enough for stable rates."""
    return simulate(SimulationConfig(rooftops=6, customers=12_000, seed=11))
