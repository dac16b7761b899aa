"""``run_demo``'s order of stages and its own steps, on the small group already on disk (the
stages that are commands are recorded, not run: ``tests/cli`` and their packages test them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from cjm_ml.config import Settings
from cjm_ml.evaluation.demo import DemoStages, run_demo
from cjm_ml.events import load_events
from cjm_ml.params import TASKS, Task
from cjm_ml.simulation import SimulationConfig


def test_the_demo_runs_every_stage_in_order_and_serves_with_fresh_keys(
    on_disk: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CJM_DATA_DIR", str(on_disk.data_dir))
    monkeypatch.setenv("CJM_MODELS_DIR", str(on_disk.models_dir))
    out = on_disk.demo_dir
    (out / "mlflow").mkdir(exist_ok=True)  # an earlier run's tracking store, to be removed
    (out / "serving").mkdir(exist_ok=True)
    (out / "serving" / "events.db").write_text("an earlier run's store")
    calls: list[tuple[str, object]] = []
    printed: list[str] = []

    def train(tasks: list[Task], features: Path, settings: Settings) -> None:
        calls.append(("train", (tasks, features, settings.data_dir, settings.mlflow_dir.exists())))

    def load_store(settings: Settings, path: Path) -> None:
        calls.append(("load_store", (settings.event_store_file, path)))
        assert not (out / "serving").exists()  # made afresh

    def write_tables(events: pd.DataFrame, path: Path, outs: dict[Task, Path]) -> None:
        calls.append(("features", (len(events), path, outs)))

    def write_map(events: pd.DataFrame, html: Path, rooftops: Path, path: Path) -> None:
        calls.append(("map", (html, rooftops, path)))

    stages = DemoStages(
        simulate=lambda config, folder: calls.append(("simulate", (config, folder))),
        load_events=load_events,
        write_feature_tables=write_tables,
        train=train,
        write_journey_map=write_map,
        load_store=load_store,
        serve=lambda settings: calls.append(("serve", settings.tenants_file)),
        echo=printed.append,
    )
    run_demo(out, stages, customers=500)

    events = out / "events.parquet"
    n = len(load_events(events))
    assert [c[0] for c in calls] == [
        "simulate", "features", "train", "map", "load_store", "serve"
    ]  # fmt: skip
    assert calls[0][1] == (SimulationConfig(rooftops=6, customers=500, seed=7, days=730), out)
    outs = {t: out / "features" / f"{t}.parquet" for t in TASKS}
    assert calls[1][1] == (n, events, outs)
    assert calls[2][1] == (list(TASKS), out / "features", out, False)
    assert calls[3][1] == (out / "journey.html", out / "rooftops.json", events)
    assert calls[4][1] == (out / "serving" / "events.db", events)
    assert calls[5][1] == out / "tenants.json"
    assert printed[0] == f"{events}: valid, {n:,} events"
    assert printed[1] == "\nFriction drivers"
    assert "Planted frictions recovered" in printed[2]
    assert "What-if against re-simulation" in printed[2]
    assert (on_disk.models_dir / "hotspots.parquet").read_bytes() == (
        out / "explain" / "hotspots.parquet"
    ).read_bytes()
    tenants = json.loads((out / "tenants.json").read_text())["dealer_groups"]
    assert [g["rooftops"] for g in tenants] == [[f"rt-0{i}" for i in range(1, 7)]]
    assert [k["key_id"] for k in tenants[0]["api_keys"]] == ["demo-manager", "demo-rt04-bdc"]
    assert "The scoring API is starting on http://127.0.0.1:8000 (Ctrl-C stops it)" in printed[3]
    assert "/v1/queues/no_show?as_of=2026-10-31T00:00:00Z&limit=10" in printed[3]


def test_the_demo_without_serving_stops_after_the_map(
    on_disk: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Without rooftops.json the report has no planted frictions to check: no re-simulation.
    out = tmp_path / "demo"
    shutil.copytree(on_disk.demo_dir / "features", out / "features")
    shutil.copyfile(on_disk.demo_dir / "events.parquet", out / "events.parquet")
    monkeypatch.setenv("CJM_MODELS_DIR", str(on_disk.models_dir))
    calls: list[str] = []
    printed: list[str] = []
    stages = DemoStages(
        simulate=lambda config, folder: calls.append("simulate"),
        load_events=load_events,
        write_feature_tables=lambda events, path, outs: calls.append("features"),
        train=lambda tasks, features, settings: calls.append("train"),
        write_journey_map=lambda events, html, rooftops, path: calls.append("map"),
        load_store=lambda settings, path: calls.append("load_store"),
        serve=lambda settings: calls.append("serve"),
        echo=printed.append,
    )
    run_demo(out, stages, serve=False)
    assert calls == ["simulate", "features", "train", "map"]
    assert len(printed) == 3 and "Planted frictions" not in printed[2]
    assert not (out / "tenants.json").exists()
