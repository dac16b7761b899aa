"""``cjm simulate``: a synthetic dealer group written as events, truth and rooftops.json."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from cjm_ml.simulation import SimulationConfig

log = logging.getLogger(__name__)


def simulate(
    out: Annotated[Path, typer.Option(help="Folder for events, truth and rooftops.json.")],
    rooftops: Annotated[int, typer.Option(min=2, max=50)] = 6,
    customers: Annotated[int, typer.Option(min=10)] = 30_000,
    seed: int = 7,
    days: Annotated[int, typer.Option(min=60, help="Length of the history in days.")] = 730,
    fix: Annotated[
        list[str] | None,
        typer.Option(help="What-if: ROOFTOP:SETTING[,SETTING] reset to the group standard."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    raw_exports: Annotated[
        Path | None,
        typer.Option(
            help="Also write the journeys as dealer systems export them (ADF, CRM, scheduler, "
            "DMS, web, profiles) into this folder, with truth_identity.parquet."
        ),
    ] = None,
) -> None:
    """Simulate a dealer group and write events.parquet, truth_<task>.parquet, rooftops.json."""
    from cjm_ml.simulation import SimulationConfig

    config = SimulationConfig(
        rooftops=rooftops, customers=customers, seed=seed, days=days, fixes=_parse_fixes(fix or [])
    )
    simulate_to(config, out, progress=progress, raw_exports=raw_exports)


def simulate_to(
    config: SimulationConfig, out: Path, *, progress: bool = True, raw_exports: Path | None = None
) -> None:
    """Simulate ``config`` into ``out`` (and its raw exports into ``raw_exports``) and print
    the events written, the outcome rates by rooftop and the planted deviations. Refuses a fix
    of an unknown rooftop or setting."""
    from cjm_ml.simulation import simulate as run_simulation
    from cjm_ml.simulation import write_simulation
    from cjm_ml.simulation.summary import outcome_rates

    started = time.perf_counter()
    try:
        group = run_simulation(config, progress=progress)
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0])) from exc
    paths = write_simulation(group, out)
    log.info("simulated %d customers in %.1f s", config.customers, time.perf_counter() - started)
    typer.echo(f"events: {len(group.events):,} rows -> {paths['events']}")
    if raw_exports is not None:
        from cjm_ml.simulation.exports import write_raw_exports

        write_raw_exports(group, raw_exports)
        typer.echo(f"raw exports -> {raw_exports}")
    typer.echo("outcome rates by rooftop:")
    typer.echo(outcome_rates(group.truth).to_string())
    for p in group.planted:
        typer.echo(
            f"planted: {p.rooftop_id} {p.friction} ({p.task}): {p.setting}={p.value} "
            f"(group standard {p.group_standard})"
        )


def _parse_fixes(fix: list[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    out = []
    for item in fix:
        rooftop, _, settings = item.partition(":")
        if not rooftop or not settings:
            raise typer.BadParameter(
                f"{item!r}: expected ROOFTOP:SETTING[,SETTING], e.g. rt-02:response_median_minutes"
            )
        out.append((rooftop, tuple(s.strip() for s in settings.split(","))))
    return tuple(out)
