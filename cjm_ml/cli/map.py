"""``cjm map``: the journey map, one self-contained HTML page."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from cjm_ml.cli.common import EVENTS_HELP, load_or_exit
from cjm_ml.config import Settings


def journey_map(
    events: Annotated[Path, typer.Option(help=EVENTS_HELP)],
    out: Annotated[Path, typer.Option(help="The HTML report to write.")],
    rooftops: Annotated[
        Path | None,
        typer.Option(help="rooftops.json for store names; default: beside the events, if any."),
    ] = None,
    hotspots: Annotated[
        Path | None,
        typer.Option(
            help="Friction hotspots (as `cjm explain` writes them); default: "
            "<models_dir>/hotspots.parquet, the champions' (what the API's journey page shows), "
            "if any."
        ),
    ] = None,
) -> None:
    """Write the journey map: one self-contained HTML page (Sankey of journeys, funnel by
    rooftop, KPIs against the group standard, friction hotspots, source attribution)."""
    if hotspots is not None and not hotspots.exists():
        typer.echo(f"error: {hotspots}: no hotspots file; run `cjm explain` first", err=True)
        raise typer.Exit(code=1)
    table = load_or_exit(events)
    write_journey_map(
        table,
        out,
        rooftops or events.with_name("rooftops.json"),
        hotspots or Settings().models_dir / "hotspots.parquet",
    )


def write_journey_map(events: pd.DataFrame, out: Path, rooftops: Path, hotspots: Path) -> None:
    """Write the journey map of ``events`` to ``out``, with store names from ``rooftops`` and
    the friction hotspots from ``hotspots``, each when there; print where it went. Exits 1 on
    a hotspots file missing columns."""
    from cjm_ml.journey.report import rooftop_names_of, write_report

    names = None
    if rooftops.exists():
        names = rooftop_names_of(json.loads(rooftops.read_text())["rooftops"])
    spots = pd.read_parquet(hotspots) if hotspots.exists() else None
    started = time.perf_counter()
    try:
        write_report(events, out, hotspots=spots, rooftop_names=names)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"journey map -> {out} ({time.perf_counter() - started:.1f} s)")
