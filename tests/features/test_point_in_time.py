"""No leakage, by property: nothing at or after a cutoff moves that instance's features; input
order does not matter; a partition of customers, one customer, or serving at the cutoff with
only the events known then all give the training row."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cjm_ml.events import TS_DTYPE, catalogue, event_dtypes, sort_events
from cjm_ml.features.build import BUILDERS
from cjm_ml.features.instances import build_instances
from cjm_ml.features.timeline import Timeline
from cjm_ml.params import TASKS, Task
from cjm_ml.simulation import SimulatedGroup, SimulationConfig
from tests.features.journeys import DAY0

START = DAY0
AS_OF = DAY0 + pd.Timedelta(days=400)
TYPES = list(catalogue().event_type_keys)
CHANNELS = [*catalogue().channels, None]
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
    """Two or three customers with anchors for every task and random touchpoints around them."""
    rows = []
    n = draw(st.integers(8, 40))
    for i in range(n):
        etype = draw(st.sampled_from(ANCHORS if i < 6 else TYPES))
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
            attrs = {"survey": draw(st.sampled_from(["sales", "service"]))}
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
    return _typed(pd.DataFrame(rows))


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    dtypes = {k: v for k, v in event_dtypes().items() if k != "ts"}
    return df.astype(dtypes).assign(ts=lambda d: pd.to_datetime(d["ts"], utc=True).astype(TS_DTYPE))


def _features(events: pd.DataFrame, instances: pd.DataFrame, task: Task) -> pd.DataFrame:
    return BUILDERS[task](events, instances).set_index("instance_id")


def _instances(events: pd.DataFrame, task: Task) -> pd.DataFrame | None:
    try:
        return build_instances(events, task, as_of=AS_OF)
    except ValueError:
        return None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=journeys(), data=st.data())
def test_events_at_or_after_the_cutoff_never_move_a_feature(
    events: pd.DataFrame, data: st.DataObject
) -> None:
    for task in TASKS:
        instances = _instances(events, task)
        if instances is None:
            continue
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


@settings(max_examples=40, deadline=None)
@given(events=journeys(), seed=st.integers(0, 10**6))
def test_input_row_order_changes_nothing(events: pd.DataFrame, seed: int) -> None:
    shuffled = events.sample(frac=1.0, random_state=seed)
    for task in TASKS:
        instances = _instances(events, task)
        if instances is None:
            continue
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
        # serving: one customer's events as the store held them at the cutoff, cutoff = "now"
        for _, inst in instances.sample(25, random_state=1).iterrows():
            mine = events[
                (events["customer_id"] == inst["customer_id"]) & (events["ts"] < inst["cutoff_ts"])
            ]
            served = BUILDERS[task](sort_events(mine), instances.loc[[inst.name]]).set_index(
                "instance_id"
            )
            pd.testing.assert_frame_equal(served, whole.loc[[inst["instance_id"]]])
