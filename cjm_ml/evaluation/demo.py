"""``cjm demo``: the whole job on a freshly simulated dealer group, the way a dealer's data
comes in.

simulate (the group's journeys as the raw exports of its dealer systems) -> ingest each export
through its shipped mapping -> validate -> features -> the round trip against the simulator's
own events -> train -> explain (checked against the planted frictions) -> journey map -> demo
store and API keys -> serve. The stages that are commands of their own (simulate, ingest,
features, train, map, store, serve) come in as ``DemoStages`` from the command line, so the demo
prints exactly what each command prints; the rest is here.

The demo folder: ``exports/`` (the raw exports, with the simulator's identity truth),
``simulator/`` (its canonical events, truth and rooftops, for the checks only), ``events/`` and
``identity/`` (what ingest wrote), ``features/``, ``truth_<task>.parquet`` (the truth keyed by
the ingested instances), ``rooftops.json``, ``explain/``, ``mlflow/``, ``journey.html``,
``tenants.json``, ``serving/``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cjm_ml.config import Settings
from cjm_ml.evaluation.explain import explain_demo
from cjm_ml.evaluation.round_trip import compare_instances, read_truth_identity, truth_for
from cjm_ml.features.instances import build_instances
from cjm_ml.featureset import PROFILE_FEATURES, DeclaredFeature, load_features_file
from cjm_ml.ingest.identity import MIN_SALT_LENGTH
from cjm_ml.ingest.mapping import SHIPPED_MAPPINGS, Mapping, shipped_mapping
from cjm_ml.io import write_json_atomic, write_parquet_atomic
from cjm_ml.params import TASKS, Task
from cjm_ml.simulation import SimulationConfig

log = logging.getLogger(__name__)

#: The demo group: six rooftops, two years, seed 7 (``customers`` is the demo's option).
DEMO_ROOFTOPS, DEMO_DAYS, DEMO_SEED = 6, 730, 7


@dataclass(frozen=True)
class DemoStages:
    """The demo's stages that are also commands, each printing what its command prints.

    ``simulate(config, out, raw_exports)``; ``ingest(mapping, inputs, data_dir, salt)``;
    ``load_events(path)`` (the validated events; the command line exits on a file that does
    not load); ``write_feature_tables(events, events_path, outs, declared)`` (the shipped
    profile features declared: ``PROFILE_FEATURES``);
    ``train(tasks, features_dir, settings)`` (truth beside the feature folder);
    ``write_journey_map(events, out, rooftops_json, hotspots)``;
    ``load_store(settings, events_path)``; ``serve(settings)`` (until stopped); ``echo(text)``
    prints the demo's own results.
    """

    simulate: Callable[[SimulationConfig, Path, Path], None]
    ingest: Callable[[Mapping, Sequence[Path], Path, str], None]
    load_events: Callable[[Path], pd.DataFrame]
    write_feature_tables: Callable[
        [pd.DataFrame, Path, dict[Task, Path], Sequence[DeclaredFeature]], None
    ]
    train: Callable[[list[Task], Path, Settings], None]
    write_journey_map: Callable[[pd.DataFrame, Path, Path, Path], None]
    load_store: Callable[[Settings, Path], None]
    serve: Callable[[Settings], None]
    echo: Callable[[str], None]


def run_demo(out: Path, stages: DemoStages, *, customers: int = 60_000, serve: bool = True) -> None:
    """Run the demo into ``out`` (the models go to the configured models directory), ending by
    serving the API with the demo loaded when ``serve``."""
    settings = Settings()
    _simulate(out, customers, stages)
    events_path = _ingest(out, settings, stages)
    events = _validate(events_path, stages)
    _features(events, events_path, out, stages)
    _round_trip(out, stages)
    _train(out, settings, stages)
    _explain(out, settings, stages)
    stages.write_journey_map(
        events, out / "journey.html", out / "rooftops.json", out / "explain" / "hotspots.parquet"
    )
    if serve:
        _serve(out, events_path, events["ts"].max(), stages)


def _simulate(out: Path, customers: int, stages: DemoStages) -> None:
    config = SimulationConfig(
        rooftops=DEMO_ROOFTOPS, customers=customers, seed=DEMO_SEED, days=DEMO_DAYS
    )
    stages.simulate(config, out / "simulator", out / "exports")


def _ingest(out: Path, settings: Settings, stages: DemoStages) -> Path:
    """Every raw export through its shipped mapping into ``<out>/events/``, started afresh;
    returns that folder. The salt is CJM_PII_SALT, or one made for this demo (kept in
    ``<out>/pii-salt``, readable by its owner only)."""
    for made in ("events", "identity"):
        shutil.rmtree(out / made, ignore_errors=True)
    salt = settings.pii_salt.get_secret_value() if settings.pii_salt else ""
    if len(salt) < MIN_SALT_LENGTH:
        salt = _demo_salt(out / "pii-salt")
    stages.echo("\nIngest (the raw exports, each through its shipped mapping)")
    for name, export in SHIPPED_MAPPINGS.values():
        stages.ingest(shipped_mapping(name), [out / "exports" / export], out, salt)
    return out / "events"


def _demo_salt(path: Path) -> str:
    """A new random salt written to ``path`` (mode 0600, temp then rename)."""
    salt = secrets.token_urlsafe(24)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(salt)
    tmp.replace(path)
    return salt


def _validate(path: Path, stages: DemoStages) -> pd.DataFrame:
    events = stages.load_events(path)
    stages.echo(f"{path}: valid, {len(events):,} events")
    return events


def _features(events: pd.DataFrame, path: Path, out: Path, stages: DemoStages) -> None:
    outs = {t: out / "features" / f"{t}.parquet" for t in TASKS}
    stages.write_feature_tables(events, path, outs, load_features_file(PROFILE_FEATURES))


def _round_trip(out: Path, stages: DemoStages) -> None:
    """The ingested instances against the simulator's (``evaluation.round_trip``), printed per
    task; the simulator's truth and rooftops re-keyed beside the feature tables, for the
    ceiling and the planted-friction checks."""
    canonical = stages.load_events(out / "simulator" / "events.parquet")
    identity = read_truth_identity(out / "exports")
    stages.echo("\nRound trip (ingested exports against the simulator's own events)")
    for task in TASKS:
        table = pd.read_parquet(
            out / "features" / f"{task}.parquet", columns=["instance_id", "customer_id", "label"]
        )
        check = compare_instances(build_instances(canonical, task), table, identity)
        stages.echo(f"  {task}: {check.line()}")
        truth = pd.read_parquet(out / "simulator" / f"truth_{task}.parquet")
        keyed = truth_for(truth, table["instance_id"], identity)
        write_parquet_atomic(keyed, out / f"truth_{task}.parquet")
    shutil.copyfile(out / "simulator" / "rooftops.json", out / "rooftops.json")


def _train(out: Path, settings: Settings, stages: DemoStages) -> None:
    """Train in the demo's own tracking store, started afresh with its freshly simulated group:
    its registry history is this run's, so the figures it prints do not depend on earlier runs."""
    demo_settings = settings.model_copy(update={"data_dir": out})
    shutil.rmtree(demo_settings.mlflow_dir, ignore_errors=True)
    stages.train(list(TASKS), out / "features", demo_settings)


