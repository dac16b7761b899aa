"""Outcomes the dealer's systems record after the fact: ``recorded_ts`` per ``[recording]``."""

from __future__ import annotations

import pandas as pd

from cjm_ml.simulation import SimulatedGroup
from cjm_ml.simulation.assumptions import load_assumptions


def test_the_named_outcomes_are_recorded_late_by_the_settings_and_nothing_else(
    small_group: SimulatedGroup,
) -> None:
    ev = small_group.events
    late = ev[ev["recorded_ts"].notna()]
    settings = load_assumptions().recording.late
    assert set(late["event_type"].astype(str)) == set(settings)
    for event_type, rule in settings.items():
        of_type = ev["event_type"].astype(str).eq(event_type)
        share = late["event_type"].astype(str).eq(event_type).sum() / of_type.sum()
        assert abs(share - rule.share) < 0.03, (event_type, share)
        hours = (late.loc[late["event_type"] == event_type, "recorded_ts"] - late["ts"]) / (
            pd.Timedelta(hours=1)
        )
        low, high = rule.delay_hours
        assert hours.dropna().between(low, high).all()
    assert (late["recorded_ts"] > late["ts"]).all()
