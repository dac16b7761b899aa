"""The run state's calendar: business hours and appointment slots, in each rooftop's time."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from cjm_ml.params import TaskParams
from cjm_ml.simulation.assumptions import load_assumptions
from cjm_ml.simulation.rooftops import default_rooftops
from cjm_ml.simulation.state import GroupState


@pytest.fixture
def state() -> GroupState:
    rooftops, _ = default_rooftops(2, seed=1)  # rt-01 is UTC-5, rt-02 UTC-6
    return GroupState(
        seed=1,
        params=TaskParams(),
        assumptions=load_assumptions(),
        rooftops=rooftops,
        t_start=0.0,
        t_end=1e10,
    )


Local = tuple[int, int, int, int, int]


def _ts(local: Local, offset: int = -5) -> float:
    """A local time (year, month, day, hour, minute) at a rooftop ``offset`` hours from UTC,
    as epoch seconds."""
    year, month, day, hour, minute = local
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() - offset * 3600


@pytest.mark.parametrize(
    ("local", "opens"),
    [
        ((2025, 3, 4, 12, 30), (2025, 3, 4, 12, 30)),  # Tuesday, open
        ((2025, 3, 4, 7, 0), (2025, 3, 4, 9, 0)),  # Tuesday before opening
        ((2025, 3, 4, 20, 0), (2025, 3, 5, 9, 0)),  # Tuesday at closing
        ((2025, 3, 8, 18, 30), (2025, 3, 10, 9, 0)),  # Saturday after 18:00: Monday
        ((2025, 3, 8, 17, 59), (2025, 3, 8, 17, 59)),  # Saturday, still open
        ((2025, 3, 9, 10, 0), (2025, 3, 10, 9, 0)),  # Sunday: closed
    ],
)
def test_next_open_follows_the_local_business_hours(
    state: GroupState, local: Local, opens: Local
) -> None:
    got = state.next_open(np.array([_ts(local)]), np.array([0]))
    assert got[0] == _ts(opens)


def test_slots_are_half_hours_from_nine_to_half_past_five_and_never_on_sunday(
    state: GroupState,
) -> None:
    sunday = np.full(2_000, _ts((2025, 3, 9, 11, 0), offset=-6))
    slots = state.slot(sunday, np.ones(2_000, dtype=int), np.random.default_rng(0))
    local = slots + -6 * 3600
    hours = (local % 86_400) / 3600
    assert set(np.unique(hours)) == {9 + h / 2 for h in range(18)}
    assert (np.floor(local / 86_400) == np.floor(_ts((2025, 3, 10, 0, 0), offset=0) / 86_400)).all()
