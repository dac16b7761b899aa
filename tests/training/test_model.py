"""Training core: time split, calibration, behaviour of a trained model, the baseline.

The behavioural tests use the session's models (fitted once on the 12,000-customer group, see
``tests/conftest.py``); the calibration claim the README states is checked on 40,000 customers.
Hand-made cases of the split and the metrics are in ``test_split.py`` and
``test_evaluate.py`` (the fast tier)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cjm_ml.artifact import BundleError
from cjm_ml.features.pipeline import build_feature_table, open_feature_columns
from cjm_ml.params import Task
from cjm_ml.simulation import SimulatedGroup, SimulationConfig, simulate
from cjm_ml.training.evaluate import calibration_table, capture_ratio, risk_metrics, top_share
from cjm_ml.training.model import RiskModel, baseline_matrix, logistic_baseline
from cjm_ml.training.split import time_split


@pytest.fixture(scope="module")
def leakage_model(
    models: dict[Task, RiskModel], tables: dict[Task, pd.DataFrame]
) -> tuple[RiskModel, pd.DataFrame]:
    """The session's lead-leakage model and its test period."""
    return models["lead_leakage"], time_split(tables["lead_leakage"]).test


def test_time_split_never_tests_on_the_past(tables: dict[Task, pd.DataFrame]) -> None:
    split = time_split(tables["lead_leakage"])
    assert split.train["cutoff_ts"].max() < split.valid["cutoff_ts"].min()
    assert split.valid["cutoff_ts"].max() < split.test["cutoff_ts"].min()
    labelled = tables["lead_leakage"]["label"].notna().sum()
    assert len(split.train) + len(split.valid) + len(split.test) == labelled
    assert abs(len(split.test) / labelled - 0.15) < 0.01


def test_time_split_refuses_too_little_data(tables: dict[Task, pd.DataFrame]) -> None:
    with pytest.raises(ValueError, match="at least 50 labelled instances"):
        time_split(tables["lead_leakage"].head(20))


def test_calibrated_risk_means_what_it_says() -> None:
    # The README's claim, on its own 40,000-customer group: only here, in the slow tier.
    group = simulate(SimulationConfig(customers=40_000, seed=21))
    split = time_split(build_feature_table(group.events, "lead_leakage"))
    model = RiskModel("lead_leakage").fit(split.train, split.valid)
    table = calibration_table(
        split.test["label"].astype(int).to_numpy(), model.predict_risk(split.test)
    )
    # about 480 open leads per decile (standard error of a rate ~0.023): within 0.07 everywhere
    assert table["instances"].min() > 450
    assert (table["observed"] - table["predicted"]).abs().max() < 0.07
    assert table["observed"].iloc[-1] > table["observed"].iloc[0] + 0.4


def test_frictions_raise_risk_and_irrelevant_fields_do_not(
    leakage_model: tuple[RiskModel, pd.DataFrame],
) -> None:
    model, test = leakage_model
    fast = test.assign(
        first_response_minutes=5.0, responded_before_cutoff=1.0, responded_within_sla=1.0
    )
    slow = test.assign(
        first_response_minutes=120.0, responded_before_cutoff=0.0, responded_within_sla=0.0
    )
    assert (model.predict_risk(slow) >= model.predict_risk(fast)).mean() > 0.95
    assert model.predict_risk(slow).mean() > model.predict_risk(fast).mean() + 0.1
    # inventory searches carry no effect in the simulator's causal model
    shuffled = test.assign(
        inventory_searches_7d=test["inventory_searches_7d"]
        .sample(frac=1.0, random_state=3)
        .to_numpy()
    )
    assert np.abs(model.predict_risk(shuffled) - model.predict_risk(test)).mean() < 0.02
    renamed = test.assign(customer_id="c-other", instance_id="x")
    assert np.array_equal(model.predict_risk(renamed), model.predict_risk(test))


