"""Planted-friction recovery: a hand-made roll-up, and every planted friction of a group big
enough to show them all."""

from __future__ import annotations

import pandas as pd
import pytest

from cjm_ml.evaluation.recovery import (
    RECOVERY_TOP,
    format_recovery,
    planted_recovery,
    recovery_rate,
)
from cjm_ml.explain.drivers import DriverExplainer, drivers_for
from cjm_ml.explain.rollup import rollup
from cjm_ml.features.pipeline import build_feature_table
from cjm_ml.features.timeline import Timeline
from cjm_ml.params import TASKS, Task
from cjm_ml.simulation import SimulatedGroup, SimulationConfig, simulate
from cjm_ml.simulation.rooftops import PlantedDeviation
from cjm_ml.training.model import RiskModel
from cjm_ml.training.norms import group_norms
from cjm_ml.training.split import time_split
from tests.explain.test_rollup import CONF, hand_made_contributions


def _planted(rooftop: str, friction: str) -> PlantedDeviation:
    return PlantedDeviation(
        rooftop_id=rooftop,
        friction=friction,
        task="no_show",
        setting="confirmation_rate_far",
        value=0.1,
        group_standard=0.9,
    )


def _hand_made_recovery() -> pd.DataFrame:
    roll = rollup(hand_made_contributions(), drivers_for("no_show"), "no_show")
    planted = [_planted("A", CONF), _planted("A", CONF), _planted("B", CONF)]
    planted.append(_planted("A", "recall_not_notified"))  # no feature of the task expresses it
    return planted_recovery(roll, planted)


def test_planted_recovery_on_a_hand_made_case() -> None:
    rec = _hand_made_recovery()
    ranks = [None if pd.isna(r) else int(r) for r in rec["excess_rank"]]
    assert list(zip(rec["rooftop_id"], rec["friction"], ranks, rec["recovered"], strict=True)) == [
        ("A", CONF, 1, True),
        ("B", CONF, 1, False),  # ranked first, but it carries less than the group standard
        ("A", "recall_not_notified", None, False),
    ]
    assert recovery_rate(rec) == pytest.approx(1 / 3)
    assert RECOVERY_TOP == 3


def test_recovery_rate_of_nothing_planted_is_nan() -> None:
    assert pd.isna(recovery_rate(pd.DataFrame({"recovered": []})))


def test_format_recovery_says_which_were_recovered() -> None:
    text = format_recovery(_hand_made_recovery())
    lines = text.splitlines()
    assert lines[1].split() == [
        "no_show", "A", "Appointment", "not", "confirmed", "+1.00", "1", "1", "1", "yes"
    ]  # fmt: skip
    assert lines[3].split()[-5:] == ["-", "-", "-", "-", "NO"]
    assert lines[-1] == (
        "Planted frictions recovered (among the rooftop's top 3 frictions by risk carried above "
        "the group standard): 1 of 3 (33%)"
    )


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
