"""Feature tables: instances with labels joined to their point-in-time features (pure).

Training builds whole tables (``build_feature_table``); serving scores the instances open at
"now" (``open_feature_columns``, as columns). Both run the same instance and feature code on
one ``Timeline``: the registry's features of the task, then its declared ones
(``cjm_ml.featureset``: a features file, or the generic features), in that order.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from cjm_ml.features.build import BUILDERS, feature_columns
from cjm_ml.features.declared import declared_arrays
from cjm_ml.features.instances import build_instances, open_instance_columns
from cjm_ml.features.timeline import Columns, Timeline
from cjm_ml.featureset import DeclaredFeature, FeatureSet
from cjm_ml.params import Task, TaskParams

log = logging.getLogger(__name__)


def build_feature_table(
    events: pd.DataFrame | Timeline,
    task: Task,
    params: TaskParams | None = None,
    as_of: pd.Timestamp | None = None,
    declared: Sequence[DeclaredFeature] = (),
) -> pd.DataFrame:
    """The task's instances (with labels) and features, from the canonical events: the
    registry's, then the ``declared`` features for the task (``table.attrs["declared"]``
    holds them; ``feature_table_metadata`` writes them to the file).

    Instances settled before their cutoff are left out; ``table.attrs["settled_left_out"]``
    counts them (and ``"bad_or_duplicate_left_out"`` the leads closed as such). Raises
    ``NoInstancesError`` when the events hold nothing to predict for this task, and
    ``MissingColumnsError`` when the events lack a required column.
    """
    params = params or TaskParams()
    tl = Timeline.of(events)
    instances = build_instances(tl, task, params, as_of=as_of)
    feature_set = FeatureSet(task, tuple(declared))
    table = BUILDERS[task](tl, instances, params)
    declared_columns = _declared(tl, instances, feature_set.declared)
    if declared_columns:
        table = pd.concat([table, pd.DataFrame(declared_columns, index=table.index)], axis=1)
    table.attrs.update(instances.attrs)
    table.attrs["declared"] = feature_set.dump()
    return table


def open_feature_columns(
    events: pd.DataFrame | Timeline,
    task: Task,
    now: pd.Timestamp,
    params: TaskParams | None = None,
    declared: Sequence[DeclaredFeature] = (),
) -> Columns:
    """The instances open at ``now`` with their features as known at ``now``, as columns
    (name -> 1-D array; ``RiskModel.predict_risk`` takes them as they are).

    Exactly ``BUILDERS[task](events before now, open_instances(events, task, now))``, one row
    per open instance (none: every column, empty), computed on one ``Timeline`` of the events
    before ``now`` and without building a DataFrame: the per-request scoring path.
    ``events``: the canonical table (typically one customer's events) or a ``Timeline``;
    ``declared``: the declared features the model reads (its artifact carries them).
    """
    params = params or TaskParams()
    now = pd.Timestamp(now)
    tl = events.before(now) if isinstance(events, Timeline) else Timeline(events, until=now)
    instances = open_instance_columns(tl, task, now, params)
    columns = feature_columns(tl, instances, task, params)
    columns.update(_declared(tl, instances, [d for d in declared if task in d.tasks]))
    return columns


def _declared(
    tl: Timeline, instances: pd.DataFrame | Mapping[str, Any], declared: Sequence[DeclaredFeature]
) -> dict[str, Any]:
    """The declared features for the instances; a category's unknown value is the level
    ``"unknown"``, as the registry's categories."""
    if not declared:
        return {}
    out = declared_arrays(tl, instances, declared)
    for d in declared:
        if d.kind == "category":
            out[d.name] = pd.array(out[d.name], dtype="string").fillna("unknown")
    return out


def feature_table_metadata(table: pd.DataFrame, task: Task, params: TaskParams) -> dict[str, str]:
    """What a feature table's file carries besides its rows: task, windows, feature list,
    the declared features (``declared``: training carries them into the model), and how many
    instances were left out: settled before their cutoff (``settled_left_out``), and for
    lead_leakage, leads the CRM closed as bad or duplicate (``bad_or_duplicate_left_out``)."""
    labelled = table["label"].dropna()
    feature_set = FeatureSet.of(task, table.attrs.get("declared", ()))
    return {
        "task": task,
        "params": params.model_dump_json(),
        "features": json.dumps(feature_set.names),
        "declared": json.dumps(feature_set.dump()),
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


def feature_table_declared(metadata: Mapping[str, str]) -> tuple[DeclaredFeature, ...]:
    """The declared features a feature table was built with, from its file's metadata (none
    when it names none). Raises ``ValueError`` for declarations that do not validate."""
    raw = json.loads(metadata.get("declared", "[]"))
    return tuple(DeclaredFeature.model_validate(d) for d in raw)
