"""An analyst's own data and paths: no command reads or writes the demo folder unless asked;
`cjm train --features FILE` (its task checked against the file's metadata); `cjm explain`
writes the hotspots `cjm map` and the API read; one parameters file sets the windows for
`cjm features` and the hyperparameters for `cjm train`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from cjm_ml.artifact import ModelArtifact
from cjm_ml.cli.main import app
from cjm_ml.explain.report import load_explainer
from cjm_ml.explain.rollup import HOTSPOT_COLUMNS, hotspots, rollup
from cjm_ml.features.pipeline import feature_table_metadata, feature_table_params
from cjm_ml.io import read_parquet_metadata, write_parquet_atomic
from cjm_ml.params import LeadLeakageParams, Task, TaskParams
from cjm_ml.simulation import SimulatedGroup, write_simulation
from cjm_ml.training.model import RiskModel

#: Response standard and lead cutoff of an hour, as a parameters file sets them.
HOUR = TaskParams(
    response_sla_minutes=60, lead_leakage=LeadLeakageParams(cutoff_after_lead_minutes=60)
)
HOUR_FILE = """\
[windows]
response_sla_minutes = 60

[windows.lead_leakage]
cutoff_after_lead_minutes = 60

[lightgbm]
n_estimators = 200
"""


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data folder (``<tmp>/data``) and models folder (``<tmp>/models``) as settings."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CJM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CJM_MODELS_DIR", str(tmp_path / "models"))
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


@pytest.fixture(scope="module")
def group_events(tmp_path_factory: pytest.TempPathFactory, small_group: SimulatedGroup) -> Path:
    """The small group as `cjm simulate` writes it (events, truth, rooftops.json), outside
    any data folder."""
    folder = tmp_path_factory.mktemp("group")
    write_simulation(small_group, folder)
    return folder


def _invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_features_train_explain_map_use_the_data_folder_and_never_the_demo(
    data: Path, small_group: SimulatedGroup
) -> None:
    write_simulation(small_group, data)  # events, truth_<task>.parquet, rooftops.json
    before = set(_files(data))
    built = _invoke("features", "--task", "no_show", "--events", data / "events.parquet")
    assert built.exit_code == 0, built.output
    assert f"-> {data / 'features' / 'no_show.parquet'}" in built.stdout

    trained = _invoke("train", "--task", "no_show", "--no-progress")
    assert trained.exit_code == 0, trained.output
    assert "cjm-no-show v1: promoted to champion (first version" in trained.stdout
    assert any(line.startswith("ceiling ") for line in trained.stdout.splitlines())
    models = data.parent / "models"
    assert (models / "no_show" / "bundle.json").is_file()

    explained = _invoke("explain", "--task", "no_show", "--rooftop", "rt-04")
    assert explained.exit_code == 0, explained.output
    assert f"Friction hotspots (no_show) -> {models / 'hotspots.parquet'}" in explained.stdout
    assert "Planted frictions (simulated group)" in explained.stdout
    spots = pd.read_parquet(models / "hotspots.parquet")
    assert tuple(spots.columns) == HOTSPOT_COLUMNS
    assert set(spots["task"]) == {"no_show"}
    assert set(spots["rooftop_id"]) == {f"rt-0{i}" for i in range(1, 7)}
    assert (data / "explain" / "no_show" / "beeswarm_rt-04.png").is_file()

    page = data.parent / "site" / "journey.html"
    mapped = _invoke("map", "--events", data / "events.parquet", "--out", page)
    assert mapped.exit_code == 0, mapped.output
    html = page.read_text()
    top = spots.sort_values("mean_contribution", ascending=False).iloc[0]
    assert str(top["driver"]) in html

    written = set(_files(data)) - before
    assert not (data / "demo").exists()
    assert {p.split("/")[0] for p in written} == {"features", "mlflow", "explain"}
    assert "features/no_show.parquet" in written


def test_features_builds_with_the_parameters_file_s_windows_and_train_carries_them(
    data: Path, group_events: Path
) -> None:
    params = data / "params.toml"
    params.write_text(HOUR_FILE)
    table = data / "mine" / "leads.parquet"
    built = _invoke(
        "features",
        "--task",
        "lead_leakage",
        "--events",
        group_events / "events.parquet",
        "--out",
        table,
        "--params",
        params,
    )
    assert built.exit_code == 0, built.output
    metadata = read_parquet_metadata(table)
    assert metadata["task"] == "lead_leakage"
    assert feature_table_params(metadata) == HOUR
    moments = pd.read_parquet(table, columns=["anchor_ts", "cutoff_ts"])
    assert len(moments) > 1000
    assert ((moments["cutoff_ts"] - moments["anchor_ts"]) == pd.Timedelta(minutes=60)).all()

    trained = _invoke(
        "train", "--task", "lead_leakage", "--features", table, "--params", params, "--no-progress"
    )
    assert trained.exit_code == 0, trained.output
    bundle = data.parent / "models" / "lead_leakage"
    assert ModelArtifact.load(bundle).task_params == HOUR
    saved = json.loads((bundle / "bundle.json").read_text())["task_params"]
    assert saved["response_sla_minutes"] == 60
    assert saved["lead_leakage"]["cutoff_after_lead_minutes"] == 60
    assert not (data / "demo").exists()


#: A features file over what the simulator's deliveries carry.
FEATURES_FILE = """\
[features.delivered_condition]
label = "Delivered as"
event_type = "vehicle_delivery"
attribute = "condition"
kind = "category"
tasks = ["service_defection"]
"""


def test_a_features_file_and_generic_features_travel_to_the_model_and_its_drivers(
    data: Path, group_events: Path
) -> None:
    mine = data / "mine.toml"
    mine.write_text(FEATURES_FILE)
    table = data / "mine" / "defection.parquet"
    args = ("--task", "service_defection", "--events", group_events / "events.parquet")
    built = _invoke("features", *args, "--out", table, "--features-file", mine, "--generic")
    assert built.exit_code == 0, built.output
    declared = json.loads(read_parquet_metadata(table)["declared"])
    assert declared[0]["name"] == "delivered_condition"
    names = [d["name"] for d in declared]
    # generic: three per touchpoint the events hold, none for the others
    present = pd.read_parquet(group_events / "events.parquet", columns=["event_type"])
    touchpoints = set(present["event_type"].astype(str))
    assert {n for n in names if n.startswith("days_since_")} == {
        f"days_since_{t}" for t in touchpoints
    }
    assert len(names) == 1 + 3 * len(touchpoints)
    columns = pd.read_parquet(table).columns
    assert set(names) <= set(columns)

    trained = _invoke("train", "--task", "service_defection", "--features", table, "--no-progress")
    assert trained.exit_code == 0, trained.output
    bundle = ModelArtifact.load(data.parent / "models" / "service_defection")
    assert "delivered_condition" in bundle.features
    assert bundle.feature_set.declared_names == names
    explained = _invoke("explain", "--task", "service_defection", "--features", table)
    assert explained.exit_code == 0, explained.output

    bad = data / "bad.toml"
    bad.write_text(FEATURES_FILE.replace('kind = "category"', 'kind = "colour"'))
    refused = _invoke("features", *args, "--out", table, "--features-file", bad)
    assert refused.exit_code == 1
    assert "bad.toml: features.delivered_condition.kind" in refused.output


def test_features_refuses_a_bad_parameters_file_naming_the_key(
    data: Path, group_events: Path
) -> None:
    params = data / "params.toml"
    out = data / "features" / "no_show.parquet"
    events = group_events / "events.parquet"
    cases = {
        "[windows.no_show]\ncutoff_hours = 24\n": (
            f"error: {params}: [windows] no_show.cutoff_hours: unknown key"
        ),
        "[windows.lead_leakage]\nwindow_days = 0\n": (
            f"error: {params}: [windows] lead_leakage.window_days: Input should be greater than 0"
        ),
        "response_sla_minutes = 60\n": (
            f"error: {params}: response_sla_minutes: a setting outside any section; the windows "
            "and standards go under [windows]"
        ),
        "[window]\nresponse_sla_minutes = 60\n": (
            f"error: {params}: unknown section(s) [window]; expected [lightgbm], [norms], "
            "[search], [split], [windows]"
        ),
    }
    for text, error in cases.items():
        params.write_text(text)
        result = _invoke("features", "--task", "no_show", "--events", events, "--params", params)
        assert result.exit_code == 1, text
        assert result.stderr.replace("\n", "") == error, text
        assert not out.exists()
    missing = _invoke(
        "features", "--task", "no_show", "--events", events, "--params", data / "none.toml"
    )
    assert missing.exit_code == 1
    assert missing.stderr.strip() == f"error: {data / 'none.toml'}: parameters file not found"


@pytest.fixture
def tables_on_disk(data: Path, tables: dict[Task, pd.DataFrame]) -> dict[Task, Path]:
    """The session's feature tables as `cjm features` writes them (with their metadata), in an
    analyst's folder."""
    paths: dict[Task, Path] = {}
    for task, table in tables.items():
        paths[task] = data / "mine" / f"{task}-table.parquet"
        write_parquet_atomic(table, paths[task], feature_table_metadata(table, task, TaskParams()))
    return paths


