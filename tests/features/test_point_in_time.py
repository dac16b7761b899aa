"""No leakage, by property: nothing at or after a cutoff moves that instance's features (the
built-in ones and declared ones of every take), nor does an event recorded at or after the
cutoff even if it happened before (labels, which use when things happened, do not move with
when they were recorded); input order does not matter; a partition of customers, one
customer, or serving at the cutoff with only the events known then all give the training row.

Every drawn journey holds an anchor for each task, so each property checks instances of all
three tasks in every example (a test below proves it); a task without its anchor is tested
on its own."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from cjm_ml.events import TS_DTYPE, catalogue, event_dtypes, sort_events
from cjm_ml.features.build import BUILDERS
from cjm_ml.features.declared import declared_columns
from cjm_ml.features.instances import NoInstancesError, build_instances
from cjm_ml.features.timeline import Timeline
from cjm_ml.featureset import DeclaredFeature, generic_features
from cjm_ml.params import TASKS, Task
from cjm_ml.simulation import SimulatedGroup, SimulationConfig
from tests.features.journeys import DAY0, at
from tests.features.journeys import events as journey

START = DAY0
AS_OF = DAY0 + pd.Timedelta(days=400)
TYPES = list(catalogue().event_type_keys)
CHANNELS = [*catalogue().channels, None]
#: The first three events of every drawn journey: one anchor per task (a lead, a booking, a
#: delivery), so every task has instances to check.
ONE_ANCHOR_PER_TASK = (
    ["lead_form", "lead_call"],
    ["appointment_set", "service_appointment_set"],
    ["vehicle_delivery"],
)
ANCHORS = [
    "lead_form",
    "lead_call",
    "appointment_set",
    "service_appointment_set",
    "vehicle_delivery",
    "appointment_rescheduled",
]


@st.composite
def journeys(draw: st.DrawFn) -> pd.DataFrame:
    """Up to three customers with anchors for every task and random touchpoints around them."""
    rows = []
    n = draw(st.integers(8, 40))
    for i in range(n):
        first = ONE_ANCHOR_PER_TASK[i] if i < len(ONE_ANCHOR_PER_TASK) else None
        etype = draw(st.sampled_from(first or (ANCHORS if i < 6 else TYPES)))
        minute = draw(st.integers(0, 30 * 1440))
        attrs: dict[str, str] = {}
        appointment = f"a-{draw(st.integers(0, 4))}"
        if etype in ("appointment_set", "service_appointment_set", "appointment_rescheduled"):
            lead_h = draw(st.integers(1, 200))
            attrs = {
                "appointment_id": f"a-{i}",
                "scheduled_ts": (START + pd.Timedelta(minutes=minute + 60 * lead_h)).isoformat(),
            }
            if etype == "appointment_rescheduled":
                attrs["rescheduled_from"] = appointment
        elif etype.startswith("appointment_") or etype == "appointment_confirmation_sent":
            attrs = {"appointment_id": appointment}
        elif etype == "crm_task_created":
            attrs = {
                "task": draw(
                    st.sampled_from(["lead_follow_up", "trade_in_follow_up", "credit_follow_up"])
                )
            }
        elif etype == "csi_survey":
            attrs = {
                "survey": draw(st.sampled_from(["sales", "service"])),
                "score": str(draw(st.integers(0, 10))),
            }
        elif etype == "vehicle_delivery":
            attrs = {"condition": draw(st.sampled_from(["new", "used"]))}
        rows.append(
            {
                "event_id": f"e-{i:03d}",
                "dealer_group_id": "dg-01",
                "rooftop_id": "rt-01",
                "customer_id": f"c-{draw(st.integers(0, 2))}",
                "ts": START + pd.Timedelta(minutes=minute),
                "event_type": etype,
                "channel": draw(st.sampled_from(CHANNELS)),
                "source": draw(st.sampled_from(["referral", None])),
                "vehicle_id": draw(st.sampled_from(["v-1", None])),
                "value": draw(st.one_of(st.none(), st.floats(0, 500, allow_nan=False))),
                "attributes": json.dumps(attrs) if attrs else None,
            }
        )
    table = _typed(pd.DataFrame(rows))
    # an anchor whose outcome is settled before its cutoff is no instance: draw again then
    assume(all(_has_instances(table, task) for task in TASKS))
    return table


def _has_instances(events: pd.DataFrame, task: Task) -> bool:
    try:
        build_instances(events, task, as_of=AS_OF)
    except NoInstancesError:
        return False
    return True


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """The drawn rows typed as the canonical table (``recorded_ts`` null unless given)."""
    if "recorded_ts" not in df.columns:
        df = df.assign(recorded_ts=pd.NaT)
    times = {c: pd.to_datetime(df[c], utc=True).astype(TS_DTYPE) for c in ("ts", "recorded_ts")}
    dtypes = {k: v for k, v in event_dtypes().items() if k not in times}
    return df.astype(dtypes).assign(**times)


def _recorded_later(
    events: pd.DataFrame, rows: pd.Series, data: st.DataObject, not_before: pd.Series
) -> pd.DataFrame:
    """``events`` with ``recorded_ts`` set on ``rows`` to a drawn moment at or after
    ``not_before`` (up to 20 days after it; 0 is drawn, exactly at it, too)."""
    n = int(rows.sum())
    delays = data.draw(st.lists(st.integers(0, 20 * 1440), min_size=n, max_size=n))
    recorded = events["recorded_ts"].copy()
    recorded[rows] = (not_before[rows] + pd.to_timedelta(delays, unit="min")).astype(TS_DTYPE)
    return events.assign(recorded_ts=recorded)


#: Declared features under the same properties: the generic ones (counts in a window and
#: days since) of an anchor of each task and of touchpoints drawn after them, and one of each
#: take that reads an attribute the drawn journeys carry.
DECLARED = (
    *generic_features(["lead_form", "appointment_set", "vehicle_delivery", "sms_sent", "vdp_view"]),
    DeclaredFeature(
        name="vehicle_condition_declared", label="Condition", event_type="vehicle_delivery",
        attribute="condition", kind="category",
    ),
    DeclaredFeature(
        name="days_to_scheduled", label="Days to the appointment", event_type="appointment_set",
        attribute="scheduled_ts", take="days_until",
    ),
    DeclaredFeature(
        name="years_since_scheduled", label="Years since the slot", event_type="appointment_set",
        attribute="scheduled_ts", take="years_since",
    ),
    DeclaredFeature(
        name="mean_csi_score_90d", label="CSI score", event_type="csi_survey",
        attribute="score", take="mean", window_days=90,
    ),
    DeclaredFeature(
        name="total_csi_score", label="CSI points", event_type="csi_survey",
        attribute="score", take="sum",
    ),
)  # fmt: skip


def _features(events: pd.DataFrame, instances: pd.DataFrame, task: Task) -> pd.DataFrame:
    """The task's built-in features and the ``DECLARED`` ones, by instance."""
    instances = instances.reset_index(drop=True)
    built = BUILDERS[task](events, instances)
    declared = declared_columns(events, instances, DECLARED)
    return pd.concat([built, declared], axis=1).set_index("instance_id")


