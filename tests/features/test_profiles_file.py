"""The shipped features file over the deal's vehicle and buyer profile: it loads, reads the
simulated deliveries with the values the simulator drew, and sees a delivery only once it was
known before the cutoff."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cjm_ml.events import TS_DTYPE
from cjm_ml.features.declared import declared_columns
from cjm_ml.features.instances import build_instances
from cjm_ml.featureset import PROFILE_FEATURES, DeclaredFeature, load_features_file
from cjm_ml.simulation import SimulatedGroup
from cjm_ml.simulation.assumptions import load_assumptions
from tests.features.journeys import DAY0, at, events

NAMES = [
    "vehicle_age_years",
    "warranty_days_left",
    "mileage_at_delivery",
    "model_line",
    "buyer_age_band",
]


@pytest.fixture(scope="module")
def profiles() -> tuple[DeclaredFeature, ...]:
    return load_features_file(PROFILE_FEATURES)


def test_the_profiles_file_declares_the_deal_profile_for_service_defection(
    profiles: tuple[DeclaredFeature, ...],
) -> None:
    assert [f.name for f in profiles] == NAMES
    assert {f.event_type for f in profiles} == {"vehicle_delivery"}
    assert [f.attribute for f in profiles] == [
        "model_year", "warranty_end", "mileage", "model_line", "age_band"
    ]  # fmt: skip
    assert [f.unit for f in profiles] == ["years", "days_until", "number", "category", "category"]
    assert all(f.tasks == ("service_defection",) and not f.actionable for f in profiles)


def test_on_a_simulated_group_every_delivered_buyer_has_the_profile(
    small_group: SimulatedGroup, profiles: tuple[DeclaredFeature, ...]
) -> None:
    v = load_assumptions().vehicles
    instances = build_instances(small_group.events, "service_defection")
    values = declared_columns(small_group.events, instances, profiles)
    assert len(values) == len(instances) > 1_000
    assert values.notna().all().all()
    # years from 1 January of the model year to the cutoff, a week after delivery: new
    # vehicles 0 to 1, used ones up to used_age_years (high end excluded) and a week more
    age = values["vehicle_age_years"]
    assert age.min() >= 0
    assert age.max() < v.used_age_years[1] + 8 / 365.25
    assert set(np.floor(age).astype(int)) >= set(range(v.used_age_years[1]))
    left = values["warranty_days_left"]
    assert 0 < (left < 0).mean() < 0.4  # used vehicles out of warranty
    assert left.max() <= v.warranty_years * 366
    assert set(values["model_line"]) == set(v.model_lines)
    assert set(values["buyer_age_band"]) == set(v.buyer_age_bands)
    assert values["mileage_at_delivery"].min() >= v.new_miles[0]


def _delivery(recorded: str | None) -> pd.DataFrame:
    """c-1 takes delivery on day 10 of a 2021 vehicle whose warranty ends on day 40;
    ``recorded``: when the DMS recorded the deal, if later."""
    profile = {"model_year": "2021", "warranty_end": at(40)[:10], "mileage": "31000",
               "model_line": "Pickup", "age_band": "55+"}  # fmt: skip
    table = events(
        [
            {
                "ts": at(10),
                "event_type": "vehicle_delivery",
                "channel": "in_person",
                "attributes": profile,
            }
        ]
    )
    moment = pd.to_datetime(pd.Series([recorded]), utc=True).astype(TS_DTYPE)
    return table.assign(recorded_ts=moment.to_numpy())


def _at(*days: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.array(["c-1"] * len(days), dtype="string"),
            "cutoff_ts": [DAY0 + pd.Timedelta(days=d) for d in days],
        }
    )


def test_a_delivery_is_seen_only_once_known_before_the_cutoff(
    profiles: tuple[DeclaredFeature, ...],
) -> None:
    on_time = declared_columns(_delivery(None), _at(10, 11, 50), profiles)
    assert on_time["warranty_days_left"].tolist()[1:] == [29.0, -10.0]
    assert on_time["mileage_at_delivery"].tolist()[1:] == [31000.0, 31000.0]
    assert on_time["buyer_age_band"].tolist()[1:] == ["55+", "55+"]
    assert on_time.iloc[0].isna().all()  # not strictly before a cutoff at the delivery
    years = (DAY0 + pd.Timedelta(days=11) - pd.Timestamp("2021-01-01", tz="UTC")).days / 365.25
    assert on_time["vehicle_age_years"].iloc[1] == pytest.approx(years)
    # the deal entered in the DMS on day 20: a cutoff on day 11 does not see it yet
    late = declared_columns(_delivery(at(20)), _at(11, 20, 21), profiles)
    assert late.iloc[0].isna().all() and late.iloc[1].isna().all()
    assert late["warranty_days_left"].iloc[2] == 19.0
