"""The point-in-time engine on three events: half-open windows, first and last, values, and the
refusals that name what is wrong."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from cjm_ml.features.timeline import (
    NS_MIN,
    MissingColumnsError,
    Timeline,
    timestamp_ns,
    to_ns,
)
from tests.features.journeys import at, events

THREE: list[dict[str, Any]] = [
    {"ts": at(0, "10:00"), "event_type": "vdp_view", "value": 30000, "event_id": "view"},
    {"ts": at(0, "10:30"), "event_type": "sms_sent", "channel": "sms", "event_id": "text"},
    {"ts": at(0, "11:00"), "event_type": "vdp_view", "value": 31000, "event_id": "view-2"},
]
TEN = timestamp_ns(pd.Timestamp(at(0, "10:00")))


@pytest.fixture
def timeline() -> Timeline:
    # given in reverse: input order must not matter
    return Timeline(events(THREE[::-1]))


def _window(tl: Timeline, start_min: float | None, end_min: float) -> tuple[np.ndarray, ...]:
    """Views in [10:00 + start, 10:00 + end) of customer c-1: count, first and last position."""
    cust = tl.customer_codes(pd.Series(["c-1"], dtype="string"))
    start = None if start_min is None else np.array([TEN + int(start_min * NS_MIN)])
    window = tl.window(cust, start, np.array([TEN + int(end_min * NS_MIN)]))
    views = tl.positions("vdp_view")
    return (
        Timeline.count(views, window),
        Timeline.first(views, window),
        Timeline.last(views, window),
    )


def test_events_are_sorted_by_time_whatever_the_input_order(timeline: Timeline) -> None:
    assert len(timeline) == 3
    assert timeline.column(np.arange(3), "event_id").tolist() == ["view", "text", "view-2"]
    assert timeline.ts.tolist() == [TEN, TEN + 30 * NS_MIN, TEN + 60 * NS_MIN]


def test_a_window_holds_its_start_but_not_its_end(timeline: Timeline) -> None:
    count, first, last = _window(timeline, 0, 60)  # [10:00, 11:00): the 11:00 view is out
    assert (count[0], first[0], last[0]) == (1, 0, 0)
    count, first, last = _window(timeline, 0, 60.001)
    assert (count[0], first[0], last[0]) == (2, 0, 2)
    count, first, last = _window(timeline, None, 0)  # before 10:00: nothing
    assert (count[0], first[0], last[0]) == (0, -1, -1)


def test_values_and_times_at_positions_with_minus_one_as_missing(timeline: Timeline) -> None:
    views = timeline.positions("vdp_view")
    assert views.tolist() == [0, 2]
    assert timeline.value_at(np.array([0, 2])).tolist() == [30000.0, 31000.0]
    assert np.isnan(timeline.value_at(np.array([-1]))).all()
    assert timeline.ts_at(np.array([1]))[0] == TEN + 30 * NS_MIN
    assert timeline.channel_names[timeline.channel_at(np.array([1]))[0]] == "sms"
    assert timeline.channel_at(np.array([-1])).tolist() == [-1]


def test_an_unknown_customer_has_empty_windows(timeline: Timeline) -> None:
    cust = timeline.customer_codes(pd.Series(["c-1", "c-nobody"], dtype="string"))
    assert cust.tolist() == [0, -1]
    window = timeline.window(cust, None, np.array([TEN + 999 * NS_MIN] * 2))
    assert Timeline.count(timeline.positions("vdp_view"), window).tolist() == [2, 0]


def test_before_is_the_timeline_of_the_earlier_events(timeline: Timeline) -> None:
    cut = timeline.before(pd.Timestamp(at(0, "10:30")))
    assert len(cut) == 1 and cut.positions("vdp_view").tolist() == [0]
    assert timeline.before(pd.Timestamp(at(1))) is timeline


def test_a_missing_column_is_refused_by_name() -> None:
    with pytest.raises(MissingColumnsError, match=r"missing column\(s\): value"):
        Timeline(events(THREE).drop(columns=["value"]))


def test_an_unknown_event_type_is_refused_by_name(timeline: Timeline) -> None:
    with pytest.raises(KeyError, match="unknown event type"):
        timeline.positions("carrier_pigeon")


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="has no timezone"):
        timestamp_ns(pd.Timestamp("2025-06-02 10:00"))
    with pytest.raises(ValueError, match="'ts' must be timezone-aware"):
        to_ns(pd.Series(pd.to_datetime(["2025-06-02 10:00"])))
