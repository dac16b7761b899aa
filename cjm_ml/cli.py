"""The ``cjm`` command line. Each subcommand is a thin edge around library functions."""

from __future__ import annotations

import logging
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
) -> None:
    from cjm_ml.training.config import load_training_config
    from cjm_ml.training.run import by_kind, headline, train_task
    from cjm_ml.training.tracking import configure_tracking, describe, track

    try:
        config = load_training_config(params)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"tracking: {configure_tracking()}")
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
        tracked = track(report)
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
def demo(
    out: Annotated[Path | None, typer.Option(help="Folder for the demo group.")] = None,
    customers: Annotated[int, typer.Option(min=10)] = 60_000,
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
    _train_tasks(tasks, out / "features", out, None, search=False, progress=True)


if __name__ == "__main__":
    app()
