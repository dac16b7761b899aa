"""What a simulated group's folder says about itself (its ``rooftops.json``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cjm_ml.simulation import SimulationConfig
from cjm_ml.simulation.rooftops import PlantedDeviation


@dataclass(frozen=True)
class Simulated:
    """A simulated group's config (to re-simulate it) and its planted deviations."""

    config: SimulationConfig
    planted: list[PlantedDeviation]


def read_simulated(folder: Path) -> Simulated | None:
    """The simulated group written to ``folder`` (``cjm simulate``), from its ``rooftops.json``;
    None when the folder holds no such file, or one without a config and planted deviations
    (a real dealer group)."""
    path = folder / "rooftops.json"
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    if "config" not in raw or "planted_deviations" not in raw:
        return None
    return Simulated(
        config=SimulationConfig.model_validate(raw["config"]),
        planted=[PlantedDeviation.model_validate(p) for p in raw["planted_deviations"]],
    )