def _instances(events: pd.DataFrame, task: Task) -> pd.DataFrame:
    """The task's instances as of ``AS_OF``; a drawn journey always has some (else it fails)."""
    instances = build_instances(events, task, as_of=AS_OF)
    note(f"{task}: {len(instances)} instance(s)")
    assert len(instances) > 0
    return instances


@settings(max_examples=30, deadline=None)
@given(events=journeys())
def test_every_drawn_journey_has_instances_of_every_task(events: pd.DataFrame) -> None:
    for task in TASKS:
        instances = build_instances(events, task, as_of=AS_OF)
        assert len(instances) >= 1
        assert set(instances["customer_id"]) <= set(events["customer_id"])
        assert (instances["cutoff_ts"] <= AS_OF).all()


def test_a_task_without_its_anchor_has_no_instances_and_the_others_are_unaffected() -> None:
    """The case the properties cannot draw: a customer with a lead but no booking or delivery."""
    ev = journey(
        [
            {"ts": at(0, "10:00"), "event_type": "lead_form", "event_id": "lead-1"},
            {"ts": at(0, "10:30"), "event_type": "sms_sent", "channel": "sms"},
            {"ts": at(0, "13:00"), "event_type": "vdp_view"},
        ]
    )
    with pytest.raises(NoInstancesError, match="no_show: the events hold no booking"):
        build_instances(ev, "no_show", as_of=AS_OF)
    with pytest.raises(NoInstancesError, match="service_defection: the events hold no vehicle"):
        build_instances(ev, "service_defection", as_of=AS_OF)
    instances = build_instances(ev, "lead_leakage", as_of=AS_OF)
    assert instances["instance_id"].tolist() == ["lead-1"]
    # the view at 13:00 is after the cutoff (12:00): removing it moves nothing
    before = _features(ev, instances, "lead_leakage")
    after = _features(ev[ev["event_type"] != "vdp_view"], instances, "lead_leakage")
    pd.testing.assert_frame_equal(after, before)
    assert before.loc["lead-1", "first_response_minutes"] == 30.0


