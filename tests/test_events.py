"""The event model: the catalogue, and validation that names file, row, column, value, rule."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cjm_ml import events as events_module
from cjm_ml.events import (
    EVENT_COLUMNS,
    REQUIRED_COLUMNS,
    EventValidationError,
    catalogue,
    load_events,
    validate_events,
)

# Every touchpoint the product brief names, by journey stage (the list).
BRIEF_TOUCHPOINTS = {
    "research": {
        "inventory_search",
        "vdp_view",
        "payment_calculator",
        "trade_in_tool",
        "online_scheduling",
    },
    "lead_intake": {"lead_form", "lead_call", "lead_chat", "lead_third_party"},
    "response": {
        "outbound_call",
        "missed_call",
        "sms_sent",
        "sms_replied",
        "email_sent",
        "email_opened",
        "crm_task_created",
        "crm_task_completed",
    },
    "appointment": {
        "appointment_set",
        "appointment_confirmation_sent",
        "appointment_rescheduled",
        "appointment_cancelled",
        "appointment_showed",
        "appointment_no_show",
    },
    "showroom": {"showroom_visit", "test_drive", "appraisal"},
    "credit_fi": {"credit_application", "desking", "fi_session"},
    "delivery": {"vehicle_delivery", "delivery_education"},
    "service": {
        "service_reminder",
        "service_appointment_set",
        "repair_order_opened",
        "repair_order_closed",
        "mpi_sent",
        "mpi_approved",
        "recall_notice",
        "maintenance_reminder",
    },
    "csi": {"csi_survey"},
}

GOOD_ROW = {
    "event_id": "e-1",
    "dealer_group_id": "dg-01",
    "rooftop_id": "rt-01",
    "customer_id": "c-1",
    "ts": "2025-03-01T14:05:00Z",
    "event_type": "lead_form",
    "channel": "web",
    "source": "oem_website",
    "vehicle_id": "v-1",
    "value": "31500",
    "attributes": "",
}


def _csv(tmp_path: Path, rows: list[dict[str, str]], name: str = "events.csv") -> Path:
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_catalogue_covers_every_stage_of_the_brief_in_journey_order() -> None:
    cat = catalogue()
    assert cat.stage_keys == tuple(BRIEF_TOUCHPOINTS)
    by_stage: dict[str, set[str]] = {}
    for e in cat.event_types:
        by_stage.setdefault(e.stage, set()).add(e.key)
    for stage, touchpoints in BRIEF_TOUCHPOINTS.items():
        assert touchpoints <= by_stage[stage], f"{stage} lacks {touchpoints - by_stage[stage]}"
    orders = [cat.stage(e.stage).order for e in cat.event_types]
    assert orders == sorted(orders)
    assert cat.stage_of("test_drive").label == "Showroom"


def test_catalogue_refuses_unknown_names_by_name() -> None:
    with pytest.raises(KeyError, match="unknown event type 'teleport'"):
        catalogue().stage_of("teleport")


def test_clean_csv_loads_typed_utc_and_sorted(tmp_path: Path) -> None:
    later = {
        **GOOD_ROW,
        "event_id": "e-2",
        "ts": "2025-03-01T09:00:00-06:00",
        "event_type": "outbound_call",
        "channel": "phone",
        "value": "0",
    }
    first = {**GOOD_ROW, "ts": "2025-03-01T14:05:00+00:00"}
    events = load_events(_csv(tmp_path, [later, first]))
    assert list(events.columns) == list(EVENT_COLUMNS)
    assert str(events["ts"].dtype) == "datetime64[us, UTC]"
    assert isinstance(events["event_type"].dtype, pd.CategoricalDtype)
    assert isinstance(events["rooftop_id"].dtype, pd.CategoricalDtype)
    # -06:00 09:00 is 15:00 UTC, after the lead at 14:05 UTC.
    assert events["event_id"].tolist() == ["e-1", "e-2"]
    assert events["ts"].iloc[1] == pd.Timestamp("2025-03-01T15:00:00Z")
    assert events["value"].tolist() == [31500.0, 0.0]
    assert pd.isna(events["attributes"].iloc[0])


def test_a_folder_of_parquet_loads_is_one_events_table(tmp_path: Path) -> None:
    later = {**GOOD_ROW, "event_id": "e-2", "ts": "2025-03-02T09:00:00+00:00"}
    folder = tmp_path / "events"
    folder.mkdir()
    pd.DataFrame([later]).to_parquet(folder / "b-load.parquet")
    pd.DataFrame([GOOD_ROW]).to_parquet(folder / "a-load.parquet")
    (folder / "notes.txt").write_text("not events")
    assert load_events(folder)["event_id"].tolist() == ["e-1", "e-2"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="a folder without Parquet files of events"):
        load_events(empty)


@pytest.mark.parametrize(
    ("override", "row", "column", "rule", "value"),
    [
        ({"event_type": "teleport"}, 2, "event_type", "event_type_known", "'teleport'"),
        ({"customer_id": ""}, 2, "customer_id", "customer_id_required", ""),
        ({"ts": "2025-03-01 14:05:00"}, 2, "ts", "ts_timezone", "'2025-03-01 14:05:00'"),
        ({"ts": "yesterday at noon"}, 2, "ts", "ts_parsable", "'yesterday at noon'"),
        ({"event_id": "e-1"}, 2, "event_id", "event_id_unique", "'e-1'"),
        ({"channel": "pigeon"}, 2, "channel", "channel_known", "'pigeon'"),
        ({"value": "lots"}, 2, "value", "value_numeric", "'lots'"),
        ({"attributes": "[1, 2]"}, 2, "attributes", "attributes_json", "'[1, 2]'"),
        ({"attributes": "{broken"}, 2, "attributes", "attributes_json", "'{broken'"),
        (
            {"recorded_ts": "2025-03-01T14:04:59Z"},
            2,
            "recorded_ts",
            "recorded_before_event",
            "'2025-03-01T14:04:59Z'",
        ),
        (
            {"recorded_ts": "2025-03-02 09:00:00"},
            2,
            "recorded_ts",
            "recorded_ts_timezone",
            "'2025-03-02 09:00:00'",
        ),
        ({"recorded_ts": "next week"}, 2, "recorded_ts", "recorded_ts_parsable", "'next week'"),
    ],
)
def test_each_bad_value_is_named_by_row_column_value_and_rule(
    tmp_path: Path, override: dict[str, str], row: int, column: str, rule: str, value: str
) -> None:
    bad = {**GOOD_ROW, "event_id": "e-2", **override}
    path = _csv(tmp_path, [GOOD_ROW, bad])
    with pytest.raises(EventValidationError) as info:
        load_events(path)
    [violation] = info.value.violations
    assert (violation.file, violation.row, violation.column, violation.rule) == (
        "events.csv",
        row,
        column,
        rule,
    )
    if value:
        assert violation.value == value
        assert f"events.csv row {row}, column '{column}'" in str(info.value)
        assert value in str(info.value)


def test_duplicate_event_id_points_at_the_first_occurrence(tmp_path: Path) -> None:
    rows = [GOOD_ROW, {**GOOD_ROW, "event_type": "vdp_view"}, {**GOOD_ROW, "event_id": "e-3"}]
    with pytest.raises(EventValidationError) as info:
        load_events(_csv(tmp_path, rows))
    [v] = info.value.violations
    assert v.row == 2 and "first seen on row 1" in v.message


def test_missing_required_column_is_reported_without_rows(tmp_path: Path) -> None:
    row = {k: v for k, v in GOOD_ROW.items() if k != "customer_id"}
    with pytest.raises(EventValidationError) as info:
        load_events(_csv(tmp_path, [row]))
    [v] = info.value.violations
    assert (v.row, v.column, v.rule) == (None, "customer_id", "required_column")


def test_every_violation_in_a_file_is_listed_in_row_order(tmp_path: Path) -> None:
    rows = [
        {**GOOD_ROW, "event_type": "teleport"},
        {**GOOD_ROW, "event_id": "e-2"},
        {**GOOD_ROW, "event_id": "e-3", "ts": "2025-13-45T10:00:00Z", "customer_id": ""},
    ]
    _, violations = validate_events(pd.read_csv(_csv(tmp_path, rows), dtype=str), "x.csv")
    assert [(v.row, v.column, v.rule) for v in violations] == [
        (1, "event_type", "event_type_known"),
        (3, "customer_id", "customer_id_required"),
        (3, "ts", "ts_parsable"),
    ]


def test_naive_parquet_timestamps_are_rejected(tmp_path: Path) -> None:
    frame = pd.DataFrame([GOOD_ROW]).assign(ts=pd.to_datetime(["2025-03-01 14:05:00"]))
    frame.to_parquet(tmp_path / "events.parquet")
    with pytest.raises(EventValidationError) as info:
        load_events(tmp_path / "events.parquet")
    assert [v.rule for v in info.value.violations] == ["ts_timezone"]


def test_readme_lists_every_event_type() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    missing = [k for k in catalogue().event_type_keys if f"| `{k}` |" not in readme]
    assert missing == []


def test_three_bad_rows_list_every_rule_broken_by_row_then_column() -> None:
    rows = [
        {**GOOD_ROW, "channel": "pigeon", "value": "lots"},
        {**GOOD_ROW, "event_type": "", "ts": "2025-03-01 15:00", "attributes": "[1]"},
        {**GOOD_ROW, "event_id": "e-3", "dealer_group_id": " ", "ts": "", "event_type": "teleport"},
    ]
    typed, violations = validate_events(pd.DataFrame(rows, dtype=str), "three.csv")
    channels = ", ".join(catalogue().channels)
    assert [str(v) for v in violations] == [
        f"three.csv row 1, column 'channel': unknown channel; expected one of {channels} "
        "(value 'pigeon'; rule channel_known)",
        "three.csv row 1, column 'value': value must be a number (value 'lots'; rule "
        "value_numeric)",
        "three.csv row 2, column 'event_id': duplicate event_id, first seen on row 1 "
        "(value 'e-1'; rule event_id_unique)",
        "three.csv row 2, column 'ts': timestamp has no timezone; give it in UTC "
        "(e.g. 2025-03-01T14:05:00Z) (value '2025-03-01 15:00'; rule ts_timezone)",
        "three.csv row 2, column 'event_type': event_type is missing (value ''; rule "
        "event_type_required)",
        "three.csv row 2, column 'attributes': attributes must be a JSON object such as "
        """{"appointment_id": "a-1"} (value '[1]'; rule attributes_json)""",
        "three.csv row 3, column 'dealer_group_id': dealer_group_id is missing (value ' '; "
        "rule dealer_group_id_required)",
        "three.csv row 3, column 'ts': ts is missing (value ''; rule ts_required)",
        "three.csv row 3, column 'event_type': unknown event type; see the catalogue in the "
        "README (value 'teleport'; rule event_type_known)",
    ]
    assert typed.empty and list(typed.columns) == list(EVENT_COLUMNS)


def test_three_clean_rows_are_typed_trimmed_and_sorted() -> None:
    rows = [
        {**GOOD_ROW, "event_type": " vdp_view ", "channel": " sms ", "source": "", "value": " 2 "},
        {
            **GOOD_ROW,
            "event_id": "e-0",
            "customer_id": "c-0",
            "ts": "2025-03-01T10:00:00+02:00",
            "attributes": '{"appointment_id": "a-1"}',
        },
        {**GOOD_ROW, "event_id": "e-2", "channel": "", "value": ""},
    ]
    typed, violations = validate_events(pd.DataFrame(rows, dtype=str))
    assert violations == []
    assert typed["event_id"].tolist() == ["e-0", "e-1", "e-2"]
    assert typed["ts"].tolist() == [
        pd.Timestamp("2025-03-01T08:00:00Z"),
        pd.Timestamp("2025-03-01T14:05:00Z"),
        pd.Timestamp("2025-03-01T14:05:00Z"),
    ]
    assert typed["event_type"].tolist() == ["lead_form", "vdp_view", "lead_form"]
    assert typed["channel"].astype("string").tolist() == ["web", "sms", pd.NA]
    assert typed["source"].astype("string").tolist() == ["oem_website", pd.NA, "oem_website"]
    assert typed["value"].tolist()[:2] == [31500.0, 2.0] and pd.isna(typed["value"].iloc[2])
    assert typed["attributes"].tolist() == ['{"appointment_id": "a-1"}', pd.NA, pd.NA]


def test_optional_columns_may_be_absent() -> None:
    required = {c: GOOD_ROW[c] for c in REQUIRED_COLUMNS}
    typed, violations = validate_events(pd.DataFrame([required], dtype=str))
    assert violations == []
    assert list(typed.columns) == list(EVENT_COLUMNS)
    assert typed[["channel", "source", "vehicle_id", "value", "attributes"]].isna().all().all()
    assert str(typed["recorded_ts"].dtype) == "datetime64[us, UTC]"
    assert typed["recorded_ts"].isna().all()


def test_recorded_ts_is_typed_where_given_and_may_be_blank_or_equal_to_ts(
    tmp_path: Path,
) -> None:
    rows = [
        {**GOOD_ROW, "recorded_ts": "2025-03-02T09:30:00+01:00"},
        {**GOOD_ROW, "event_id": "e-2", "recorded_ts": ""},
        {**GOOD_ROW, "event_id": "e-3", "recorded_ts": GOOD_ROW["ts"]},
    ]
    typed = load_events(_csv(tmp_path, rows))
    assert typed["event_id"].tolist() == ["e-1", "e-2", "e-3"]
    assert typed["recorded_ts"].tolist()[0] == pd.Timestamp("2025-03-02T08:30:00Z")
    assert pd.isna(typed["recorded_ts"].iloc[1])
    assert typed["recorded_ts"].iloc[2] == typed["ts"].iloc[2]
    # Parquet: a timezone-aware column is taken as it is; a naive one is refused
    frame = pd.DataFrame(rows[:1]).assign(
        ts=pd.to_datetime([GOOD_ROW["ts"]], utc=True),
        recorded_ts=pd.to_datetime(["2025-03-02T08:30:00Z"], utc=True),
    )
    frame.to_parquet(tmp_path / "events.parquet")
    loaded = load_events(tmp_path / "events.parquet")
    assert loaded["recorded_ts"].tolist() == [pd.Timestamp("2025-03-02T08:30:00Z")]
    frame.assign(recorded_ts=frame["recorded_ts"].dt.tz_localize(None)).to_parquet(
        tmp_path / "naive.parquet"
    )
    with pytest.raises(EventValidationError) as info:
        load_events(tmp_path / "naive.parquet")
    assert [(v.row, v.column, v.rule) for v in info.value.violations] == [
        (1, "recorded_ts", "recorded_ts_timezone")
    ]


def test_missing_required_columns_are_all_reported_and_nothing_else_is_checked() -> None:
    row = {**GOOD_ROW, "channel": "pigeon"}
    del row["ts"], row["event_id"]
    typed, violations = validate_events(pd.DataFrame([row], dtype=str), "two.csv")
    assert [(v.row, v.column, v.value, v.rule) for v in violations] == [
        (None, "event_id", "<absent>", "required_column"),
        (None, "ts", "<absent>", "required_column"),
    ]
    assert str(violations[0]) == (
        "two.csv, column 'event_id': required column is missing (value <absent>; rule "
        "required_column)"
    )
    assert typed.empty


def test_a_long_report_lists_the_first_violations_and_counts_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events_module, "MAX_REPORTED_VIOLATIONS", 2)
    rows = [{**GOOD_ROW, "event_id": f"e-{i}", "value": f"lots-{i}"} for i in range(3)]
    _, violations = validate_events(pd.DataFrame(rows, dtype=str), "long.csv")
    error = EventValidationError(violations)
    assert error.violations == violations
    assert str(error) == (
        "3 violation(s) in long.csv\n"
        "long.csv row 1, column 'value': value must be a number (value 'lots-0'; rule "
        "value_numeric)\n"
        "long.csv row 2, column 'value': value must be a number (value 'lots-1'; rule "
        "value_numeric)\n"
        "... and 1 more"
    )


BOOKED = {
    **GOOD_ROW,
    "event_id": "e-2",
    "ts": "2025-03-01T15:00:00Z",
    "event_type": "appointment_set",
    "channel": "phone",
    "value": "",
    "attributes": '{"appointment_id": "a-1", "scheduled_ts": "2025-03-04T15:00:00-06:00"}',
}
SHOWED = {
    **GOOD_ROW,
    "event_id": "e-3",
    "ts": "2025-03-04T21:10:00Z",
    "event_type": "appointment_showed",
    "channel": "in_person",
    "value": "",
    "attributes": '{"appointment_id": "a-1"}',
}


def _booking_rows(booking: str, outcome: str = '{"appointment_id": "a-1"}') -> list[dict[str, str]]:
    """A lead, a booking with these attributes, and an outcome with these."""
    return [GOOD_ROW, {**BOOKED, "attributes": booking}, {**SHOWED, "attributes": outcome}]


def test_integer_ids_are_read_as_strings_in_the_typed_table() -> None:
    rows = _booking_rows(
        '{"appointment_id": 101, "scheduled_ts": "2025-03-04T15:00:00Z"}',
        '{"appointment_id":101}',
    )
    rows.append({**GOOD_ROW, "event_id": "e-4", "event_type": "repair_order_opened",
                 "attributes": '{"ro_id": -7, "nested": {"ro_id": 8}}'})  # fmt: skip
    typed, violations = validate_events(pd.DataFrame(rows, dtype=str), whole_file=True)
    assert violations == []
    assert typed["attributes"].tolist()[1:] == [
        '{"ro_id": "-7", "nested": {"ro_id": 8}}',  # nested: not an attribute of the event
        '{"appointment_id": "101", "scheduled_ts": "2025-03-04T15:00:00Z"}',
        '{"appointment_id":"101"}',
    ]


@pytest.mark.parametrize(
    ("booking", "outcome", "expected"),
    [
        (
            '{"appointment_id": "a-1", "scheduled_ts": "2025-03-04"}',
            '{"appointment_id": "a-1"}',
            "row 2, column 'attributes.scheduled_ts': scheduled_ts needs a time of day with its "
            "time zone (e.g. 2025-03-04T15:30:00Z) (value '2025-03-04'; rule "
            "attribute_ts_timezone)",
        ),
        (
            '{"appointment_id": "a-1", "scheduled_ts": "2025-03-04T15:00:00"}',
            '{"appointment_id": "a-1"}',
            "row 2, column 'attributes.scheduled_ts': scheduled_ts needs a time of day with its "
            "time zone (e.g. 2025-03-04T15:30:00Z) (value '2025-03-04T15:00:00'; rule "
            "attribute_ts_timezone)",
        ),
        (
            '{"appointment_id": "a-1", "scheduled_ts": "next tuesday"}',
            '{"appointment_id": "a-1"}',
            "row 2, column 'attributes.scheduled_ts': scheduled_ts is not an ISO 8601 timestamp "
            "(value 'next tuesday'; rule attribute_ts_parsable)",
        ),
        (
            '{"appointment_id": "a-1", "scheduled_ts": "2025-03-01T08:59:00-06:00"}',
            '{"appointment_id": "a-1"}',
            "row 2, column 'attributes.scheduled_ts': scheduled_ts is before the event's own ts "
            "(value '2025-03-01T08:59:00-06:00'; rule start_before_event)",
        ),
        (
            '{"scheduled_ts": "2025-03-04T15:00:00Z"}',
            '{"appointment_id": "a-1"}',
            "row 2, column 'attributes.appointment_id': appointment_set needs appointment_id in "
            "its attributes (value <absent>; rule attribute_required)\nthree.csv "
            "row 3, column 'attributes.appointment_id': no booking of this customer in the file "
            "has this appointment_id (value 'a-1'; rule booking_known)",
        ),
        (
            '{"appointment_id": 1.5, "scheduled_ts": "2025-03-04T15:00:00Z"}',
            '{"appointment_id": "1.5"}',
            "row 2, column 'attributes.appointment_id': appointment_id must be a JSON string or "
            "integer (value '1.5'; rule attribute_id)\nthree.csv row 3, column "
            "'attributes.appointment_id': no booking of this customer in the file has this "
            "appointment_id (value '1.5'; rule booking_known)",
        ),
        (
            '{"appointment_id": "a-1", "scheduled_ts": "2025-03-04T15:00:00Z"}',
            '{"appointment_id": "a-2"}',
            "row 3, column 'attributes.appointment_id': no booking of this customer in the file "
            "has this appointment_id (value 'a-2'; rule booking_known)",
        ),
        (
            '{"appointment_id": "a-1", "scheduled_ts": "2025-03-04T15:00:00Z"}',
            '{"appointment_id": ""}',
            "row 3, column 'attributes.appointment_id': appointment_showed needs appointment_id "
            "in its attributes (value ''; rule attribute_required)",
        ),
    ],
)
def test_each_attribute_rule_names_row_column_value_and_rule(
    booking: str, outcome: str, expected: str
) -> None:
    rows = _booking_rows(booking, outcome)
    _, violations = validate_events(pd.DataFrame(rows, dtype=str), "three.csv", whole_file=True)
    assert "\n".join(str(v) for v in violations) == f"three.csv {expected}"


def test_three_clean_booking_rows_pass_and_the_reference_rule_is_for_whole_files_only() -> None:
    rows = _booking_rows('{"appointment_id": "a-1", "scheduled_ts": "2025-03-04T15:00:00Z"}')
    assert validate_events(pd.DataFrame(rows, dtype=str), whole_file=True)[1] == []
    other = [GOOD_ROW, {**SHOWED, "customer_id": "c-2"}, {**BOOKED, "event_id": "e-4"}]
    _, violations = validate_events(pd.DataFrame(other, dtype=str), "x.csv", whole_file=True)
    assert [(v.row, v.column, v.rule) for v in violations] == [
        (2, "attributes.appointment_id", "booking_known")
    ]
    assert validate_events(pd.DataFrame(other, dtype=str))[1] == []  # a batch: not checked


def test_a_reschedule_must_name_the_booking_it_moves() -> None:
    moved = {
        **BOOKED,
        "event_id": "e-4",
        "event_type": "appointment_rescheduled",
        "attributes": '{"appointment_id": "a-2", "scheduled_ts": "2025-03-05T15:00:00Z", '
        '"rescheduled_from": 9}',
    }
    rows = [GOOD_ROW, BOOKED, moved]
    _, violations = validate_events(pd.DataFrame(rows, dtype=str), "r.csv", whole_file=True)
    assert [(v.row, v.column, v.value, v.rule) for v in violations] == [
        (3, "attributes.rescheduled_from", "'9'", "booking_known")
    ]


def test_attributes_that_are_not_flat_are_read_by_json() -> None:
    escaped = '{"note": "say \\"hi\\"", "appointment_id": "a-1", "appointment_id": 5, ' \
        '"scheduled_ts": "2025-03-04T15:00:00Z"}'  # fmt: skip
    rows = _booking_rows(escaped, '{"appointment_id": "5"}')
    typed, violations = validate_events(pd.DataFrame(rows, dtype=str), whole_file=True)
    assert violations == []
    assert typed["attributes"].iloc[1] == (
        '{"note": "say \\"hi\\"", "appointment_id": "5", "scheduled_ts": "2025-03-04T15:00:00Z"}'
    )


def test_catalogue_keeps_the_attribute_rules_as_data() -> None:
    rules = {(t, r.key): r for t, r in catalogue().attribute_rules()}
    assert rules[("appointment_set", "scheduled_ts")].kind == "start"
    assert rules[("appointment_rescheduled", "rescheduled_from")].booking == "refers"
    assert rules[("service_appointment_set", "appointment_id")].booking == "books"
    assert not rules[("repair_order_opened", "ro_id")].required


def test_a_long_report_starts_with_a_summary_by_rule_and_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events_module, "MAX_REPORTED_VIOLATIONS", 1)
    monkeypatch.setattr(events_module, "SUMMARY_FROM", 3)
    monkeypatch.setattr(events_module, "SUMMARY_VALUES", 1)
    rows = [{**GOOD_ROW, "event_id": f"e-{i}", "event_type": t}
            for i, t in enumerate(["page_view", "page_view", "visit"])]  # fmt: skip
    _, violations = validate_events(pd.DataFrame(rows, dtype=str), "u.csv")
    assert str(EventValidationError(violations)).splitlines() == [
        "3 violation(s) in u.csv",
        "Summary by rule (value: rows, first rows):",
        "  event_type_known, column 'event_type': 3 row(s), 2 distinct value(s): unknown event "
        "type; see the catalogue in the README",
        "    'page_view': 2 row(s), first 1, 2",
        "    and 1 more value(s)",
        "Row by row (the first 1):",
        "u.csv row 1, column 'event_type': unknown event type; see the catalogue in the README "
        "(value 'page_view'; rule event_type_known)",
        "... and 2 more",
    ]
