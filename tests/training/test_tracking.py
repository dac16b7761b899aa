"""MLflow tracking and the registry: what a run logs, champion promotion, loading back."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from cjm_ml.config import Settings
from cjm_ml.params import Task
from cjm_ml.registry import features_for
from cjm_ml.training.config import TrainingConfig, load_training_config
from cjm_ml.training.model import RiskModel, TrainingParams
from cjm_ml.training.run import NOTHING_TO_FIT, train_task
from cjm_ml.training.tracking import (
    CHAMPION,
    ChampionUnusable,
    Promotion,
    TrackedRun,
    configure_tracking,
    decide_promotion,
    describe,
    export_champion,
    track,
)


def _config(**params: object) -> TrainingConfig:
    base = load_training_config()
    task_params = TrainingParams().model_copy(update=params)
    return TrainingConfig(split=base.split, lightgbm=dict.fromkeys(base.lightgbm, task_params))


@pytest.fixture(scope="module")
def registry(
    tables: dict[Task, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Settings, list[TrackedRun], pd.DataFrame]:
    """Three runs on one table: a weak model, a good one, the weak one again."""
    root = tmp_path_factory.mktemp("tracking")
    settings = Settings(data_dir=root / "data", models_dir=root / "models")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        table = tables["lead_leakage"]
        weak = _config(n_estimators=2, num_leaves=2)
        runs = [
            track(train_task(table, "lead_leakage", weak), settings),
            track(train_task(table, "lead_leakage"), settings),
            track(train_task(table, "lead_leakage", weak), settings),
        ]
    return settings, runs, table


def test_embedded_store_lives_in_the_data_directory(
    registry: tuple[Settings, list[TrackedRun], pd.DataFrame],
) -> None:
    settings, _, _ = registry
    assert (settings.data_dir / "mlflow" / "mlflow.db").is_file()
    assert (
        mlflow.get_tracking_uri()
        == f"sqlite:///{(settings.data_dir / 'mlflow').resolve()}/mlflow.db"
    )
    experiment = mlflow.get_experiment_by_name("cjm-lead-leakage")
    assert experiment is not None
    assert (
        experiment.artifact_location
        == (settings.data_dir / "mlflow" / "artifacts").resolve().as_uri()
    )


def test_a_better_model_is_promoted_and_a_worse_one_is_not(
    registry: tuple[Settings, list[TrackedRun], pd.DataFrame],
) -> None:
    _, (first, better, worse), _ = registry
    assert first.promotion.promoted and first.promotion.reason == "first version: no champion yet"
    assert better.promotion.promoted and better.promotion.champion_version == "1"
    assert better.promotion.auc > better.promotion.champion_auc  # type: ignore[operator]
    assert better.promotion.reason.startswith(f"AUC {better.promotion.auc:.4f} beats champion v1")
    assert not worse.promotion.promoted
    assert worse.promotion.champion_version == "2"
    assert "does not beat champion v2" in worse.promotion.reason
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("cjm-lead-leakage", CHAMPION).version) == "2"
    run = client.get_run(worse.run_id)
    assert run.data.tags["promoted"] == "false"
    assert run.data.tags["promotion_reason"] == worse.promotion.reason
    assert run.data.metrics["champion_roc_auc_same_test"] == pytest.approx(better.promotion.auc)


def test_a_run_logs_metrics_features_data_and_plots(
    registry: tuple[Settings, list[TrackedRun], pd.DataFrame],
) -> None:
    _, (_, better, _), table = registry
    client = MlflowClient()
    run = client.get_run(better.run_id)
    assert run.data.metrics["lightgbm_roc_auc"] == pytest.approx(better.promotion.auc)
    assert {"logistic_roc_auc", "lightgbm_brier", "lightgbm_precision_top10"} <= set(
        run.data.metrics
    )
    assert run.data.params["data.instances"] == str(len(table))
    assert run.data.params["num_leaves"] == "7"
    logged = {a.path for a in client.list_artifacts(better.run_id)}
    assert {"features.json", "plots", "report"} <= logged
    plots = {a.path for a in client.list_artifacts(better.run_id, "plots")}
    assert plots == {"plots/roc.png", "plots/calibration.png", "plots/importance.png"}
    features = mlflow.artifacts.load_dict(f"runs:/{better.run_id}/features.json")["features"]
    assert features[0]["name"] == "vdp_views_7d" and "actionable" in features[0]


def test_the_champion_loads_back_from_the_registry_and_the_bundle(
    registry: tuple[Settings, list[TrackedRun], pd.DataFrame],
) -> None:
    settings, (_, better, worse), table = registry
    rows = table.tail(200)
    pyfunc = mlflow.pyfunc.load_model("models:/cjm-lead-leakage@champion")
    from_registry = np.asarray(pyfunc.predict(rows))
    # the exported bundle is the champion (v2), even after the worse v3 was registered
    assert worse.bundle == settings.models_dir / "lead_leakage"
    bundle = RiskModel.load(settings.models_dir / "lead_leakage")
    assert (
        bundle.metadata_["version"] == "2" and bundle.metadata_["model_name"] == "cjm-lead-leakage"
    )
    assert bundle.metadata_["run_id"] == better.run_id
    assert np.allclose(from_registry, bundle.predict_risk(rows))
    assert ((from_registry > 0) & (from_registry < 1)).all()


def test_tracking_follows_mlflow_tracking_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'server.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    settings = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models")
    assert configure_tracking(settings) == uri
    assert not (tmp_path / "data").exists()
    with pytest.raises(LookupError, match="cjm-no-show has no champion yet"):
        export_champion("no_show", settings)


def test_an_unloadable_champion_is_replaced_and_the_reason_says_so(
    tables: dict[Task, pd.DataFrame],
) -> None:
    report = train_task(tables["service_defection"], "service_defection")
    stale = ChampionUnusable("4", "bundle format 1, need 2")
    decision = decide_promotion(report, "5", stale)
    assert decision.promoted and decision.champion_version == "4"
    assert decision.reason == "champion v4 cannot be loaded (bundle format 1, need 2); replaced"
    same = decide_promotion(report, "6", report.model)
    assert not same.promoted and same.champion_auc == pytest.approx(report.auc)


def test_a_model_no_better_than_a_constant_is_never_promoted(
    tables: dict[Task, pd.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Labels shuffled: LightGBM's AUC is within noise of 0.5, so even the first version is
    registered without becoming champion, and no bundle is exported; a table of constant
    features registers no model at all, and says why."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models")
    table = tables["lead_leakage"]
    rng = np.random.default_rng(5)
    shuffled = table.assign(label=table["label"].to_numpy()[rng.permutation(len(table))])
    report = train_task(shuffled, "lead_leakage")
    assert report.refusal is not None
    assert report.refusal.startswith(f"AUC {report.auc:.3f} is within noise (±0.0")
    assert report.refusal.endswith(") of a constant model")
    tracked = track(report, settings)
    assert not tracked.promotion.promoted and tracked.bundle is None
    assert tracked.promotion.reason == f"not promoted: {report.refusal}"
    assert describe(tracked) == (f"cjm-lead-leakage v1: not promoted ({report.refusal})")
    client = MlflowClient()
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias("cjm-lead-leakage", CHAMPION)
    run = client.get_run(tracked.run_id)
    assert run.data.tags["promoted"] == "false"
    assert run.data.tags["promotion_reason"] == tracked.promotion.reason
    assert run.data.tags["dropped_features"] == ("; ".join(report.dropped_lines()) or "none")
    assert not (settings.models_dir / "lead_leakage").exists()

    constant = shuffled.assign(
        **{f.name: 1.0 for f in features_for("lead_leakage") if f.unit != "category"},
        **{f.name: "x" for f in features_for("lead_leakage") if f.unit == "category"},
    )
    nothing = track(train_task(constant, "lead_leakage"), settings)
    assert nothing.promotion == Promotion(
        False, f"not promoted: {NOTHING_TO_FIT}", "", nothing.promotion.auc
    )
    assert (
        describe(nothing)
        == f"cjm-lead-leakage: no model registered (not promoted: {NOTHING_TO_FIT})"
    )
    assert [str(v.version) for v in client.search_model_versions("name='cjm-lead-leakage'")] == [
        "1"
    ]
    run = client.get_run(nothing.run_id)
    assert run.data.tags["dropped_features"].startswith("vdp_views_7d: constant (always 1); ")
    assert run.data.tags["promotion_reason"] == f"not promoted: {NOTHING_TO_FIT}"
