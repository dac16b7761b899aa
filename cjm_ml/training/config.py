"""The training parameters file: split shares, LightGBM hyperparameters per task, the search,
and the minimum data a dealer group needs for norms of its own.

The embedded default is ``cjm_ml/data/training.toml``; analysts pass their own file of the same
shape. Unknown keys are refused by name, so a typo never silently trains with a default.
"""

from __future__ import annotations

import itertools
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cjm_ml.params import TASKS, Task, read_parameters_toml
from cjm_ml.training.model import TrainingParams
from cjm_ml.training.norms import MIN_GROUP_INSTANCES

#: The sections of a parameters file that training reads.
SECTIONS = ("lightgbm", "norms", "search", "split")
#: Default of ``[search] below_rows``: a training period with fewer rows searches the grid
#: unless ``cjm train --no-search``.
SEARCH_BELOW_ROWS = 50_000


class SplitParams(BaseModel):
    """Shares of the labelled instances, by cutoff time, for validation and test."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    valid_share: float = Field(0.15, gt=0, lt=0.5)
    test_share: float = Field(0.15, gt=0, lt=0.5)


class NormsParams(BaseModel):
    """The norms the sentences quote: a dealer group with fewer labelled instances than
    ``min_group_instances`` is compared with the figures across groups ("across groups"),
    not its own (a model trained on one group always quotes that group's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    min_group_instances: int = Field(MIN_GROUP_INSTANCES, ge=1)


class TrainingConfig(BaseModel):
    """Everything ``cjm train`` reads from the parameters file."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    split: SplitParams = SplitParams()
    norms: NormsParams = NormsParams()
    lightgbm: dict[Task, TrainingParams]
    search: dict[str, list[Any]] = Field(default_factory=dict)
    search_below_rows: int = Field(
        SEARCH_BELOW_ROWS,
        ge=0,
        description="Search the grid unless asked not to when the training period has fewer "
        "rows: small data needs other settings than the defaults, and fitting is cheap there.",
    )

    def candidates(self, task: Task, search: bool) -> list[TrainingParams]:
        """The task's parameters, or every combination of the search grid applied to them."""
        base = self.lightgbm[task]
        if not search or not self.search:
            return [base]
        names = list(self.search)
        return [
            base.model_copy(update=dict(zip(names, values, strict=True)))
            for values in itertools.product(*(self.search[n] for n in names))
        ]


def default_params_path() -> Path:
    """The embedded parameters file."""
    return Path(str(resources.files("cjm_ml") / "data" / "training.toml"))


def load_training_config(path: Path | None = None) -> TrainingConfig:
    """Read a parameters file (default: the embedded one). ``[lightgbm]`` holds the shared
    hyperparameters; ``[lightgbm.<task>]`` tables override them for one task. Errors name the
    file and the offending key."""
    path = path or default_params_path()
    raw = read_parameters_toml(path)
    shared = {k: v for k, v in raw.get("lightgbm", {}).items() if k not in TASKS}
    per_task = {t: {**shared, **raw.get("lightgbm", {}).get(t, {})} for t in TASKS}
    search = dict(raw.get("search", {}))
    below_rows = search.pop("below_rows", SEARCH_BELOW_ROWS)
    try:
        unknown = set(search) - set(TrainingParams.model_fields)
        if unknown:
            raise ValueError(f"[search] has unknown hyperparameters: {', '.join(sorted(unknown))}")
        return TrainingConfig(
            split=SplitParams(**raw.get("split", {})),
            norms=NormsParams(**raw.get("norms", {})),
            lightgbm={t: TrainingParams(**v) for t, v in per_task.items()},
            search={k: list(v) for k, v in search.items()},
            search_below_rows=below_rows,
        )
    except (ValidationError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
