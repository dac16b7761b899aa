"""Test-period metrics on hand-made cases: calibration by risk bucket, slices, one-class
slices, and the refusals that name what is missing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cjm_ml.training.evaluate import (
    METRICS,
    MIN_AUC_NOISE,
    auc_noise,
    calibration_table,
    capture_ratio,
    constant_model_verdict,
    risk_metrics,
    slice_metrics,
    top_share,
)


def test_calibration_table_compares_predicted_and_observed_per_bucket() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    risk = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    table = calibration_table(y, risk, bins=3)
    assert table["decile"].tolist() == [1, 2, 3]
    assert table["instances"].tolist() == [2, 2, 2]
    assert table["predicted"].tolist() == pytest.approx([0.15, 0.35, 0.55])
    assert table["observed"].tolist() == [0.0, 1.0, 0.5]


def test_ties_in_risk_are_split_by_order_not_lumped() -> None:
    table = calibration_table(np.array([1, 0, 0, 1]), np.full(4, 0.5), bins=2)
    assert table["instances"].tolist() == [2, 2]
    assert table["observed"].tolist() == [0.5, 0.5]


def test_metrics_per_slice_with_nan_auc_for_a_one_class_slice() -> None:
    table = pd.DataFrame(
        {"rooftop_id": ["rt-01", "rt-01", "rt-02"], "label": pd.array([1, 0, 0], dtype="Int8")}
    )
    out = slice_metrics(table, np.array([0.9, 0.1, 0.3]), by="rooftop_id").set_index("rooftop_id")
    assert out.loc["rt-01", "roc_auc"] == 1.0 and out.loc["rt-01", "n"] == 2.0
    assert math.isnan(out.loc["rt-02", "roc_auc"]) and math.isnan(out.loc["rt-02", "pr_auc"])
    assert out.loc["rt-02", "positive_rate"] == 0.0
    assert out.loc["rt-02", "brier"] == pytest.approx(0.09)


def test_a_slice_by_a_missing_column_is_refused_by_name() -> None:
    table = pd.DataFrame({"label": pd.array([1, 0, 0], dtype="Int8")})
    with pytest.raises(KeyError, match="marketing_source"):
        slice_metrics(table, np.array([0.9, 0.1, 0.3]), by="marketing_source")


def test_the_call_list_calls_at_least_one_and_clips_certain_risks() -> None:
    y, risk = np.array([0, 1, 0]), np.array([0.2, 1.0, 0.0])
    assert top_share(y, risk, 0.01) == (1.0, 1.0)  # one call, the certain one, a hit
    m = risk_metrics(y, risk)
    assert math.isfinite(m["log_loss"]) and m["roc_auc"] == 1.0
    assert (m["precision_top10"], m["recall_top20"]) == (1.0, 1.0)
    assert capture_ratio(0.5, 0.8) == 0.0


def test_a_slice_of_one_class_or_missing_everywhere_gives_nan_or_no_rows() -> None:
    table = pd.DataFrame(
        {
            "vehicle_condition": pd.array(["new", "new", "used", "used"], dtype="string"),
            "lead_type": pd.array([None] * 4, dtype="string"),
            "label": pd.array([0, 0, 1, 0], dtype="Int8"),
        }
    )
    risk = np.array([0.2, 0.3, 0.8, 0.1])
    out = slice_metrics(table, risk, by="vehicle_condition").set_index("vehicle_condition")
    assert out.index.tolist() == ["new", "used"]
    assert math.isnan(out.loc["new", "roc_auc"]) and out.loc["new", "n"] == 2.0
    assert out.loc["used", "roc_auc"] == 1.0
    empty = slice_metrics(table, risk, by="lead_type")
    assert empty.empty and empty.columns.tolist() == ["lead_type", *METRICS]
    assert empty["roc_auc"].tolist() == []


def test_auc_noise_is_hanley_mcneil_twice_with_a_floor() -> None:
    # Hanley & McNeil (1982): A = 0.5, 50 positives, 50 negatives: q1 = 1/3, q2 = 1/3,
    # variance = (0.25 + 49 * (1/3 - 1/4) * 2) / 2500 = 0.00336667; 2 SE = 0.116046.
    assert auc_noise(0.5, 50, 50) == pytest.approx(2 * math.sqrt((0.25 + 98 / 12) / 2500))
    assert auc_noise(0.5, 50, 50) == pytest.approx(0.116046, abs=1e-6)
    assert auc_noise(0.5, 1_000_000, 1_000_000) == MIN_AUC_NOISE
    assert math.isnan(auc_noise(0.7, 0, 10)) and math.isnan(auc_noise(float("nan"), 5, 5))


def test_a_model_within_noise_of_a_constant_is_told_apart() -> None:
    y = np.array([1] * 50 + [0] * 50)
    assert constant_model_verdict(y, 0.55) == (
        "AUC 0.550 is within noise (±0.115) of a constant model"
    )
    assert constant_model_verdict(y, 0.45) == (
        "AUC 0.450 is within noise (±0.115) of a constant model"
    )
    assert constant_model_verdict(y, 0.70) is None
    assert constant_model_verdict(np.zeros(30), float("nan")) == (
        "the test period has 0 of 30 outcomes: no AUC, so no evidence the model beats a "
        "constant one"
    )
