"""Roll-ups for managers: which frictions add the most risk per rooftop and for the group, where
a rooftop deviates from the group, and checks of both against the simulator's truth.

``rollup`` and ``hotspots`` are pure (DataFrame in, DataFrame out); ``planted_recovery``
scores a roll-up against the deviations the simulator planted; ``resimulated_what_if`` runs the
simulator again with one rooftop's friction fixed and compares the true change in its outcome
rate with what the model's what-if predicted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from cjm_ml.explain.drivers import DriverExplainer, DriverSpec, driver_table
from cjm_ml.features.pipeline import build_feature_table
from cjm_ml.params import Task
from cjm_ml.simulation import SimulatedGroup, SimulationConfig, simulate
from cjm_ml.simulation.rooftops import PlantedDeviation

log = logging.getLogger(__name__)

#: The scope name of the whole group's rows in a roll-up.
GROUP = "group"
#: Columns the journey map's friction hotspots read (``cjm_ml.journey.report``).
HOTSPOT_COLUMNS = ("task", "rooftop_id", "driver", "stage", "mean_contribution", "instances")
#: A planted friction counts as recovered when the roll-up ranks it this high or better.
RECOVERY_TOP = 3
#: The model's what-if counts as wrong when it misses the true change by more than this share
#: of it (and by more than ``WHAT_IF_SLACK`` in absolute risk).
WHAT_IF_TOLERANCE = 0.3
WHAT_IF_SLACK = 0.01

_REQUIRED = ("rooftop_id", "driver", "contribution", "risk_points", "present", "fix_gain")


def rollup(contributions: pd.DataFrame, drivers: Sequence[DriverSpec], task: Task) -> pd.DataFrame:
    """Per rooftop and for the group (``rooftop_id == "group"``), each driver's weight.

    ``contributions``: one row per instance and driver (``DriverExplainer.driver_contributions``:
    ``rooftop_id``, ``driver``, ``contribution`` in calibrated log-odds, ``risk_points``,
    ``present``). A driver *touches* an instance when it is present there (frictions: removing
    it would change a feature; context: always) and pushes the risk up. Per scope and driver:
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
    c = contributions[list(_REQUIRED)].copy()
    c["rooftop_id"] = c["rooftop_id"].astype("string")
    touched = c["present"].astype(bool).to_numpy() & (c["contribution"].to_numpy() > 0)
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
    rooftops = out[out["rooftop_id"] != GROUP]
    standard = rooftops.groupby("driver")["mean_contribution"].median()
    out["group_standard"] = out["driver"].map(standard).astype(float)
    out["excess"] = np.where(
        out["rooftop_id"] == GROUP, 0.0, out["mean_contribution"] - out["group_standard"]
    )
    out = out.merge(meta, on="driver", how="left")
    out["rank"] = (
        out.groupby("rooftop_id")["mean_shap"].rank(ascending=False, method="first").astype(int)
    )
    frictions = out["kind"] == "friction"
    out["friction_rank"] = (
        out[frictions].groupby("rooftop_id")["mean_shap"].rank(ascending=False, method="first")
    ).astype("Int64")
    out.insert(0, "task", task)
    scope = np.where(out["rooftop_id"] == GROUP, "", out["rooftop_id"])
    out = out.assign(_scope=scope).sort_values(["_scope", "rank"], kind="stable")
    columns = [
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
    ]
    return out[columns].reset_index(drop=True)


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