def _explain(out: Path, settings: Settings, stages: DemoStages) -> None:
    """The friction drivers, checked against the planted frictions; the champions' hotspots
    travel with them, for the API's journey page."""
    stages.echo("\nFriction drivers")
    stages.echo(explain_demo(out, settings.models_dir))
    shutil.copyfile(out / "explain" / "hotspots.parquet", settings.models_dir / "hotspots.parquet")


def _serve(out: Path, events_path: Path, last: pd.Timestamp, stages: DemoStages) -> None:
    """Load the demo events into a fresh store, make demo API keys, print what to try, serve."""
    manager, bdc = _demo_tenants(out)
    # The demo's own store and outbox, made afresh for the freshly simulated group.
    serving = out / "serving"
    shutil.rmtree(serving, ignore_errors=True)
    settings = Settings(
        tenants_file=out / "tenants.json",
        event_store_path=serving / "events.db",
        outbox_path=serving / "outbox.db",
    )
    stages.load_store(settings, events_path)
    stages.echo(_what_to_try(settings, manager, bdc, last))
    stages.serve(settings)


def _demo_tenants(out: Path) -> tuple[str, str]:
    """Write ``<out>/tenants.json`` for the demo group with two new keys; returns them (the
    group manager's, for every rooftop, and rt-04's BDC's)."""
    from cjm_ml.serving.tenants import generate_api_key

    rooftops = json.loads((out / "rooftops.json").read_text())
    manager, manager_entry = generate_api_key("demo-manager")
    bdc, bdc_entry = generate_api_key("demo-rt04-bdc", ["rt-04"])
    group = {
        "dealer_group_id": rooftops["dealer_group_id"],
        "rooftops": [r["rooftop_id"] for r in rooftops["rooftops"]],
        "api_keys": [
            manager_entry.model_dump(exclude_none=True),
            bdc_entry.model_dump(exclude_none=True),
        ],
    }
    write_json_atomic({"dealer_groups": [group]}, out / "tenants.json")
    return manager, bdc


def _what_to_try(settings: Settings, manager: str, bdc: str, last: pd.Timestamp) -> str:
    base = f"http://{settings.host}:{settings.port}"
    # The simulated history ends before today: ask as of its last day.
    as_of = last.floor("D").strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"""
The scoring API is starting on {base} (Ctrl-C stops it). Demo keys, shown once:
  group manager (all rooftops): {manager}
  rt-04 BDC (rt-04 only):       {bdc}
Try:
  {base}/docs
  curl -H 'X-API-Key: {bdc}' '{base}/v1/queues/no_show?as_of={as_of}&limit=10'
  curl -H 'X-API-Key: {manager}' \\
    '{base}/v1/queues/service_defection?as_of={as_of}&format=csv&limit=20'
  curl -H 'X-API-Key: {manager}' {base}/v1/models
  {base}/journey?api_key={manager}  (the journey map, in a browser)"""
