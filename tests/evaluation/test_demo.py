"""``run_demo``'s order of stages and its own steps, on the small group: its raw exports are
ingested for real (the stages that train and serve are recorded, not run: ``tests/cli`` and
their packages test them)."""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from cjm_ml.cli.features import write_feature_tables
from cjm_ml.config import Settings
from cjm_ml.evaluation.demo import DemoStages, run_demo
from cjm_ml.events import load_events
from cjm_ml.featureset import DeclaredFeature
from cjm_ml.ingest.mapping import SHIPPED_MAPPINGS, Mapping
from cjm_ml.ingest.pipeline import ingest
from cjm_ml.params import TASKS, Task
from cjm_ml.simulation import SimulationConfig


class Recorder:
    """Demo stages that record their calls; simulate copies the written group, ingest and
    the feature tables run for real."""

    def __init__(self, written: Path) -> None:
        self.written = written
        self.calls: list[tuple[str, object]] = []
        self.printed: list[str] = []

    def simulate(self, config: SimulationConfig, folder: Path, raw: Path) -> None:
        self.calls.append(("simulate", (config, folder, raw)))
        shutil.copytree(self.written / "simulator", folder)
        shutil.copytree(self.written / "exports", raw)

    def ingest(self, mapping: Mapping, inputs: Sequence[Path], data_dir: Path, salt: str) -> None:
        self.calls.append(("ingest", (mapping.source, [p.name for p in inputs], data_dir)))
        ingest(mapping, inputs, data_dir=data_dir, salt=salt)

    def features(
        self,
        events: pd.DataFrame,
        path: Path,
        outs: dict[Task, Path],
        declared: Sequence[DeclaredFeature],
    ) -> None:
        self.calls.append(("features", (len(events), path, outs, [d.name for d in declared])))
        write_feature_tables(events, path, outs, declared=declared)

    def stages(self) -> DemoStages:
        calls = self.calls
        return DemoStages(
            simulate=self.simulate,
            ingest=self.ingest,
            load_events=load_events,
            write_feature_tables=self.features,
            train=lambda tasks, features, settings: calls.append(
                ("train", (tasks, features, settings.data_dir, settings.mlflow_dir.exists()))
            ),
            write_journey_map=lambda events, html, rooftops, hotspots: calls.append(
                ("map", (html, rooftops, hotspots))
            ),
            load_store=lambda settings, path: calls.append(
                ("load_store", (settings.event_store_file, path, settings.data_dir))
            ),
            serve=lambda settings: calls.append(("serve", settings.tenants_file)),
            echo=self.printed.append,
        )


def test_the_demo_ingests_the_raw_exports_checks_the_round_trip_and_serves(
    on_disk: Settings, written: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CJM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CJM_MODELS_DIR", str(on_disk.models_dir))
    monkeypatch.delenv("CJM_PII_SALT", raising=False)
    out = tmp_path / "demo"
    (out / "mlflow").mkdir(parents=True)  # an earlier run's tracking store, to be removed
    (out / "serving").mkdir()
    (out / "serving" / "events.db").write_text("an earlier run's store")
    (out / "events").mkdir()
    (out / "events" / "old.parquet").write_text("an earlier run's load")
    recorder = Recorder(written)
    run_demo(out, recorder.stages(), customers=500)

    calls, printed = recorder.calls, recorder.printed
    assert [c[0] for c in calls] == [
        "simulate", *["ingest"] * len(SHIPPED_MAPPINGS), "features", "train", "map",
        "load_store", "serve",
    ]  # fmt: skip
    config = SimulationConfig(rooftops=6, customers=500, seed=7, days=730)
    assert calls[0][1] == (config, out / "simulator", out / "exports")
    assert [c[1] for c in calls[1:9]] == [
        (source, [export], out) for source, (_, export) in SHIPPED_MAPPINGS.items()
    ]
    events = out / "events"
    n = len(load_events(events))
    assert n == len(load_events(out / "simulator" / "events.parquet"))
    outs = {t: out / "features" / f"{t}.parquet" for t in TASKS}
    profile = ["vehicle_age_years", "warranty_days_left", "mileage_at_delivery", "model_line"]
    assert calls[9][1] == (n, events, outs, [*profile, "buyer_age_band"])
    # the profile reaches the defection table, from the ingested deal export
    defection = pd.read_parquet(outs["service_defection"])
    assert defection[profile[:3]].notna().all().all()
    assert calls[10][1] == (list(TASKS), out / "features", out, False)
    assert calls[11][1] == (
        out / "journey.html",
        out / "rooftops.json",
        out / "explain" / "hotspots.parquet",
    )
    assert calls[12][1][:2] == (out / "serving" / "events.db", events)
    assert calls[13][1] == out / "tenants.json"
    # A salt made for the demo, readable by its owner only.
    assert stat.S_IMODE((out / "pii-salt").stat().st_mode) == 0o600
    assert len((out / "pii-salt").read_text()) >= 16
    # The round trip: every task's instances identical to the simulator's.
    start = printed.index("\nRound trip (ingested exports against the simulator's own events)")
    for task, line in zip(TASKS, printed[start + 1 : start + 4], strict=True):
        assert line.startswith(f"  {task}: ") and "(identical)" in line, line
    # The truth re-keyed by the ingested instances, for the ceiling.
    for task in TASKS:
        table = pd.read_parquet(outs[task], columns=["instance_id"])
        truth = pd.read_parquet(out / f"truth_{task}.parquet")
        assert sorted(truth["instance_id"]) == sorted(table["instance_id"])
        simulated = pd.read_parquet(out / "simulator" / f"truth_{task}.parquet")
        both = truth.merge(simulated, left_on="canonical_id", right_on="instance_id")
        assert len(both) == len(truth)
        assert (both["true_prob_x"] == both["true_prob_y"]).all()
    assert "\nFriction drivers" in printed
    report = printed[printed.index("\nFriction drivers") + 1]
    assert "Planted frictions recovered" in report
    assert "What-if against re-simulation" in report
    assert (on_disk.models_dir / "hotspots.parquet").read_bytes() == (
        out / "explain" / "hotspots.parquet"
    ).read_bytes()
    tenants = json.loads((out / "tenants.json").read_text())["dealer_groups"]
    assert [g["rooftops"] for g in tenants] == [[f"rt-0{i}" for i in range(1, 7)]]
    assert [k["key_id"] for k in tenants[0]["api_keys"]] == ["demo-manager", "demo-rt04-bdc"]
    assert "The scoring API is starting on http://127.0.0.1:8000 (Ctrl-C stops it)" in printed[-1]
    last = load_events(events)["ts"].max().floor("D").strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"/v1/queues/no_show?as_of={last}&limit=10" in printed[-1]


def test_the_demo_without_serving_stops_after_the_map(
    on_disk: Settings, written: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CJM_MODELS_DIR", str(on_disk.models_dir))
    monkeypatch.setenv("CJM_PII_SALT", "a-salt-from-the-environment")
    out = tmp_path / "demo"
    recorder = Recorder(written)
    run_demo(out, recorder.stages(), serve=False)
    assert [c[0] for c in recorder.calls][-3:] == ["features", "train", "map"]
    assert not (out / "tenants.json").exists()
    assert not (out / "pii-salt").exists()  # the environment's salt was used
