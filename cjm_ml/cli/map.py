"""``cjm map``: the journey map, one self-contained HTML page."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from cjm_ml.cli.common import EVENTS_HELP, load_or_exit


def journey_map(
    events: Annotated[Path, typer.Option(help=EVENTS_HELP)],
    out: Annotated[Path, typer.Option(help="The HTML report to write.")],
    rooftops: Annotated[
        Path | None,
        typer.Option(help="rooftops.json for store names; default: beside the events, if any."),
    ] = None,
) -> None:
    """Write the journey map: one self-contained HTML page (Sankey of journeys, funnel by
    rooftop, KPIs against the group standard, friction hotspots, source attribution)."""
    table = load_or_exit(events)
    write_journey_map(table, out, rooftops or events.with_name("rooftops.json"), events)


def write_journey_map(events: pd.DataFrame, out: Path, rooftops: Path, events_path: Path) -> None:
    """Write the journey map of ``events`` (read from ``events_path``) to ``out``, with store
    names from ``rooftops`` and the friction hotspots beside the events, when there; print
    where it went."""
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
