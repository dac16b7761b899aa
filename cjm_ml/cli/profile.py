"""``cjm profile``: what an events file covers, and whether each model can be built on it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import pandas as pd
import typer

from cjm_ml.cli.common import EVENTS_HELP, load_or_exit

if TYPE_CHECKING:
    from cjm_ml.features.coverage import CoverageReport


def profile(
    events: Annotated[Path, typer.Argument(help=EVENTS_HELP)],
    out: Annotated[
        Path | None, typer.Option(help="Also write the report as one HTML page here.")
    ] = None,
) -> None:
    """Print the coverage report of an events file: events per touchpoint, rooftop and month;
    for each task, its instances and outcomes and the features that will be constant or mostly
    missing on this data. Exits 1 for a file that does not load."""
    from cjm_ml.features.coverage import profile_events

    table = load_or_exit(events)
    started = time.perf_counter()
    try:
        report = profile_events(table)
    except ValueError as exc:
        typer.echo(f"error: {events}: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    seconds = time.perf_counter() - started
    typer.echo("\n\n".join(console_sections(report, events.name)))
    if out is not None:
        from cjm_ml.profiling.report import write_page

        write_page(report, out, events.name)
        typer.echo(f"\ncoverage report -> {out}")
    typer.echo(f"\nprofiled in {seconds:.1f} s")


def console_sections(report: CoverageReport, source: str) -> list[str]:
    """The report as plain-text sections for a terminal: the summary, the tasks with their
    warnings, the stages, the touchpoints with no event, the rooftops and the months."""
    from cjm_ml.features.coverage import warning_lines

    tasks = pd.DataFrame(
        {
            "instances": [t.instances for t in report.tasks],
            "outcome 1": [t.positives for t in report.tasks],
            "outcome 0": [t.negatives for t in report.tasks],
            "not yet known": [t.unlabelled for t in report.tasks],
            "weak features": [f"{len(t.issues)} of {t.features}" for t in report.tasks],
            "state": [t.verdict for t in report.tasks],
        },
        index=pd.Index([t.task for t in report.tasks], name="task"),
    )
    warnings = [
        line
        for t in report.tasks
        for line in (
            *warning_lines(t.task, list(t.issues)),
            *([f"  (judged on a random sample of {t.profiled:,} instances)"] if t.sampled else []),
        )
    ]
    return [
        f"Coverage of {source}: {report.summary}",
        _titled("Tasks", _table(tasks), *warnings),
        _titled("Journey stages", _table(_stages(report))),
        _titled("Touchpoints with no event", *_absent(report)),
        _titled("Rooftops", _table(_rooftops(report))),
        _titled("Events per month (UTC)", _table(_months(report))),
    ]


def _titled(title: str, *lines: str) -> str:
    return "\n".join((title, "-" * len(title), *(lines or ("none",))))


def _table(frame: pd.DataFrame) -> str:
    """A table with thousands separators, columns left-aligned under their headings."""
    return frame.to_string(formatters={c: "{:,}".format for c in frame.select_dtypes("int")})


def _stages(report: CoverageReport) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "events": [s.events for s in report.stages],
            "touchpoints present": [
                f"{len(s.present)} of {len(s.touchpoints)}" for s in report.stages
            ],
        },
        index=pd.Index([s.label for s in report.stages], name="stage"),
    )


def _absent(report: CoverageReport) -> list[str]:
    return [f"{s.label}: {', '.join(t.key for t in s.absent)}" for s in report.stages if s.absent]


def _rooftops(report: CoverageReport) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "events": [r.events for r in report.rooftops],
            "customers": [r.customers for r in report.rooftops],
            "first event": [f"{r.first_ts:%Y-%m-%d}" for r in report.rooftops],
            "last event": [f"{r.last_ts:%Y-%m-%d}" for r in report.rooftops],
        },
        index=pd.Index([r.rooftop_id for r in report.rooftops], name="rooftop"),
    )


def _months(report: CoverageReport) -> pd.DataFrame:
    rooftops = [r.rooftop_id for r in report.rooftops]
    return pd.DataFrame(
        {
            "events": [m.events for m in report.months],
            "rooftops with events": [
                f"{len(m.by_rooftop)} of {len(rooftops)}" for m in report.months
            ],
        },
        index=pd.Index([m.month for m in report.months], name="month"),
    )
