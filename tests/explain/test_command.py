"""``cjm explain`` and the demo's explanation report on a small simulated group on disk."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cjm_ml.config import Settings
from cjm_ml.explain.command import explain_demo, run_explain
from cjm_ml.explain.rollup import HOTSPOT_COLUMNS
from cjm_ml.params import TASKS, Task
from cjm_ml.simulation import SimulatedGroup, write_simulation
from cjm_ml.training.model import RiskModel


@pytest.fixture(scope="module")
def on_disk(
    tmp_path_factory: pytest.TempPathFactory,
    small_group: SimulatedGroup,
    tables: dict[Task, pd.DataFrame],
    models: dict[Task, RiskModel],
) -> Settings:
    """The small group as ``cjm demo`` leaves it: data/demo/... and models/<task>/."""
    root = tmp_path_factory.mktemp("cjm")
    demo = root / "data" / "demo"
    write_simulation(small_group, demo)
    (demo / "features").mkdir()
    for task in TASKS:
        tables[task].to_parquet(demo / "features" / f"{task}.parquet")
        models[task].save(root / "models" / task)
    return Settings(data_dir=root / "data", models_dir=root / "models")


def test_explain_prints_the_rollup_an_instance_and_the_planted_frictions(
    on_disk: Settings,
) -> None:
    text = run_explain("lead_leakage", rooftop="rt-02", what_if=True, settings=on_disk)
    assert "Group roll-up: what adds the most risk" in text
    assert "rt-02 against the group" in text
    assert "Slow first reply to the lead" in text
    assert "Fix to try (Slow first reply to the lead): Call the customer now" in text
    assert "Planted frictions recovered" in text
    assert "What-if against re-simulation" in text
    out = on_disk.demo_dir / "explain" / "lead_leakage"
    assert (out / "beeswarm_rt-02.png").exists()
    assert len(list(out.glob("waterfall_*.png"))) == 1


def test_explain_one_instance_by_id(on_disk: Settings, tables: dict[Task, pd.DataFrame]) -> None:
    instance = str(tables["no_show"]["instance_id"].iloc[10])
    text = run_explain("no_show", instance_id=instance, settings=on_disk)
    assert f"Instance {instance} at " in text
    assert (on_disk.demo_dir / "explain" / "no_show" / f"waterfall_{instance}.png").exists()


def test_explain_refuses_unknown_rooftop_instance_and_missing_model(
    on_disk: Settings, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="unknown rooftop 'rt-99'; the table has rt-01, rt-02"):
        run_explain("no_show", rooftop="rt-99", settings=on_disk)
    with pytest.raises(ValueError, match="no instance 'a-nope'"):
        run_explain("no_show", instance_id="a-nope", settings=on_disk)
    with pytest.raises(FileNotFoundError, match="no model bundle for no_show; run `cjm train`"):
        run_explain("no_show", model=tmp_path / "none", settings=on_disk)
    with pytest.raises(ValueError, match="the bundle is a lead_leakage model, not no_show"):
        run_explain("no_show", model=on_disk.models_dir / "lead_leakage", settings=on_disk)


def test_demo_report_writes_the_hotspots_for_the_journey_map(on_disk: Settings) -> None:
    text = explain_demo(on_disk.demo_dir, on_disk.models_dir, what_if=False)
    for task in TASKS:
        assert f"{task}: group roll-up" in text
    assert "Planted frictions recovered (among the rooftop's top 3 frictions" in text
    spots = pd.read_parquet(on_disk.demo_dir / "explain" / "hotspots.parquet")
    assert tuple(spots.columns) == HOTSPOT_COLUMNS
    assert set(spots["task"]) == set(TASKS)
    assert set(spots["rooftop_id"]) == {f"rt-0{i}" for i in range(1, 7)}
    assert (spots["mean_contribution"] >= 0).all()
