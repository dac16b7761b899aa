"""``cjm ingest``: the summary of a load, and exit 1 with a clear error for what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cjm_ml.cli.main import app
from tests.ingest.test_pipeline import SALT, _scheduler_export

MAPPING = Path("cjm_ml/data/mappings/scheduler_appointments.toml")


def _run(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["ingest", *args, "--data-dir", str(tmp_path / "data")])
    return result.exit_code, result.stdout


def test_a_load_prints_what_it_did(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CJM_PII_SALT", SALT)
    export = str(_scheduler_export(tmp_path))
    code, out = _run(tmp_path, "--mapping", str(MAPPING), export)
    assert code == 0, out
    name = Path(export).name
    assert out.splitlines()[0] == (
        f"scheduler ({name}): rows read 3; events written 7; duplicates skipped 0; "
        "new customers 2; merges 0; refused rows 0"
    )
    assert "1 nonexistent (moved to the end of the gap)" in out
    code, out = _run(tmp_path, "--mapping", str(MAPPING), export)
    assert out.splitlines()[0].startswith(
        f"scheduler ({name}): rows read 3; events written 0; duplicates skipped 7"
    )


def test_a_source_kind_picks_its_shipped_mapping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CJM_PII_SALT", SALT)
    export = str(_scheduler_export(tmp_path))
    code, out = _run(tmp_path, "--source", "scheduler", export)
    assert code == 0, out
    assert "rows read 3; events written 7;" in out.splitlines()[0]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ([], "error: give the export's mapping (--mapping FILE) or its kind (--source)"),
        (
            ["--source", "dms"],
            "error: unknown source kind 'dms'; expected one of adf, crm_leads, crm_activities, "
            "scheduler, dms_deals, dms_repair_orders, web, customers, vehicles",
        ),
        (
            ["--source", "vehicles"],
            "error: no shipped mapping for 'vehicles' exports; give --mapping FILE",
        ),
        (
            ["--source", "dms_deals", "--mapping", str(MAPPING)],
            "error: scheduler_appointments.toml: maps 'scheduler' exports, not 'dms_deals'",
        ),
    ],
)
def test_a_source_kind_that_cannot_be_used_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], error: str
) -> None:
    monkeypatch.setenv("CJM_PII_SALT", SALT)
    result = CliRunner().invoke(app, ["ingest", *args, str(_scheduler_export(tmp_path))])
    assert result.exit_code == 1
    assert result.stderr.strip() == error
    assert not (tmp_path / "data").exists()


def test_a_missing_salt_or_mapping_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CJM_PII_SALT", "")
    export = str(_scheduler_export(tmp_path))
    code, out = _run(tmp_path, "--mapping", str(MAPPING), export)
    assert code == 1 and out == ""
    result = CliRunner().invoke(app, ["ingest", "--mapping", str(MAPPING), export])
    assert result.exit_code == 1 and "error: CJM_PII_SALT is not set" in result.stderr
    monkeypatch.setenv("CJM_PII_SALT", SALT)
    missing = tmp_path / "none.toml"
    result = CliRunner().invoke(app, ["ingest", "--mapping", str(missing), export])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {missing}: no such mapping file"
    assert not (tmp_path / "data").exists()
