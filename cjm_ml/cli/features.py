"""``cjm features``: a task's point-in-time feature table with labels, as Parquet."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from cjm_ml.cli.common import EVENTS_HELP, TASK_HELP, load_or_exit, task_or_fail
from cjm_ml.io import write_parquet_atomic
from cjm_ml.params import Task


def features(
    task: Annotated[str, typer.Option(help=TASK_HELP)],
    events: Annotated[Path, typer.Option(help=EVENTS_HELP)],
    out: Annotated[Path, typer.Option(help="Feature table to write (Parquet).")],
    as_of: Annotated[
        str | None, typer.Option(help="Extraction time (ISO 8601 UTC); default: the last event.")
    ] = None,
) -> None:
    """Build a task's point-in-time feature table with labels and write it as Parquet."""
    name = task_or_fail(task)
    as_of_ts = _parse_as_of(as_of)
    write_feature_tables(load_or_exit(events), events, {name: out}, as_of_ts)


def write_feature_tables(
    events: pd.DataFrame, path: Path, outs: dict[Task, Path], as_of: pd.Timestamp | None = None
) -> None:
    """Index ``events`` (read from ``path``) once, then build each task's table and write it to
    ``outs[task]`` with its metadata, printing one line per table. Exits 1 when a task has no
    instances, naming the file."""
    from cjm_ml.features.instances import NoInstancesError
    from cjm_ml.features.pipeline import build_feature_table, feature_table_metadata
    from cjm_ml.features.timeline import Timeline
    from cjm_ml.params import TaskParams

    params = TaskParams()
    timeline = Timeline(events)
    for task, out in outs.items():
        started = time.perf_counter()
        try:
            table = build_feature_table(timeline, task, params, as_of=as_of)
        except NoInstancesError as exc:
            typer.echo(f"error: {path}: {exc}", err=True)
            raise typer.Exit(code=1) from exc
        write_parquet_atomic(table, out, feature_table_metadata(table, task, params))
        labelled = table["label"].dropna()
        typer.echo(
            f"{task}: {len(table):,} instances ({len(labelled):,} labelled, rate "
            f"{labelled.astype(float).mean():.3f}) in {time.perf_counter() - started:.1f} s "
            f"-> {out}"
        )
        echo_feature_warnings(table, task)


def echo_feature_warnings(table: pd.DataFrame, task: Task) -> None:
    """Print (to stderr) the features of ``task`` that are constant or mostly missing in its
    feature ``table``, in ``cjm profile``'s words; nothing when there is none. Passes on the
    refusal of a table lacking feature columns (``ValueError``)."""
    from cjm_ml.features.coverage import feature_warnings

    for i, line in enumerate(feature_warnings(table, task)):
        typer.echo(f"warning: {line}" if i == 0 else line, err=True)


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
