"""`cjm train`: the analyst's command, end to end on small tables, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from cjm_ml.artifact import ModelArtifact
from cjm_ml.cli.main import app
from cjm_ml.features.pipeline import feature_table_metadata
from cjm_ml.io import write_parquet_atomic
from cjm_ml.params import Task, TaskParams
from cjm_ml.registry import features_for
from cjm_ml.simulation import SimulatedGroup
from cjm_ml.training.run import NOTHING_TO_FIT


@pytest.fixture
def workspace(
    tables: dict[Task, pd.DataFrame],
    small_group: SimulatedGroup,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CJM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CJM_MODELS_DIR", str(tmp_path / "models"))
    features = tmp_path / "group" / "features"
    features.mkdir(parents=True)
    tables["service_defection"].to_parquet(features / "service_defection.parquet")
    small_group.truth["service_defection"].to_parquet(
        tmp_path / "group" / "truth_service_defection.parquet"
    )
    return tmp_path


def _train_defection(workspace: Path) -> Result:
    """``cjm train --task service_defection`` on the workspace's feature folder."""
    features = workspace / "group" / "features"
    return CliRunner().invoke(
        app,
        ["train", "--task", "service_defection", "--features-dir", str(features), "--no-progress"],
    )


def test_train_prints_the_table_registers_and_exports(workspace: Path) -> None:
    result = _train_defection(workspace)
    assert result.exit_code == 0, result.output
    assert f"tracking: sqlite:///{(workspace / 'data' / 'mlflow').resolve()}/mlflow.db" in (
        result.output
    )
    header = next(line for line in result.output.splitlines() if "capture of ceiling" in line)
    assert header.split() == [
        "AUC",
        "PR",
        "AUC",
        "Brier",
        "top-10%",
        "precision",
        "capture",
        "of",
        "ceiling",
    ]
    assert any(line.startswith("ceiling ") for line in result.output.splitlines())
    assert "cjm-service-defection v1: promoted to champion (first version" in result.output
    assert (workspace / "models" / "service_defection" / "model.txt").is_file()


def test_train_refuses_unclear_or_missing_inputs(workspace: Path) -> None:
    runner = CliRunner()
    neither = runner.invoke(app, ["train"])
    assert neither.exit_code == 2 and "give either --task TASK or --all" in neither.output
    unknown = runner.invoke(app, ["train", "--task", "churn"])
    assert unknown.exit_code == 2 and "unknown task 'churn'" in unknown.output
    missing = runner.invoke(
        app, ["train", "--task", "no_show", "--features-dir", str(workspace / "group" / "features")]
    )
    assert missing.exit_code == 1
    assert "no_show.parquet: no feature table; run `cjm features` first" in missing.output
    params = workspace / "params.toml"
    params.write_text("[lightgbm]\nlearning_rate = -1\n")
    bad = runner.invoke(app, ["train", "--all", "--params", str(params)])
    assert bad.exit_code == 1 and f"error: {params}" in bad.output and "learning_rate" in bad.output


def test_train_carries_the_table_s_task_parameters_into_the_bundle(
    workspace: Path, tables: dict[Task, pd.DataFrame]
) -> None:
    table = tables["service_defection"]
    hour = TaskParams(response_sla_minutes=60)
    path = workspace / "group" / "features" / "service_defection.parquet"
    write_parquet_atomic(table, path, feature_table_metadata(table, "service_defection", hour))
    result = _train_defection(workspace)
    assert result.exit_code == 0, result.output
    bundle = json.loads((workspace / "models" / "service_defection" / "bundle.json").read_text())
    assert TaskParams.model_validate(bundle["task_params"]) == hour
    assert ModelArtifact.load(workspace / "models" / "service_defection").task_params == hour


def test_train_on_constant_features_exits_0_and_says_nothing_was_promoted(
    workspace: Path, tables: dict[Task, pd.DataFrame]
) -> None:
    table = tables["service_defection"].assign(
        **{
            f.name: pd.array(["x"] * len(tables["service_defection"]), dtype="string")
            if f.unit == "category"
            else 0.0
            for f in features_for("service_defection")
        }
    )
    table.to_parquet(workspace / "group" / "features" / "service_defection.parquet")
    result = _train_defection(workspace)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"No model trained: {NOTHING_TO_FIT}." in lines
    assert "  open_recall: constant (always 0)" in lines
    assert (
        lines[-1] == f"cjm-service-defection: no model registered (not promoted: {NOTHING_TO_FIT})"
    )
    assert not (workspace / "models" / "service_defection").exists()
