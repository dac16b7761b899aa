"""Serving features: the instances open at "now" with their features, in one call, exactly as
the training functions compute them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cjm_ml.features.build import BUILDERS
from cjm_ml.features.instances import open_instances
from cjm_ml.features.pipeline import open_feature_columns
from cjm_ml.features.timeline import Timeline
from cjm_ml.params import TASKS, Task
from cjm_ml.simulation import SimulatedGroup
from tests.features.journeys import at, events


def open_features(events: pd.DataFrame | Timeline, task: Task, now: pd.Timestamp) -> pd.DataFrame:
    """The open instances' feature columns as a table."""
    return pd.DataFrame(open_feature_columns(events, task, now))


def test_open_features_are_the_builders_on_the_open_instances(small_group: SimulatedGroup) -> None:
    ev = small_group.events
    now = pd.Timestamp(small_group.config.start) + pd.Timedelta(days=450, minutes=7)
    known = ev[ev["ts"] < now]
    rng = np.random.default_rng(5)
    for task in TASKS:
        instances = open_instances(ev, task, now)
        expected = BUILDERS[task](known, instances)
        assert len(expected) > 20, task
        pd.testing.assert_frame_equal(open_features(ev, task, now), expected)
        pd.testing.assert_frame_equal(open_features(Timeline(ev), task, now), expected)
        # a request: one customer's events, the future ones included
        for customer in rng.choice(instances["customer_id"].unique(), 10, replace=False):
            mine = ev[ev["customer_id"] == customer]
            served = open_features(mine, task, now)
            pd.testing.assert_frame_equal(
                served, expected[expected["customer_id"] == customer].reset_index(drop=True)
            )


def test_nothing_open_gives_every_column_empty(small_group: SimulatedGroup) -> None:
    ev = small_group.events
    now = pd.Timestamp(small_group.config.start) + pd.Timedelta(days=450)
    browsing_only = events([{"ts": at(0), "event_type": "vdp_view"}])
    before_anything = ev["ts"].min()
    for task in TASKS:
        full = open_features(ev, task, now)
        for empty in (
            open_features(browsing_only, task, now),
            open_features(ev, task, before_anything),
        ):
            assert empty.empty and list(empty.columns) == list(full.columns), task
            assert (empty.dtypes == full.dtypes).all(), task
