"""Commands' refusals that need no data: exit 2 for a bad option, exit 1 with the message for a
file that is not there."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cjm_ml.cli.main import app


@pytest.fixture
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings pointing into an empty folder (no tenants file, no models)."""
    monkeypatch.setenv("CJM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CJM_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("CJM_TENANTS_FILE", str(tmp_path / "tenants.json"))
    return tmp_path


def test_explain_refuses_an_unknown_task_and_a_missing_table(nowhere: Path) -> None:
    runner = CliRunner()
    unknown = runner.invoke(app, ["explain", "--task", "churn"])
    assert unknown.exit_code == 2 and "unknown task 'churn'" in unknown.output
    missing = runner.invoke(app, ["explain", "--task", "no_show"])
    table = nowhere / "data" / "features" / "no_show.parquet"
    assert missing.exit_code == 1
    assert f"error: {table}: no feature table; run `cjm features` or `cjm demo`" in (
        missing.output.replace("\n", "")
    )


def test_serve_refuses_a_missing_tenants_file_before_binding(nowhere: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--port", "1"])
    assert result.exit_code == 1
    assert f"error: {nowhere / 'tenants.json'}: no such tenants file" in result.output


def test_serve_refuses_an_events_file_that_does_not_load(nowhere: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--load-events", str(nowhere / "none.csv")])
    assert result.exit_code == 1 and "no such events file" in result.output


def test_push_needs_one_task_or_all_and_a_tenants_file(nowhere: Path) -> None:
    runner = CliRunner()
    neither = runner.invoke(app, ["push"])
    assert neither.exit_code == 2 and "give either --task TASK or --all" in neither.output
    both = runner.invoke(app, ["push", "--task", "no_show", "--all"])
    assert both.exit_code == 2 and "give either --task TASK or --all" in both.output
    no_tenants = runner.invoke(app, ["push", "--all"])
    assert no_tenants.exit_code == 1 and "no such tenants file" in no_tenants.output


def test_keys_add_refuses_a_missing_tenants_file(nowhere: Path) -> None:
    result = CliRunner().invoke(app, ["keys", "add", "--group", "dg-01", "--key-id", "dg01-crm"])
    assert result.exit_code == 1
    assert f"error: {nowhere / 'tenants.json'}: no such tenants file" in result.output


def test_map_refuses_a_missing_events_file(nowhere: Path) -> None:
    result = CliRunner().invoke(
        app, ["map", "--events", str(nowhere / "none.csv"), "--out", str(nowhere / "m.html")]
    )
    assert result.exit_code == 1 and "no such events file" in result.output
    assert not (nowhere / "m.html").exists()


def test_simulate_refuses_a_malformed_fix(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["simulate", "--customers", "50", "--out", str(tmp_path), "--fix", "rt-02"]
    )
    assert result.exit_code == 2
    assert "'rt-02': expected ROOFTOP:SETTING[,SETTING]" in result.output
