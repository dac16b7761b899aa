"""A whole training run: metrics against the baseline and the truth, slices, search."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cjm_ml.params import Task
from cjm_ml.registry import features_for
from cjm_ml.simulation import SimulatedGroup
from cjm_ml.training.config import TrainingConfig, load_training_config
from cjm_ml.training.evaluate import risk_metrics
from cjm_ml.training.run import (
    NOTHING_TO_FIT,
    TrainingReport,
    by_kind,
    console_lines,
    fingerprint,
    headline,
    train_task,
)
from cjm_ml.training.split import time_split


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


def test_small_data_searches_the_grid_unless_told_not_to(
    tables: dict[Task, pd.DataFrame],
) -> None:
    base = load_training_config()
    grid = {"num_leaves": [2, 7], "n_estimators": [3, 300]}
    table = tables["service_defection"]
    rows = len(time_split(table).train)
    small = base.model_copy(update={"search": grid, "search_below_rows": rows + 1})
    assert len(train_task(table, "service_defection", small).search) == 4
    assert len(train_task(table, "service_defection", small, search=False).search) == 1
    large = base.model_copy(update={"search": grid, "search_below_rows": rows})
    assert len(train_task(table, "service_defection", large).search) == 1
    assert len(train_task(table, "service_defection", large, search=True).search) == 4


def _constant(table: pd.DataFrame, task: Task) -> pd.DataFrame:
    """``table`` with every registered feature of ``task`` at one value (categories "x")."""
    return table.assign(
        **{
            f.name: pd.array(["x"] * len(table), dtype="string") if f.unit == "category" else 0.0
            for f in features_for(task)
        }
    )


def test_constant_features_are_dropped_and_change_no_tree(
    tables: dict[Task, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dropping the constant features (here ``vehicle_status_changed`` forced to 0, and
    ``marketing_source`` always missing) leaves LightGBM's trees, risks and AUC as they are."""
    table = tables["no_show"].assign(
        vehicle_status_changed=0.0,
        marketing_source=pd.array([None] * len(tables["no_show"]), dtype="string"),
    )
    dropped = train_task(table, "no_show")
    assert dropped.dropped["vehicle_status_changed"] == "constant (always 0)"
    assert dropped.dropped["marketing_source"] == "always missing"
    assert dropped.model is not None
    assert not set(dropped.dropped) & set(dropped.model.features)
    assert dropped.model.features == [
        f.name for f in features_for("no_show") if f.name not in dropped.dropped
    ]
    assert set(dropped.importance["feature"]) == set(dropped.model.features)
    assert "vehicle_status_changed: constant (always 0)" in dropped.dropped_lines()
    # The same run with nothing dropped: LightGBM grows the same trees.
    monkeypatch.setattr("cjm_ml.training.model.constant_features", lambda *_: {})
    kept = train_task(table, "no_show")
    assert kept.model is not None and len(kept.model.features) == len(features_for("no_show"))
    assert kept.model.booster_.num_trees() == dropped.model.booster_.num_trees()
    np.testing.assert_array_equal(kept.test_risk, dropped.test_risk)
    assert kept.auc == dropped.auc
    # The baseline's one-hot of an always-missing category is a second intercept, which its
    # regularisation shares out: near, not equal.
    assert kept.metrics.loc["logistic", "roc_auc"] == pytest.approx(
        dropped.metrics.loc["logistic", "roc_auc"], abs=1e-3
    )


def test_a_table_of_constant_features_trains_nothing_and_says_so(
    tables: dict[Task, pd.DataFrame],
) -> None:
    report = train_task(
        _constant(tables["service_defection"], "service_defection"), "service_defection"
    )
    assert report.model is None and report.baseline is None
    assert report.refusal == NOTHING_TO_FIT
    assert np.isnan(report.auc)
    assert set(report.dropped) == {f.name for f in features_for("service_defection")}
    assert report.dropped["open_recall"] == "constant (always 0)"
    assert report.dropped["rooftop_id"] == "constant (always x)"
    lines = console_lines(report)
    assert lines[1] == f"No model trained: {NOTHING_TO_FIT}."
    assert "  open_recall: constant (always 0)" in lines
    assert report.data["instances"] == len(tables["service_defection"])


def test_a_slice_of_one_class_or_missing_everywhere_never_breaks_the_report(
    tables: dict[Task, pd.DataFrame],
) -> None:
    """The test period's certified vehicles all kept coming back (one class), and the
    marketing source is missing everywhere: NaN metrics and no rows, never a KeyError."""
    table = tables["service_defection"].copy()
    shares = load_training_config().split
    test = time_split(table, shares.valid_share, shares.test_share).test
    kept = test.loc[test["label"] == 0, "instance_id"].head(300)
    certified = table["instance_id"].isin(kept).to_numpy()
    table["vehicle_condition"] = table["vehicle_condition"].astype("string")
    table.loc[certified, "vehicle_condition"] = "certified"
    table["marketing_source"] = pd.array([None] * len(table), dtype="string")
    report = train_task(table, "service_defection")
    slices = report.slices.set_index(["slice", "value"])
    assert np.isnan(slices.loc[("vehicle_condition", "certified"), "roc_auc"])
    assert np.isnan(slices.loc[("vehicle_condition", "certified"), "logistic_roc_auc"])
    assert slices.loc[("vehicle_condition", "certified"), "positive_rate"] == 0.0
    assert "marketing_source" not in set(report.slices["slice"])
    assert report.dropped["marketing_source"] == "always missing"
    assert by_kind(report).loc["certified", "instances"] == len(kept) > 100
