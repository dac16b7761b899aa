"""Declared features: the features file's checks, each take with exact values on hand-written
journeys, only what was known before the cutoff, and the generic features of the catalogue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cjm_ml.events import catalogue
from cjm_ml.features.declared import declared_columns
from cjm_ml.featureset import (
    GENERIC_WINDOWS_DAYS,
    DeclaredFeature,
    FeaturesFileError,
    generic_features,
    load_features_file,
)
from tests.features.journeys import DAY0, at, events

PROFILE = "contact_preferences_set"


def _journey() -> pd.DataFrame:
    """c-1: a profile on day 0 (tenure from 2019-05-01, age band 35-44, loyalty Y, warranty to
    day 40), a newer one on day 20 (age band 45-54, loyalty n); SMS replies on days 1, 9, 25 with
    values 2, 4, 6. c-2: nothing but one SMS reply on day 5 without a value."""
    profile = {"age_band": "35-44", "since": "2019-05-01", "loyal": "Y",
               "warranty_end": at(40)[:10], "model_year": "2021"}  # fmt: skip
    newer = {**profile, "age_band": "45-54", "loyal": "n"}
    return events(
        [
            {"ts": at(0), "event_type": PROFILE, "channel": "sms", "attributes": profile},
            {"ts": at(1), "event_type": "sms_replied", "channel": "sms", "value": 2},
            {"ts": at(9), "event_type": "sms_replied", "channel": "sms", "value": 4},
            {"ts": at(20), "event_type": PROFILE, "channel": "sms", "attributes": newer},
            {"ts": at(25), "event_type": "sms_replied", "channel": "sms", "value": 6},
            {"ts": at(5), "event_type": "sms_replied", "channel": "sms", "customer_id": "c-2"},
        ]
    )


def _instances(*pairs: tuple[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.array([c for c, _ in pairs], dtype="string"),
            "cutoff_ts": [DAY0 + pd.Timedelta(days=d) for _, d in pairs],
        }
    )


def _feature(**kwargs: object) -> DeclaredFeature:
    return DeclaredFeature.model_validate({"name": "f", "label": "F", **kwargs})


def _values(feature: DeclaredFeature, *pairs: tuple[str, float]) -> list[object]:
    column = declared_columns(_journey(), _instances(*pairs), [feature])["f"]
    return [None if pd.isna(v) else v for v in column.tolist()]


def test_latest_takes_the_newest_known_value_of_each_kind() -> None:
    band = _feature(event_type=PROFILE, attribute="age_band", kind="category")
    assert _values(band, ("c-1", 10), ("c-1", 20), ("c-1", 21), ("c-2", 30)) == [
        "35-44", "35-44", "45-54", None  # day 20's profile is not known *before* day 20
    ]  # fmt: skip
    loyal = _feature(event_type=PROFILE, attribute="loyal", kind="flag")
    assert _values(loyal, ("c-1", 10), ("c-1", 30), ("c-1", 0)) == [1.0, 0.0, None]
    year = _feature(event_type=PROFILE, attribute="model_year")
    assert _values(year, ("c-1", 10)) == [2021.0]


def test_counts_means_and_sums_over_a_window() -> None:
    count = _feature(event_type="sms_replied", take="count")
    assert _values(count, ("c-1", 9), ("c-1", 10), ("c-1", 30), ("c-2", 30)) == [1, 2, 3, 1]
    week = _feature(event_type="sms_replied", take="count", window_days=7)
    assert _values(week, ("c-1", 10), ("c-1", 30)) == [1, 1]
    # The value column of an event is not an attribute: a mean reads an attribute.
    mean = _feature(event_type=PROFILE, attribute="model_year", take="mean")
    assert _values(mean, ("c-1", 30), ("c-2", 30)) == [2021.0, None]
    total = _feature(event_type=PROFILE, attribute="model_year", take="sum", window_days=15)
    assert _values(total, ("c-1", 10), ("c-1", 30)) == [2021.0, 2021.0]


def test_days_since_and_until_read_dates_times_and_years() -> None:
    since = _feature(event_type="sms_replied", take="days_since")
    assert _values(since, ("c-1", 10), ("c-1", 1)) == [1.0, None]
    tenure = _feature(event_type=PROFILE, attribute="since", take="years_since")
    (years,) = _values(tenure, ("c-1", 10))
    assert years == pytest.approx(((DAY0 + pd.Timedelta(days=10)) - pd.Timestamp(
        "2019-05-01T00:00:00Z")).days / 365.25)  # fmt: skip
    age = _feature(event_type=PROFILE, attribute="model_year", take="years_since")
    (vehicle_age,) = _values(age, ("c-1", 10))
    assert vehicle_age == pytest.approx((pd.Timestamp("2025-06-12") - pd.Timestamp(
        "2021-01-01")).days / 365.25)  # fmt: skip
    warranty = _feature(event_type=PROFILE, attribute="warranty_end", take="days_until")
    assert _values(warranty, ("c-1", 10), ("c-1", 45)) == [30.0, -5.0]


def test_nothing_at_or_after_the_cutoff_changes_a_declared_feature() -> None:
    journey = _journey()
    features = [
        *generic_features(["sms_replied", PROFILE]),
        _feature(name="band", event_type=PROFILE, attribute="age_band", kind="category"),
        _feature(name="mean_year", event_type=PROFILE, attribute="model_year", take="mean"),
    ]
    for day in (0.5, 1, 9, 20, 25, 26):
        instances = _instances(("c-1", day))
        whole = declared_columns(journey, instances, features)
        cutoff = instances["cutoff_ts"].iloc[0]
        cut = declared_columns(journey[journey["ts"] < cutoff], instances, features)
        pd.testing.assert_frame_equal(whole, cut)


def test_generic_features_cover_every_touchpoint_with_catalogue_wording() -> None:
    every = generic_features()
    keys = catalogue().event_type_keys
    assert len(every) == len(keys) * (len(GENERIC_WINDOWS_DAYS) + 1)
    names = [f.name for f in every]
    assert len(set(names)) == len(names)
    assert names[:3] == [f"{keys[0]}_7d", f"{keys[0]}_30d", f"days_since_{keys[0]}"]
    sms = {f.name: f for f in generic_features(["sms_replied"])}
    label = catalogue().event_type("sms_replied").label
    assert sms["sms_replied_30d"].label == f"{label}, last 30 days"
    table = declared_columns(_journey(), _instances(("c-1", 26)), list(sms.values()))
    assert table.iloc[0].tolist() == [1.0, 3.0, 1.0]


def test_a_features_file_is_read_in_order(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        '[features.vehicle_age_years]\nlabel = "Vehicle age"\n'
        f'event_type = "{PROFILE}"\nattribute = "model_year"\ntake = "years_since"\n'
        'tasks = ["service_defection"]\n\n'
        f'[features.age_band]\nlabel = "Age band"\nevent_type = "{PROFILE}"\n'
        'attribute = "age_band"\nkind = "category"\n'
    )
    first, second = load_features_file(path)
    assert (first.name, first.tasks, first.journey_stage) == (
        "vehicle_age_years",
        ("service_defection",),
        catalogue().stage_of(PROFILE).key,
    )
    assert (second.name, second.kind, second.take) == ("age_band", "category", "latest")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('label = "X"\nevent_type = "vdp_views"', "features.x.event_type: unknown event type"),
        ('label = "X"\nevent_type = "vdp_view"\ncolour = 1', "features.x.colour: unknown key"),
        ('event_type = "vdp_view"\ntake = "count"', "features.x.label: missing"),
        ('label = "X"\nevent_type = "vdp_view"', "take 'latest' reads an attribute"),
        (
            'label = "X"\nevent_type = "vdp_view"\nattribute = "a"\nkind = "flag"\ntake = "mean"',
            "a flag is taken as 'latest', not 'mean'",
        ),
        (
            'label = "X"\nevent_type = "vdp_view"\ntake = "days_since"\nwindow_days = 7',
            "take 'days_since' has no window",
        ),
    ],
)
def test_a_bad_features_file_is_refused_by_key_path(tmp_path: Path, body: str, error: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f"[features.x]\n{body}\n")
    with pytest.raises(FeaturesFileError) as e:
        load_features_file(path)
    assert str(e.value).startswith("bad.toml: features.x")
    assert error in str(e.value)


def test_a_missing_or_broken_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FeaturesFileError, match="no such features file"):
        load_features_file(tmp_path / "none.toml")
    (tmp_path / "broken.toml").write_text("[features\n")
    with pytest.raises(FeaturesFileError, match=r"broken\.toml: not valid TOML"):
        load_features_file(tmp_path / "broken.toml")


def test_declared_columns_are_vectorised_over_many_instances() -> None:
    journey = _journey()
    days = np.linspace(0, 30, 2_000)
    instances = _instances(*(("c-1", d) for d in days))
    count = _feature(event_type="sms_replied", take="count")
    got = declared_columns(journey, instances, [count])["f"].to_numpy()
    replies = np.array([1, 9, 25])
    assert (got == (replies[None, :] < days[:, None]).sum(axis=1)).all()


def test_an_event_recorded_late_counts_only_once_known() -> None:
    journey = _journey()
    newer = journey["event_type"].eq(PROFILE) & journey["ts"].gt(DAY0)
    # The day-20 profile (model year 2023 here) was only written into the system on day 23.
    attrs = journey.loc[newer, "attributes"].str.replace('"2021"', '"2023"')
    journey.loc[newer, "attributes"] = attrs
    journey["recorded_ts"] = pd.Series(pd.NaT, index=journey.index, dtype=journey["ts"].dtype)
    journey.loc[newer, "recorded_ts"] = DAY0 + pd.Timedelta(days=23)
    features = [
        _feature(name="band", event_type=PROFILE, attribute="age_band", kind="category"),
        _feature(name="mean_year", event_type=PROFILE, attribute="model_year", take="mean"),
        _feature(name="profiles", event_type=PROFILE, take="count"),
    ]
    table = declared_columns(journey, _instances(("c-1", 21), ("c-1", 24)), features)
    assert table.to_dict("list") == {
        "band": ["35-44", "45-54"],
        "mean_year": [2021.0, 2022.0],
        "profiles": [1.0, 2.0],
    }
