"""``cjm explain`` and the demo's explanation report on a simulated group: the roll-ups checked
against the planted frictions, and the what-if against re-simulation."""

from __future__ import annotations

import pandas as pd

from cjm_ml.config import Settings
from cjm_ml.evaluation.explain import explain_demo, run_explain, split_checkable
from cjm_ml.explain.drivers import DriverExplainer
from cjm_ml.explain.rollup import HOTSPOT_COLUMNS
from cjm_ml.params import TASKS, Task
from cjm_ml.training.model import RiskModel
from cjm_ml.training.split import time_split


def test_explain_prints_the_rollup_an_instance_and_the_planted_frictions(
    on_disk: Settings,
) -> None:
    text = run_explain(
        "lead_leakage",
        rooftop="rt-02",
        what_if=True,
        features=on_disk.demo_dir / "features" / "lead_leakage.parquet",
        out=on_disk.demo_dir / "explain",
        settings=on_disk,
    )
    assert "Group roll-up: what adds the most risk" in text
    assert "rt-02 against the group" in text
    assert "Slow first reply to the lead" in text
    assert "Fix to try (Slow first reply to the lead): Call the customer now" in text
    assert "Planted frictions recovered" in text
    assert "What-if against re-simulation" in text
    assert "  rt-02 slow_first_response: The model's what-if" in text
    out = on_disk.demo_dir / "explain" / "lead_leakage"
    assert text.splitlines()[-1].startswith(f"Pictures: {out / 'beeswarm_rt-02.png'}, ")
    assert (out / "beeswarm_rt-02.png").exists()
    assert len(list(out.glob("waterfall_*.png"))) == 1


def test_explain_of_a_rooftop_without_planted_frictions_has_no_checks(on_disk: Settings) -> None:
    text = run_explain(
        "lead_leakage",
        rooftop="rt-01",
        features=on_disk.demo_dir / "features" / "lead_leakage.parquet",
        out=on_disk.demo_dir / "explain",
        settings=on_disk,
    )
    assert "rt-01 against the group" in text
    assert "Planted frictions" not in text


def test_demo_report_writes_the_hotspots_for_the_journey_map(on_disk: Settings) -> None:
    text = explain_demo(on_disk.demo_dir, on_disk.models_dir, what_if=False)
    for task in TASKS:
        assert f"{task}: group roll-up" in text
    assert "Planted frictions recovered (among the rooftop's top 3 frictions" in text
    assert "What-if against re-simulation" not in text
    assert text.splitlines()[-1] == f"Pictures and roll-ups: {on_disk.demo_dir / 'explain'}"
    spots = pd.read_parquet(on_disk.demo_dir / "explain" / "hotspots.parquet")
    assert tuple(spots.columns) == HOTSPOT_COLUMNS
    assert set(spots["task"]) == set(TASKS)
    assert set(spots["rooftop_id"]) == {f"rt-0{i}" for i in range(1, 7)}
    assert (spots["mean_contribution"] >= 0).all()


def test_a_friction_the_model_dropped_is_said_not_checked(tables: dict[Task, pd.DataFrame]) -> None:
    table = tables["no_show"].assign(confirmation_sent=1.0, confirmation_channel="sms")
    split = time_split(table)
    model = RiskModel("no_show").fit(split.train, split.valid)
    assert {"confirmation_sent", "confirmation_channel"} <= set(model.dropped_)
    pairs = [("rt-04", "no_confirmation"), ("rt-04", "no_vehicle_hold")]
    checkable, skipped = split_checkable(DriverExplainer(model), pairs)
    assert checkable == [("rt-04", "no_vehicle_hold")]
    assert skipped == [
        "  rt-04 no_confirmation: not checked: the model uses none of its features (constant "
        "in training)"
    ]
