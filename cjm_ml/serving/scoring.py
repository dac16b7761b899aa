"""Scoring at "now": open instances, features, risk, band and drivers, for the API and batch.

The features come from the same functions as training (``open_instances`` and the task's
builder), with the cutoff at the scoring moment; nothing here re-implements a feature.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from cjm_ml.features.pipeline import open_features
from cjm_ml.params import Task, TaskParams
from cjm_ml.serving.models import ModelSet
from cjm_ml.serving.store import EventStore
from cjm_ml.serving.tenants import Principal

log = logging.getLogger(__name__)

#: How far back an instance can still be open, per task: the customers a queue looks at
#: (first services are booked at delivery about five months ahead).
_LOOKBACK: dict[Task, timedelta] = {
    "lead_leakage": timedelta(days=31),
    "no_show": timedelta(days=365),
    "service_defection": timedelta(days=211),
}
#: The date a queue filters on: when the appointment is, or when the lead/delivery happened.
QUEUE_DATE: dict[Task, str] = {
    "lead_leakage": "anchor_ts",
    "no_show": "scheduled_ts",
    "service_defection": "anchor_ts",
}


@dataclass(frozen=True)
class Scored:
    """Open instances with their features, risk and band (``table``), and the model used."""

    task: Task
    table: pd.DataFrame
    model_name: str
    model_version: str
    cutoff: pd.Timestamp


def score_events(models: ModelSet, task: Task, events: pd.DataFrame, now: pd.Timestamp) -> Scored:
    """Score every instance open at ``now`` in ``events`` (canonical, typed) with the task's
    champion: the table gains ``risk``, ``raw`` (log-odds) and ``band``."""
    model = models.models[task]
    table = open_features(events, task, now, TaskParams())
    if table.empty:
        table = table.assign(risk=np.nan, raw=np.nan, band="low")
    else:
        raw = model.predict_raw(table)
        risk = model.calibrate(raw)
        table = table.assign(raw=raw, risk=risk, band=model.band(risk))
    return Scored(task, table, *model.identity, now)


def queue(
    models: ModelSet,
    store: EventStore,
    principal: Principal,
    task: Task,
    now: pd.Timestamp,
    *,
    rooftop_id: str | None = None,
    date_from: pd.Timestamp | None = None,
    date_to: pd.Timestamp | None = None,
    limit: int = 100,
) -> Scored:
    """The call list: the key's open instances ranked by risk (highest first), optionally for
    one rooftop and a date range (appointment date for no-shows, lead or delivery date else)."""
    rooftops = sorted(principal.rooftops if rooftop_id is None else {rooftop_id})
    customers = store.active_customers(
        principal.dealer_group_id, (now - _LOOKBACK[task]).to_pydatetime(), rooftops
    )
    events = store.customer_events(principal.dealer_group_id, customers)
    scored = score_events(models, task, events, now)
    table = scored.table
    keep = table["rooftop_id"].isin(rooftops)
    when = table[QUEUE_DATE[task]] if len(table) else pd.Series(dtype="datetime64[us, UTC]")
    if date_from is not None:
        keep &= when >= date_from
    if date_to is not None:
        keep &= when < date_to
    ranked = table[keep.to_numpy(dtype=bool)].sort_values(
        ["risk", "instance_id"], ascending=[False, True], kind="stable"
    )
    return Scored(
        task,
        ranked.head(limit).reset_index(drop=True),
        scored.model_name,
        scored.model_version,
        scored.cutoff,
    )