def planted_recovery(rollups: pd.DataFrame, planted: Sequence[PlantedDeviation]) -> pd.DataFrame:
    """For each planted deviation (rooftop, friction, task), where the roll-up of its task
    places the friction at its rooftop. A planted deviation is a rooftop carrying more of a
    friction than the group standard, so it is ``recovered`` when the friction is among the
    rooftop's ``RECOVERY_TOP`` frictions by ``excess`` (risk carried above the group standard)
    and that excess is positive. Also given: ``friction_rank`` (among the rooftop's frictions
    by mean positive contribution), ``rank`` (among all its drivers, context included),
    ``mean_contribution`` and ``excess``. A friction the task's features cannot express has no
    rank and is not recovered."""
    seen = dict.fromkeys((p.rooftop_id, p.friction, p.task) for p in planted)
    records = []
    for rooftop_id, friction, task in seen:
        at = rollups[(rollups["task"] == task) & (rollups["rooftop_id"] == rooftop_id)]
        frictions = at[at["kind"] == "friction"]
        excess_rank = frictions["excess"].rank(ascending=False, method="min")
        row = at[at["driver"] == friction]
        record: dict[str, object] = {
            "task": task,
            "rooftop_id": rooftop_id,
            "friction": friction,
            "label": friction,
            "excess_rank": None,
            "friction_rank": None,
            "rank": None,
            "mean_contribution": None,
            "excess": None,
            "recovered": False,
        }
        if not row.empty:
            r = row.iloc[0]
            rank = int(excess_rank[row.index[0]])
            record.update(
                label=r["label"],
                excess_rank=rank,
                friction_rank=int(r["friction_rank"]),
                rank=int(r["rank"]),
                mean_contribution=float(r["mean_contribution"]),
                excess=float(r["excess"]),
                recovered=bool(rank <= RECOVERY_TOP and r["excess"] > 0),
            )
        records.append(record)
    out = pd.DataFrame.from_records(records)
    return out.astype({"friction_rank": "Int64", "rank": "Int64", "excess_rank": "Int64"})


def recovery_rate(recovery: pd.DataFrame) -> float:
    """The share of planted deviations recovered (NaN when none were planted)."""
    return float(recovery["recovered"].mean()) if len(recovery) else float("nan")


# ------------------------------------------------------------------------------ what-if
class WhatIfCheck(BaseModel):
    """The model's what-if for one rooftop's friction against a re-simulation with it fixed.

    Rates are means over the rooftop's instances of the task: ``true_*`` of the simulator's
    true probability, ``observed_*`` of the labels (where known), ``model_*`` of the model's
    risk. ``model_what_if`` is the model's risk with the friction removed from every instance
    that has it (the explanations' what-if). The re-simulation moves the rooftop to the group
    standard, which still leaves some instances with the friction (``present_after`` against
    ``present_before``), so ``predicted_change`` scales the what-if's change by the share of
    the friction the standard removes; ``true_change`` is what the re-simulation shows.
    ``model_resimulated`` is the model's risk on the re-simulated rooftop's own features.
    ``wrong`` is True when ``predicted_change`` misses ``true_change`` by more than the
    tolerance; ``note`` says so, and why, in words.
    """

    model_config = ConfigDict(frozen=True)
    task: Task
    rooftop_id: str
    friction: str
    settings: list[str]
    instances_before: int
    instances_after: int
    present_before: float
    present_after: float
    true_before: float
    true_after: float
    observed_before: float
    observed_after: float
    model_before: float
    model_what_if: float
    model_resimulated: float
    true_change: float
    what_if_change: float
    predicted_change: float
    resimulated_change: float
    wrong: bool
    note: str


def _rate(values: pd.Series) -> float:
    v = values.dropna().astype(float)
    return float(v.mean()) if len(v) else float("nan")


