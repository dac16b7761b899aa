"""The explanation report (``cjm explain``'s body) on the small group's tables and models on
disk: no simulator needed (its checks are in ``tests/evaluation``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cjm_ml.explain.report import explain_task, explain_tasks, format_pictures, load_explainer
from cjm_ml.explain.rollup import HOTSPOT_COLUMNS
from cjm_ml.params import TASKS, Task
from cjm_ml.training.model import RiskModel


@pytest.fixture(scope="module")
def folders(
    tmp_path_factory: pytest.TempPathFactory,
    tables: dict[Task, pd.DataFrame],
    models: dict[Task, RiskModel],
) -> tuple[Path, Path]:
    """``features/<task>.parquet`` and ``models/<task>/`` of the small group."""
    root = tmp_path_factory.mktemp("report")
    (root / "features").mkdir()
    for task in TASKS:
        tables[task].to_parquet(root / "features" / f"{task}.parquet")
        models[task].save(root / "models" / task)
    return root / "features", root / "models"


def test_explain_task_gives_the_rollups_and_the_riskiest_instance(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    features, models = folders
    path = features / "lead_leakage.parquet"
    got = explain_task(
        "lead_leakage", features=path, model=models / "lead_leakage", out=tmp_path, rooftop="rt-02"
    )
    assert got.lines[0] == f"lead_leakage: {len(got.table):,} instances from {path}; model " + str(
        models / "lead_leakage"
    )
    assert got.lines[2] == "Group roll-up: what adds the most risk"
    assert "rt-02 against the group" in got.lines
    assert got.lines[-2].startswith("Instance ") and " at rt-02: risk " in got.lines[-2]
    assert "Fix to try (Slow first reply to the lead): Call the customer now" in got.lines[-2]
    assert got.lines[-1] == ""
    assert set(got.rollup["rooftop_id"]) == {"group", *(f"rt-0{i}" for i in range(1, 7))}
    beeswarm, waterfall = got.pictures
    assert beeswarm == tmp_path / "lead_leakage" / "beeswarm_rt-02.png" and beeswarm.exists()
    assert waterfall.name.startswith("waterfall_") and waterfall.exists()
    assert format_pictures(got.pictures) == f"Pictures: {beeswarm}, {waterfall}"


def test_explain_one_instance_by_id(
    folders: tuple[Path, Path], tables: dict[Task, pd.DataFrame], tmp_path: Path
) -> None:
    features, models = folders
    instance = str(tables["no_show"]["instance_id"].iloc[10])
    got = explain_task(
        "no_show",
        features=features / "no_show.parquet",
        model=models / "no_show",
        out=tmp_path,
        instance_id=instance,
    )
    assert got.lines[-2].startswith(f"Instance {instance} at ")
    assert (tmp_path / "no_show" / f"waterfall_{instance}.png").exists()
    assert (tmp_path / "no_show" / "beeswarm_group.png").exists()


def test_explain_refuses_unknown_rooftop_instance_and_missing_files(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    features, models = folders
    table, model = features / "no_show.parquet", models / "no_show"
    with pytest.raises(ValueError, match="unknown rooftop 'rt-99'; the table has rt-01, rt-02"):
        explain_task("no_show", features=table, model=model, out=tmp_path, rooftop="rt-99")
    with pytest.raises(ValueError, match="no instance 'a-nope'"):
        explain_task("no_show", features=table, model=model, out=tmp_path, instance_id="a-nope")
    with pytest.raises(FileNotFoundError, match="no model bundle for no_show; run `cjm train`"):
        load_explainer("no_show", table, tmp_path / "none")
    with pytest.raises(
        FileNotFoundError, match=r"nope\.parquet: no feature table; run `cjm features`"
    ):
        load_explainer("no_show", tmp_path / "nope.parquet", model)
    with pytest.raises(ValueError, match="the bundle is a lead_leakage model, not no_show"):
        load_explainer("no_show", table, models / "lead_leakage")


def test_explain_tasks_writes_the_rollups_and_the_hotspots_for_the_journey_map(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    features, models = folders
    got = explain_tasks(TASKS, features, models, tmp_path)
    assert list(got) == list(TASKS)
    for task, e in got.items():
        assert e.lines[0] == f"{task}: group roll-up ({len(e.table):,} instances)"
        assert e.pictures == [tmp_path / task / "beeswarm_group.png"]
    rollups = pd.read_parquet(tmp_path / "rollups.parquet")
    assert len(rollups) == sum(len(e.rollup) for e in got.values())
    spots = pd.read_parquet(tmp_path / "hotspots.parquet")
    assert tuple(spots.columns) == HOTSPOT_COLUMNS
    assert set(spots["task"]) == set(TASKS)
    assert set(spots["rooftop_id"]) == {f"rt-0{i}" for i in range(1, 7)}
    assert (spots["mean_contribution"] >= 0).all()
