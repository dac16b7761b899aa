"""``cjm explain``: friction drivers of a task's model, as text and SHAP pictures, and the
task's friction hotspots where the journey map and the API read them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cjm_ml.cli.common import TASK_HELP, feature_table_path, table_task_mismatch, task_or_fail
from cjm_ml.config import Settings


def explain(
    task: Annotated[str, typer.Option(help=TASK_HELP)],
    rooftop: Annotated[str | None, typer.Option(help="Show this rooftop beside the group.")] = None,
    instance: Annotated[
        str | None, typer.Option(help="Instance to explain; default: the riskiest.")
    ] = None,
    features: Annotated[
        Path | None,
        typer.Option(help="Feature table; default: <data>/features/<task>.parquet."),
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="Bundle folder; default: <models_dir>/<task>.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="PNG folder; default: <data>/explain.")] = None,
    hotspots: Annotated[
        Path | None,
        typer.Option(
            help="Hotspots file to update (the task's rows replaced, other tasks' kept); "
            "default: hotspots.parquet beside the bundle folder, so <models_dir>/hotspots.parquet "
            "for the champion, where `cjm map` and `cjm serve` read them."
        ),
    ] = None,
    what_if: Annotated[
        bool, typer.Option(help="Re-simulate each planted friction fixed (simulated groups).")
    ] = False,
) -> None:
    """Friction drivers: the group (and rooftop) roll-up, one instance's drivers and the fix
    to try, and SHAP plots (beeswarm for the group, waterfall for the instance) as PNGs; then
    the task's friction hotspots per rooftop into the hotspots file the journey map
    (`cjm map`) and the API's journey page read. Refuses a feature table whose metadata
    names another task."""
    from cjm_ml.evaluation.explain import run_explain

    name = task_or_fail(task)
    settings = Settings()
    model = model or settings.models_dir / name
    features = features or feature_table_path(name, settings)
    mismatch = table_task_mismatch(features, name)
    if mismatch is not None:
        typer.echo(f"error: {mismatch}", err=True)
        raise typer.Exit(code=1)
    try:
        text = run_explain(
            name,
            rooftop=rooftop,
            instance_id=instance,
            features=features,
            model=model,
            out=out or settings.data_dir / "explain",
            what_if=what_if,
            settings=settings,
            hotspots_file=hotspots or model.parent / "hotspots.parquet",
        )
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(text)
