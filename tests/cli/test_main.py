"""The ``cjm`` app: every command registered, in the order of its help (groups last), and
``python -m cjm_ml.cli``."""

from __future__ import annotations

import subprocess
import sys

from typer.main import get_command
from typer.testing import CliRunner

from cjm_ml.cli.main import app


def test_every_command_is_registered_in_order() -> None:
    group = get_command(app)
    assert list(group.commands) == [  # type: ignore[attr-defined]
        "simulate", "validate", "ingest", "profile", "features", "train", "explain", "map", "serve",
        "push", "demo", "keys",
    ]  # fmt: skip


def test_no_command_shows_the_help() -> None:
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 2  # click: missing command, after the help
    assert "cjm-ml: predictive customer journeys for car dealers." in result.output


def test_python_m_runs_the_app() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cjm_ml.cli", "keys", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "API keys per dealer group" in done.stdout
