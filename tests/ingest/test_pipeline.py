"""``ingest``: an export through its mapping -> canonical events, idempotent, nothing in clear."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from cjm_ml.ingest.mapping import MappingError, load_mapping, shipped_mapping
from cjm_ml.ingest.pipeline import IngestError, ingest
from cjm_ml.simulation import SimulationConfig, simulate
from cjm_ml.simulation.exports import write_raw_exports

SALT = "test-salt-0123456789"
HEADER = (
    "appointment_id,rooftop,department,lead_id,customer_number,first_name,last_name,phone,vin,"
    "source,booked_via,created_at,scheduled_start,status,status_at,status_entered_at,"
    "confirmation_sent,"
    "confirmation_channel,confirmation_sent_at,rescheduled_from"
)
# New York in winter (UTC-5); Denver across the spring change: 02:30 on 9 March 2025 does not
# exist and becomes 03:00 MDT (UTC-6); row 3 is row 2 rescheduled, the same DMS customer.
ROWS = (
    "7001,Northgate Toyota,sales,L1,,Zelda,Quixotely,(201) 555-0101,VIN1,facebook_ads,Phone,"
    "2025-03-01 09:00:00,2025-03-03 10:30:00,shown,2025-03-03 10:40:00,,Y,Text,"
    "2025-03-01 09:05:00,",
    "7002,Summit Ford,service,,100900,Yusuf,Wunderbaum,3035550102,VIN2,,Online,"
    "2025-03-09 02:30:00,2025-03-10 08:00:00,rescheduled,2025-03-09 10:00:00,,N,,,",
    "7003,Summit Ford,service,,100900,Yusuf,Wunderbaum,3035550102,VIN2,,Online,"
    "2025-03-09 10:00:00,2025-03-12 09:30:00,no-show,2025-03-12 10:00:00,2025-03-13 08:00:00,"
    "Y,Email,"
    "2025-03-11 08:00:00,7002",
)


def _scheduler_export(tmp_path: Path) -> Path:
    path = tmp_path / "appointments.csv"
    path.write_text("\n".join([HEADER, *ROWS]) + "\n")
    return path


def _row(
    event_id: str, customer: str, rooftop: str, ts: str, event_type: str, **rest: object
) -> dict[str, object]:
    return {
        "event_id": event_id,
        "dealer_group_id": "dg-01",
        "rooftop_id": rooftop,
        "customer_id": customer,
        "ts": pd.Timestamp(ts),
        "event_type": event_type,
        "channel": rest.get("channel"),
        "source": rest.get("source"),
        "vehicle_id": rest.get("vehicle_id"),
        "value": rest.get("value"),
        "attributes": rest.get("attributes"),
        "recorded_ts": rest.get("recorded_ts"),
    }


def _dataset(data_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(data_dir / "events")


def test_three_scheduler_rows_become_exact_canonical_events(tmp_path: Path) -> None:
    report = ingest(
        shipped_mapping("scheduler_appointments"),
        [_scheduler_export(tmp_path)],
        data_dir=tmp_path / "data",
        salt=SALT,
    )
    assert (report.rows_read, report.events_written, report.new_customers) == (3, 7, 2)
    assert (report.nonexistent_times, report.ambiguous_times, report.refused_rows) == (1, 0, 0)
    a1, a3 = '{"appointment_id": "7001"}', '{"appointment_id": "7003"}'
    expected = [
        _row("scheduler:7001:booking", "cu-00000001", "rt-01", "2025-03-01T14:00Z",
             "appointment_set", channel="phone", source="facebook_ads", vehicle_id="VIN1",
             value=49.5,
             attributes='{"appointment_id": "7001", "scheduled_ts": "2025-03-03T15:30:00Z"}'),
        _row("scheduler:7001:confirmation", "cu-00000001", "rt-01", "2025-03-01T14:05Z",
             "appointment_confirmation_sent", channel="sms", attributes=a1),
        _row("scheduler:7001:outcome", "cu-00000001", "rt-01", "2025-03-03T15:40Z",
             "appointment_showed", channel="in_person", attributes=a1),
        _row("scheduler:7002:booking", "cu-00000002", "rt-04", "2025-03-09T09:00Z",
             "service_appointment_set", channel="web", vehicle_id="VIN2", value=29.0,
             attributes='{"appointment_id": "7002", "scheduled_ts": "2025-03-10T14:00:00Z"}'),
        _row("scheduler:7003:reschedule", "cu-00000002", "rt-04", "2025-03-09T16:00Z",
             "appointment_rescheduled", channel="web", vehicle_id="VIN2", value=71.5,
             attributes='{"appointment_id": "7003", "scheduled_ts": "2025-03-12T15:30:00Z",'
             ' "rescheduled_from": "7002"}'),
        _row("scheduler:7003:confirmation", "cu-00000002", "rt-04", "2025-03-11T14:00Z",
             "appointment_confirmation_sent", channel="email", attributes=a3),
        _row("scheduler:7003:outcome", "cu-00000002", "rt-04", "2025-03-12T16:00Z",
             "appointment_no_show", attributes=a3,
             recorded_ts=pd.Timestamp("2025-03-13T14:00Z")),  # entered the next morning
    ]  # fmt: skip
    got = _dataset(tmp_path / "data").astype(object).where(lambda f: f.notna(), None)
    assert got.to_dict("records") == expected


def test_loading_the_same_export_twice_adds_nothing(tmp_path: Path) -> None:
    mapping, export = shipped_mapping("scheduler_appointments"), _scheduler_export(tmp_path)
    first = ingest(mapping, [export], data_dir=tmp_path / "data", salt=SALT)
    files = sorted((tmp_path / "data" / "events").iterdir())
    again = ingest(mapping, [export], data_dir=tmp_path / "data", salt=SALT)
    assert (first.events_written, first.duplicates_skipped) == (7, 0)
    assert (again.events_written, again.duplicates_skipped, again.new_customers) == (0, 7, 0)
    assert again.path is None
    assert sorted((tmp_path / "data" / "events").iterdir()) == files


NEW_SHAPE = """
source = "scheduler"
dealer_group_id = "dg-07"
row_key = ["Termin"]

