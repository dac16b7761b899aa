"""``cjm demo``: the main job on embedded defaults (``cjm_ml.evaluation.demo``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cjm_ml.cli.common import load_or_exit
from cjm_ml.cli.features import write_feature_tables
from cjm_ml.cli.ingest import ingest_to
from cjm_ml.cli.map import write_journey_map
from cjm_ml.cli.serve import load_store, serve_or_exit
from cjm_ml.cli.simulate import simulate_to
from cjm_ml.cli.train import train_tables
from cjm_ml.config import Settings


def demo(
    out: Annotated[Path | None, typer.Option(help="Folder for the demo group.")] = None,
    customers: Annotated[int, typer.Option(min=10)] = 60_000,
    serve: Annotated[
        bool, typer.Option(help="End by starting the API on 127.0.0.1 with the demo loaded.")
    ] = True,
) -> None:
    """The main job on embedded defaults: simulate the demo group as its dealer systems'
    exports, ingest them, validate, build the three feature tables, check them against the
    simulator, train, register and export the three models, explain, map and serve."""
    from cjm_ml.evaluation.demo import DemoStages, run_demo

    stages = DemoStages(
        simulate=lambda config, folder, raw: simulate_to(config, folder, raw_exports=raw),
        ingest=ingest_to,
        load_events=load_or_exit,
        write_feature_tables=lambda events, path, outs, declared: write_feature_tables(
            events, path, outs, declared=declared
        ),
        train=lambda tasks, features, settings: train_tables(
            {t: features / f"{t}.parquet" for t in tasks}, features.parent, settings=settings
        ),
        write_journey_map=write_journey_map,
        load_store=load_store,
        serve=lambda settings: serve_or_exit(settings, settings.host, settings.port, workers=2),
        echo=typer.echo,
    )
    run_demo(out or Settings().demo_dir, stages, customers=customers, serve=serve)
