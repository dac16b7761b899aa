"""``cjm features``: a task's point-in-time feature table with labels, as Parquet."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from cjm_ml.cli.common import (
    EVENTS_HELP,
    PARAMS_FILE_HELP,
    TASK_HELP,
    feature_table_path,
    load_or_exit,
    task_or_fail,
    task_params_or_exit,
)
from cjm_ml.featureset import DeclaredFeature, FeatureSet
from cjm_ml.io import write_parquet_atomic
from cjm_ml.params import Task, TaskParams


def features(
    task: Annotated[str, typer.Option(help=TASK_HELP)],
    events: Annotated[Path, typer.Option(help=EVENTS_HELP)],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Feature table to write (Parquet); default: <data>/features/<task>.parquet, "
            "where `cjm train` and `cjm explain` look."
        ),
    ] = None,
    as_of: Annotated[
        str | None, typer.Option(help="Extraction time (ISO 8601 UTC); default: the last event.")
    ] = None,
    params: Annotated[
        Path | None,
        typer.Option(help=f"{PARAMS_FILE_HELP} Default: the embedded windows."),
    ] = None,
    features_file: Annotated[
        Path | None,
        typer.Option(
            help="Features file (TOML) declaring features from your events' attributes "
            "(vehicle, customer); they join the built-in ones. See the README."
        ),
    ] = None,
    generic: Annotated[
        bool,
        typer.Option(
            help="Add generic journey features: per touchpoint in the events, counts in the "
            "last 7 and 30 days and the days since the last one."
        ),
    ] = False,
) -> None:
    """Build a task's point-in-time feature table with labels and write it as Parquet, with
    the windows and standards and the declared features it was built with in the file's
    metadata (training carries them into the model)."""
    name = task_or_fail(task)
    as_of_ts = _parse_as_of(as_of)
    windows = task_params_or_exit(params) if params is not None else None
    outs = {name: out or feature_table_path(name)}
    table = load_or_exit(events)
    declared = declared_or_exit(features_file, table if generic else None)
    write_feature_tables(table, events, outs, as_of_ts, params=windows, declared=declared)


def declared_or_exit(
    features_file: Path | None, generic_of: pd.DataFrame | None
) -> tuple[DeclaredFeature, ...]:
    """The features ``features_file`` declares (none: no file), then the generic features of
    the touchpoints ``generic_of``'s events hold (none: not asked). Exits 1 on a bad file,
    printing why (file, key path)."""
    from cjm_ml.featureset import FeaturesFileError, generic_features, load_features_file

    declared: tuple[DeclaredFeature, ...] = ()
    if features_file is not None:
        try:
            declared = load_features_file(features_file)
        except FeaturesFileError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=1) from exc
    if generic_of is not None:
        present = sorted(generic_of["event_type"].astype("string").dropna().unique())
        declared = (*declared, *generic_features(present))
    return declared


def write_feature_tables(
    events: pd.DataFrame,
    path: Path,
    outs: dict[Task, Path],
    as_of: pd.Timestamp | None = None,
    *,
    params: TaskParams | None = None,
    declared: Sequence[DeclaredFeature] = (),
) -> None:
    """Index ``events`` (read from ``path``) once, then build each task's table with the
    windows and standards ``params`` (default: the embedded ones) and the ``declared``
    features, and write it to ``outs[task]`` with its metadata, printing one line per table.
    Exits 1 when a task has no instances, naming the file."""
    from cjm_ml.features.instances import NoInstancesError
    from cjm_ml.features.pipeline import build_feature_table, feature_table_metadata
    from cjm_ml.features.timeline import Timeline

    params = params or TaskParams()
    timeline = Timeline(events)
    for task, out in outs.items():
        started = time.perf_counter()
        try:
            table = build_feature_table(timeline, task, params, as_of=as_of, declared=declared)
        except NoInstancesError as exc:
            typer.echo(f"error: {path}: {exc}", err=True)
            raise typer.Exit(code=1) from exc
        write_parquet_atomic(table, out, feature_table_metadata(table, task, params))
        labelled = table["label"].dropna()
        typer.echo(
            f"{task}: {len(table):,} instances ({len(labelled):,} labelled, rate "
            f"{labelled.astype(float).mean():.3f}); "
            f"{table.attrs.get('settled_left_out', 0):,} settled before their cutoff left out"
            + (
                f", {table.attrs['bad_or_duplicate_left_out']:,} bad or duplicate leads left out"
                if "bad_or_duplicate_left_out" in table.attrs
                else ""
            )
            + f"; in {time.perf_counter() - started:.1f} s -> {out}"
        )
        echo_feature_warnings(table, FeatureSet(task, tuple(declared)))


def echo_feature_warnings(table: pd.DataFrame, feature_set: FeatureSet) -> None:
    """Print (to stderr) the features of the set that are constant or mostly missing in its
    feature ``table``, in ``cjm profile``'s words; nothing when there is none. Passes on the
    refusal of a table lacking feature columns (``ValueError``)."""
    from cjm_ml.features.coverage import feature_warnings

    for i, line in enumerate(feature_warnings(table, feature_set)):
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
