"""The model's what-if against the truth: simulate the group again with one rooftop's friction
fixed and compare the true change in its outcome rate with what the what-if predicted."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from cjm_ml.explain.drivers import DriverExplainer
from cjm_ml.features.pipeline import build_feature_table
from cjm_ml.params import Task
from cjm_ml.simulation import SimulatedGroup, SimulationConfig, simulate

log = logging.getLogger(__name__)

#: The model's what-if counts as wrong when it misses the true change by more than this share
#: of it (and by more than ``WHAT_IF_SLACK`` in absolute risk).
WHAT_IF_TOLERANCE = 0.3
WHAT_IF_SLACK = 0.01


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
    given (the table too when its instances are not the simulator's, as after ingest).
    Refuses a rooftop or friction the group did not plant, by name."""
    task, declared = explainer.task, explainer.feature_set.declared
    original = original or simulate(config)
    settings = _planted_settings(original, task, rooftop_id, friction)
    fixed = simulate(config.model_copy(update={"fixes": ((rooftop_id, tuple(settings)),)}))
    if table is None or not table["instance_id"].isin(original.truth[task]["instance_id"]).all():
        # Instances named otherwise (ingested from raw exports) are built again from the
        # simulator's own events: the round trip makes them the same instances.
        table = build_feature_table(original.events, task, declared=declared)
    before = table
    before = _with_truth(before, original.truth[task], rooftop_id)
    after = build_feature_table(fixed.events, task, declared=declared)
    after = _with_truth(after, fixed.truth[task], rooftop_id)
    return _compare(explainer, rooftop_id, friction, settings, before=before, after=after)


def _planted_settings(
    group: SimulatedGroup, task: Task, rooftop_id: str, friction: str
) -> list[str]:
    """The process settings the group planted for ``friction`` at the rooftop; refuses none."""
    settings = [
        p.setting
        for p in group.planted
        if p.rooftop_id == rooftop_id and p.friction == friction and p.task == task
    ]
    if not settings:
        planted = sorted({(p.rooftop_id, p.friction) for p in group.planted if p.task == task})
        raise ValueError(
            f"{task}: no planted deviation {friction!r} at {rooftop_id!r}; planted: {planted}"
        )
    return settings


def _with_truth(table: pd.DataFrame, truth: pd.DataFrame, rooftop_id: str) -> pd.DataFrame:
    """The rooftop's instances of ``table``, with the simulator's ``true_prob`` beside them."""
    at = table[table["rooftop_id"].astype("string") == rooftop_id].reset_index(drop=True)
    true_prob = at[["instance_id"]].merge(truth, on="instance_id", how="left")["true_prob"]
    return at.assign(true_prob=true_prob.to_numpy())


def _compare(
    explainer: DriverExplainer,
    rooftop_id: str,
    friction: str,
    settings: list[str],
    *,
    before: pd.DataFrame,
    after: pd.DataFrame,
) -> WhatIfCheck:
    """The what-if on ``before`` against the truth of ``after`` (the rooftop re-simulated)."""
    x, x_after = explainer.encode(before), explainer.encode(after)
    risk = explainer.risk(x)
    what_if = explainer.what_if(x, friction)
    model_after = explainer.risk(x_after)
    present_before = float(explainer.present(x, friction).mean()) if len(x) else 0.0
    present_after = float(explainer.present(x_after, friction).mean()) if len(x_after) else 0.0
    removed = float(np.clip(1 - present_after / present_before, 0, 1)) if present_before else 0.0
    true_before, true_after = _rate(before["true_prob"]), _rate(after["true_prob"])
    true_change = true_after - true_before
    what_if_change = float(what_if.mean() - risk.mean())
    predicted = what_if_change * removed
    resimulated = float(model_after.mean() - risk.mean())
    wrong = _off(predicted, true_change)
    log.info(
        "%s: what-if %s at %s: predicted %+.4f, true %+.4f",
        explainer.task,
        friction,
        rooftop_id,
        predicted,
        true_change,
    )
    return WhatIfCheck(
        task=explainer.task,
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
        note=_what_if_note(predicted, true_change, wrong, _off(resimulated, true_change)),
    )


def _rate(values: pd.Series) -> float:
    v = values.dropna().astype(float)
    return float(v.mean()) if len(v) else float("nan")


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


def format_what_if(checks: list[WhatIfCheck]) -> str:
    """What-if checks against re-simulation, as text (with the note where the model is wrong)."""
    table = pd.DataFrame(
        {
            "task": [c.task for c in checks],
            "rooftop": [c.rooftop_id for c in checks],
            "friction fixed": [c.friction for c in checks],
            "true rate": [f"{c.true_before:.1%} -> {c.true_after:.1%}" for c in checks],
            "true change": [f"{c.true_change * 100:+.1f} pts" for c in checks],
            "what-if predicted": [f"{c.predicted_change * 100:+.1f} pts" for c in checks],
            "what-if, every case fixed": [f"{c.what_if_change * 100:+.1f} pts" for c in checks],
            "model on re-simulated": [f"{c.resimulated_change * 100:+.1f} pts" for c in checks],
            "verdict": ["WRONG" if c.wrong else "ok" for c in checks],
        }
    )
    notes = [f"  {c.rooftop_id} {c.friction}: {c.note}" for c in checks]
    return table.to_string(index=False) + "\n" + "\n".join(notes)