[rooftops.values]
"Autohaus Mitte" = { rooftop_id = "rt-berlin", time_zone = "Europe/Berlin" }

[times]
Angelegt = "%d.%m.%Y %H:%M"
Beginn = "%d.%m.%Y %H:%M"
Erledigt = "%d.%m.%Y %H:%M"

[columns]
rooftop = "Filiale"
appointment_id = "Termin"

[events.booking]
event_type = "service_appointment_set"
channel = "phone"
columns = { ts = "Angelegt", scheduled_ts = "Beginn" }

[events.outcome]
[events.outcome.event_types]
column = "Status"
values = { Erschienen = "appointment_showed", Versaeumt = "appointment_no_show" }
skip = ["Offen"]
[events.outcome.columns]
ts = "Erledigt"

[identity]
email = "Mail"
"""


def test_a_new_source_shape_needs_only_a_mapping_file(tmp_path: Path) -> None:
    mapping_file = tmp_path / "werkstatt.toml"
    mapping_file.write_text(NEW_SHAPE)
    export = tmp_path / "termine.csv"
    export.write_text(
        "Termin,Filiale,Mail,Angelegt,Beginn,Status,Erledigt\n"
        "T-1,Autohaus Mitte,kunde.eins@example.test,02.07.2025 08:00,04.07.2025 09:30,"
        "Erschienen,04.07.2025 09:45\n"
        "T-2,Autohaus Mitte,Kunde.Eins@Example.test,10.01.2025 12:00,11.01.2025 12:00,Offen,\n"
    )
    report = ingest(load_mapping(mapping_file), [export], data_dir=tmp_path / "d", salt=SALT)
    assert (report.events_written, report.new_customers) == (3, 1)
    got = _dataset(tmp_path / "d").sort_values("ts")
    assert got["event_id"].tolist() == ["scheduler:T-2:booking", "scheduler:T-1:booking",
                                        "scheduler:T-1:outcome"]  # fmt: skip
    assert got["ts"].dt.strftime("%Y-%m-%dT%H:%M").tolist() == [
        "2025-01-10T11:00",  # CET, UTC+1
        "2025-07-02T06:00",  # CEST, UTC+2
        "2025-07-04T07:45",
    ]
    assert got["value"].tolist()[:2] == [24.0, 49.5]
    assert set(got["customer_id"]) == {"cu-00000001"}  # one email, two spellings


def test_a_column_mapped_to_recorded_ts_is_written_and_checked(tmp_path: Path) -> None:
    """The outcome entered the next morning: its recorded_ts is that time in UTC (the
    booking, whose rule maps none, has none); entered before it happened: refused."""
    mapping_file = tmp_path / "werkstatt.toml"
    mapping_file.write_text(
        NEW_SHAPE.replace('Erledigt = "%d.%m.%Y %H:%M"', 'Erledigt = "%d.%m.%Y %H:%M"\n'
                          'Eingetragen = "%d.%m.%Y %H:%M"')
        .replace('ts = "Erledigt"', 'ts = "Erledigt"\nrecorded_ts = "Eingetragen"')
    )  # fmt: skip
    header = "Termin,Filiale,Mail,Angelegt,Beginn,Status,Erledigt,Eingetragen\n"
    row = "T-1,Autohaus Mitte,a@example.test,02.07.2025 08:00,04.07.2025 09:30,Versaeumt,"
    export = tmp_path / "termine.csv"
    export.write_text(header + row + "04.07.2025 09:45,05.07.2025 08:15\n")
    mapping = load_mapping(mapping_file)
    report = ingest(mapping, [export], data_dir=tmp_path / "d", salt=SALT)
    assert report.events_written == 2
    got = _dataset(tmp_path / "d").sort_values("ts")
    assert got["event_type"].tolist() == ["service_appointment_set", "appointment_no_show"]
    assert got["ts"].dt.strftime("%Y-%m-%dT%H:%M").tolist() == [
        "2025-07-02T06:00",
        "2025-07-04T07:45",
    ]
    assert got["recorded_ts"].isna().tolist() == [True, False]
    assert got["recorded_ts"].iloc[1] == pd.Timestamp("2025-07-05T06:15Z")
    assert str(got["recorded_ts"].dtype) == "datetime64[us, UTC]"
    export.write_text(header + row + "04.07.2025 09:45,04.07.2025 09:00\n")
    with pytest.raises(IngestError) as e:
        ingest(mapping, [export], data_dir=tmp_path / "e", salt=SALT)
    assert str(e.value).startswith(
        "events the event model refuses (termine.csv row 1, rule events.outcome):"
    )
    assert "column 'recorded_ts': recorded_ts is before the event's own ts" in str(e.value)
    assert "rule recorded_before_event" in str(e.value)
    assert not (tmp_path / "e" / "events").exists()


def test_an_unmapped_word_is_refused_naming_file_row_and_column(tmp_path: Path) -> None:
    export = _scheduler_export(tmp_path)
    export.write_text(export.read_text().replace("no-show", "vanished"))
    with pytest.raises(IngestError) as e:
        ingest(shipped_mapping("scheduler_appointments"), [export], data_dir=tmp_path, salt=SALT)
    assert str(e.value).startswith("appointments.csv row 3: column 'status': a word")
    assert not (tmp_path / "events").exists()
    assert not (tmp_path / "identity").exists()


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    group = simulate(SimulationConfig(rooftops=6, customers=300, seed=5))
    raw = write_raw_exports(group, tmp_path_factory.mktemp("raw") / "raw")["rooftops"].parent
    return group.events, raw


def test_the_simulators_exports_match_its_canonical_counts_with_nothing_in_clear(
    simulated: tuple[pd.DataFrame, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    canonical, raw = simulated
    data_dir = tmp_path / "data"
    caplog.set_level(logging.DEBUG)
    for name in ("scheduler_appointments", "dms_repair_orders"):
        report = ingest(shipped_mapping(name), [raw / f"{name}.csv"], data_dir=data_dir, salt=SALT)
        assert report.refused_rows == 0
    events = _dataset(data_dir)
    types = events["event_type"].astype(str).unique()
    count = ["rooftop_id", "event_type"]
    want = canonical[canonical["event_type"].isin(types)].groupby(count, observed=True).size()
    assert events.groupby(count, observed=True).size().sort_index().equals(want.sort_index())
    assert {"appointment_showed", "appointment_no_show", "repair_order_closed"} <= set(types)

    contacts = pd.read_csv(raw / "scheduler_appointments.csv", dtype=str)
    fake = {
        v
        for column in ("first_name", "last_name", "phone")
        for v in contacts[column].dropna()
        if len(v) >= 4
    }
    digits = {"".join(c for c in v if c.isdigit()) for v in contacts["phone"].dropna()}
    written = b"".join(p.read_bytes() for p in data_dir.rglob("*") if p.is_file())
    for value in fake | digits:
        assert value.encode() not in written
        assert value not in caplog.text


README_EXPORT = """Appt No,Store,Dept,Booked Via,Booked,Start,Result,Closed,Conf Sent,Conf Time,First,Last,Phone,Email,Cust No,VIN,Lead ID
A1,Summit Ford,Service,Phone,03/02/2026 10:00,03/05/2026 09:00,Kept,2026-03-05T16:10:00,Y,03/03/2026 12:00,Ann,Lee,303-555-0100,ann@example.com,C1,,
A2,Lakeside Honda,Sales,Web,03/02/2026 11:00,03/04/2026 15:00,Open,,N,,Bo,Ray,,bo@example.com,,,L9
"""  # noqa: E501


def test_the_readmes_example_mapping_ingests_its_export(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    example = readme.split("**Writing a mapping.**")[1].split("```toml\n")[1].split("```")[0]
    (tmp_path / "example.toml").write_text(example)
    export = tmp_path / "appointments.csv"
    export.write_text(README_EXPORT)
    report = ingest(load_mapping(tmp_path / "example.toml"), [export], data_dir=tmp_path, salt=SALT)
    assert (report.events_written, report.new_customers) == (4, 2)
    got = _dataset(tmp_path).sort_values("ts")
    assert got["event_id"].tolist() == [
        "scheduler:A1:booking", "scheduler:A2:booking", "scheduler:A1:confirmation",
        "scheduler:A1:outcome",
    ]  # fmt: skip
    assert got["event_type"].astype(str).tolist() == [
        "service_appointment_set", "appointment_set", "appointment_confirmation_sent",
        "appointment_showed",
    ]  # fmt: skip
    assert got["ts"].dt.strftime("%Y-%m-%dT%H:%M").tolist() == [
        "2026-03-02T17:00",  # Denver, MST (UTC-7)
        "2026-03-02T17:00",  # the default zone, Chicago, CST (UTC-6)
        "2026-03-03T19:00",
        "2026-03-05T16:10",  # given in UTC
    ]
    assert got["rooftop_id"].astype(str).tolist() == ["rt-04", "rt-02", "rt-04", "rt-04"]
    assert got["value"].tolist()[:2] == [71.0, 52.0]  # hours from booking to start


PROFILES = """
source = "customers"
dealer_group_id = "dg-07"
row_key = ["Kunde"]

