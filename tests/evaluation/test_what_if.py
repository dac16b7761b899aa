"""The model's what-if against a re-simulation of the slow rooftop, its refusal, and its
verdict and wording."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cjm_ml.evaluation.what_if import (
    WHAT_IF_SLACK,
    WHAT_IF_TOLERANCE,
    WhatIfCheck,
    format_what_if,
    resimulated_what_if,
)
from cjm_ml.explain.drivers import DriverExplainer
from cjm_ml.features.pipeline import build_feature_table
from cjm_ml.featureset import generic_features
from cjm_ml.params import Task
from cjm_ml.simulation import SimulatedGroup
from cjm_ml.training.model import RiskModel
from cjm_ml.training.split import time_split


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
    rooftop = tables["lead_leakage"]["rooftop_id"].astype("string") == "rt-02"
    assert check.instances_before == int(rooftop.sum())


def test_what_if_rebuilds_the_tables_with_the_model_s_declared_features(
    small_group: SimulatedGroup,
) -> None:
    declared = generic_features(["sms_sent", "vdp_view"])
    table = build_feature_table(small_group.events, "lead_leakage", declared=declared)
    split = time_split(table)
    model = RiskModel("lead_leakage", declared=declared).fit(split.train, split.valid)
    assert "sms_sent_7d" in model.features
    # no table given: both the original and the re-simulated ones are built with them
    check = resimulated_what_if(
        DriverExplainer(model),
        small_group.config,
        "rt-02",
        "slow_first_response",
        original=small_group,
    )
    assert check.true_change < -0.1 and check.predicted_change < 0
    rooftop = table["rooftop_id"].astype("string") == "rt-02"
    assert check.instances_before == int(rooftop.sum())


def test_what_if_refuses_a_friction_that_was_not_planted(
    small_group: SimulatedGroup, explainers: dict[Task, DriverExplainer]
) -> None:
    with pytest.raises(ValueError, match="no planted deviation 'no_confirmation' at 'rt-02'"):
        resimulated_what_if(
            explainers["no_show"], small_group.config, "rt-02", "no_confirmation",
            original=small_group,
        )  # fmt: skip


def _check(predicted: float, true: float, wrong: bool) -> WhatIfCheck:
    return WhatIfCheck(
        task="no_show",
        rooftop_id="rt-03",
        friction="no_confirmation",
        settings=["confirmation_rate"],
        instances_before=100,
        instances_after=98,
        present_before=0.6,
        present_after=0.2,
        true_before=0.25,
        true_after=0.25 + true,
        observed_before=0.24,
        observed_after=0.2,
        model_before=0.26,
        model_what_if=0.2,
        model_resimulated=0.22,
        true_change=true,
        what_if_change=-0.06,
        predicted_change=predicted,
        resimulated_change=-0.04,
        wrong=wrong,
        note="a note",
    )


def test_format_what_if_gives_rates_changes_verdict_and_note() -> None:
    text = format_what_if([_check(-0.04, -0.05, False), _check(0.01, -0.05, True)])
    lines = text.splitlines()
    assert lines[1].split() == [
        "no_show", "rt-03", "no_confirmation", "25.0%", "->", "20.0%", "-5.0", "pts",
        "-4.0", "pts", "-6.0", "pts", "-4.0", "pts", "ok",
    ]  # fmt: skip
    assert lines[2].split()[-1] == "WRONG"
    assert lines[3:] == ["  rt-03 no_confirmation: a note"] * 2
