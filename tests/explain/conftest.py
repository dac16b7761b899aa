"""Risk models of the small simulated group, one per task, fitted once per session."""

from __future__ import annotations

import pandas as pd
import pytest

from cjm_ml.explain.drivers import DriverExplainer
from cjm_ml.params import TASKS, Task
from cjm_ml.training.model import RiskModel
from cjm_ml.training.norms import group_norms
from cjm_ml.training.split import time_split


@pytest.fixture(scope="session")
def models(tables: dict[Task, pd.DataFrame]) -> dict[Task, RiskModel]:
    """A calibrated LightGBM model per task, fitted on the small group's past."""
    out: dict[Task, RiskModel] = {}
    for task in TASKS:
        split = time_split(tables[task])
        out[task] = RiskModel(task).fit(split.train, split.valid)
    return out


@pytest.fixture(scope="session")
def explainers(
    models: dict[Task, RiskModel], tables: dict[Task, pd.DataFrame]
) -> dict[Task, DriverExplainer]:
    """An explainer per task, quoting the small group's norms."""
    return {t: DriverExplainer(models[t], group_norms(tables[t], t)) for t in TASKS}
