"""``cjm train``: risk models trained, evaluated, tracked, registered and exported."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import pandas as pd
import typer

from cjm_ml.cli.common import (
    PARAMS_FILE_HELP,
    TASK_HELP,
    default_features_dir,
    table_task_mismatch,
    task_params_or_exit,
    tasks_or_fail,
)
from cjm_ml.config import Settings
from cjm_ml.params import Task, TaskParams

if TYPE_CHECKING:
    from cjm_ml.featureset import DeclaredFeature
    from cjm_ml.training.config import TrainingConfig


def train(
    task: Annotated[str | None, typer.Option(help=TASK_HELP)] = None,
    all_tasks: Annotated[bool, typer.Option("--all", help="Train all three models.")] = False,
    features: Annotated[
        Path | None,
        typer.Option(
            help="One task's feature table (Parquet, as `cjm features` writes it), with --task; "
            "its task is checked against the file's metadata."
        ),
    ] = None,
    features_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder of <task>.parquet feature tables; default: <data>/features, where "
            "`cjm features` writes them."
        ),
    ] = None,
    truth_dir: Annotated[
        Path | None,
        typer.Option(
            help="Simulated groups only: folder of the simulator's truth_<task>.parquet for the "
            "ceiling; default: the parent of the feature tables' folder, when the files are "
            "there (none: no ceiling)."
        ),
    ] = None,
    params: Annotated[
        Path | None,
        typer.Option(
            help=f"{PARAMS_FILE_HELP} Default: the embedded hyperparameters. A \\[windows] "
            "section must match the windows the tables were built with."
        ),
    ] = None,
    search: Annotated[
        bool | None,
        typer.Option(
            "--search/--no-search",
            help="Try the parameters file's \\[search] grid and keep the best by validation "
            "AUC; default: only when the training period has fewer rows than its "
            "below_rows (50,000 embedded).",
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Train, evaluate, track and register risk models; promote a better one to champion and
    export the champion bundle under the models directory. The windows and standards come
    from each feature table's metadata and travel in the bundle."""
    tasks = tasks_or_fail(task, all_tasks)
    if features is not None and features_dir is not None:
        raise typer.BadParameter("give either --features FILE or --features-dir DIR, not both")
    if features is not None and all_tasks:
        raise typer.BadParameter(
            "--features is one task's table: give --task TASK with it, or --features-dir DIR "
            "with --all"
        )
    if features is not None:
        tables = {tasks[0]: features}
        folder = features.parent
    else:
        folder = features_dir or default_features_dir()
        tables = {t: folder / f"{t}.parquet" for t in tasks}
    train_tables(
        tables,
        truth_dir or folder.parent,
        params=params,
        search=search,
        progress=progress,
    )


def train_tables(
    tables: dict[Task, Path],
    truth_dir: Path,
    *,
    params: Path | None = None,
    search: bool | None = None,
    progress: bool = True,
    settings: Settings | None = None,
) -> None:
    """Train and track each task's model from its feature table ``tables[task]`` (with the
    simulator's ``<truth_dir>/truth_<task>.parquet`` when it is there) and print the
    evaluation. Exits 1 on a bad parameters file, a missing feature table, a table of another
    task (by its metadata), a table built with other windows than the file's ``[windows]``,
    or a table training refuses."""
    from cjm_ml.training.config import load_training_config
    from cjm_ml.training.tracking import configure_tracking

    windows = task_params_or_exit(params) if params is not None else None
    try:
        config = load_training_config(params)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    settings = settings or Settings()
    typer.echo(f"tracking: {configure_tracking(settings)}")
    for name, path in tables.items():
        _train_one(name, path, truth_dir, config, windows, search, progress, settings)


def _fail(message: str) -> typer.Exit:
    """Print ``error: message`` and return the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def _table_params(
    name: Task, path: Path, windows: TaskParams | None
) -> tuple[TaskParams, tuple[DeclaredFeature, ...]]:
    """The windows and the declared features ``path`` was built with (its metadata), after
    checking the table is ``name``'s and, given the parameters file's ``windows``, that they
    are those."""
    from cjm_ml.features.pipeline import feature_table_declared, feature_table_params
    from cjm_ml.io import read_parquet_metadata

    if not path.exists():
        raise _fail(f"{path}: no feature table; run `cjm features` first")
    mismatch = table_task_mismatch(path, name)
    if mismatch is not None:
        raise _fail(mismatch)
    try:
        metadata = read_parquet_metadata(path)
        built_with = feature_table_params(metadata)
        declared = feature_table_declared(metadata)
    except ValueError as exc:
        raise _fail(f"{path}: {exc}") from exc
    differ = [] if windows is None else built_with.differences(windows)
    if differ:
        raise _fail(
            f"{path}: built with other windows than the parameters file's [windows] "
            f"({', '.join(differ)}); rebuild it with `cjm features --params`"
        )
    return built_with, declared


def _train_one(
    name: Task,
    path: Path,
    truth_dir: Path,
    config: TrainingConfig,
    windows: TaskParams | None,
    search: bool | None,
    progress: bool,
    settings: Settings,
) -> None:
    from cjm_ml.cli.features import echo_feature_warnings
    from cjm_ml.featureset import FeatureSet
    from cjm_ml.training.run import console_lines, train_task
    from cjm_ml.training.tracking import describe, track

    task_params, declared = _table_params(name, path, windows)
    table = pd.read_parquet(path)
    truth_path = truth_dir / f"truth_{name}.parquet"
    truth = pd.read_parquet(truth_path) if truth_path.exists() else None
    try:
        echo_feature_warnings(table, FeatureSet(name, declared))
        report = train_task(
            table,
            name,
            config,
            task_params=task_params,
            truth=truth,
            search=search,
            progress=progress,
            declared=declared,
        )
    except ValueError as exc:
        raise _fail(f"{path}: {exc}") from exc
    tracked = track(report, settings)
    for line in console_lines(report):
        typer.echo(line)
    typer.echo(describe(tracked))
