"""Roll-ups: arithmetic on a hand-made case, the journey map's hotspots, and the refusals.
(Their checks against the simulator are in ``tests/evaluation``.)"""

from __future__ import annotations

import pandas as pd
import pytest

from cjm_ml.explain.drivers import drivers_for
from cjm_ml.explain.rollup import HOTSPOT_COLUMNS, hotspots, rollup

CONF, DIST = "no_confirmation", "distance_to_rooftop_km"


def hand_made_contributions() -> pd.DataFrame:
    """Two rooftops, two appointments each, one friction and one context driver."""
    rows = [
        # rooftop, instance, driver, contribution, risk points, present, fix gain
        ("A", "i1", CONF, 0.4, 0.08, True, 0.05),
        ("A", "i1", DIST, -0.2, -0.03, True, 0.0),
        ("A", "i2", CONF, -0.1, -0.02, False, 0.0),
        ("A", "i2", DIST, 0.3, 0.05, True, 0.0),
        ("B", "i3", CONF, 0.2, 0.04, True, 0.03),
        ("B", "i3", DIST, 0.1, 0.02, True, 0.0),
        ("B", "i4", CONF, 0.6, 0.10, False, 0.2),  # pushes up, but the friction is absent
        ("B", "i4", DIST, -0.1, -0.01, True, 0.0),
    ]
    cols = ["rooftop_id", "instance_id", "driver", "contribution", "risk_points", "present"]
    return pd.DataFrame(rows, columns=[*cols, "fix_gain"])


def _at(roll: pd.DataFrame, rooftop: str, driver: str) -> pd.Series:
    return roll[(roll["rooftop_id"] == rooftop) & (roll["driver"] == driver)].iloc[0]


def test_rollup_arithmetic_on_a_hand_made_case() -> None:
    roll = rollup(hand_made_contributions(), drivers_for("no_show"), "no_show")
    assert roll["rooftop_id"].tolist() == ["group", "group", "A", "A", "B", "B"]
    expected = {
        # scope, driver: instances, total, mean_shap, mean_contribution, fix gain, excess, rank
        ("group", CONF): (2, 4, 0.15, 0.03, 0.02, 0.0, 1),
        ("group", DIST): (2, 4, 0.10, 0.0175, 0.0, 0.0, 2),
        ("A", CONF): (1, 2, 0.20, 0.04, 0.025, 0.01, 1),
        ("A", DIST): (1, 2, 0.15, 0.025, 0.0, 0.0075, 2),
        ("B", CONF): (1, 2, 0.10, 0.02, 0.015, -0.01, 1),
        ("B", DIST): (1, 2, 0.05, 0.01, 0.0, -0.0075, 2),
    }
    for (scope, driver), values in expected.items():
        row = _at(roll, scope, driver)
        got = (
            row["instances"],
            row["instances_total"],
            row["mean_shap"],
            row["mean_contribution"],
            row["mean_fix_gain"],
            row["excess"],
            row["rank"],
        )
        assert got == pytest.approx(values), (scope, driver)
        assert row["task"] == "no_show"
    assert _at(roll, "A", CONF)["group_standard"] == pytest.approx(0.03)
    assert _at(roll, "A", CONF)["touched_share"] == 0.5
    assert _at(roll, "A", CONF)["friction_rank"] == 1
    assert pd.isna(_at(roll, "A", DIST)["friction_rank"])
    assert _at(roll, "A", CONF)["label"] == "Appointment not confirmed"
    assert _at(roll, "A", DIST)["kind"] == "context"


def test_hotspots_are_the_rooftops_frictions_for_the_journey_map() -> None:
    roll = rollup(hand_made_contributions(), drivers_for("no_show"), "no_show")
    spots = hotspots(roll)
    assert tuple(spots.columns) == HOTSPOT_COLUMNS
    assert spots.to_dict("records") == [
        {
            "task": "no_show",
            "rooftop_id": "A",
            "driver": "Appointment not confirmed",
            "stage": "appointment",
            "mean_contribution": pytest.approx(0.04),
            "instances": 1,
        },
        {
            "task": "no_show",
            "rooftop_id": "B",
            "driver": "Appointment not confirmed",
            "stage": "appointment",
            "mean_contribution": pytest.approx(0.02),
            "instances": 1,
        },
    ]


def test_rollup_refuses_missing_columns_and_unknown_drivers() -> None:
    with pytest.raises(ValueError, match="no_show: the contributions lack present, fix_gain"):
        rollup(
            hand_made_contributions().drop(columns=["present", "fix_gain"]),
            drivers_for("no_show"),
            "no_show",
        )
    bad = hand_made_contributions().assign(driver="lead_type")
    with pytest.raises(ValueError, match="contributions for unknown driver\\(s\\) lead_type"):
        rollup(bad, drivers_for("no_show"), "no_show")