def test_train_and_explain_refuse_a_feature_file_of_another_task_by_name(
    tables_on_disk: dict[Task, Path],
) -> None:
    path = tables_on_disk["no_show"]
    result = _invoke("train", "--task", "lead_leakage", "--features", path, "--no-progress")
    assert result.exit_code == 1
    assert result.stderr.replace("\n", "") == (
        f"error: {path}: a feature table of no_show, not lead_leakage"
    )
    explained = _invoke("explain", "--task", "lead_leakage", "--features", path)
    assert explained.exit_code == 1
    assert explained.stderr.replace("\n", "") == (
        f"error: {path}: a feature table of no_show, not lead_leakage"
    )


def test_train_refuses_a_table_built_with_other_windows_than_the_file_s(
    data: Path, tables_on_disk: dict[Task, Path]
) -> None:
    params = data / "params.toml"
    params.write_text(HOUR_FILE)
    path = tables_on_disk["lead_leakage"]
    result = _invoke(
        "train", "--task", "lead_leakage", "--features", path, "--params", params, "--no-progress"
    )
    assert result.exit_code == 1
    assert result.stderr.replace("\n", "") == (
        f"error: {path}: built with other windows than the parameters file's [windows] "
        "(response_sla_minutes, lead_leakage.cutoff_after_lead_minutes); rebuild it with "
        "`cjm features --params`"
    )