def test_first_service_not_booked_raises_defection_risk(
    models: dict[Task, RiskModel], tables: dict[Task, pd.DataFrame]
) -> None:
    model, test = models["service_defection"], time_split(tables["service_defection"]).test
    booked = model.predict_risk(test.assign(first_service_booked_at_delivery=1.0))
    not_booked = model.predict_risk(test.assign(first_service_booked_at_delivery=0.0))
    assert not_booked.mean() > booked.mean() + 0.05


def test_unseen_category_levels_become_missing_not_errors(
    leakage_model: tuple[RiskModel, pd.DataFrame],
) -> None:
    model, test = leakage_model
    risk = model.predict_risk(test.head(5).assign(rooftop_id="rt-99", marketing_source="tiktok"))
    assert np.isfinite(risk).all() and ((risk >= 0) & (risk <= 1)).all()
    with pytest.raises(
        ValueError, match="lead_leakage: feature table lacks first_response_minutes"
    ):
        model.predict_risk(test.drop(columns=["first_response_minutes"]))


def test_baseline_fits_the_same_features(tables: dict[Task, pd.DataFrame]) -> None:
    split = time_split(tables["lead_leakage"])
    baseline = logistic_baseline("lead_leakage").fit(
        baseline_matrix(split.train, "lead_leakage"), split.train["label"].astype(int)
    )
    risk = baseline.predict_proba(baseline_matrix(split.test, "lead_leakage"))[:, 1]
    assert risk_metrics(split.test["label"].astype(int).to_numpy(), risk)["roc_auc"] > 0.7


def test_metric_arithmetic_on_a_hand_made_case() -> None:
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    risk = np.array([0.9, 0.8, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2])
    assert top_share(y, risk, 0.1) == (1.0, 1 / 3)  # top 1 of 10: the 0.9, a hit
    assert top_share(y, risk, 0.2) == (0.5, 1 / 3)  # top 2: 0.9 hit, 0.8 miss
    m = risk_metrics(y, risk)
    # 21 positive/negative pairs; the 0.7 and 0.2 positives rank below the 0.8 negative
    assert m["roc_auc"] == pytest.approx(19 / 21)
    assert m["positive_rate"] == 0.3
    assert capture_ratio(0.7, 0.75) == pytest.approx(0.8)


def test_a_missing_confirmation_raises_no_show_risk(
    models: dict[Task, RiskModel], tables: dict[Task, pd.DataFrame]
) -> None:
    model, test = models["no_show"], time_split(tables["no_show"]).test
    ahead = test[test["appointment_lead_days"] >= 3]
    sms = ahead.assign(confirmation_sent=1.0, confirmation_channel="sms")
    none = ahead.assign(confirmation_sent=0.0, confirmation_channel="none")
    assert model.predict_risk(none).mean() > model.predict_risk(sms).mean() + 0.03
    assert (model.predict_risk(none) >= model.predict_risk(sms)).mean() > 0.9


def test_a_saved_bundle_scores_exactly_like_the_fitted_model(
    leakage_model: tuple[RiskModel, pd.DataFrame], tmp_path: Path
) -> None:
    model, test = leakage_model
    folder = model.save(tmp_path / "lead_leakage", metadata={"version": "3"})
    assert sorted(p.name for p in folder.iterdir()) == ["bundle.json", "model.txt"]
    loaded = RiskModel.load(folder)
    assert np.array_equal(loaded.predict_risk(test), model.predict_risk(test))
    assert loaded.categories_ == model.categories_ and loaded.metadata_ == {"version": "3"}
    assert loaded.bands_ == model.bands_
    bands = pd.Series(model.band(model.predict_risk(test))).value_counts(normalize=True)
    # thresholds from the validation period: roughly 20% high and 30% medium on the test period
    assert abs(bands["high"] - 0.2) < 0.08 and abs(bands["medium"] - 0.3) < 0.08
    assert list(model.band(np.array([0.0, 1.0]))) == ["low", "high"]
    # saving again replaces the folder whole, with no temporary folders left beside it
    model.save(folder)
    assert [p.name for p in tmp_path.iterdir()] == ["lead_leakage"]
    assert RiskModel.load(folder).metadata_ == {}