# 40 examples: each one perturbs every instance of all three tasks
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=journeys(), data=st.data())
def test_events_at_or_after_the_cutoff_never_move_a_feature(
    events: pd.DataFrame, data: st.DataObject
) -> None:
    checked = 0
    for task in TASKS:
        instances = _instances(events, task)
        full = _features(events, instances, task)
        for _, inst in instances.iterrows():
            cutoff, customer = inst["cutoff_ts"], inst["customer_id"]
            future = (events["customer_id"] == customer) & (events["ts"] >= cutoff)
            kept = events[~future]
            # remove some future events, change others, and add new ones at or after the cutoff
            changed = events[future].sample(frac=0.5, random_state=data.draw(st.integers(0, 99)))
            changed = changed.assign(
                value=changed["value"].fillna(0) + 7,
                event_type=pd.Categorical(
                    data.draw(
                        st.lists(
                            st.sampled_from(TYPES), min_size=len(changed), max_size=len(changed)
                        )
                    ),
                    dtype=events["event_type"].dtype,
                ),
            )
            extra = events.head(3).assign(
                event_id=["new-1", "new-2", "new-3"],
                customer_id=customer,
                ts=cutoff
                + pd.to_timedelta(
                    data.draw(st.lists(st.integers(0, 10**6), min_size=3, max_size=3)), unit="s"
                ),
            )
            perturbed = pd.concat([kept, changed, _typed(extra)], ignore_index=True)
            one = instances[instances["instance_id"] == inst["instance_id"]]
            got = _features(perturbed, one, task)
            pd.testing.assert_frame_equal(got, full.loc[[inst["instance_id"]]], check_dtype=False)
            checked += 1
    assert checked >= len(TASKS)  # at least one instance of every task was perturbed


@settings(max_examples=40, deadline=None)
@given(events=journeys(), seed=st.integers(0, 10**6))
def test_input_row_order_changes_nothing(events: pd.DataFrame, seed: int) -> None:
    shuffled = events.sample(frac=1.0, random_state=seed)
    for task in TASKS:
        instances = _instances(events, task)
        pd.testing.assert_frame_equal(
            _features(events, instances, task), _features(shuffled, instances, task)
        )


def test_partitions_single_customers_and_serving_match_the_whole_table(
    small_group: SimulatedGroup,
) -> None:
    events = small_group.events
    config: SimulationConfig = small_group.config
    as_of = pd.Timestamp(config.start) + pd.Timedelta(days=config.days)
    timeline = Timeline(events)
    known = events["recorded_ts"].fillna(events["ts"]) if "recorded_ts" in events else events["ts"]
    rng = np.random.default_rng(0)
    customers = events["customer_id"].unique()
    part_of = dict(zip(customers, rng.integers(0, 3, len(customers)), strict=True))
    for task in TASKS:
        instances = build_instances(timeline, task, as_of=as_of)
        whole = BUILDERS[task](timeline, instances).set_index("instance_id")
        parts = []
        for k in range(3):
            members = [c for c, p in part_of.items() if p == k]
            ev = events[events["customer_id"].isin(members)]
            inst = instances[instances["customer_id"].isin(members)]
            parts.append(BUILDERS[task](ev, inst).set_index("instance_id"))
        pd.testing.assert_frame_equal(pd.concat(parts).loc[whole.index], whole)
        # serving: one customer's events as the store held them at the cutoff (those recorded
        # by then), cutoff = "now"
        for _, inst in instances.sample(25, random_state=1).iterrows():
            mine = events[
                (events["customer_id"] == inst["customer_id"]) & (known < inst["cutoff_ts"])
            ]
            served = BUILDERS[task](sort_events(mine), instances.loc[[inst.name]]).set_index(
                "instance_id"
            )
            pd.testing.assert_frame_equal(served, whole.loc[[inst["instance_id"]]])


