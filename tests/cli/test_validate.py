"""``cjm validate``: a file checked whole, its report summarised, only a clean table written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from cjm_ml.cli.main import app

HEADER = "event_id,dealer_group_id,rooftop_id,customer_id,ts,event_type,channel,value,attributes"
LEAD = "e-1,dg-01,rt-01,c-1,2025-03-01T14:05:00Z,lead_form,web,31500,"
#: A booking and its outcome whose ids are JSON numbers, as exports often write them.
INTEGER_IDS = [
    'e-2,dg-01,rt-01,c-1,2025-03-01T15:00:00Z,appointment_set,phone,,"{""appointment_id"": 101, '
    '""scheduled_ts"": ""2025-03-04T15:00:00Z""}"',
    "e-3,dg-01,rt-01,c-1,2025-03-04T15:10:00Z,appointment_showed,in_person,,"
    '"{""appointment_id"": 101}"',
]


def _file(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "events.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def test_integer_ids_validate_and_then_build_features(tmp_path: Path) -> None:
    """Before issue 14 `cjm validate` said valid and `cjm features` then failed with "no booking
    carries both 'appointment_id' and 'scheduled_ts'": the ids were JSON numbers."""
    path = _file(tmp_path, [LEAD, *INTEGER_IDS])
    runner = CliRunner()
    checked = runner.invoke(app, ["validate", str(path), "--out", str(tmp_path / "clean.parquet")])
    assert checked.exit_code == 0, checked.output
    clean = pd.read_parquet(tmp_path / "clean.parquet")
    assert clean["attributes"].tolist()[1:] == [
        '{"appointment_id": "101", "scheduled_ts": "2025-03-04T15:00:00Z"}',
        '{"appointment_id": "101"}',
    ]
    out = tmp_path / "no_show.parquet"
    built = runner.invoke(
        app, ["features", "--task", "no_show", "--events", str(path), "--out", str(out)]
    )
    assert built.exit_code == 0, built.output
    table = pd.read_parquet(out)
    assert table["instance_id"].tolist() == ["101"] and table["label"].tolist() == [0]


def test_a_bare_date_is_refused_naming_row_column_value_and_rule(tmp_path: Path) -> None:
    booking = INTEGER_IDS[0].replace("2025-03-04T15:00:00Z", "2025-03-04")
    path = _file(tmp_path, [LEAD, booking, INTEGER_IDS[1]])
    out = tmp_path / "clean.parquet"
    result = CliRunner().invoke(app, ["validate", str(path), "--out", str(out)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "1 violation(s) in events.csv",
        "events.csv row 2, column 'attributes.scheduled_ts': scheduled_ts needs a time of day "
        "with its time zone (e.g. 2025-03-04T15:30:00Z) (value '2025-03-04'; rule "
        "attribute_ts_timezone)",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.csv"]  # nothing half-written


def test_unknown_values_are_summarised_before_the_rows(tmp_path: Path) -> None:
    rows = [
        f"e-{i},dg-01,rt-01,c-{i},2025-03-01T14:05:00Z,{kind},{channel},,"
        for i, (kind, channel) in enumerate(
            [("page_view", "web")] * 8 + [("lead_form", "pigeon")] * 3 + [("visit", "web")]
        )
    ]
    result = CliRunner().invoke(app, ["validate", str(_file(tmp_path, rows))])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[:8] == [
        "12 violation(s) in events.csv",
        "Summary by rule (value: rows, first rows):",
        "  event_type_known, column 'event_type': 9 row(s), 2 distinct value(s): unknown event "
        "type; see the catalogue in the README",
        "    'page_view': 8 row(s), first 1, 2, 3",
        "    'visit': 1 row(s), first 12",
        "  channel_known, column 'channel': 3 row(s), 1 distinct value(s): unknown channel; "
        "expected one of web, phone, chat, sms, email, in_person, third_party, crm, dms, mail",
        "    'pigeon': 3 row(s), first 9, 10, 11",
        "Row by row (the first 12):",
    ]
    assert len(lines) == 8 + 12


def test_a_clean_file_is_written_typed(tmp_path: Path) -> None:
    out = tmp_path / "clean.parquet"
    result = CliRunner().invoke(app, ["validate", str(_file(tmp_path, [LEAD])), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "valid, 1 events, 1 customers" in result.output
    assert str(pd.read_parquet(out)["ts"].dtype) == "datetime64[us, UTC]"


def test_unsupported_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "events.json").write_text("{}")
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "events.json")])
    assert result.exit_code == 1 and "unsupported file type '.json'" in result.output
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "nope.csv")])
    assert result.exit_code == 1 and "no such events file" in result.output
