"""What several commands share: task options checked, an events file loaded or a clean exit."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pandas as pd
import typer

from cjm_ml.events import load_events
from cjm_ml.params import TASKS, Task

TASK_HELP = "lead_leakage, no_show or service_defection."
EVENTS_HELP = "Events: a .csv or .parquet file, or a folder of .parquet files (cjm ingest's)."


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


def load_or_exit(path: Path) -> pd.DataFrame:
    """The validated events of ``path``; prints the error and exits 1 when it cannot."""
    try:
        return load_events(path)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
