"""The simulator's raw exports: each canonical record once in its system, with the mess real
exports have (naive local times, ids per system, spellings, duplicates), deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cjm_ml.cli.main import app
from cjm_ml.events import catalogue
from cjm_ml.simulation import SimulatedGroup, SimulationConfig, simulate
from cjm_ml.simulation.assumptions import load_assumptions
from cjm_ml.simulation.exports import (
    ADF_LEADS,
    BOOKINGS,
    CRM_ACTIVITIES,
    CRM_LEADS,
    LEAD_CLOSURES,
    OUTCOMES,
    RO_STEPS,
    WEB_PAGES,
    RawExports,
    raw_exports,
)

CONFIG = SimulationConfig(rooftops=4, customers=600, seed=3)


@pytest.fixture(scope="module")
def group() -> SimulatedGroup:
    return simulate(CONFIG)


@pytest.fixture(scope="module")
def exports(group: SimulatedGroup) -> RawExports:
    return raw_exports(group)


def _count(group: SimulatedGroup, *types: str) -> int:
    return int(group.events["event_type"].isin(types).sum())


def _attr(events: pd.DataFrame, key: str) -> pd.Series:
    return events["attributes"].str.extract(f'"{key}": "([^"]+)"')[0]


def _truth(exports: RawExports, export: str) -> pd.DataFrame:
    t = exports.truth_identity
    return t[t["export"] == export].set_index("raw_id")


def test_every_event_type_has_one_home_in_the_exports() -> None:
    homes = [
        *ADF_LEADS,
        *CRM_LEADS,
        *WEB_PAGES,
        *CRM_ACTIVITIES,
        *BOOKINGS,
        *OUTCOMES,
        "appointment_confirmation_sent",
        *RO_STEPS,
        "vehicle_delivery",
        "contact_preferences_set",
        "lead_closed",  # crm_leads.csv: closed_at and the status
    ]
    assert set(homes) == set(catalogue().event_type_keys)
    # only the credit application has two homes, split by channel (web or in the store)
    assert [t for t in set(homes) if homes.count(t) > 1] == ["credit_application"]


def test_each_lead_is_in_exactly_one_lead_source(
    group: SimulatedGroup, exports: RawExports
) -> None:
    ev = group.events
    adf_files = {k: v for k, v in exports.adf_files.items() if k != "third_party_leads.xml"}
    batch = exports.adf_files["third_party_leads.xml"].split('<?xml version="1.0"')[1:]
    assert len(adf_files) == _count(group, "lead_form")
    assert len(set(batch)) == _count(group, "lead_third_party")
    # The CRM lists every lead; the ADF leads' rows there carry no lead event of their own.
    crm = exports.tables["crm_leads"].drop_duplicates()
    assert len(crm) == _count(group, *ADF_LEADS, *CRM_LEADS)
    assert crm["lead_id"].is_unique
    own = crm["lead_type"].isin(list(CRM_LEADS.values()))
    assert int(own.sum()) == _count(group, *CRM_LEADS)
    assert sorted(crm.loc[~own, "lead_type"].unique()) == ["Internet", "Third Party"]
    in_adf = set(_truth(exports, "adf")["canonical_id"])
    in_crm = set(_truth(exports, "crm_leads")["canonical_id"])
    leads = ev.loc[ev["event_type"].isin([*ADF_LEADS, *CRM_LEADS]), "event_id"]
    assert in_adf <= in_crm == set(leads)


def test_each_closed_lead_carries_its_closing_time_and_status(
    group: SimulatedGroup, exports: RawExports
) -> None:
    ev = group.events
    crm = exports.tables["crm_leads"].drop_duplicates()
    closed = ev[ev["event_type"] == "lead_closed"]
    assert int(crm["closed_at"].notna().sum()) == len(closed)
    counts = _attr(closed, "status").value_counts().to_dict()
    words = crm.loc[crm["closed_at"].notna(), ["status", "lost_reason"]].fillna("-")
    assert words.value_counts().to_dict() == {
        (status, reason or "-"): counts[canonical]
        for canonical, (status, reason) in LEAD_CLOSURES.items()
        if canonical in counts
    }
    # open leads carry what followed them, and no closing time or lost reason
    open_ = crm[crm["closed_at"].isna()]
    assert set(open_["status"]) <= {"Active", "Appointment Set", "Working", "Inactive"}
    assert open_["lost_reason"].isna().all()


def test_each_appointment_once_in_the_scheduler_with_its_outcome(
    group: SimulatedGroup, exports: RawExports
) -> None:
    ev = group.events
    table = exports.tables["scheduler_appointments"].drop_duplicates()
    booked = _attr(ev[ev["event_type"].isin(BOOKINGS)], "appointment_id")
    assert len(table) == booked.nunique() == len(booked)
    assert table["appointment_id"].is_unique
    status = table["status"].value_counts()
    for event_type, word in OUTCOMES.items():
        assert status[word] == _count(group, event_type), word
    assert status["rescheduled"] == _count(group, "appointment_rescheduled")
    assert table["rescheduled_from"].notna().sum() == _count(group, "appointment_rescheduled")
    assert (table["confirmation_sent"] == "Y").sum() == _count(
        group, "appointment_confirmation_sent"
    )
    sales = table["department"] == "sales"
    assert (sales & table["rescheduled_from"].isna()).sum() == _count(group, "appointment_set")
    # sales appointments name the lead, service ones the DMS customer number
    assert table.loc[sales, "lead_id"].notna().all()
    assert table.loc[~sales, "customer_number"].notna().all()


def test_each_delivery_repair_order_hit_and_activity_once(
    group: SimulatedGroup, exports: RawExports
) -> None:
    ev = group.events
    t = exports.tables
    assert len(t["dms_deals"].drop_duplicates()) == _count(group, "vehicle_delivery")
    ro_ids = _attr(ev[ev["event_type"].isin(RO_STEPS)], "ro_id")
    ros = t["dms_repair_orders"].drop_duplicates()
    assert len(ros) == ro_ids.nunique()
    assert ros["closed_at"].notna().sum() == _count(group, "repair_order_closed")
    assert ros["mpi_approved_at"].notna().sum() == _count(group, "mpi_approved")
    web = (
        ev["event_type"].isin(WEB_PAGES)
        & ~((ev["event_type"] == "credit_application") & (ev["channel"] != "web"))
    ).sum()
    assert len(t["web_events"].drop_duplicates()) == web
    in_store_credit = ((ev["event_type"] == "credit_application") & (ev["channel"] != "web")).sum()
    activities = _count(group, *CRM_ACTIVITIES) - _count(group, "credit_application")
    assert len(t["crm_activities"].drop_duplicates()) == activities + in_store_credit
    assert len(t["customers"].drop_duplicates()) == ev["customer_id"].nunique()
    assert len(t["vehicles"].drop_duplicates()) == ev["vehicle_id"].nunique()


def test_naive_local_times_convert_back_to_the_canonical_utc_times(
    group: SimulatedGroup, exports: RawExports
) -> None:
    rows = exports.tables["crm_activities"].drop_duplicates()
    zones = exports.tables["rooftops"].set_index("name")["time_zone"]
    local = pd.to_datetime(rows["activity_time"], format="%m/%d/%Y %H:%M:%S")
    utc = pd.Series(pd.NaT, index=rows.index, dtype="datetime64[us, UTC]")
    for name, zone in zones.items():
        at = rows["rooftop"] == name
        # the hour repeated when daylight saving time ends is ambiguous: NaT here
        utc[at] = local[at].dt.tz_localize(zone, ambiguous="NaT").dt.tz_convert("UTC")
    canonical = _truth(exports, "crm_activities")["canonical_id"].reindex(rows["activity_id"])
    expected = group.events.set_index("event_id")["ts"].reindex(canonical.to_numpy())
    known = utc.notna().to_numpy()
    assert known.mean() > 0.99
    assert (utc[known].to_numpy() == expected.to_numpy()[known]).all()
    # and the local times are not UTC: at least one rooftop differs by hours
    assert (local.to_numpy()[known] != expected.dt.tz_localize(None).to_numpy()[known]).all()


def test_the_same_customer_has_other_ids_and_spellings_in_each_system(
    exports: RawExports,
) -> None:
    t = exports.truth_identity
    by_kind = {k: set(v) for k, v in t.groupby("id_column")["raw_id"]}
    kinds = ["lead_id", "customer_number", "visitor_id", "appointment_id", "deal_number"]
    for i, a in enumerate(kinds):
        assert not any(x.startswith("c-") for x in by_kind[a])
        for b in kinds[i + 1 :]:
            assert not by_kind[a] & by_kind[b], (a, b)
    # the same person: emails differ in case only, phones in format only
    customers = exports.tables["customers"].drop_duplicates("customer_number")
    leads = exports.tables["crm_leads"].drop_duplicates("lead_id")
    profile = customers.assign(
        customer_id=customers["customer_number"].map(_truth(exports, "customers")["customer_id"])
    ).set_index("customer_id")
    lead_owner = leads["lead_id"].map(_truth(exports, "crm_leads")["customer_id"])
    lead_email, profile_email = leads["email"], profile["email"].reindex(lead_owner).to_numpy()
    has = lead_email.notna().to_numpy()
    assert has.sum() > 50
    assert (
        lead_email.str.lower().to_numpy()[has] == pd.Series(profile_email).str.lower()[has]
    ).all()
    assert (lead_email.to_numpy()[has] != profile_email[has]).any()
    emails = pd.concat([customers["email"], leads["email"]]).dropna()
    assert emails.str.lower().str.endswith(("@example.com", "@example.net", "@example.org")).all()
    assert (emails != emails.str.lower()).any()
    phones = pd.concat([customers["phone"], leads["phone"]]).dropna()
    digits = phones.str.replace(r"\D", "", regex=True).str[-10:]
    assert (digits.str.slice(3, 8) == "55501").all()
    assert phones.str.contains(r"^\(\d{3}\) \d{3}-\d{4}$").any()
    assert phones.str.contains(r"^\d{10}$").any()


def test_a_few_rows_are_written_twice_and_rows_are_out_of_order(exports: RawExports) -> None:
    activities = exports.tables["crm_activities"]
    twice = activities.duplicated().sum()
    share = load_assumptions().exports.duplicate_row_share
    assert 0 < twice < 4 * share * len(activities)
    times = pd.to_datetime(activities["activity_time"], format="%m/%d/%Y %H:%M:%S")
    assert not times.is_monotonic_increasing


def test_same_group_same_exports_and_the_canonical_events_are_untouched(
    group: SimulatedGroup, exports: RawExports
) -> None:
    before = group.events.copy()
    again = raw_exports(group)
    pd.testing.assert_frame_equal(group.events, before)
    for name, table in exports.tables.items():
        pd.testing.assert_frame_equal(table, again.tables[name], obj=name)
    assert exports.adf_files == again.adf_files
    pd.testing.assert_frame_equal(exports.truth_identity, again.truth_identity)


def test_an_offset_without_a_time_zone_is_refused_by_name(group: SimulatedGroup) -> None:
    a = load_assumptions().exports
    zones = {k: v for k, v in a.time_zones.items() if k != -6}
    with pytest.raises(KeyError, match=r"UTC offset\(s\) \[-6\]"):
        raw_exports(group, a.model_copy(update={"time_zones": zones}))


def test_the_command_writes_the_exports_folder_whole(tmp_path: Path) -> None:
    out, raw = tmp_path / "sim", tmp_path / "raw"
    raw.mkdir()
    (raw / "stale.csv").write_text("old\n")
    args = ["simulate", "--rooftops", "2", "--customers", "150", "--seed", "4", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--raw-exports", str(raw), "--no-progress"])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in raw.iterdir())
    assert written == [
        "adf",
        "crm_activities.csv",
        "crm_leads.csv",
        "customers.csv",
        "dms_deals.csv",
        "dms_repair_orders.csv",
        "rooftops.csv",
        "scheduler_appointments.csv",
        "truth_identity.parquet",
        "vehicles.csv",
        "web_events.csv",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    deals = pd.read_csv(raw / "dms_deals.csv", dtype=str)
    events = pd.read_parquet(out / "events.parquet")
    assert len(deals.drop_duplicates()) == int((events["event_type"] == "vehicle_delivery").sum())
    truth = pd.read_parquet(raw / "truth_identity.parquet")
    assert set(deals["deal_number"]) <= set(truth["raw_id"])
    assert np.isin(truth["customer_id"].dropna(), events["customer_id"]).all()
