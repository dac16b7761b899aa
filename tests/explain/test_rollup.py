"""Roll-ups: arithmetic on a hand-made case, the journey map's hotspots, recovery of the planted
frictions on a simulated group, and the what-if against a re-simulation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cjm_ml.explain.drivers import DriverExplainer, drivers_for
from cjm_ml.training.norms import group_norms
from cjm_ml.explain.rollup import (
    HOTSPOT_COLUMNS,
    WHAT_IF_SLACK,
    WHAT_IF_TOLERANCE,
    hotspots,
    planted_recovery,
    recovery_rate,
    resimulated_what_if,
    rollup,
)
from cjm_ml.features.pipeline import build_feature_table
from cjm_ml.features.timeline import Timeline
from cjm_ml.params import TASKS, Task
from cjm_ml.simulation import SimulatedGroup, SimulationConfig, simulate
from cjm_ml.simulation.rooftops import PlantedDeviation
from cjm_ml.training.model import RiskModel
from cjm_ml.training.split import time_split

CONF, DIST = "no_confirmation", "distance_to_rooftop_km"


def _hand_made() -> pd.DataFrame:
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
    roll = rollup(_hand_made(), drivers_for("no_show"), "no_show")
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
    roll = rollup(_hand_made(), drivers_for("no_show"), "no_show")
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


def _planted(rooftop: str, friction: str) -> PlantedDeviation:
    return PlantedDeviation(
        rooftop_id=rooftop,
        friction=friction,
        task="no_show",
        setting="confirmation_rate_far",
        value=0.1,
        group_standard=0.9,
    )


def test_planted_recovery_on_a_hand_made_case() -> None:
    roll = rollup(_hand_made(), drivers_for("no_show"), "no_show")
    planted = [_planted("A", CONF), _planted("A", CONF), _planted("B", CONF)]
    planted.append(_planted("A", "recall_not_notified"))  # no feature of the task expresses it
    rec = planted_recovery(roll, planted)
    ranks = [None if pd.isna(r) else int(r) for r in rec["excess_rank"]]
    assert list(zip(rec["rooftop_id"], rec["friction"], ranks, rec["recovered"], strict=True)) == [
        ("A", CONF, 1, True),
        ("B", CONF, 1, False),  # ranked first, but it carries less than the group standard
        ("A", "recall_not_notified", None, False),
    ]
    assert recovery_rate(rec) == pytest.approx(1 / 3)


def test_rollup_refuses_missing_columns_and_unknown_drivers() -> None:
    with pytest.raises(ValueError, match="no_show: the contributions lack present, fix_gain"):
        rollup(
            _hand_made().drop(columns=["present", "fix_gain"]), drivers_for("no_show"), "no_show"
        )
    bad = _hand_made().assign(driver="lead_type")
    with pytest.raises(ValueError, match="contributions for unknown driver\\(s\\) lead_type"):
        rollup(bad, drivers_for("no_show"), "no_show")


@pytest.fixture(scope="module")
def group_25k() -> tuple[SimulatedGroup, dict[Task, DriverExplainer], dict[Task, pd.DataFrame]]:
    """A group big enough for every planted friction to show (about 10 s to build and fit)."""
    group = simulate(SimulationConfig(rooftops=6, customers=25_000, seed=11))
    timeline = Timeline(group.events)
    tables = {t: build_feature_table(timeline, t) for t in TASKS}
    explainers = {}
    for t in TASKS:
        split = time_split(tables[t])
        model = RiskModel(t).fit(split.train, split.valid)
        explainers[t] = DriverExplainer(model, group_norms(tables[t], t))
    return group, explainers, tables


def test_the_rollups_recover_every_planted_friction(
    group_25k: tuple[SimulatedGroup, dict[Task, DriverExplainer], dict[Task, pd.DataFrame]],
) -> None:
    group, explainers, tables = group_25k
    rolls = pd.concat(
        [
            rollup(explainers[t].driver_contributions(tables[t]), explainers[t].drivers, t)
            for t in TASKS
        ]
    )
    rec = planted_recovery(rolls, group.planted)
    assert len(rec) == 8
    assert rec["recovered"].all(), rec.to_string()
    assert recovery_rate(rec) == 1.0
    # The slow BDC is also the rooftop's heaviest driver of all, context included.
    slow = rec[rec["friction"] == "slow_first_response"].iloc[0]
    assert (slow["rank"], slow["friction_rank"], slow["excess_rank"]) == (1, 1, 1)


def test_what_if_against_a_resimulation_of_the_slow_rooftop(
    small_group: SimulatedGroup,
    tables: dict[Task, pd.DataFrame],
    explainers: dict[Task, DriverExplainer],
) -> None:
    check = resimulated_what_if(
        explainers["lead_leakage"],
        small_group.config,
        "rt-02",
        "slow_first_response",
        original=small_group,
        table=tables["lead_leakage"],
    )
    assert check.settings == ["response_median_minutes", "no_response_rate", "follow_up_attempts"]
    assert check.true_change < -0.1  # the group standard cuts the rooftop's leakage a lot
    assert check.present_after < check.present_before
    removed = 1 - check.present_after / check.present_before
    assert check.predicted_change == pytest.approx(check.what_if_change * removed)
    assert check.predicted_change < 0 and check.resimulated_change < 0
    miss = abs(check.predicted_change - check.true_change)
    assert check.wrong == (miss > max(WHAT_IF_TOLERANCE * abs(check.true_change), WHAT_IF_SLACK))
    assert f"{check.true_change * 100:+.1f} pts true" in check.note
    assert np.isfinite([check.true_before, check.true_after, check.model_before]).all()


def test_what_if_refuses_a_friction_that_was_not_planted(
    small_group: SimulatedGroup, explainers: dict[Task, DriverExplainer]
) -> None:
    with pytest.raises(ValueError, match="no planted deviation 'no_confirmation' at 'rt-02'"):
        resimulated_what_if(
            explainers["no_show"], small_group.config, "rt-02", "no_confirmation",
            original=small_group,
        )  # fmt: skip
