"""The vehicle and buyer profile the simulator draws at delivery: carried by the delivery
events, written to the DMS deal export and vehicles.csv, read back exactly through the shipped
mapping, and a cause of service defection (older vehicles, ended warranties)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cjm_ml.events import load_events
from cjm_ml.ingest.mapping import shipped_mapping
from cjm_ml.ingest.pipeline import ingest
from cjm_ml.simulation import SimulatedGroup, SimulationConfig, simulate
from cjm_ml.simulation.assumptions import load_assumptions
from cjm_ml.simulation.exports import DEAL_PROFILE, VEHICLE_PROFILE, RawExports, raw_exports

CONFIG = SimulationConfig(rooftops=4, customers=1_500, seed=5)
PROFILE = ("condition", "model_line", "model_year", "mileage", "warranty_end", "age_band")
SALT = "test-salt-0123456789"


@pytest.fixture(scope="module")
def group() -> SimulatedGroup:
    return simulate(CONFIG)


@pytest.fixture(scope="module")
def exports(group: SimulatedGroup) -> RawExports:
    return raw_exports(group)


def _profiles(group: SimulatedGroup) -> pd.DataFrame:
    """One row per delivery: its event id, vehicle, time and the profile's attributes."""
    ev = group.events
    d = ev[ev["event_type"] == "vehicle_delivery"].reset_index(drop=True)
    out = d[["event_id", "vehicle_id", "ts", "attributes"]].copy()
    for key in PROFILE:
        out[key] = d["attributes"].str.extract(f'"{key}": "([^"]*)"')[0]
    return out


def _canonical(exports: RawExports, export: str) -> pd.Series:
    t = exports.truth_identity
    return t[t["export"] == export].set_index("raw_id")["canonical_id"]


def test_every_delivery_carries_the_profile_in_range(group: SimulatedGroup) -> None:
    v = load_assumptions().vehicles
    p = _profiles(group)
    assert len(p) > 100
    assert p[list(PROFILE)].notna().all().all()
    # the attributes in the order the shipped dms_deals mapping writes them
    assert set(p["attributes"].str.findall(r'"(\w+)":').map(tuple)) == {PROFILE}
    year = p["ts"].dt.year
    age = year - p["model_year"].astype(int)
    used = p["condition"] == "used"
    assert (age[~used] == 0).all()
    assert set(age[used]) == set(range(*v.used_age_years))
    miles = p["mileage"].astype(int)
    low, high = v.new_miles
    assert miles[~used].between(round(low), round(high)).all()
    per_year = miles[used] / age[used]
    assert per_year.between(v.miles_per_year[0] - 1, v.miles_per_year[1] + 1).all()
    expected_end = (p["model_year"].astype(int) + v.warranty_years - 1).astype(str) + "-12-31"
    assert p["warranty_end"].eq(expected_end).all()
    assert set(p["model_line"]) == set(v.model_lines)
    assert set(p["age_band"]) == set(v.buyer_age_bands)
    ended = pd.to_datetime(p["warranty_end"]).dt.tz_localize("UTC") < p["ts"]
    assert 0 < ended.sum() < used.sum()  # some used vehicles are out of warranty, no new one


def test_a_buyers_age_band_is_the_same_on_every_delivery_and_keeps_its_shares() -> None:
    group = simulate(SimulationConfig(rooftops=4, customers=6_000, seed=8))
    deliveries = group.events[group.events["event_type"] == "vehicle_delivery"]
    band = deliveries["attributes"].str.extract(r'"age_band": "([^"]*)"')[0]
    assert band.groupby(deliveries["customer_id"].to_numpy()).nunique().max() == 1
    v = load_assumptions().vehicles
    shares = band.value_counts(normalize=True).reindex(list(v.buyer_age_bands))
    assert np.allclose(shares.to_numpy(), v.buyer_age_band_shares, atol=0.05)


def test_the_deal_export_and_vehicles_csv_agree_with_the_delivery_events(
    group: SimulatedGroup, exports: RawExports
) -> None:
    p = _profiles(group)
    deals = exports.tables["dms_deals"].drop_duplicates()
    deals.index = deals["deal_number"].map(_canonical(exports, "dms_deals")).to_numpy()
    by_event = p.set_index("event_id").loc[deals.index]
    for column, attribute in DEAL_PROFILE.items():
        assert deals[column].astype(str).tolist() == by_event[attribute].tolist(), column
    vehicles = exports.tables["vehicles"].drop_duplicates()
    assert vehicles.columns.tolist() == ["vin", *VEHICLE_PROFILE]
    vehicle_id = vehicles["vin"].map(_canonical(exports, "vehicles"))
    delivered = p.drop_duplicates("vehicle_id").set_index("vehicle_id")
    seen = vehicle_id.isin(delivered.index).to_numpy()
    assert seen.sum() == len(delivered)
    for key in VEHICLE_PROFILE:
        written = vehicles.loc[seen, key].astype(str).tolist()
        assert written == delivered.loc[vehicle_id[seen], key].tolist(), key
    # vehicles never delivered keep a drawn profile
    assert (~seen).sum() > 0
    assert vehicles.loc[~seen, list(VEHICLE_PROFILE)].notna().all().all()


def test_the_shipped_mapping_reads_the_profile_back_exactly(
    group: SimulatedGroup, exports: RawExports, tmp_path: Path
) -> None:
    deals = tmp_path / "dms_deals.csv"
    exports.tables["dms_deals"].to_csv(deals, index=False)
    report = ingest(shipped_mapping("dms_deals"), [deals], data_dir=tmp_path, salt=SALT)
    assert report.refused_rows == 0
    ingested = load_events(tmp_path / "events")
    row_key = ingested["event_id"].str.extract(r"^dms_deals:(.*):delivery$")[0]
    canonical = row_key.map(_canonical(exports, "dms_deals"))
    simulated = _profiles(group).set_index("event_id")["attributes"]
    assert len(ingested) == len(simulated)
    assert ingested["attributes"].tolist() == simulated.loc[canonical.to_numpy()].tolist()


def _used_deliveries_with_labels(group: SimulatedGroup) -> pd.DataFrame:
    p = _profiles(group).rename(columns={"event_id": "instance_id"})
    truth = group.truth["service_defection"].merge(p, on="instance_id")
    used = truth[(truth["condition"] == "used") & truth["label"].notna()].copy()
    used["age"] = used["ts"].dt.year - used["model_year"].astype(int)
    end = pd.to_datetime(used["warranty_end"]).dt.tz_localize("UTC")
    used["ended"] = end < used["ts"] + pd.Timedelta(days=180)
    return used


def test_owners_of_old_or_out_of_warranty_vehicles_defect_more(
    small_group: SimulatedGroup,
) -> None:
    # Among used vehicles only (the used-vehicle term is the same for all): without the
    # profile's terms both gaps are about 0.03 on this group; with them about 0.18.
    used = _used_deliveries_with_labels(small_group)
    assert len(used) > 500
    old, young = used.loc[used["age"] >= 5, "label"], used.loc[used["age"] <= 2, "label"]
    assert old.mean() - young.mean() > 0.1, (old.mean(), young.mean())
    ended = used.loc[used["ended"], "label"].mean() - used.loc[~used["ended"], "label"].mean()
    assert ended > 0.1
    terms = small_group.truth["service_defection"]
    assert {"term_vehicle_age", "term_warranty_ended", "term_buyer_age_band"} <= set(terms)
    assert 0.30 <= terms["label"].mean() <= 0.50
