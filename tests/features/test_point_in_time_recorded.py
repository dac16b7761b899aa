"""Events recorded after they happened, exactly: a window that says by when its events must be
known counts, finds first and last only among those; cutting a timeline at a moment keeps the
events known then; labels use when things happened."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from cjm_ml.events import TS_DTYPE
from cjm_ml.features.build import build_no_show_features
from cjm_ml.features.instances import build_instances
from cjm_ml.features.timeline import Timeline, timestamp_ns
from cjm_ml.params import TASKS
from tests.features.journeys import DAY0, at, events

AS_OF = DAY0 + pd.Timedelta(days=400)


def _recorded(table: pd.DataFrame, by_event: dict[str, str]) -> pd.DataFrame:
    """``table`` with ``recorded_ts`` set on the named events (the others stay null)."""
    moments = table["event_id"].map(by_event)
    return table.assign(recorded_ts=pd.to_datetime(moments, utc=True).astype(TS_DTYPE))


def _ns(*times: str) -> np.ndarray:
    return np.array([timestamp_ns(pd.Timestamp(t)) for t in times], dtype=np.int64)


@pytest.fixture
def views() -> pd.DataFrame:
    """Three views: 10:00 logged at 15:00, 11:00 logged as it happened, 12:00 logged at 20:00."""
    table = events(
        [
            {"ts": at(0, "10:00"), "event_type": "vdp_view", "event_id": "v1"},
            {"ts": at(0, "11:00"), "event_type": "vdp_view", "event_id": "v2"},
            {"ts": at(0, "12:00"), "event_type": "vdp_view", "event_id": "v3"},
        ]
    )
    return _recorded(table, {"v1": at(0, "15:00"), "v3": at(0, "20:00")})


def test_a_window_known_before_the_cutoff_sees_only_what_was_recorded_by_then(
    views: pd.DataFrame,
) -> None:
    tl = Timeline(views)
    pos = tl.positions("vdp_view")
    v1, v2, v3 = (int(pos[i]) for i in range(3))
    assert tl.known.tolist() == _ns(at(0, "15:00"), at(0, "11:00"), at(0, "20:00")).tolist()
    cust = tl.customer_codes(pd.Series(["c-1"] * 4, dtype="string"))
    cutoffs = _ns(at(0, "10:30"), at(0, "14:00"), at(0, "16:00"), at(0, "21:00"))
    known = tl.window(cust, None, cutoffs, known_before=cutoffs)
    assert Timeline.count(pos, known).tolist() == [0, 1, 2, 3]
    assert Timeline.first(pos, known).tolist() == [-1, v2, v1, v1]
    assert Timeline.last(pos, known).tolist() == [-1, v2, v2, v3]
    # by when they happened (labels): every view before the end counts
    happened = tl.window(cust, None, cutoffs)
    assert Timeline.count(pos, happened).tolist() == [1, 3, 3, 3]
    assert Timeline.first(pos, happened).tolist() == [v1, v1, v1, v1]
    # a narrowed window keeps the check; one ending before the cutoff checks the cutoff
    narrowed = replace(known, lo=np.full(4, v2))
    assert Timeline.count(pos, narrowed).tolist() == [0, 1, 1, 2]
    early = tl.window(cust, None, _ns(*[at(0, "11:30")] * 4), known_before=cutoffs)
    assert Timeline.count(pos, early).tolist() == [0, 1, 2, 2]


def test_a_timeline_cut_at_a_moment_keeps_the_events_known_then(views: pd.DataFrame) -> None:
    whole = Timeline(views)
    for moment, kept in ((at(0, "14:00"), ["v2"]), (at(0, "16:00"), ["v1", "v2"])):
        for cut in (
            Timeline(views, until=pd.Timestamp(moment)),
            whole.before(pd.Timestamp(moment)),
        ):
            assert cut.text(np.arange(len(cut)), "event_id").tolist() == kept
    assert whole.before(pd.Timestamp(at(0, "20:00"))).text(np.arange(2), "event_id").tolist() == [
        "v1",
        "v2",
    ]
    assert whole.before(pd.Timestamp(at(0, "20:01"))) is whole
    assert Timeline(views.drop(columns="recorded_ts")).recorded is None
    assert Timeline(views.assign(recorded_ts=views["ts"])).recorded is None


def test_a_recorded_ts_that_is_not_timezone_aware_is_refused(views: pd.DataFrame) -> None:
    naive = views.assign(recorded_ts=views["recorded_ts"].dt.tz_localize(None))
    with pytest.raises(ValueError, match="'recorded_ts' must be timezone-aware"):
        Timeline(naive)


def _booking_with_confirmations() -> pd.DataFrame:
    """A booking (start on day 3 at 10:00, cutoff day 2 at 10:00) and two confirmations of it:
    by text on day 1 at 09:00, by email on day 1 at 11:00."""
    a1 = {"appointment_id": "a-1"}
    return events(
        [
            {"ts": at(0, "09:00"), "event_type": "appointment_set", "event_id": "book",
             "attributes": {**a1, "scheduled_ts": at(3, "10:00")}},
            {"ts": at(1, "09:00"), "event_type": "appointment_confirmation_sent",
             "event_id": "text", "channel": "sms", "attributes": a1},
            {"ts": at(1, "11:00"), "event_type": "appointment_confirmation_sent",
             "event_id": "email", "channel": "email", "attributes": a1},
        ]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("recorded", "sent", "channel"),
    [
        ({}, 1.0, "sms"),
        ({"text": at(2, "12:00")}, 1.0, "email"),  # the text was logged after the cutoff
        ({"text": at(1, "20:00")}, 1.0, "sms"),  # logged late, but before the cutoff
        ({"text": at(2, "12:00"), "email": at(2, "10:00")}, 0.0, "none"),  # at it: not before
    ],
)
def test_a_confirmation_counts_only_once_recorded_before_the_cutoff(
    recorded: dict[str, str], sent: float, channel: str
) -> None:
    table = _recorded(_booking_with_confirmations(), recorded)
    instances = build_instances(table, "no_show", as_of=AS_OF)
    assert instances["cutoff_ts"].tolist() == [pd.Timestamp(at(2, "10:00"))]
    features = build_no_show_features(table, instances)
    assert features[["confirmation_sent", "confirmation_channel"]].values.tolist() == [
        [sent, channel]
    ]


def test_labels_use_when_things_happened_not_when_they_were_recorded() -> None:
    """A lead set an appointment the next day, logged two months later; a delivery's first
    repair order opened on day 20, closed out in the DMS on day 300."""
    table = events(
        [
            {"ts": at(0, "10:00"), "event_type": "lead_form", "event_id": "lead"},
            {"ts": at(1, "10:00"), "event_type": "appointment_set", "event_id": "appt",
             "attributes": {"appointment_id": "a-1", "scheduled_ts": at(2, "10:00")}},
            {"ts": at(2, "10:30"), "event_type": "appointment_showed", "event_id": "shown",
             "attributes": {"appointment_id": "a-1"}},
            {"ts": at(5, "10:00"), "event_type": "vehicle_delivery", "event_id": "delivery",
             "attributes": {"condition": "new"}},
            {"ts": at(20, "10:00"), "event_type": "repair_order_opened", "event_id": "ro"},
        ]
    )  # fmt: skip
    late = _recorded(table, {"appt": at(60), "shown": at(61), "ro": at(300)})
    for task in TASKS:
        pd.testing.assert_frame_equal(
            build_instances(late, task, as_of=AS_OF), build_instances(table, task, as_of=AS_OF)
        )
    labels = {t: build_instances(late, t, as_of=AS_OF)["label"].tolist() for t in TASKS}
    assert labels == {"lead_leakage": [0], "no_show": [0], "service_defection": [0]}
