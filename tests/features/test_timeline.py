"""The point-in-time engine: a Timeline cut at a moment answers as the events before it would,
and its cheap paths for a request's few events give exactly what its vectorised paths give."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from cjm_ml.features.pipeline import build_feature_table
from cjm_ml.features.timeline import Timeline, timestamp_ns
from cjm_ml.params import TASKS
from cjm_ml.simulation import SimulatedGroup
from tests.features.journeys import at, events

#: Attribute texts that a JSON-ish regex can get wrong: spacing, look-alike keys, quotes.
TEXTS = [
    '{"appointment_id": "a-1", "scheduled_ts": "2025-06-05T10:00:00Z"}',
    '{"appointment_id":"a-2"}',
    '{"appointment_id" :\t\n "a-3"}',
    '{"xappointment_id": "no", "appointment_id": "a-4"}',
    '{"note": "appointment_id", "appointment_id": "a-5"}',
    '{"appointment_id": ""}',
    '{"appointment_id": "a\\"6"}',
    '{"appointment_id":\u00a0"nbsp is not JSON whitespace"}',
    '{"appointment_id":\u000b"nor is a vertical tab"}',
    '{"appointment_id": 7}',
    '{"scheduled_ts": "2025-06-05T10:00:00Z"}',
    '{"appointment_id": "ünïcode-8"}',
    "not json at all",
    "",
]


def _attribute_table(n: int) -> pd.DataFrame:
    rows = []
    for i in range(n):
        text = TEXTS[i % len(TEXTS)] if i % 11 else None
        rows.append(
            {
                "ts": at(i / 24),
                "event_type": "appointment_set",
                "customer_id": f"c-{i % 3}",
                # a valid booking to get through validation; the texts under test replace it
                "attributes": {"appointment_id": f"a-{i}", "scheduled_ts": at(i / 24 + 1)},
                "_text": text,
            }
        )
    table = events([{k: v for k, v in r.items() if k != "_text"} for r in rows])
    return table.assign(attributes=pd.array([r["_text"] for r in rows], dtype="string"))


def test_attributes_read_the_same_for_a_few_events_and_for_many() -> None:
    tl = Timeline(_attribute_table(150))
    positions = tl.positions("appointment_set")
    assert len(positions) == 150
    for key in ("appointment_id", "scheduled_ts"):
        many = tl.attribute(positions, key)  # one vectorised call (pyarrow's RE2)
        few = pd.concat(
            [tl.attribute(positions[i : i + 10], key) for i in range(0, 150, 10)],
            ignore_index=True,
        )  # Python's re, ten events at a time
        pd.testing.assert_series_equal(few, many)
    ids = tl.attribute(positions, "appointment_id")
    by_text = dict(zip(tl.column(positions, "attributes"), ids, strict=True))
    assert by_text['{"appointment_id" :\t\n "a-3"}'] == "a-3"
    assert by_text['{"xappointment_id": "no", "appointment_id": "a-4"}'] == "a-4"
    assert by_text['{"appointment_id": "a\\"6"}'] == "a\\"
    assert pd.isna(by_text['{"appointment_id":\u00a0"nbsp is not JSON whitespace"}'])
    assert pd.isna(by_text['{"appointment_id": 7}'])


def test_text_is_the_column_as_strings_for_every_storage() -> None:
    table = events(
        [
            {"ts": at(0), "event_type": "vdp_view", "source": "google", "vehicle_id": "v-1"},
            {"ts": at(1), "event_type": "vdp_view", "customer_id": "c-2"},
            {"ts": at(2), "event_type": "lead_form", "source": "referral"},
        ]
    )
    tl = Timeline(table.assign(vehicle_id=table["vehicle_id"].astype(object)))
    positions = np.array([2, 0, 1])
    for name in ("source", "customer_id", "vehicle_id", "event_type", "rooftop_id"):
        expected = tl.column(positions, name).astype("string")
        pd.testing.assert_series_equal(pd.Series(tl.text(positions, name), name=name), expected)


def test_customer_codes_are_the_same_for_a_few_ids_and_for_many() -> None:
    table = events(
        [{"ts": at(i), "event_type": "vdp_view", "customer_id": f"c-{i}"} for i in range(5)]
    )
    tl = Timeline(table)
    few = pd.Series(["c-3", "c-9", None, "c-0"], dtype="string")
    many = pd.concat([few] * 40, ignore_index=True)  # past the small-input path
    codes = tl.customer_codes(few)
    assert list(codes) == [list(tl.customers).index("c-3"), -1, -1, list(tl.customers).index("c-0")]
    assert list(tl.customer_codes(many)) == list(codes) * 40


def test_a_timeline_cut_at_a_moment_answers_as_the_events_before_it(
    small_group: SimulatedGroup,
) -> None:
    ev = small_group.events
    cut = pd.Timestamp(small_group.config.start) + pd.Timedelta(days=400, hours=5, seconds=1)
    # Before the cut means known before it: some outcomes were recorded after they happened.
    before = ev[ev["recorded_ts"].fillna(ev["ts"]) < cut]
    assert len(before) < (ev["ts"] < cut).sum()
    whole = Timeline(ev)
    for task in TASKS:
        expected = build_feature_table(Timeline(before), task, as_of=cut)
        for tl in (Timeline(ev, until=cut), whole.before(cut)):
            pd.testing.assert_frame_equal(build_feature_table(tl, task, as_of=cut), expected)
    assert whole.before(cut + pd.Timedelta(days=3650)) is whole
    with pytest.raises(ValueError, match="has no timezone"):
        Timeline(ev, until=pd.Timestamp("2025-01-01"))


def test_until_leaves_later_bad_rows_alone() -> None:
    table = events(
        [{"ts": at(0), "event_type": "vdp_view"}, {"ts": at(5), "event_type": "vdp_view"}]
    )
    later_unknown = table.assign(event_type=table["event_type"].astype("string"))
    later_unknown.loc[1, "event_type"] = "not_a_type"
    with pytest.raises(ValueError, match="unknown event type 'not_a_type'"):
        Timeline(later_unknown)
    cut = Timeline(later_unknown, until=pd.Timestamp(at(1)))
    assert len(cut) == 1 and Timeline.event_type_names()[cut.etype[0]] == "vdp_view"


def test_simultaneous_events_are_ordered_by_channel_value_then_id_whatever_the_input_order() -> (
    None
):
    same = {"ts": at(0, "10:00"), "event_type": "sms_sent"}
    rows = [
        {**same, "event_id": "by-email", "channel": "email"},
        {**same, "event_id": "sms-b", "channel": "sms"},
        {**same, "event_id": "sms-a", "channel": "sms"},
        {**same, "event_id": "sms-valued", "channel": "sms", "value": 1},
    ]
    expected = ["sms-valued", "sms-a", "sms-b", "by-email"]  # sms before email (catalogue order)
    for order in itertools.permutations(range(4)):
        tl = Timeline(events([rows[i] for i in order]))
        assert tl.column(np.arange(4), "event_id").tolist() == expected, order
    later = {"ts": at(1), "event_type": "vdp_view", "event_id": "later"}
    cut = Timeline(events([later, *rows[::-1]]), until=pd.Timestamp(at(0, "10:01")))
    assert cut.column(np.arange(len(cut)), "event_id").tolist() == expected


def test_categorical_customer_ids_answer_as_strings_do() -> None:
    table = events(
        [
            {"ts": at(0), "event_type": "vdp_view", "customer_id": "c-2"},
            {"ts": at(1), "event_type": "vdp_view", "customer_id": "c-1"},
            {"ts": at(2), "event_type": "lead_form", "customer_id": "c-2"},
        ]
    )
    levels = pd.CategoricalDtype(["c-2", "c-1"])  # not the strings' order
    as_strings = Timeline(table)
    as_categories = Timeline(table.assign(customer_id=table["customer_id"].astype(levels)))
    assert list(as_strings.customers) == ["c-1", "c-2"]
    assert list(as_categories.customers) == ["c-2", "c-1"]  # the categorical's own codes
    assert as_categories.column(np.arange(3), "customer_id").tolist() == ["c-2", "c-2", "c-1"]
    ids = pd.Series(["c-1", "c-2", "c-3"], dtype="string")
    end = np.array([timestamp_ns(pd.Timestamp(at(3)))] * 3)
    for tl in (as_strings, as_categories):
        window = tl.window(tl.customer_codes(ids), None, end)
        assert Timeline.count(tl.positions("vdp_view"), window).tolist() == [1, 1, 0]
        assert Timeline.count(tl.positions("lead_form"), window).tolist() == [0, 1, 0]
