"""Instances and labels: one-to-one with the simulator's truth, and clear errors on bad input."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cjm_ml.cli.main import app
from cjm_ml.features.instances import (
    NoInstancesError,
    _parse_moments,
    build_instances,
    open_instances,
)
from cjm_ml.features.pipeline import build_feature_table
from cjm_ml.features.timeline import MissingColumnsError, Timeline
from cjm_ml.io import read_parquet_metadata
from cjm_ml.params import TASKS
from cjm_ml.simulation import SimulatedGroup
from tests.features.journeys import at, events


def test_feature_tables_join_one_to_one_with_the_truth(small_group: SimulatedGroup) -> None:
    config = small_group.config
    as_of = pd.Timestamp(config.start) + pd.Timedelta(days=config.days)
    timeline = Timeline(small_group.events)
    for task in TASKS:
        table = build_feature_table(timeline, task, as_of=as_of)
        truth = small_group.truth[task]
        joined = table.merge(
            truth,
            on="instance_id",
            how="outer",
            suffixes=("", "_truth"),
            indicator=True,
            validate="one_to_one",
        )
        # The truth has every anchor; the table leaves out the settled and junk ones.
        assert not (joined["_merge"] == "left_only").any(), task
        left_out = table.attrs["settled_left_out"] + table.attrs.get("bad_or_duplicate_left_out", 0)
        assert (joined["_merge"] == "right_only").sum() == left_out, task
        joined = joined[joined["_merge"] == "both"]
        assert (joined["cutoff_ts"] == joined["cutoff_ts_truth"]).all(), task
        assert joined["label"].isna().equals(joined["label_truth"].isna()), task
        known = joined.dropna(subset=["label"])
        assert (known["label"] == known["label_truth"]).all(), task
        # and the label rate agrees with the truth's own probabilities (within 3 standard
        # errors of a mean of Bernoulli draws)
        p = known["true_prob"]
        bound = 3 * float(np.sqrt((p * (1 - p)).sum())) / len(p)
        assert abs(known["label"].mean() - p.mean()) < bound, task


def test_labels_stay_null_until_the_window_closes(small_group: SimulatedGroup) -> None:
    timeline = Timeline(small_group.events)
    as_of = pd.Timestamp(small_group.config.start) + pd.Timedelta(days=400)
    inst = build_instances(timeline, "service_defection", as_of=as_of)
    assert (inst["cutoff_ts"] <= as_of).all()
    still_open = inst["anchor_ts"] + pd.Timedelta(days=210) > as_of
    assert inst.loc[still_open, "label"].isna().all()
    assert inst.loc[~still_open, "label"].notna().all()
    assert still_open.any() and (~still_open).any()


def test_events_without_an_instance_get_a_clear_error() -> None:
    ev = events([{"ts": at(0, "10:00"), "event_type": "vdp_view"}])
    with pytest.raises(
        NoInstancesError, match=r"lead_leakage: the events hold no lead \(lead_form"
    ):
        build_instances(ev, "lead_leakage")
    with pytest.raises(NoInstancesError, match="no_show: the events hold no booking"):
        build_instances(ev, "no_show")
    with pytest.raises(
        NoInstancesError, match="service_defection: the events hold no vehicle_delivery"
    ):
        build_instances(ev, "service_defection")


def test_bookings_without_schedule_are_refused() -> None:
    """Validation refuses such a booking; the feature code guards tables never validated."""
    booked = {"appointment_id": "a-1", "scheduled_ts": at(1, "10:00")}
    ev = events([{"ts": at(0, "10:00"), "event_type": "appointment_set", "attributes": booked}])
    ev = ev.assign(attributes=pd.array(['{"appointment_id": "a-1"}'], dtype="string"))
    with pytest.raises(NoInstancesError, match="'appointment_id' and 'scheduled_ts'"):
        build_instances(ev, "no_show")


def test_events_missing_a_column_are_refused_by_name() -> None:
    ev = events([{"ts": at(0, "10:00"), "event_type": "lead_form"}]).drop(columns=["attributes"])
    with pytest.raises(MissingColumnsError, match="missing column\\(s\\): attributes"):
        build_feature_table(ev, "lead_leakage")


def test_cli_features_writes_table_with_metadata(
    tmp_path: Path, small_group: SimulatedGroup
) -> None:
    path = tmp_path / "events.parquet"
    small_group.events.to_parquet(path)
    out = tmp_path / "lead.parquet"
    result = CliRunner().invoke(
        app, ["features", "--task", "lead_leakage", "--events", str(path), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    meta = read_parquet_metadata(out)
    assert meta["task"] == "lead_leakage"
    assert '"cutoff_after_lead_minutes":120.0' in meta["params"]
    assert '"window_days":30.0' in meta["params"]
    table = pd.read_parquet(out)
    assert int(meta["instances"]) == len(table)
    assert "first_response_minutes" in table.columns
    left_out = Timeline(small_group.events)
    settled = build_instances(left_out, "lead_leakage").attrs
    assert meta["settled_left_out"] == str(settled["settled_left_out"])
    assert meta["bad_or_duplicate_left_out"] == str(settled["bad_or_duplicate_left_out"])
    assert (
        f"{settled['settled_left_out']:,} settled before their cutoff left out, "
        f"{settled['bad_or_duplicate_left_out']:,} bad or duplicate leads left out;"
    ) in result.output


def test_cli_features_bad_inputs(tmp_path: Path) -> None:
    only_views = tmp_path / "views.csv"
    pd.DataFrame(
        [
            {
                "event_id": "e-1",
                "dealer_group_id": "dg-01",
                "rooftop_id": "rt-01",
                "customer_id": "c-1",
                "ts": "2025-01-01T10:00:00Z",
                "event_type": "vdp_view",
            }
        ]
    ).to_csv(only_views, index=False)
    out = tmp_path / "out.parquet"
    runner = CliRunner()
    result = runner.invoke(
        app, ["features", "--task", "no_show", "--events", str(only_views), "--out", str(out)]
    )
    assert result.exit_code == 1
    assert "views.csv: no_show: the events hold no booking" in result.output
    result = runner.invoke(
        app, ["features", "--task", "churn", "--events", str(only_views), "--out", str(out)]
    )
    assert result.exit_code == 2 and "unknown task 'churn'" in result.output
    no_customer = tmp_path / "bad.csv"
    pd.read_csv(only_views).drop(columns=["customer_id"]).to_csv(no_customer, index=False)
    result = runner.invoke(
        app, ["features", "--task", "no_show", "--events", str(no_customer), "--out", str(out)]
    )
    assert result.exit_code == 1
    assert "column 'customer_id': required column is missing" in result.output
    assert not out.exists()


def test_cli_features_refuses_a_bad_as_of(tmp_path: Path) -> None:
    for bad, message in (
        ("next tuesday", "not an ISO 8601 timestamp"),
        ("2025-01-01T00:00:00", "has no timezone"),
    ):
        result = CliRunner().invoke(
            app,
            [
                "features",
                "--task",
                "no_show",
                "--events",
                str(tmp_path / "x.csv"),
                "--out",
                str(tmp_path / "o.parquet"),
                "--as-of",
                bad,
            ],
        )
        assert result.exit_code == 2 and message in result.output


def test_open_instances_are_what_a_dealer_can_still_act_on_now() -> None:
    now = pd.Timestamp(at(40, "12:00"))
    ev = events(
        [
            # c-1: a lead 5 days ago with no next step yet -> open
            {"ts": at(35), "event_type": "lead_form", "event_id": "l-open", "customer_id": "c-1"},
            # c-2: a lead 5 days ago that booked an appointment (still ahead) -> the lead is
            # closed, the booking is open
            {"ts": at(35), "event_type": "lead_form", "event_id": "l-booked", "customer_id": "c-2"},
            {
                "ts": at(36),
                "event_type": "appointment_set",
                "customer_id": "c-2",
                "attributes": {"appointment_id": "a-ahead", "scheduled_ts": at(42, "10:00")},
            },
            # c-3: a lead 35 days ago (window over) and a booking that already showed
            {"ts": at(5), "event_type": "lead_form", "event_id": "l-old", "customer_id": "c-3"},
            {
                "ts": at(6),
                "event_type": "appointment_set",
                "customer_id": "c-3",
                "attributes": {"appointment_id": "a-done", "scheduled_ts": at(38, "10:00")},
            },
            {
                "ts": at(38, "10:30"),
                "event_type": "appointment_showed",
                "customer_id": "c-3",
                "attributes": {"appointment_id": "a-done"},
            },
            # c-4: a lead whose appointment is booked only after now: still open now
            {"ts": at(39), "event_type": "lead_form", "event_id": "l-later", "customer_id": "c-4"},
            {
                "ts": at(41),
                "event_type": "appointment_set",
                "customer_id": "c-4",
                "attributes": {"appointment_id": "a-future", "scheduled_ts": at(45, "10:00")},
            },
        ]
    )
    leads = open_instances(ev, "lead_leakage", now)
    assert sorted(leads["instance_id"]) == ["l-later", "l-open"]
    assert (leads["cutoff_ts"] == now).all() and leads["label"].isna().all()
    bookings = open_instances(ev, "no_show", now)
    assert list(bookings["instance_id"]) == ["a-ahead"]
    assert bookings["scheduled_ts"].iloc[0] == pd.Timestamp(at(42, "10:00"))
    assert open_instances(ev, "service_defection", now).empty


def test_open_instances_read_the_same_from_a_table_or_a_timeline(
    small_group: SimulatedGroup,
) -> None:
    ev = small_group.events
    whole = Timeline(ev)
    start = pd.Timestamp(small_group.config.start)
    for now in (start + pd.Timedelta(days=300), start + pd.Timedelta(days=500, seconds=1)):
        for task in TASKS:
            from_table = open_instances(ev, task, now)
            assert len(from_table) > 20, task
            pd.testing.assert_frame_equal(open_instances(whole, task, now), from_table)
            pd.testing.assert_frame_equal(open_instances(ev[ev["ts"] < now], task, now), from_table)
            # one customer's events, as a request reads them from the store
            customer = from_table["customer_id"].iloc[0]
            mine = ev[ev["customer_id"] == customer]
            pd.testing.assert_frame_equal(
                open_instances(mine, task, now),
                from_table[from_table["customer_id"] == customer].reset_index(drop=True),
            )


ISO_MOMENTS = st.builds(
    lambda moment, digits, zone: (
        moment.strftime("%Y-%m-%dT%H:%M:%S")
        + (f".{moment.microsecond:06d}"[: digits + 1] if digits else "")
        + zone
    ),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1)),
    st.integers(0, 6),
    st.sampled_from(["Z", "+00:00", "-05:00", "+05:30"]),
)
OTHER_TEXTS = st.sampled_from(
    ["2025-02-30T10:00:00Z", "2025-06-05 10:00:00+00:00", "06/05/2025 10:00", "soon", "", "NaT"]
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(ISO_MOMENTS, st.none()), min_size=1, max_size=6),
    st.lists(OTHER_TEXTS, max_size=1),
)
def test_scheduled_times_parse_exactly_as_pandas_infers_them(
    texts: list[str | None], odd: list[str]
) -> None:
    for values in (texts, [*texts, *odd]):
        parsed = _parse_moments(pa.array(values, type=pa.large_string()))
        expected = pd.to_datetime(pd.Series(values, dtype="string"), utc=True, errors="coerce")
        assert list(parsed) == list(expected), values


def test_a_rescheduled_booking_keeps_its_kind_along_the_chain() -> None:
    def moved(day: int, new: str, old: str) -> dict[str, object]:
        return {
            "ts": at(day),
            "event_type": "appointment_rescheduled",
            "attributes": {"appointment_id": new, "rescheduled_from": old,
                           "scheduled_ts": at(day + 5, "09:00")},
        }  # fmt: skip

    ev = events(
        [
            {
                "ts": at(0),
                "event_type": "service_appointment_set",
                "attributes": {"appointment_id": "s-1", "scheduled_ts": at(5, "09:00")},
            },
            moved(1, "s-2", "s-1"),
            moved(2, "s-3", "s-2"),
            {
                "ts": at(0),
                "event_type": "appointment_set",
                "attributes": {"appointment_id": "a-1", "scheduled_ts": at(5, "15:00")},
            },
            moved(1, "a-2", "a-1"),
        ]
    )
    inst = build_instances(ev, "no_show", as_of=pd.Timestamp(at(30)))
    kinds = inst.set_index("instance_id")["appointment_kind"].to_dict()
    # s-1, s-2 and a-1 were moved before their cutoffs (settled, left out); the bookings
    # at the end of each chain keep the kind of the first.
    assert kinds == {"a-2": "sales", "s-3": "service"}
    assert inst.attrs["settled_left_out"] == 3