[rooftops.values]
"Autohaus Mitte" = { rooftop_id = "rt-berlin", time_zone = "Europe/Berlin" }

[times]
Angelegt = "%d.%m.%Y"
Garantie = "%d.%m.%Y"

[columns]
rooftop = "Filiale"

[events.profile]
event_type = "contact_preferences_set"
channel = "email"
columns = { ts = "Angelegt" }

[events.profile.attributes]
baujahr = "Baujahr"
garantie_bis = "Garantie"
segment = { column = "Segment", values = { K = "compact", S = "suv" } }

[identity]
dms_customer_number = "Kunde"
"""


def test_an_exports_other_columns_become_attributes_declared_features_read(
    tmp_path: Path,
) -> None:
    from cjm_ml.events import load_events
    from cjm_ml.features.declared import declared_columns
    from cjm_ml.featureset import DeclaredFeature

    (tmp_path / "profiles.toml").write_text(PROFILES)
    export = tmp_path / "kunden.csv"
    export.write_text(
        "Kunde,Filiale,Angelegt,Baujahr,Garantie,Segment\n"
        "K1,Autohaus Mitte,01.03.2025,2021,31.12.2025,S\n"
        "K2,Autohaus Mitte,01.03.2025,,,K\n"
    )
    mapping = load_mapping(tmp_path / "profiles.toml")
    ingest(mapping, [export], data_dir=tmp_path / "d", salt=SALT)
    events = load_events(tmp_path / "d" / "events").sort_values("event_id")
    assert events["attributes"].tolist() == [
        '{"baujahr": "2021", "garantie_bis": "2025-12-30T23:00:00Z", "segment": "suv"}',
        '{"segment": "compact"}',
    ]
    age = DeclaredFeature(
        name="vehicle_age", label="Vehicle age", event_type="contact_preferences_set",
        attribute="baujahr", take="years_since",
    )  # fmt: skip
    warranty = DeclaredFeature(
        name="warranty_days", label="Warranty left", event_type="contact_preferences_set",
        attribute="garantie_bis", take="days_until",
    )  # fmt: skip
    instances = events[["customer_id"]].assign(cutoff_ts=pd.Timestamp("2025-06-01T00:00Z"))
    got = declared_columns(events, instances, [age, warranty])
    assert got["vehicle_age"].iloc[0] == pytest.approx(1612 / 365.25)  # 1 Jan 2021 to 1 Jun 2025
    assert got["warranty_days"].iloc[0] == pytest.approx(212 + 23 / 24)  # 31 Dec 2025, Berlin
    assert got[["vehicle_age", "warranty_days"]].iloc[1].isna().all()


@pytest.mark.parametrize(
    ("attributes", "error"),
    [
        ('Baujahr = "Baujahr"', "attributes.Baujahr: lower case letters, digits and _"),
        ('status = "Baujahr"', "attributes.status: a canonical field: map it in columns"),
    ],
)
def test_an_attribute_is_named_apart_from_the_canonical_fields(
    tmp_path: Path, attributes: str, error: str
) -> None:
    text = PROFILES.replace('baujahr = "Baujahr"', attributes)
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(MappingError) as e:
        load_mapping(tmp_path / "bad.toml")
    assert f"bad.toml: events.profile.{error}" in str(e.value)
