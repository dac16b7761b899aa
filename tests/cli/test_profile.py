"""``cjm profile`` prints the coverage report and writes its page; ``cjm features`` and
``cjm train`` print the same feature warnings, in the same words."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cjm_ml.cli.main import app
from cjm_ml.features.coverage import feature_warnings
from cjm_ml.features.pipeline import build_feature_table
from cjm_ml.params import TASKS
from tests.features.test_coverage import two_customers


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding ``events.parquet`` (two customers), with the settings pointing into it
    (MLflow's store, the models)."""
    monkeypatch.setenv("CJM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CJM_MODELS_DIR", str(tmp_path / "models"))
    two_customers().to_parquet(tmp_path / "events.parquet")
    return tmp_path


def _printed(lines: list[str]) -> list[str]:
    """Warning lines as ``cjm features`` and ``cjm train`` print them."""
    return [f"warning: {lines[0]}", *lines[1:]]


def test_profile_prints_the_report_and_writes_the_page(folder: Path) -> None:
    page = folder / "site" / "coverage.html"
    result = CliRunner().invoke(
        app, ["profile", str(folder / "events.parquet"), "--out", str(page)]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "Coverage of events.parquet: Dealer group dg-01 · 2 rooftops · 2 customers · 9 events · "
        "02 Jun 2025 to 13 Jul 2025"
    )
    words = [" ".join(line.split()) for line in lines]  # table rows, single-spaced
    # task, instances, outcome 1, outcome 0, not yet known, weak features, state
    assert (
        "lead_leakage 2 0 1 1 17 of 24 can be built, not trained: every known outcome is 0" in words
    )
    assert "2025-07 3 1 of 2" in words  # month, events, rooftops with events
    for task in TASKS:
        warnings = feature_warnings(build_feature_table(two_customers(), task), task)
        position = lines.index(warnings[0])
        assert lines[position : position + len(warnings)] == warnings
    assert "Delivery: delivery_education" in lines
    assert "Service and ownership: service_reminder, service_appointment_set, " in result.stdout
    assert f"coverage report -> {page}" in lines
    assert "<title>Data coverage: events.parquet</title>" in page.read_text()


def test_profile_refuses_a_file_that_does_not_load(folder: Path) -> None:
    page = folder / "coverage.html"
    result = CliRunner().invoke(app, ["profile", str(folder / "none.csv"), "--out", str(page)])
    assert result.exit_code == 1
    assert f"error: {folder / 'none.csv'}: no such events file" in result.output
    assert not page.exists()


def test_features_and_train_print_the_same_warnings(folder: Path) -> None:
    runner = CliRunner()
    table = folder / "features" / "service_defection.parquet"
    built = runner.invoke(
        app,
        [
            "features",
            "--task",
            "service_defection",
            "--events",
            str(folder / "events.parquet"),
            "--out",
            str(table),
        ],
    )
    assert built.exit_code == 0, built.output
    expected = _printed(feature_warnings(pd.read_parquet(table), "service_defection"))
    assert expected[0] == (
        "warning: service_defection: 15 of 15 features are constant or mostly missing on this "
        "data; a model learns little or nothing from them:"
    )
    assert "  prior_service_visits (Earlier repair orders): constant (always 0)" in expected
    assert built.stderr.splitlines()[-len(expected) :] == expected

    trained = runner.invoke(
        app,
        ["train", "--task", "service_defection", "--features-dir", str(table.parent)],
    )
    # The warnings come before training, which then refuses a table this small.
    assert trained.exit_code == 1
    lines = trained.stderr.splitlines()
    start = lines.index(expected[0])
    assert lines[start : start + len(expected)] == expected
    assert lines[start + len(expected)].startswith(f"error: {table}: need at least 50 labelled")
