"""The small simulated group on disk: as ``cjm demo`` leaves it, and as its raw exports."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cjm_ml.config import Settings
from cjm_ml.params import TASKS, Task
from cjm_ml.simulation import SimulatedGroup, write_simulation
from cjm_ml.simulation.exports import write_raw_exports
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


@pytest.fixture(scope="session")
def written(tmp_path_factory: pytest.TempPathFactory, small_group: SimulatedGroup) -> Path:
    """The small group as ``cjm simulate --raw-exports`` writes it: ``simulator/``, ``exports/``."""
    root = tmp_path_factory.mktemp("written")
    write_simulation(small_group, root / "simulator")
    write_raw_exports(small_group, root / "exports")
    return root
