"""``cjm train``: risk models trained, evaluated, tracked, registered and exported."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import pandas as pd
import typer

from cjm_ml.cli.common import TASK_HELP, tasks_or_fail
from cjm_ml.config import Settings
from cjm_ml.params import Task

if TYPE_CHECKING:
    from cjm_ml.training.config import TrainingConfig


def train(
    task: Annotated[str | None, typer.Option(help=TASK_HELP)] = None,
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
    tasks = tasks_or_fail(task, all_tasks)
    features_dir = features_dir or Settings().demo_dir / "features"
    train_tasks(
        tasks,
        features_dir,
        truth_dir or features_dir.parent,
        params=params,
        search=search,
        progress=progress,
    )


def train_tasks(
    tasks: list[Task],
    features_dir: Path,
    truth_dir: Path,
    *,
    params: Path | None = None,
    search: bool = False,
    progress: bool = True,
    settings: Settings | None = None,
) -> None:
    """Train and track each task's model from ``<features_dir>/<task>.parquet`` (with the
    simulator's truth from ``truth_dir`` when it is there) and print the evaluation. Exits 1 on
    a bad parameters file, a missing feature table or a table training refuses."""
    from cjm_ml.training.config import load_training_config
    from cjm_ml.training.tracking import configure_tracking

    try:
        config = load_training_config(params)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    settings = settings or Settings()
    typer.echo(f"tracking: {configure_tracking(settings)}")
    for name in tasks:
        _train_one(name, features_dir, truth_dir, config, search, progress, settings)


def _train_one(
    name: Task,
    features_dir: Path,
    truth_dir: Path,
    config: TrainingConfig,
    search: bool,
    progress: bool,
    settings: Settings,
) -> None:
    from cjm_ml.cli.features import echo_feature_warnings
    from cjm_ml.features.pipeline import feature_table_params
    from cjm_ml.io import read_parquet_metadata
    from cjm_ml.training.run import by_kind, headline, train_task
    from cjm_ml.training.tracking import describe, track

    path = features_dir / f"{name}.parquet"
    if not path.exists():
        typer.echo(f"error: {path}: no feature table; run `cjm features` first", err=True)
        raise typer.Exit(code=1)
    table = pd.read_parquet(path)
    truth_path = truth_dir / f"truth_{name}.parquet"
    truth = pd.read_parquet(truth_path) if truth_path.exists() else None
    try:
        echo_feature_warnings(table, name)
        report = train_task(
            table,
            name,
            config,
            task_params=feature_table_params(read_parquet_metadata(path)),
            truth=truth,
            search=search,
            progress=progress,
        )
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
