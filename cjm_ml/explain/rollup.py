"""Roll-ups for managers: which frictions add the most risk per rooftop and for the group, and
where a rooftop deviates from the group.

``rollup`` and ``hotspots`` are pure (DataFrame in, DataFrame out). Their checks against the
simulator's truth (planted-friction recovery, the re-simulated what-if) are in
``cjm_ml.evaluation``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cjm_ml.explain.drivers import MIN_DRIVER_RISK, DriverSpec, driver_table
from cjm_ml.params import Task
from cjm_ml.rules import GROUP

#: Columns the journey map's friction hotspots read (``cjm_ml.journey.report``); their one home.
HOTSPOT_COLUMNS = ("task", "rooftop_id", "driver", "stage", "mean_contribution", "instances")

_REQUIRED = ("rooftop_id", "driver", "contribution", "risk_points", "present", "fix_gain")


def rollup(contributions: pd.DataFrame, drivers: Sequence[DriverSpec], task: Task) -> pd.DataFrame:
    """Per rooftop and for the group (``rooftop_id == "group"``), each driver's weight.

    ``contributions``: one row per instance and driver (``DriverExplainer.driver_contributions``:
    ``rooftop_id``, ``driver``, ``contribution`` in calibrated log-odds, ``risk_points``,
    ``present``). A driver *touches* an instance when it is present there (frictions: removing
    it would change a feature; context: always) and pushes the risk up by ``MIN_DRIVER_RISK``
    or more (what an instance's explanation lists). A driver that touches no case of a scope
    has no row there (so a feature the model does not read, or never uses, has none). Per
    scope and driver:
    ``instances_total``; ``instances`` touched and their ``touched_share``; ``mean_shap``, the
    mean positive contribution over all the scope's instances (0 where not touched);
    ``mean_contribution``, the same in risk (probability points) - the risk it adds per
    instance on average; ``group_standard``, the median of the rooftops' ``mean_contribution``;
    ``excess``, a rooftop's ``mean_contribution`` above that standard (the friction-driven risk
    it carries that the group standard does not; 0 for the group rows); ``mean_fix_gain``, the
    risk the what-if removes per instance on average (frictions); ``rank`` among all
    drivers and ``friction_rank`` among frictions (by ``mean_shap``, 1 = most risk).
    Refuses a table missing a column, by name.
    """
    missing = [c for c in _REQUIRED if c not in contributions.columns]
    if missing:
        raise ValueError(f"{task}: the contributions lack {', '.join(missing)}")
    meta = driver_table(drivers)
    unknown = sorted(set(contributions["driver"]) - set(meta["driver"]))
    if unknown:
        raise ValueError(f"{task}: contributions for unknown driver(s) {', '.join(unknown)}")
    out = _weights(contributions)
    rooftops = out[out["rooftop_id"] != GROUP]
    standard = rooftops.groupby("driver")["mean_contribution"].median()
    out["group_standard"] = out["driver"].map(standard).astype(float)
    out["excess"] = np.where(
        out["rooftop_id"] == GROUP, 0.0, out["mean_contribution"] - out["group_standard"]
    )
    out = _ranked(out.merge(meta, on="driver", how="left"))
    out = out[out["instances"] > 0]  # ranks stand: an untouched driver ranks below the rest
    out.insert(0, "task", task)
    scope = np.where(out["rooftop_id"] == GROUP, "", out["rooftop_id"])
    out = out.assign(_scope=scope).sort_values(["_scope", "rank"], kind="stable")
    return out[list(ROLLUP_COLUMNS)].reset_index(drop=True)


#: The roll-up's columns, in order.
ROLLUP_COLUMNS = (
    "task",
    "rooftop_id",
    "driver",
    "label",
    "kind",
    "stage",
    "touchpoint",
    "instances_total",
    "instances",
    "touched_share",
    "mean_shap",
    "mean_contribution",
    "mean_fix_gain",
    "group_standard",
    "excess",
    "rank",
    "friction_rank",
)


def _weights(contributions: pd.DataFrame) -> pd.DataFrame:
    """Per rooftop and for the group, each driver's instances, touched share, mean positive
    contribution (log-odds and risk points) and mean fix gain."""
    c = contributions[list(_REQUIRED)].copy()
    c["rooftop_id"] = c["rooftop_id"].astype("string")
    touched = c["present"].astype(bool).to_numpy() & (
        c["risk_points"].to_numpy() >= MIN_DRIVER_RISK
    )
    c["touched"] = touched.astype(np.int64)
    c["shap_up"] = np.where(touched, c["contribution"], 0.0)
    c["points_up"] = np.where(touched, c["risk_points"], 0.0)
    c["gain"] = np.where(c["present"].astype(bool), c["fix_gain"], 0.0)
    both = pd.concat([c, c.assign(rooftop_id=GROUP)], ignore_index=True)
    out = (
        both.groupby(["rooftop_id", "driver"], sort=False)
        .agg(
            instances_total=("touched", "size"),
            instances=("touched", "sum"),
            mean_shap=("shap_up", "mean"),
            mean_contribution=("points_up", "mean"),
            mean_fix_gain=("gain", "mean"),
        )
        .reset_index()
    )
    out["touched_share"] = out["instances"] / out["instances_total"]
    return out


def _ranked(out: pd.DataFrame) -> pd.DataFrame:
    """``rank`` among all drivers and ``friction_rank`` among frictions, per scope, by
    ``mean_shap`` (1 = most risk)."""
    out["rank"] = (
        out.groupby("rooftop_id")["mean_shap"].rank(ascending=False, method="first").astype(int)
    )
    frictions = out["kind"] == "friction"
    out["friction_rank"] = (
        out[frictions].groupby("rooftop_id")["mean_shap"].rank(ascending=False, method="first")
    ).astype("Int64")
    return out


def hotspots(rollups: pd.DataFrame) -> pd.DataFrame:
    """The journey map's friction hotspots from one or more roll-ups: per task, rooftop and
    friction, ``driver`` (its dealer-language label), ``stage``, ``mean_contribution`` (risk
    added per instance) and ``instances`` touched; rooftops only, frictions only."""
    rows = rollups[(rollups["rooftop_id"] != GROUP) & (rollups["kind"] == "friction")]
    out = rows[["task", "rooftop_id", "label", "stage", "mean_contribution", "instances"]]
    out = out.rename(columns={"label": "driver"}).astype({"instances": int})
    return out.sort_values(
        ["task", "rooftop_id", "mean_contribution"], ascending=[True, True, False]
    ).reset_index(drop=True)
