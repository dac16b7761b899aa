"""The group's comparison values that drivers quote ("the group's median is ..."): computed at
training time and carried by the model artifact."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cjm_ml.params import Task, TaskParams
from cjm_ml.registry import features_for


def group_norms(
    table: pd.DataFrame, task: Task, params: TaskParams | None = None
) -> dict[str, float]:
    """The group's comparison value for each of the task's features that has a norm: the
    median (numbers), the share of 1s (flags; unknowns left out), or the group's response
    standard. Refuses a table missing one of those features, by name."""
    params = params or TaskParams()
    out: dict[str, float] = {}
    for f in features_for(task):
        w = f.wording
        if w is None or w.norm is None:
            continue
        if w.norm == "sla":
            out[f.name] = float(params.response_sla_minutes)
            continue
        if f.name not in table.columns:
            raise ValueError(f"{task}: the table lacks {f.name}, needed for the group's norms")
        values = pd.to_numeric(table[f.name], errors="coerce").to_numpy(dtype=float)
        values = values[~np.isnan(values)]
        if len(values):
            out[f.name] = float(np.median(values) if w.norm == "median" else values.mean())
    return out
