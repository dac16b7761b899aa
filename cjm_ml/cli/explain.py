"""``cjm explain``: friction drivers of a task's model, as text and SHAP pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cjm_ml.cli.common import TASK_HELP, task_or_fail


def explain(
    task: Annotated[str, typer.Option(help=TASK_HELP)],
    rooftop: Annotated[str | None, typer.Option(help="Show this rooftop beside the group.")] = None,
    instance: Annotated[
        str | None, typer.Option(help="Instance to explain; default: the riskiest.")
    ] = None,
    features: Annotated[
        Path | None, typer.Option(help="Feature table; default: the demo's.")
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="Bundle folder; default: <models_dir>/<task>.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="PNG folder; default: <demo_dir>/explain.")
    ] = None,
    what_if: Annotated[
        bool, typer.Option(help="Re-simulate each planted friction fixed (simulated groups).")
    ] = False,
) -> None:
    """Friction drivers: the group (and rooftop) roll-up, one instance's drivers and the fix
    to try, and SHAP plots (beeswarm for the group, waterfall for the instance) as PNGs."""
    from cjm_ml.evaluation.explain import run_explain

    name = task_or_fail(task)
    try:
        text = run_explain(
            name,
            rooftop=rooftop,
            instance_id=instance,
            features=features,
            model=model,
            out=out,
            what_if=what_if,
        )
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(text)
