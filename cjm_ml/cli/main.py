"""The ``cjm`` command line (``cjm = "cjm_ml.cli.main:app"``): the Typer app, logging
configured once for every command, and each command registered from its module."""

from __future__ import annotations

from typing import Annotated

import typer

from cjm_ml.cli.demo import demo
from cjm_ml.cli.explain import explain
from cjm_ml.cli.features import features
from cjm_ml.cli.ingest import ingest
from cjm_ml.cli.map import journey_map
from cjm_ml.cli.profile import profile
from cjm_ml.cli.serve import keys_app, push, serve
from cjm_ml.cli.simulate import simulate
from cjm_ml.cli.train import train
from cjm_ml.cli.validate import validate
from cjm_ml.config import Settings
from cjm_ml.logs import configure_logging

app = typer.Typer(
    help="cjm-ml: predictive customer journeys for car dealers.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main(
    log_level: Annotated[str, typer.Option(help="Logging level for cjm_ml.")] = "",
) -> None:
    """Configure logging once, for every subcommand."""
    configure_logging(log_level or Settings().log_level)


app.command()(simulate)
app.command()(validate)
app.command()(ingest)
app.command()(profile)
app.command()(features)
app.command()(train)
app.command()(explain)
app.command("map")(journey_map)
app.command()(serve)
app.add_typer(keys_app, name="keys")
app.command()(push)
app.command()(demo)


if __name__ == "__main__":
    app()
