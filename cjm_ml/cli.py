"""The ``cjm`` command line. Each subcommand is a thin edge around library functions."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Annotated, cast

import pandas as pd
import typer

from cjm_ml.config import Settings
from cjm_ml.events import EventValidationError, load_events
from cjm_ml.io import write_parquet_atomic
from cjm_ml.logs import configure_logging
from cjm_ml.params import TASKS, Task

app = typer.Typer(
    help="cjm-ml: predictive customer journeys for car dealers.",
    no_args_is_help=True,
    add_completion=False,
)
log = logging.getLogger("cjm_ml.cli")


@app.callback()
def main(
    log_level: Annotated[str, typer.Option(help="Logging level for cjm_ml.")] = "",
) -> None:
    """Configure logging once, for every subcommand."""
    configure_logging(log_level or Settings().log_level)


def _parse_fixes(fix: list[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    out = []
    for item in fix:
        rooftop, _, settings = item.partition(":")
        if not rooftop or not settings:
            raise typer.BadParameter(
                f"{item!r}: expected ROOFTOP:SETTING[,SETTING], e.g. rt-02:response_median_minutes"
            )
        out.append((rooftop, tuple(s.strip() for s in settings.split(","))))
    return tuple(out)


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Folder for events, truth and rooftops.json.")],
    rooftops: Annotated[int, typer.Option(min=2, max=50)] = 6,
    customers: Annotated[int, typer.Option(min=10)] = 30_000,
    seed: int = 7,
    days: Annotated[int, typer.Option(min=60, help="Length of the history in days.")] = 730,
    fix: Annotated[
        list[str] | None,
        typer.Option(help="What-if: ROOFTOP:SETTING[,SETTING] reset to the group standard."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Simulate a dealer group and write events.parquet, truth_<task>.parquet, rooftops.json."""
    from cjm_ml.simulation import SimulationConfig, write_simulation
    from cjm_ml.simulation import simulate as run_simulation
    from cjm_ml.simulation.summary import outcome_rates

    config = SimulationConfig(
        rooftops=rooftops, customers=customers, seed=seed, days=days, fixes=_parse_fixes(fix or [])
    )
    started = time.perf_counter()
    try:
        group = run_simulation(config, progress=progress)
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0])) from exc
    paths = write_simulation(group, out)
    log.info("simulated %d customers in %.1f s", customers, time.perf_counter() - started)
    typer.echo(f"events: {len(group.events):,} rows -> {paths['events']}")
    typer.echo("outcome rates by rooftop:")
    typer.echo(outcome_rates(group.truth).to_string())
    for p in group.planted:
        typer.echo(
            f"planted: {p.rooftop_id} {p.friction} ({p.task}): {p.setting}={p.value} "
            f"(group standard {p.group_standard})"
        )


@app.command()
def validate(
    path: Annotated[Path, typer.Argument(help="Events file, .csv or .parquet.")],
    out: Annotated[
        Path | None, typer.Option(help="Write the typed, clean table here (Parquet) if valid.")
    ] = None,
) -> None:
    """Check an events file against the event model; list every violation (exit 1) or load it."""
    try:
        events = load_events(path)
    except (FileNotFoundError, ValueError) as exc:
        if isinstance(exc, EventValidationError):
            typer.echo(str(exc), err=True)
        else:
            typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(
        f"{path}: valid, {len(events):,} events, {events['customer_id'].nunique():,} customers, "
        f"{events['rooftop_id'].nunique()} rooftops, {events['ts'].min()} to {events['ts'].max()}"
    )
    if out is not None:
        write_parquet_atomic(events, out)
        typer.echo(f"clean table -> {out}")