def resimulated_what_if(
    explainer: DriverExplainer,
    config: SimulationConfig,
    rooftop_id: str,
    friction: str,
    *,
    original: SimulatedGroup | None = None,
    table: pd.DataFrame | None = None,
) -> WhatIfCheck:
    """Simulate the group again with the rooftop's planted settings for ``friction`` set to
    the group standard (same seed), and compare the true change in the rooftop's outcome rate
    with the model's what-if on the original instances. ``original`` (the simulated group of
    ``config``) and ``table`` (its feature table for the explainer's task) are rebuilt when not
    given. Refuses a rooftop or friction the group did not plant, by name."""
    task = explainer.task
    original = original or simulate(config)
    settings = [
        p.setting
        for p in original.planted
        if p.rooftop_id == rooftop_id and p.friction == friction and p.task == task
    ]
    if not settings:
        planted = sorted({(p.rooftop_id, p.friction) for p in original.planted if p.task == task})
        raise ValueError(
            f"{task}: no planted deviation {friction!r} at {rooftop_id!r}; planted: {planted}"
        )
    fixed = simulate(config.model_copy(update={"fixes": ((rooftop_id, tuple(settings)),)}))
    before = table if table is not None else build_feature_table(original.events, task)
    after = build_feature_table(fixed.events, task)
    before = before[before["rooftop_id"].astype("string") == rooftop_id].reset_index(drop=True)
    after = after[after["rooftop_id"].astype("string") == rooftop_id].reset_index(drop=True)
    truth_before = before[["instance_id"]].merge(original.truth[task], on="instance_id", how="left")
    truth_after = after[["instance_id"]].merge(fixed.truth[task], on="instance_id", how="left")
    x = explainer.encode(before)
    x_after = explainer.encode(after)
    risk = explainer.risk(x)
    what_if = explainer.what_if(x, friction)
    model_after = explainer.risk(x_after)
    present_before = float(explainer.present(x, friction).mean()) if len(x) else 0.0
    present_after = float(explainer.present(x_after, friction).mean()) if len(x_after) else 0.0
    removed = float(np.clip(1 - present_after / present_before, 0, 1)) if present_before else 0.0
    true_before = _rate(truth_before["true_prob"])
    true_after = _rate(truth_after["true_prob"])
    true_change = true_after - true_before
    what_if_change = float(what_if.mean() - risk.mean())
    predicted = what_if_change * removed
    resimulated = float(model_after.mean() - risk.mean())
    wrong = _off(predicted, true_change)
    note = _what_if_note(predicted, true_change, wrong, _off(resimulated, true_change))
    log.info(
        "%s: what-if %s at %s: predicted %+.4f, true %+.4f",
        task,
        friction,
        rooftop_id,
        predicted,
        true_change,
    )
    return WhatIfCheck(
        task=task,
        rooftop_id=rooftop_id,
        friction=friction,
        settings=settings,
        instances_before=len(before),
        instances_after=len(after),
        present_before=present_before,
        present_after=present_after,
        true_before=true_before,
        true_after=true_after,
        observed_before=_rate(before["label"]),
        observed_after=_rate(after["label"]),
        model_before=float(risk.mean()),
        model_what_if=float(what_if.mean()),
        model_resimulated=float(model_after.mean()),
        true_change=true_change,
        what_if_change=what_if_change,
        predicted_change=predicted,
        resimulated_change=resimulated,
        wrong=wrong,
        note=note,
    )


def _off(estimate: float, true: float) -> bool:
    """Whether an estimated change misses the true one by more than the tolerance."""
    return bool(abs(estimate - true) > max(WHAT_IF_TOLERANCE * abs(true), WHAT_IF_SLACK))


def _what_if_note(predicted: float, true: float, wrong: bool, resimulated_off: bool) -> str:
    pts = f"{predicted * 100:+.1f} pts predicted, {true * 100:+.1f} pts true"
    if not wrong:
        return f"The model's what-if matches the re-simulated truth ({pts})."
    if predicted * true < 0:
        how = "points the wrong way"
    elif abs(predicted) < abs(true):
        how = "understates the gain"
    else:
        how = "overstates the gain"
    if resimulated_off:
        why = (
            "the model cannot see most of this friction in the instances' features: its effect "
            "sits with the rooftop itself, so neither the what-if nor the model's scores of the "
            "fixed rooftop move as much as the truth"
        )
    else:
        why = (
            "the model scores the fixed rooftop about right, but the effect it learned for this "
            "friction is not its causal effect: who has the friction differs in ways that also "
            "drive the outcome (confounding), or the rooftop, where the friction is common, "
            "carries part of its effect in the model; changing the friction alone misjudges "
            "the gain"
        )
    return f"The model's what-if {how} ({pts}): {why}. Trust the re-simulated figure here."
