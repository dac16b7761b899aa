"""A whole training run: metrics against the baseline and the truth, slices, search."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cjm_ml.params import Task
from cjm_ml.simulation import SimulatedGroup
from cjm_ml.training.config import TrainingConfig, load_training_config
from cjm_ml.training.evaluate import risk_metrics
from cjm_ml.training.run import TrainingReport, fingerprint, headline, train_task


@pytest.fixture(scope="module")
def report(tables: dict[Task, pd.DataFrame], small_group: SimulatedGroup) -> TrainingReport:
    return train_task(
        tables["lead_leakage"], "lead_leakage", truth=small_group.truth["lead_leakage"]
    )


def test_metrics_compare_model_baseline_and_truth_on_the_test_period(
    report: TrainingReport,
) -> None:
    assert list(report.metrics.index) == ["lightgbm", "logistic", "truth"]
    y = report.split.test["label"].astype(int).to_numpy()
    assert report.metrics.loc["lightgbm", "roc_auc"] == risk_metrics(y, report.test_risk)["roc_auc"]
    ceiling = report.metrics.loc["truth", "roc_auc"]
    assert report.metrics.loc["truth", "capture"] == pytest.approx(1.0)
    for scorer in ("lightgbm", "logistic"):
        auc = report.metrics.loc[scorer, "roc_auc"]
        assert report.metrics.loc[scorer, "capture"] == pytest.approx((auc - 0.5) / (ceiling - 0.5))
    # the model learns most of what is learnable here
    assert report.metrics.loc["lightgbm", "capture"] > 0.8
    table = headline(report)
    assert list(table.index) == ["LightGBM", "logistic", "ceiling"]
    assert list(table.columns) == [
        "AUC",
        "PR AUC",
        "Brier",
        "top-10% precision",
        "capture of ceiling",
    ]


def test_slices_cover_every_rooftop_and_source(
    report: TrainingReport, small_group: SimulatedGroup
) -> None:
    slices = report.slices
    rooftops = slices[slices["slice"] == "rooftop_id"]
    assert sorted(rooftops["value"]) == sorted(r.rooftop_id for r in small_group.rooftops)
    assert rooftops["n"].sum() == len(report.split.test)
    sources = slices[slices["slice"] == "marketing_source"]
    assert sources["n"].sum() == len(report.split.test)
    assert {"roc_auc", "logistic_roc_auc", "truth_roc_auc", "capture"} <= set(slices.columns)


def test_report_records_the_data_it_was_trained_on(
    report: TrainingReport, tables: dict[Task, pd.DataFrame]
) -> None:
    data = report.data
    assert (
        data["train_instances"] + data["valid_instances"] + data["test_instances"]
        == (data["labelled"])
    )
    assert data["train_to"] < data["valid_from"] <= data["valid_to"] < data["test_from"]
    assert data["fingerprint"] == fingerprint(tables["lead_leakage"])
    changed = tables["lead_leakage"].assign(first_response_minutes=1.0)
    assert fingerprint(changed) != data["fingerprint"]
    assert report.importance["share"].sum() == pytest.approx(1.0)
    assert report.importance["feature"].iloc[0] in {
        "first_response_minutes",
        "responded_before_cutoff",
        "responded_within_sla",
    }


def test_search_keeps_the_best_validation_auc_never_the_test(
    tables: dict[Task, pd.DataFrame],
) -> None:
    base = load_training_config()
    config = TrainingConfig(
        split=base.split,
        lightgbm=base.lightgbm,
        search={"num_leaves": [2, 7], "n_estimators": [3, 300]},
    )
    searched = train_task(tables["service_defection"], "service_defection", config, search=True)
    assert len(searched.search) == 4
    best = searched.search.loc[searched.search["valid_auc"].idxmax()]
    assert searched.model.params.num_leaves == best["num_leaves"]
    assert searched.model.params.n_estimators == best["n_estimators"]
    assert np.isfinite(searched.search["valid_auc"]).all()