@app.command()
def features(
    task: Annotated[str, typer.Option(help="lead_leakage, no_show or service_defection.")],
    events: Annotated[Path, typer.Option(help="Events file (.csv or .parquet).")],
    out: Annotated[Path, typer.Option(help="Feature table to write (Parquet).")],
    as_of: Annotated[
        str | None, typer.Option(help="Extraction time (ISO 8601 UTC); default: the last event.")
    ] = None,
) -> None:
    """Build a task's point-in-time feature table with labels and write it as Parquet."""
    if task not in TASKS:
        raise typer.BadParameter(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    name, as_of_ts = cast(Task, task), _parse_as_of(as_of)
    _write_feature_tables(_load_or_exit(events), events, [name], {name: out}, as_of_ts)


def _load_or_exit(path: Path) -> pd.DataFrame:
    try:
        return load_events(path)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc


def _write_feature_tables(
    events: pd.DataFrame,
    path: Path,
    tasks: list[Task],
    outs: dict[Task, Path],
    as_of: pd.Timestamp | None = None,
) -> None:
    """Index the events once, then build and write each task's table (exit 1 on no instances)."""
    from cjm_ml.features.instances import NoInstancesError
    from cjm_ml.features.pipeline import build_feature_table, feature_table_metadata
    from cjm_ml.features.timeline import Timeline
    from cjm_ml.params import TaskParams

    params = TaskParams()
    timeline = Timeline(events)
    for task in tasks:
        started = time.perf_counter()
        try:
            table = build_feature_table(timeline, task, params, as_of=as_of)
        except NoInstancesError as exc:
            typer.echo(f"error: {path}: {exc}", err=True)
            raise typer.Exit(code=1) from exc
        write_parquet_atomic(table, outs[task], feature_table_metadata(table, task, params))
        labelled = table["label"].dropna()
        typer.echo(
            f"{task}: {len(table):,} instances ({len(labelled):,} labelled, rate "
            f"{labelled.astype(float).mean():.3f}) in {time.perf_counter() - started:.1f} s "
            f"-> {outs[task]}"
        )


def _parse_as_of(as_of: str | None) -> pd.Timestamp | None:
    if as_of is None:
        return None
    try:
        ts = pd.Timestamp(as_of)
    except ValueError as exc:
        raise typer.BadParameter(f"--as-of {as_of!r} is not an ISO 8601 timestamp") from exc
    if ts.tzinfo is None:
        raise typer.BadParameter(f"--as-of {as_of!r} has no timezone; give it in UTC")
    return ts


@app.command()
def train(
    task: Annotated[
        str | None, typer.Option(help="lead_leakage, no_show or service_defection.")
    ] = None,
    all_tasks: Annotated[bool, typer.Option("--all", help="Train all three models.")] = False,
    features_dir: Annotated[
        Path | None,
        typer.Option(help="Folder of <task>.parquet feature tables; default: the demo's."),
    ] = None,
    truth_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder of the simulator's truth_<task>.parquet for the ceiling; default: the "
            "feature folder's parent, when the files are there."
        ),
    ] = None,
    params: Annotated[
        Path | None, typer.Option(help="Training parameters file (TOML); default: embedded.")
    ] = None,
    search: Annotated[
        bool, typer.Option(help="Try the parameters file's [search] grid; keep the best.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Train, evaluate, track and register risk models; promote a better one to champion and
    export the champion bundle under the models directory."""
    tasks = _tasks_or_exit(task, all_tasks)
    settings = Settings()
    features_dir = features_dir or settings.demo_dir / "features"
    _train_tasks(tasks, features_dir, truth_dir or features_dir.parent, params, search, progress)


def _tasks_or_exit(task: str | None, all_tasks: bool) -> list[Task]:
    if all_tasks == (task is not None):
        raise typer.BadParameter("give either --task TASK or --all")
    if task is not None and task not in TASKS:
        raise typer.BadParameter(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return list(TASKS) if all_tasks else [cast(Task, task)]


def _train_tasks(
    tasks: list[Task],
    features_dir: Path,
    truth_dir: Path,
    params: Path | None,
    search: bool,
    progress: bool,
    settings: Settings | None = None,
) -> None:
    from cjm_ml.training.config import load_training_config
    from cjm_ml.training.run import by_kind, headline, train_task
    from cjm_ml.training.tracking import configure_tracking, describe, track

    try:
        config = load_training_config(params)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    settings = settings or Settings()
    typer.echo(f"tracking: {configure_tracking(settings)}")
    for name in tasks:
        path = features_dir / f"{name}.parquet"
        if not path.exists():
            typer.echo(f"error: {path}: no feature table; run `cjm features` first", err=True)
            raise typer.Exit(code=1)
        table = pd.read_parquet(path)
        truth_path = truth_dir / f"truth_{name}.parquet"
        truth = pd.read_parquet(truth_path) if truth_path.exists() else None
        try:
            report = train_task(table, name, config, truth=truth, search=search, progress=progress)
        except ValueError as exc:
            typer.echo(f"error: {path}: {exc}", err=True)
            raise typer.Exit(code=1) from exc
        tracked = track(report, settings)
        typer.echo(
            f"\n{name}: {report.data['labelled']:,} labelled instances; test period "
            f"{report.data['test_from']} to {report.data['test_to']} "
            f"({report.data['test_instances']:,}); LightGBM {report.seconds['lightgbm']:.1f} s, "
            f"logistic {report.seconds['logistic']:.1f} s"
        )
        typer.echo(headline(report).to_string(float_format="{:.3f}".format, na_rep=""))
        typer.echo(by_kind(report).to_string(float_format="{:.3f}".format))
        typer.echo(describe(tracked))


@app.command()
def explain(
    task: Annotated[str, typer.Option(help="lead_leakage, no_show or service_defection.")],
    rooftop: Annotated[str | None, typer.Option(help="Show this rooftop beside the group.")] = None,
    instance: Annotated[
        str | None, typer.Option(help="Instance to explain; default: the riskiest.")
    ] = None,
    features: Annotated[
        Path | None, typer.Option(help="Feature table; default: the demo's.")
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="Bundle folder; default: <models_dir>/<task>.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="PNG folder; default: <demo_dir>/explain.")
    ] = None,
    what_if: Annotated[
        bool, typer.Option(help="Re-simulate each planted friction fixed (simulated groups).")
    ] = False,
) -> None:
    """Friction drivers: the group (and rooftop) roll-up, one instance's drivers and the fix
    to try, and SHAP plots (beeswarm for the group, waterfall for the instance) as PNGs."""
    from cjm_ml.explain.command import run_explain

    if task not in TASKS:
        raise typer.BadParameter(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    try:
        text = run_explain(
            cast(Task, task),
            rooftop=rooftop,
            instance_id=instance,
            features=features,
            model=model,
            out=out,
            what_if=what_if,
        )
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(text)


@app.command("map")
def journey_map(
    events: Annotated[Path, typer.Option(help="Events file (.csv or .parquet).")],
    out: Annotated[Path, typer.Option(help="The HTML report to write.")],
    rooftops: Annotated[
        Path | None,
        typer.Option(help="rooftops.json for store names; default: beside the events, if any."),
    ] = None,
) -> None:
    """Write the journey map: one self-contained HTML page (Sankey of journeys, funnel by
    rooftop, KPIs against the group standard, friction hotspots, source attribution)."""
    table = _load_or_exit(events)
    _write_journey_map(table, out, rooftops or events.with_name("rooftops.json"), events)


def _write_journey_map(events: pd.DataFrame, out: Path, rooftops: Path, events_path: Path) -> None:
    from cjm_ml.journey.report import rooftop_names_of, write_report

    names = None
    if rooftops.exists():
        names = rooftop_names_of(json.loads(rooftops.read_text())["rooftops"])
    started = time.perf_counter()
    write_report(events, out, hotspots=_hotspots(events_path), rooftop_names=names)
    typer.echo(f"journey map -> {out} ({time.perf_counter() - started:.1f} s)")


def _hotspots(events_path: Path) -> pd.DataFrame | None:
    """The friction hotspots ``cjm explain`` / the demo wrote beside the events, if any."""
    path = events_path.parent / "explain" / "hotspots.parquet"
    return pd.read_parquet(path) if path.exists() else None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface; default CJM_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Port; default CJM_PORT.")] = None,
    load_events: Annotated[
        Path | None, typer.Option(help="Append this events file to the store first.")
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=16, help="Server processes (one per core is best).")
    ] = 2,
) -> None:
    """Start the scoring API (uvicorn) with the configured tenants, store and champions."""
    settings = Settings()
    if load_events is not None:
        _load_store(settings, load_events)
    _serve(settings, host or settings.host, port or settings.port, workers)


def _load_store(settings: Settings, path: Path) -> None:
    from cjm_ml.serving.store import SqliteEventStore

    events = _load_or_exit(path)
    started = time.perf_counter()
    with SqliteEventStore(settings.event_store_file) as store:
        result = store.append(events, file=str(path))
    typer.echo(
        f"event store {settings.event_store_file}: {result.inserted:,} new, "
        f"{result.duplicates:,} already stored ({time.perf_counter() - started:.1f} s)"
    )


def _serve(settings: Settings, host: str, port: int, workers: int = 2) -> None:
    """Serve with ``workers`` processes. Each binds its own SO_REUSEPORT socket, so the kernel
    spreads connections over them (uvicorn's own --workers left all keep-alive connections on
    one process here), with TCP_NODELAY set (accepted sockets inherit it; without it small
    responses waited ~40 ms for delayed ACKs)."""
    import socket
    import subprocess
    import sys

    import uvicorn

    from cjm_ml.serving.app import create_app
    from cjm_ml.serving.tenants import TenantConfigError, load_tenants

    try:
        load_tenants(settings.tenants_file)  # refuse to start on a bad tenants file
    except (TenantConfigError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    # The other workers get this process's settings through the environment.
    env = {**os.environ, **_settings_env(settings)}
    command = [sys.executable, "-m", "cjm_ml.cli", "serve", "--host", host, "--port", str(port)]
    children = [subprocess.Popen([*command, "--workers", "1"], env=env) for _ in range(workers - 1)]

    def stop_children() -> None:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            child.wait(timeout=30)

    # Stopped from the app's shutdown too: after a SIGTERM, uvicorn re-raises the signal once
    # it has shut down, and the process dies before a ``finally`` here would run.
    app = create_app(settings, on_shutdown=stop_children)
    try:
        uvicorn.run(app, fd=sock.fileno(), log_config=None, access_log=False)
    finally:
        stop_children()


def _settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as the CJM_* variables that recreate it in another process."""
    values = settings.model_dump(exclude_none=True)
    return {f"CJM_{k.upper()}": str(v) for k, v in values.items()}


keys_app = typer.Typer(help="API keys per dealer group (stored hashed in the tenants file).")
app.add_typer(keys_app, name="keys")


@keys_app.command("add")
def keys_add(
    group: Annotated[str, typer.Option(help="Dealer group id, as in the tenants file.")],
    key_id: Annotated[str, typer.Option(help="A public name for the key, e.g. dg01-crm.")],
    rooftop: Annotated[
        list[str] | None, typer.Option(help="Limit the key to these rooftops (repeat).")
    ] = None,
) -> None:
    """Create a key for a dealer group; print it once (only its hash is stored)."""
    from cjm_ml.serving.tenants import TenantConfigError, add_api_key

    path = Settings().tenants_file
    try:
        plaintext = add_api_key(path, group, key_id, rooftop or None)
    except (TenantConfigError, ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"new key for {group} ({key_id}); shown once, store it safely:\n{plaintext}")


@app.command()
def push(
    task: Annotated[
        str | None, typer.Option(help="lead_leakage, no_show or service_defection.")
    ] = None,
    all_tasks: Annotated[bool, typer.Option("--all", help="All three tasks.")] = False,
    wait: Annotated[
        float, typer.Option(help="Seconds to keep delivering before leaving the rest queued.")
    ] = 60.0,
) -> None:
    """Score every open instance of every dealer group and send changed risks to the CRMs
    (through the durable outbox: what is not delivered now is retried later)."""
    from cjm_ml.serving.app import open_service, push_task
    from cjm_ml.serving.models import ModelsUnavailable
    from cjm_ml.serving.tenants import TenantConfigError

    tasks = _tasks_or_exit(task, all_tasks)
    try:
        service = open_service(Settings())
    except (TenantConfigError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    try:
        if service.models.current is None:
            raise ModelsUnavailable(str(service.models.last_error))
        now = pd.Timestamp.now(tz="UTC")
        for name in tasks:
            counts = push_task(service, name, now)
            typer.echo(f"{name}: {counts['scored']:,} open instances, {counts['queued']:,} queued")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            report = service.deliverer.run_once()
            if report.attempted == 0:
                break
            typer.echo(
                f"delivered {report.delivered}, retrying {report.retrying}, parked {report.parked}"
            )
    except ModelsUnavailable as exc:
        typer.echo(f"error: models not loaded: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    finally:
        service.close()


@app.command()
def demo(
    out: Annotated[Path | None, typer.Option(help="Folder for the demo group.")] = None,
    customers: Annotated[int, typer.Option(min=10)] = 60_000,
    serve: Annotated[
        bool, typer.Option(help="End by starting the API on 127.0.0.1 with the demo loaded.")
    ] = True,
) -> None:
    """The main job on embedded defaults: simulate the demo group, validate it, build the
    three feature tables, and train, register and export the three models."""
    out = out or Settings().demo_dir
    simulate(out=out, rooftops=6, customers=customers, seed=7, days=730, fix=None, progress=True)
    path = out / "events.parquet"
    events = _load_or_exit(path)
    typer.echo(f"{path}: valid, {len(events):,} events")
    tasks = list(TASKS)
    _write_feature_tables(
        events, path, tasks, {t: out / "features" / f"{t}.parquet" for t in tasks}
    )
    # The demo's own tracking store, started afresh with its freshly simulated group: its
    # registry history is this run's, so the figures it prints do not depend on earlier runs.
    settings = Settings()
    demo_settings = settings.model_copy(update={"data_dir": out})
    shutil.rmtree(demo_settings.mlflow_dir, ignore_errors=True)
    _train_tasks(tasks, out / "features", out, None, False, True, demo_settings)
    from cjm_ml.explain.command import explain_demo

    typer.echo("\nFriction drivers")
    typer.echo(explain_demo(out, settings.models_dir))
    # The champions' friction hotspots travel with them, for the API's journey page.
    shutil.copyfile(out / "explain" / "hotspots.parquet", settings.models_dir / "hotspots.parquet")
    _write_journey_map(events, out / "journey.html", out / "rooftops.json", path)
    if serve:
        _serve_demo(out, path, events["ts"].max())


def _serve_demo(out: Path, events_path: Path, last: pd.Timestamp) -> None:
    """Load the demo events into the store, make demo API keys, print what to try, serve."""
    from cjm_ml.io import write_json_atomic
    from cjm_ml.serving.tenants import generate_api_key

    rooftops = json.loads((out / "rooftops.json").read_text())
    ids = [r["rooftop_id"] for r in rooftops["rooftops"]]
    manager, manager_entry = generate_api_key("demo-manager")
    bdc, bdc_entry = generate_api_key("demo-rt04-bdc", ["rt-04"])
    tenants = {
        "dealer_groups": [
            {
                "dealer_group_id": rooftops["dealer_group_id"],
                "rooftops": ids,
                "api_keys": [
                    manager_entry.model_dump(exclude_none=True),
                    bdc_entry.model_dump(exclude_none=True),
                ],
            }
        ]
    }
    write_json_atomic(tenants, out / "tenants.json")
    # The demo's own store and outbox, made afresh for the freshly simulated group.
    serving = out / "serving"
    shutil.rmtree(serving, ignore_errors=True)
    settings = Settings(
        tenants_file=out / "tenants.json",
        event_store_path=serving / "events.db",
        outbox_path=serving / "outbox.db",
    )
    _load_store(settings, events_path)
    base = f"http://{settings.host}:{settings.port}"
    # The simulated history ends before today: ask as of its last day.
    as_of = last.floor("D").strftime("%Y-%m-%dT%H:%M:%SZ")
    typer.echo(
        f"""
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
    )
    _serve(settings, settings.host, settings.port, workers=2)


if __name__ == "__main__":
    app()
