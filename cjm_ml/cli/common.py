"""What several commands share: task options checked, an events file or the parameters file
loaded, or a clean exit."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pandas as pd
import typer

from cjm_ml.config import Settings
from cjm_ml.events import load_events
from cjm_ml.params import (
    TASKS,
    WINDOWS_SECTION,
    Task,
    TaskParams,
    read_parameters_toml,
    read_task_params,
)

TASK_HELP = "lead_leakage, no_show or service_defection."
EVENTS_HELP = "Events: a .csv or .parquet file, or a folder of .parquet files (cjm ingest's)."
#: The parameters file, as both `cjm features --params` and `cjm train --params` describe it.
PARAMS_FILE_HELP = (
    "The parameters file (TOML), one for features and training: \\[windows] (the tasks' windows, "
    "cutoffs and response standard: response_sla_minutes, \\[windows.lead_leakage], "
    "\\[windows.no_show], \\[windows.service_defection]) for `cjm features`; \\[split], \\[norms], "
    "\\[lightgbm] and \\[search] for `cjm train`. Each command reads its own sections; a key left "
    "out keeps its default; unknown keys and sections are refused."
)


def task_or_fail(task: str) -> Task:
    """``task`` as a ``Task``; refuses an unknown one (usage error, exit 2)."""
    if task not in TASKS:
        raise typer.BadParameter(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return cast(Task, task)


def tasks_or_fail(task: str | None, all_tasks: bool) -> list[Task]:
    """The tasks of ``--task TASK`` or ``--all``; refuses both, neither or an unknown task."""
    if all_tasks == (task is not None):
        raise typer.BadParameter("give either --task TASK or --all")
    return list(TASKS) if task is None else [task_or_fail(task)]


def default_features_dir(settings: Settings | None = None) -> Path:
    """Where ``cjm features`` writes and ``cjm train`` / ``cjm explain`` read the feature
    tables by default: ``<data>/features``."""
    return (settings or Settings()).data_dir / "features"


def feature_table_path(task: Task, settings: Settings | None = None) -> Path:
    """The default feature table of ``task``: ``<data>/features/<task>.parquet``."""
    return default_features_dir(settings) / f"{task}.parquet"


def table_task_mismatch(path: Path, task: Task) -> str | None:
    """Why the feature table at ``path`` is not ``task``'s, by the task its metadata names
    (``feature_table_metadata``); ``None`` when it is, or when the file names no task (not
    written by ``cjm features``) or is not there."""
    from cjm_ml.io import read_parquet_metadata

    built_for = read_parquet_metadata(path).get("task") if path.exists() else None
    if built_for is None or built_for == task:
        return None
    return f"{path}: a feature table of {built_for}, not {task}"


def load_or_exit(path: Path) -> pd.DataFrame:
    """The validated events of ``path``; prints the error and exits 1 when it cannot."""
    try:
        return load_events(path)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc


def task_params_or_exit(path: Path) -> TaskParams | None:
    """The ``[windows]`` of the parameters file at ``path`` (``None``: the file has none);
    prints the error and exits 1 for a missing or invalid file, an invalid or unknown key, or
    a section neither features nor training reads (a typo would otherwise keep a default)."""
    from cjm_ml.training.config import SECTIONS

    try:
        windows = read_task_params(path)
        known = {WINDOWS_SECTION, *SECTIONS}
        unknown = sorted(set(read_parameters_toml(path)) - known)
        if unknown:
            raise ValueError(
                f"{path}: unknown section(s) {', '.join(f'[{u}]' for u in unknown)}; "
                f"expected {', '.join(f'[{k}]' for k in sorted(known))}"
            )
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    return windows
