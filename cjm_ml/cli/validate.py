"""``cjm validate``: an events file checked against the event model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cjm_ml.cli.common import EVENTS_HELP
from cjm_ml.events import EventValidationError, load_events
from cjm_ml.io import write_parquet_atomic


def validate(
    path: Annotated[Path, typer.Argument(help=EVENTS_HELP)],
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
