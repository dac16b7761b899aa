"""Feature tables: instances with labels joined to their point-in-time features (pure)."""

from __future__ import annotations

import json

import pandas as pd

from cjm_ml.features.build import BUILDERS
from cjm_ml.features.instances import build_instances
from cjm_ml.features.registry import features_for
from cjm_ml.features.timeline import Timeline
from cjm_ml.params import Task, TaskParams


def build_feature_table(
    events: pd.DataFrame | Timeline,
    task: Task,
    params: TaskParams | None = None,
    as_of: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The task's instances (with labels) and features, from the canonical events.

    Raises ``NoInstancesError`` when the events hold nothing to predict for this task, and
    ``MissingColumnsError`` when the events lack a required column.
    """
    params = params or TaskParams()
    tl = Timeline.of(events)
    instances = build_instances(tl, task, params, as_of=as_of)
    return BUILDERS[task](tl, instances, params)


def feature_table_metadata(table: pd.DataFrame, task: Task, params: TaskParams) -> dict[str, str]:
    """What a feature table's file carries besides its rows: task, windows, feature list."""
    labelled = table["label"].dropna()
    return {
        "task": task,
        "params": params.model_dump_json(),
        "features": json.dumps([f.name for f in features_for(task)]),
        "instances": str(len(table)),
        "labelled": str(len(labelled)),
        "label_rate": f"{labelled.astype(float).mean():.4f}" if len(labelled) else "nan",
        "cutoff_range": json.dumps([str(table["cutoff_ts"].min()), str(table["cutoff_ts"].max())]),
    }
