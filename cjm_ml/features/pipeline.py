"""Feature tables: instances with labels joined to their point-in-time features (pure).

Training builds whole tables (``build_feature_table``); serving scores the instances open at
"now" (``open_feature_columns``, as columns). Both run the same instance and feature code on
one ``Timeline``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

import pandas as pd

from cjm_ml.features.build import BUILDERS, feature_columns
from cjm_ml.features.instances import build_instances, open_instance_columns
from cjm_ml.features.timeline import Columns, Timeline
from cjm_ml.params import Task, TaskParams
from cjm_ml.registry import features_for

log = logging.getLogger(__name__)


def build_feature_table(
    events: pd.DataFrame | Timeline,
    task: Task,
    params: TaskParams | None = None,
    as_of: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The task's instances (with labels) and features, from the canonical events.

    Instances settled before their cutoff are left out; ``table.attrs["settled_left_out"]``
    counts them (and ``"bad_or_duplicate_left_out"`` the leads closed as such). Raises
    ``NoInstancesError`` when the events hold nothing to predict for this task, and
    ``MissingColumnsError`` when the events lack a required column.
    """
    params = params or TaskParams()
    tl = Timeline.of(events)
    instances = build_instances(tl, task, params, as_of=as_of)
    table = BUILDERS[task](tl, instances, params)
    table.attrs.update(instances.attrs)
    return table


def open_feature_columns(
    events: pd.DataFrame | Timeline,
    task: Task,
    now: pd.Timestamp,
    params: TaskParams | None = None,
) -> Columns:
    """The instances open at ``now`` with their features as known at ``now``, as columns
    (name -> 1-D array; ``RiskModel.predict_risk`` takes them as they are).

    Exactly ``BUILDERS[task](events before now, open_instances(events, task, now))``, one row
    per open instance (none: every column, empty), computed on one ``Timeline`` of the events
    before ``now`` and without building a DataFrame: the per-request scoring path.
    ``events``: the canonical table (typically one customer's events) or a ``Timeline``.
    """
    params = params or TaskParams()
    now = pd.Timestamp(now)
    tl = events.before(now) if isinstance(events, Timeline) else Timeline(events, until=now)
    return feature_columns(tl, open_instance_columns(tl, task, now, params), task, params)


def feature_table_metadata(table: pd.DataFrame, task: Task, params: TaskParams) -> dict[str, str]:
    """What a feature table's file carries besides its rows: task, windows, feature list, and
    how many instances were left out: settled before their cutoff (``settled_left_out``),
    and for lead_leakage, leads the CRM closed as bad or duplicate
    (``bad_or_duplicate_left_out``)."""
    labelled = table["label"].dropna()
    return {
        "task": task,
        "params": params.model_dump_json(),
        "features": json.dumps([f.name for f in features_for(task)]),
        "instances": str(len(table)),
        "settled_left_out": str(table.attrs.get("settled_left_out", 0)),
        **{
            key: str(table.attrs[key])
            for key in ("bad_or_duplicate_left_out",)
            if key in table.attrs
        },
        "labelled": str(len(labelled)),
        "label_rate": f"{labelled.astype(float).mean():.4f}" if len(labelled) else "nan",
        "cutoff_range": json.dumps([str(table["cutoff_ts"].min()), str(table["cutoff_ts"].max())]),
    }


def feature_table_params(metadata: Mapping[str, str]) -> TaskParams:
    """The windows and standards a feature table was built with, from its file's metadata
    (as ``feature_table_metadata`` wrote it): training carries them into the model artifact.
    A file without them (not written by ``cjm features``) gets the embedded defaults, with a
    warning. Raises ``ValueError`` for parameters that do not validate."""
    if "params" not in metadata:
        log.warning("the feature table carries no task parameters; using the embedded defaults")
        return TaskParams()
    return TaskParams.model_validate_json(metadata["params"])
