"""The comparison values that drivers quote ("the median in the group is ..."): computed at
training time, per dealer group and pooled, and carried by the model artifact
(``ModelArtifact.norms_``; ``POOLED_NORMS`` is the pooled set's key)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from cjm_ml.artifact import POOLED_NORMS
from cjm_ml.featureset import FeatureSet, feature_set_of
from cjm_ml.params import Task, TaskParams

log = logging.getLogger(__name__)

#: Default of the training parameter ``[norms] min_group_instances``: a dealer group with fewer
#: labelled instances than this is compared with the figures across groups, not its own.
MIN_GROUP_INSTANCES = 200


def group_norms(
    table: pd.DataFrame, task: Task | FeatureSet, params: TaskParams | None = None
) -> dict[str, float]:
    """The comparison value of the table's rows for each of the task's features (or the
    feature set's) that has a norm: the median (numbers), the share of 1s (flags; unknowns
    left out), or the response standard. Refuses a table missing one of those features, by
    name."""
    params = params or TaskParams()
    feature_set = feature_set_of(task)
    task = feature_set.task
    out: dict[str, float] = {}
    for f in feature_set.specs:
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


def norms_by_group(
    table: pd.DataFrame,
    task: Task | FeatureSet,
    params: TaskParams | None = None,
    *,
    min_instances: int = MIN_GROUP_INSTANCES,
) -> dict[str, dict[str, float]]:
    """``group_norms`` of every row under ``POOLED_NORMS``, and of each dealer group's own rows
    under its ``dealer_group_id`` where it has at least ``min_instances`` rows (a table of one
    group: that group, whatever its size; its norms are the pooled ones). A group left out is
    compared with the pooled norms. Refuses a table without ``dealer_group_id`` or with a
    missing group id (or one spelled ``POOLED_NORMS``), and ``min_instances`` under 1."""
    if min_instances < 1:
        raise ValueError(f"min_instances must be at least 1, got {min_instances}")
    feature_set = feature_set_of(task)
    task = feature_set.task
    if "dealer_group_id" not in table.columns:
        raise ValueError(f"{task}: the table lacks dealer_group_id, needed for the group's norms")
    groups = table["dealer_group_id"].astype("string")
    if groups.isna().any():
        raise ValueError(f"{task}: {int(groups.isna().sum())} rows have no dealer_group_id")
    if (groups == POOLED_NORMS).any():
        raise ValueError(f"{task}: {POOLED_NORMS!r} is the pooled norms' key, not a group id")
    out = {POOLED_NORMS: group_norms(table, feature_set, params)}
    sizes = groups.value_counts()
    if len(sizes) == 1:
        out[str(sizes.index[0])] = dict(out[POOLED_NORMS])
        return out
    for group, size in sorted(sizes.items()):
        if size >= min_instances:
            out[str(group)] = group_norms(table[(groups == group).to_numpy()], feature_set, params)
        else:
            log.info(
                "%s: %s has %d instances (< %d): its sentences quote the figures across groups",
                task,
                group,
                size,
                min_instances,
            )
    return out
