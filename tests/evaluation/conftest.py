"""The small simulated group on disk as ``cjm demo`` leaves it."""

from __future__ import annotations

import pandas as pd
import pytest

from cjm_ml.config import Settings
from cjm_ml.params import TASKS, Task
from cjm_ml.simulation import SimulatedGroup, write_simulation
from cjm_ml.training.model import RiskModel


@pytest.fixture(scope="module")
def on_disk(
    tmp_path_factory: pytest.TempPathFactory,
    small_group: SimulatedGroup,
    tables: dict[Task, pd.DataFrame],
    models: dict[Task, RiskModel],
) -> Settings:
    """The small group as ``cjm demo`` leaves it: data/demo/... (events, truth, rooftops.json,
    feature tables) and models/<task>/."""
    root = tmp_path_factory.mktemp("cjm")
    demo = root / "data" / "demo"
    write_simulation(small_group, demo)
    (demo / "features").mkdir()
    for task in TASKS:
        tables[task].to_parquet(demo / "features" / f"{task}.parquet")
        models[task].save(root / "models" / task)
    return Settings(data_dir=root / "data", models_dir=root / "models")