def test_a_bundle_from_another_feature_set_is_refused(
    leakage_model: tuple[RiskModel, pd.DataFrame], tmp_path: Path
) -> None:
    model, _ = leakage_model
    folder = model.save(tmp_path / "m")
    spec = json.loads((folder / "bundle.json").read_text())
    spec["features"] = spec["features"][1:]
    (folder / "bundle.json").write_text(json.dumps(spec))
    reads = len(model.features)
    with pytest.raises(ValueError, match=f"booster reads {reads} features, the bundle {reads - 1}"):
        RiskModel.load(folder)
    spec["features"] = [{"name": "coffee_temperature"}, *spec["features"]]
    (folder / "bundle.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=r"unknown features \['coffee_temperature'\]"):
        RiskModel.load(folder)
    with pytest.raises(BundleError, match="not a model bundle"):
        RiskModel.load(tmp_path / "nothing")


def test_calibration_keeps_the_model_s_order(
    leakage_model: tuple[RiskModel, pd.DataFrame],
) -> None:
    model, test = leakage_model
    raw, risk = model.predict_raw(test), model.predict_risk(test)
    assert np.array_equal(np.argsort(raw, kind="stable"), np.argsort(risk, kind="stable"))
    y = test["label"].astype(int).to_numpy()
    assert roc_auc_score(y, risk) == pytest.approx(roc_auc_score(y, raw))


def _lightgbm_own(model: RiskModel, table: pd.DataFrame) -> np.ndarray:
    """What LightGBM predicts from a pandas frame whose categoricals carry the learned levels
    (its own category conversion; an unseen level is missing)."""
    frame = table[model.features].copy()
    for name, levels in model.categories_.items():
        values = frame[name].astype("string").astype(object)
        frame[name] = pd.Categorical(values.where(values.isin(levels)), categories=levels)
    return np.asarray(model.booster_.predict(frame, raw_score=True), dtype=float)


def test_the_float_matrix_path_predicts_exactly_what_lightgbm_does_from_pandas(
    leakage_model: tuple[RiskModel, pd.DataFrame], small_group: SimulatedGroup
) -> None:
    model, test = leakage_model
    assert np.array_equal(model.predict_raw(test), _lightgbm_own(model, test))
    # one row at a time (the request path: one thread, dict lookups) gives the same numbers
    for i in range(5):
        row = test.iloc[[i]]
        assert np.array_equal(model.predict_raw(row), _lightgbm_own(model, row))
    # unseen, missing and non-string levels, missing numbers, columns as plain arrays
    odd = test.head(40).copy()
    odd.loc[odd.index[:10], "rooftop_id"] = "rt-99"
    odd.loc[odd.index[10:20], "marketing_source"] = pd.NA
    odd.loc[odd.index[20:30], "first_response_minutes"] = np.nan
    odd["lead_type"] = odd["lead_type"].astype("category")
    columns = {c: odd[c].to_numpy() for c in odd.columns}
    assert np.isnan(model.encode(odd)[:10, model.features.index("rooftop_id")]).all()
    assert np.array_equal(model.predict_raw(odd), _lightgbm_own(model, odd))
    assert np.array_equal(model.predict_raw(columns), _lightgbm_own(model, odd))
    assert np.array_equal(model.predict_risk(columns), model.calibrate(_lightgbm_own(model, odd)))
    # the serving path's columns (string arrays, floats) as they come, no DataFrame
    now = test["cutoff_ts"].max()
    served = open_feature_columns(small_group.events, "lead_leakage", now)
    assert len(served["instance_id"]) > 10
    assert np.array_equal(model.predict_raw(served), _lightgbm_own(model, pd.DataFrame(served)))
    with pytest.raises(ValueError, match=r"features must be numbers: prior_leads \(str"):
        model.encode(test.head(3).assign(prior_leads="two"))
    with pytest.raises(ValueError, match="feature table lacks prior_leads"):
        model.encode({c: columns[c] for c in columns if c != "prior_leads"})
