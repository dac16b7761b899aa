"""The declarative mapping file: the shipped examples load and fit the simulator's exports;
each kind of mistake is refused with the file and the key path."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

from cjm_ml.ingest.mapping import (
    Mapping,
    MappingError,
    check_columns,
    load_mapping,
    shipped_mapping,
)
from cjm_ml.simulation import SimulationConfig, simulate
from cjm_ml.simulation.exports import write_raw_exports

SHIPPED = ("scheduler_appointments", "dms_repair_orders")


def _shipped_text(name: str) -> str:
    return resources.files("cjm_ml").joinpath(f"data/mappings/{name}.toml").read_text("utf-8")


def _edited(tmp_path: Path, file: str, old: str, new: str, name: str = SHIPPED[0]) -> Path:
    """The shipped mapping ``name`` with ``old`` (which must be there) replaced by ``new``."""
    text = _shipped_text(name)
    assert old in text
    path = tmp_path / file
    path.write_text(text.replace(old, new), "utf-8")
    return path


def _refused(path: Path) -> str:
    with pytest.raises(MappingError) as e:
        load_mapping(path)
    return str(e.value)


# --- the shipped mappings ----------------------------------------------------------------------


def test_the_shipped_scheduler_mapping_yields_booking_outcome_and_confirmation() -> None:
    m = shipped_mapping("scheduler_appointments")
    assert (m.source, m.dealer_group_id, m.row_key) == ("scheduler", "dg-01", ("appointment_id",))
    assert list(m.events) == ["booking", "reschedule", "outcome", "confirmation"]
    outcome = m.events["outcome"]
    assert outcome.event_types is not None
    assert outcome.event_types.values["no-show"] == "appointment_no_show"
    assert outcome.event_types.skip == ("rescheduled", "scheduled")
    assert m.events["confirmation"].when["confirmation_sent"].equals == ("Y",)
    assert m.events["booking"].when["rescheduled_from"].present is False
    assert m.rooftops.values["Summit Ford"].rooftop_id == "rt-04"
    assert m.rooftops.time_zone("Summit Ford") == "America/Denver"
    assert m.identity.personal_columns() == {
        "phone": "phone",
        "first_name": "name",
        "last_name": "name",
    }
    assert m.identity.key_columns() == {
        "customer_number": "dms_customer_number",
        "vin": "vin",
        "lead_id": "source_id:crm",
    }
    assert m.required_columns() == (
        "appointment_id",
        "created_at",
        "scheduled_start",
        "status_at",
        "status_entered_at",
        "confirmation_sent_at",
        "rooftop",
        "source",
        "vin",
        "rescheduled_from",
        "department",
        "booked_via",
        "status",
        "confirmation_channel",
        "confirmation_sent",
        "phone",
        "first_name",
        "last_name",
        "customer_number",
        "lead_id",
    )


def test_the_shipped_repair_order_mapping_yields_four_steps_three_optional() -> None:
    m = shipped_mapping("dms_repair_orders")
    assert m.rooftops.values["01"].rooftop_id == "rt-01"
    steps = {name: (r.event_type, r.channel, r.required) for name, r in m.events.items()}
    assert steps == {
        "opened": ("repair_order_opened", "in_person", True),
        "closed": ("repair_order_closed", "dms", False),
        "inspection_sent": ("mpi_sent", "sms", False),
        "inspection_approved": ("mpi_approved", "sms", False),
    }
    assert m.column_uses()["vin"] == (
        "events.opened.columns.vehicle_id",
        "events.closed.columns.vehicle_id",
        "events.inspection_sent.columns.vehicle_id",
        "identity.vin",
    )


def test_an_unknown_shipped_mapping_is_refused_with_the_shipped_names() -> None:
    with pytest.raises(MappingError) as e:
        shipped_mapping("dms_deal")
    assert str(e.value) == (
        "no shipped mapping 'dms_deal' (shipped: adf_leads, crm_activities, crm_leads, customers, "
        "dms_deals, dms_repair_orders, scheduler_appointments, web_events)"
    )


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    group = simulate(SimulationConfig(rooftops=6, customers=300, seed=5))
    return write_raw_exports(group, tmp_path_factory.mktemp("raw") / "raw")["rooftops"].parent


def _export(raw: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(raw / f"{name}.csv", dtype="string")


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_mappings_fit_the_simulators_exports(raw: Path, name: str) -> None:
    mapping, export = shipped_mapping(name), _export(raw, name)
    check_columns(mapping, export.columns, export=f"{name}.csv")
    rooftops = _export(raw, "rooftops")
    assert set(rooftops["dealer_group_id"]) == {mapping.dealer_group_id}
    assert mapping.columns.rooftop is not None
    words = set(export[mapping.columns.rooftop.column])
    for _, rooftop in rooftops.iterrows():
        word = rooftop["name"] if name == "scheduler_appointments" else rooftop["dms_store"]
        assert word in words
        assert mapping.rooftops.values[word].rooftop_id == rooftop["rooftop_id"]
        assert mapping.rooftops.time_zone(word) == rooftop["time_zone"]
    for rule in mapping.events.values():
        for words_of in (rule.event_types, rule.channels):
            if words_of is not None:
                seen = set(export[words_of.column].dropna())
                assert seen <= set(words_of.values) | set(words_of.skip), words_of.column


def test_an_export_with_a_renamed_column_is_refused_by_name(raw: Path) -> None:
    header = _export(raw, "scheduler_appointments").rename(columns={"status": "appt_status"})
    with pytest.raises(MappingError) as e:
        check_columns(
            shipped_mapping("scheduler_appointments"),
            header.columns,
            export="scheduler_appointments.csv",
        )
    assert str(e.value) == (
        "scheduler_appointments.csv: no column 'status' (read by"
        " events.outcome.event_types.column, events.outcome.channels.column;"
        " did you mean 'appt_status'?)"
    )


def test_every_missing_column_is_named_with_where_it_is_read() -> None:
    with pytest.raises(MappingError) as e:
        check_columns(
            shipped_mapping("dms_repair_orders"),
            ["ro_number", "store", "vin", "opened_at", "closed_at", "posted_at", "customer_pay"],
            export="ro.csv",
        )
    assert str(e.value) == (
        "ro.csv: no column 'mpi_sent_at' (read by times.mpi_sent_at,"
        " events.inspection_sent.columns.ts); no column 'mpi_approved_at' (read by"
        " times.mpi_approved_at, events.inspection_approved.columns.ts); no column"
        " 'mpi_recommended' (read by events.inspection_sent.columns.value); no column"
        " 'mpi_approved_amount' (read by events.inspection_approved.columns.value); no column"
        " 'customer_number' (read by identity.dms_customer_number)"
    )


# --- mistakes, one each way ---------------------------------------------------------------


def test_an_unknown_key_is_refused(tmp_path: Path) -> None:
    path = _edited(
        tmp_path,
        "scheduler.toml",
        '"Lakeside Honda" = { rooftop_id = "rt-02", time_zone =',
        '"Lakeside Honda" = { rooftop_id = "rt-02", timezone =',
    )
    assert (
        _refused(path) == 'scheduler.toml: rooftops.values."Lakeside Honda".timezone: unknown key'
    )


def test_an_unknown_event_type_is_refused(tmp_path: Path) -> None:
    path = _edited(
        tmp_path,
        "scheduler.toml",
        '"no-show" = "appointment_no_show"',
        '"No Show" = "appointment_noshow"',
    )
    assert _refused(path) == (
        'scheduler.toml: events.outcome.event_types.values."No Show":'
        " unknown event type 'appointment_noshow'"
    )


def test_an_unknown_fixed_event_type_and_channel_are_refused(tmp_path: Path) -> None:
    path = _edited(
        tmp_path, "ro.toml", 'channel = "dms"', 'channel = "DMS"', name="dms_repair_orders"
    )
    assert _refused(path) == "ro.toml: events.closed.channel: unknown channel 'DMS'"
    path = _edited(
        tmp_path,
        "ro.toml",
        'event_type = "mpi_sent"',
        'event_type = "inspection_sent"',
        name="dms_repair_orders",
    )
    assert _refused(path) == (
        "ro.toml: events.inspection_sent.event_type: unknown event type 'inspection_sent'"
    )


def test_an_unknown_time_zone_is_refused(tmp_path: Path) -> None:
    path = _edited(tmp_path, "scheduler.toml", '"America/Denver"', '"America/Denvr"')
    assert _refused(path) == (
        'scheduler.toml: rooftops.values."Summit Ford".time_zone:'
        " unknown time zone 'America/Denvr' (an IANA name, e.g. 'America/Chicago')"
    )


def test_a_value_map_without_its_column_is_refused(tmp_path: Path) -> None:
    path = _edited(
        tmp_path, "scheduler.toml", 'event_types = { column = "status", ', "event_types = { "
    )
    assert _refused(path) == "scheduler.toml: events.outcome.event_types.column: missing"


def test_a_time_column_without_its_format_is_refused(tmp_path: Path) -> None:
    path = _edited(tmp_path, "scheduler.toml", 'confirmation_sent_at = "%Y-%m-%d %H:%M:%S"\n', "")
    assert _refused(path) == (
        "scheduler.toml: events.confirmation.columns.ts: column 'confirmation_sent_at'"
        " is a time: give its format in [times]"
    )


def test_recorded_ts_is_a_time_mapped_like_ts(tmp_path: Path) -> None:
    """When the system recorded an event is optional, read as a time: its column needs a
    format in [times] and takes no word map."""
    outcome = 'columns = { ts = "status_at", recorded_ts = "status_entered_at" }'
    recorded = 'columns = { ts = "status_at", recorded_ts = "entered_at" }'
    path = _edited(tmp_path, "scheduler.toml", outcome, recorded)
    assert _refused(path) == (
        "scheduler.toml: events.outcome.columns.recorded_ts: column 'entered_at'"
        " is a time: give its format in [times]"
    )
    text = path.read_text("utf-8").replace("[times]\n", '[times]\nentered_at = "ISO"\n')
    path.write_text(text, "utf-8")
    m = load_mapping(path)
    columns = m.events["outcome"].columns
    assert columns.recorded_ts is not None and columns.recorded_ts.column == "entered_at"
    assert m.events["booking"].columns.recorded_ts is None
    assert m.column_uses()["entered_at"] == (
        "times.entered_at",
        "events.outcome.columns.recorded_ts",
    )
    path.write_text(
        text.replace('recorded_ts = "entered_at"', 'recorded_ts = { column = "entered_at", '
                     'skip = ["n/a"] }'), "utf-8"
    )  # fmt: skip
    assert _refused(path) == (
        "scheduler.toml: events.outcome.columns.recorded_ts: recorded_ts takes the column as"
        " it is, without values or skip"
    )


def test_an_unreadable_time_format_is_refused(tmp_path: Path) -> None:
    path = _edited(
        tmp_path, "scheduler.toml", 'status_at = "%Y-%m-%d %H:%M:%S"', 'status_at = "%Q"'
    )
    assert _refused(path) == (
        "scheduler.toml: times.status_at.format: '%Q' is not a strftime pattern that can be"
        " read: 'Q' is a bad directive in format '%Q'"
    )


def test_personal_data_feeding_an_event_is_refused(tmp_path: Path) -> None:
    path = _edited(tmp_path, "scheduler.toml", 'source = "source"', 'source = "last_name"')
    assert _refused(path) == (
        "scheduler.toml: identity.name: column 'last_name' holds personal data and may feed"
        " nothing else (events.booking.columns.source)"
    )


def test_a_rooftop_without_a_zone_takes_the_default_or_is_refused(tmp_path: Path) -> None:
    zoned = '"Summit Ford" = { rooftop_id = "rt-04", time_zone = "America/Denver" }'
    path = _edited(tmp_path, "s.toml", zoned, '"Summit Ford" = { rooftop_id = "rt-04" }')
    assert _refused(path) == (
        's.toml: rooftops.values."Summit Ford".time_zone: no time zone, and no default_time_zone'
    )
    text = path.read_text("utf-8").replace(
        "[rooftops.values]", '[rooftops]\ndefault_time_zone = "America/Denver"\n\n[rooftops.values]'
    )
    path.write_text(text, "utf-8")
    assert load_mapping(path).rooftops.time_zone("Summit Ford") == "America/Denver"


def test_two_zones_for_one_rooftop_are_refused(tmp_path: Path) -> None:
    path = _edited(tmp_path, "s.toml", 'rooftop_id = "rt-06"', 'rooftop_id = "rt-05"')
    assert _refused(path) == (
        "s.toml: rooftops.values.\"Cedar Hill Kia\".time_zone: 'America/New_York',"
        " but 'rt-05' is in 'America/Los_Angeles' under another value"
    )


def test_a_field_mapped_twice_is_refused(tmp_path: Path) -> None:
    path = _edited(
        tmp_path,
        "s.toml",
        'appointment_id = "appointment_id"\n',
        'appointment_id = "appointment_id"\nvehicle_id = "vin"\n',
    )
    assert (
        _refused(path) == "s.toml: events.booking.columns.vehicle_id: already mapped in [columns]"
    )


def test_every_problem_is_listed_and_bad_toml_is_named(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text('source = "crm"\n', "utf-8")
    assert _refused(path).splitlines() == [
        "empty.toml: source: Input should be 'adf', 'crm_leads', 'crm_activities', 'scheduler',"
        " 'dms_deals', 'dms_repair_orders', 'web', 'customers' or 'vehicles'",
        "empty.toml: dealer_group_id: missing",
        "empty.toml: row_key: missing",
        "empty.toml: rooftops: missing",
        "empty.toml: columns: missing",
        "empty.toml: events: missing",
    ]
    path.write_text("source = \n", "utf-8")
    assert _refused(path) == ("empty.toml: not valid TOML: Invalid value (at line 1, column 10)")
    with pytest.raises(MappingError, match="no such mapping file"):
        load_mapping(tmp_path / "absent.toml")


def test_a_mapping_is_plain_data() -> None:
    m = shipped_mapping("dms_repair_orders")
    assert Mapping.model_validate(m.model_dump()) == m