def test_train_refuses_unclear_feature_options(data: Path) -> None:
    table = data / "t.parquet"
    with_all = _invoke("train", "--all", "--features", table)
    assert with_all.exit_code == 2
    assert "--features is one task's table: give --task TASK with it" in with_all.output
    both = _invoke("train", "--task", "no_show", "--features", table, "--features-dir", data)
    assert both.exit_code == 2
    assert "give either --features FILE or --features-dir DIR, not both" in both.output
    default = _invoke("train", "--task", "no_show")
    assert default.exit_code == 1
    assert default.stderr.replace("\n", "") == (
        f"error: {data / 'features' / 'no_show.parquet'}: no feature table; run `cjm features` "
        "first"
    )


def test_explain_replaces_its_task_s_hotspots_and_keeps_the_others(
    data: Path, tables_on_disk: dict[Task, Path], models: dict[Task, RiskModel]
) -> None:
    folder = data.parent / "models"
    models["lead_leakage"].save(folder / "lead_leakage")
    others = pd.DataFrame(
        {
            "task": ["no_show", "no_show", "lead_leakage"],
            "rooftop_id": ["rt-01", "rt-02", "rt-09"],
            "driver": ["No confirmation", "No reminder", "stale"],
            "stage": ["Appointment", "Appointment", "Lead"],
            "mean_contribution": [0.05, 0.02, 0.9],
            "instances": [10, 4, 1],
        }
    )
    write_parquet_atomic(others, folder / "hotspots.parquet")
    features = tables_on_disk["lead_leakage"]
    result = _invoke("explain", "--task", "lead_leakage", "--features", features)
    assert result.exit_code == 0, result.output

    table, explainer = load_explainer("lead_leakage", features, folder / "lead_leakage")
    roll = rollup(explainer.driver_contributions(table), explainer.drivers, "lead_leakage")
    expected = pd.concat([hotspots(roll), others.iloc[:2]], ignore_index=True)
    spots = pd.read_parquet(folder / "hotspots.parquet")
    pd.testing.assert_frame_equal(spots, expected, check_dtype=False)
    assert "stale" not in set(spots["driver"])
    assert (data / "explain" / "lead_leakage").is_dir()
    assert not (data / "demo").exists()


def test_map_reads_the_champions_hotspots_and_refuses_a_missing_file(
    data: Path, group_events: Path
) -> None:
    folder = data.parent / "models"
    spots = pd.DataFrame(
        {
            "task": ["no_show"],
            "rooftop_id": ["rt-03"],
            "driver": ["A friction named for this test"],
            "stage": ["Appointment"],
            "mean_contribution": [0.07],
            "instances": [12],
        }
    )
    write_parquet_atomic(spots, folder / "hotspots.parquet")
    page = data / "map.html"
    events = group_events / "events.parquet"
    mapped = _invoke("map", "--events", events, "--out", page)
    assert mapped.exit_code == 0, mapped.output
    assert "A friction named for this test" in page.read_text()
    missing = _invoke("map", "--events", events, "--out", page, "--hotspots", data / "none.pq")
    assert missing.exit_code == 1
    assert missing.stderr.replace("\n", "") == (
        f"error: {data / 'none.pq'}: no hotspots file; run `cjm explain` first"
    )
