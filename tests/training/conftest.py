"""Feature tables of the small simulated group, built once per session for training tests."""

from __future__ import annotations

import pandas as pd
import pytest

from cjm_ml.features.pipeline import build_feature_table
from cjm_ml.features.timeline import Timeline
from cjm_ml.params import TASKS, Task
from cjm_ml.simulation import SimulatedGroup


@pytest.fixture(scope="session")
def tables(small_group: SimulatedGroup) -> dict[Task, pd.DataFrame]:
    timeline = Timeline(small_group.events)
    return {t: build_feature_table(timeline, t) for t in TASKS}