# 30 examples: each one hides events from every instance of all three tasks
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=journeys(), data=st.data())
def test_events_recorded_at_or_after_the_cutoff_never_move_a_feature(
    events: pd.DataFrame, data: st.DataObject
) -> None:
    """Happened before the cutoff, recorded at or after it: as if it were not there. Recorded
    late but before the cutoff: as if recorded when it happened."""
    checked = 0
    for task in TASKS:
        instances = _instances(events, task)
        for _, inst in instances.iterrows():
            cutoff, customer = inst["cutoff_ts"], inst["customer_id"]
            past = (events["customer_id"] == customer) & (events["ts"] < cutoff)
            hidden = past & pd.Series(
                data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events))),
                index=events.index,
            )
            # base: the customer's events known at the cutoff, some recorded late but in time
            base = events[~hidden]
            in_time = (base["customer_id"] == customer) & (base["ts"] < cutoff)
            in_time &= pd.Series(
                data.draw(st.lists(st.booleans(), min_size=len(base), max_size=len(base))),
                index=base.index,
            )
            delays = data.draw(
                st.lists(st.floats(0, 1, exclude_max=True), min_size=len(base), max_size=len(base))
            )
            recorded = base["recorded_ts"].copy()
            span = (cutoff - base["ts"])[in_time]
            recorded[in_time] = (base["ts"][in_time] + span * np.array(delays)[in_time]).astype(
                TS_DTYPE
            )
            base = base.assign(recorded_ts=recorded)
            # hidden: the removed events again, and new ones of any type, before the cutoff
            # but recorded at or after it
            extra = events.head(3).assign(
                event_id=["late-1", "late-2", "late-3"],
                customer_id=customer,
                event_type=pd.Categorical(
                    data.draw(st.lists(st.sampled_from(TYPES), min_size=3, max_size=3)),
                    dtype=events["event_type"].dtype,
                ),
                ts=cutoff
                - pd.to_timedelta(
                    data.draw(st.lists(st.integers(1, 30 * 86_400), min_size=3, max_size=3)),
                    unit="s",
                ),
            )
            late = pd.concat([events[hidden], extra])
            late = _recorded_later(
                late, pd.Series(True, index=late.index), data, pd.Series(cutoff, index=late.index)
            )
            perturbed = pd.concat([base, late], ignore_index=True)
            one = instances[instances["instance_id"] == inst["instance_id"]]
            pd.testing.assert_frame_equal(
                _features(perturbed, one, task), _features(base, one, task), check_dtype=False
            )
            checked += 1
    assert checked >= len(TASKS)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=journeys(), data=st.data())
def test_features_see_exactly_the_events_known_at_the_cutoff(
    events: pd.DataFrame, data: st.DataObject
) -> None:
    """With events recorded late (some in time, some not), every instance's features from the
    whole table are those from the table cut to what was known at its cutoff, and serving at
    the cutoff (a Timeline cut there, as ``open_feature_columns`` cuts it) sees the same."""
    late = pd.Series(
        data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events))),
        index=events.index,
    )
    events = _recorded_later(events, late, data, events["ts"])
    known = events["recorded_ts"].fillna(events["ts"])
    timeline = Timeline(events)
    for task in TASKS:
        instances = _instances(events, task)
        whole = _features(events, instances, task)
        for _, inst in instances.iterrows():
            cutoff = inst["cutoff_ts"]
            one = instances[instances["instance_id"] == inst["instance_id"]]
            expected = whole.loc[[inst["instance_id"]]]
            for seen in (
                events[known < cutoff],
                timeline.before(cutoff),
                Timeline(events, until=cutoff),
            ):
                pd.testing.assert_frame_equal(_features(seen, one, task), expected)


@settings(max_examples=30, deadline=None)
@given(events=journeys(), data=st.data())
def test_labels_do_not_move_with_when_events_were_recorded(
    events: pd.DataFrame, data: st.DataObject
) -> None:
    """Labels use when things happened. The instances may only grow: a case whose settling
    event was recorded after the cutoff was still open there (as serving saw it), so it stays;
    every instance of the on-time log is kept, with the same label."""
    late = pd.Series(
        data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events))),
        index=events.index,
    )
    recorded = _recorded_later(events, late, data, events["ts"])
    assert recorded["recorded_ts"].notna().sum() == late.sum()
    for task in TASKS:
        try:
            on_time = build_instances(events, task, as_of=AS_OF)
        except NoInstancesError:
            continue
        with_late = build_instances(recorded, task, as_of=AS_OF).set_index("instance_id")
        assert set(on_time["instance_id"]) <= set(with_late.index)
        kept = with_late.loc[on_time["instance_id"]].reset_index()
        pd.testing.assert_frame_equal(kept, on_time)
