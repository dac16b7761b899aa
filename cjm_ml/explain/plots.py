"""SHAP pictures of the drivers: a beeswarm for a group of instances, a waterfall for one.

Both plot drivers (a friction's features added up, context features alone) with their
dealer-language labels, on the calibrated log-odds scale the explanations use. They draw only
the model's drivers that move a risk drawn by ``MIN_DRIVER_RISK`` or more: never a feature the
model does not read, nor one that does nothing for the instances drawn. ``shap`` draws
with pyplot, so these functions switch pyplot to the file-only Agg backend, write the PNG
atomically and close the figure.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import matplotlib
import numpy as np
import pandas as pd
import shap
from scipy.special import expit

from cjm_ml.explain.drivers import MIN_DRIVER_RISK, DriverExplainer
from cjm_ml.formatting import format_values
from cjm_ml.io import atomic_path

#: Instances drawn in a beeswarm (a random sample beyond this; the picture is the same).
BEESWARM_SAMPLE = 4000


def _pyplot() -> ModuleType:
    import matplotlib.pyplot as plt

    if matplotlib.get_backend().lower() != "agg":
        plt.switch_backend("agg")
    return plt


def _save(fig: matplotlib.figure.Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path


#: What a picture says when no driver moves a risk drawn by ``MIN_DRIVER_RISK`` or more.
NOTHING_MOVES = f"no driver moves this risk by {MIN_DRIVER_RISK * 100:g} points or more"


def moving_drivers(grouped: np.ndarray, risk: np.ndarray) -> np.ndarray:
    """The drivers (columns of ``grouped``, calibrated log-odds per row and driver) that move
    some row's risk (``risk``) by ``MIN_DRIVER_RISK`` or more: their positions."""
    logit = np.log(risk / (1 - risk))
    points = risk[:, None] - expit(logit[:, None] - grouped)
    return np.flatnonzero((np.abs(points) >= MIN_DRIVER_RISK).any(axis=0))


def _lead_values(explainer: DriverExplainer, x: np.ndarray) -> np.ndarray:
    """Each driver's first feature's value (category codes as numbers), for colour."""
    return np.column_stack([x[:, explainer.index[d.features[0]]] for d in explainer.drivers])


def write_beeswarm(
    explainer: DriverExplainer,
    table: pd.DataFrame,
    path: Path,
    *,
    title: str | None = None,
    max_display: int = 12,
    sample: int = BEESWARM_SAMPLE,
    seed: int = 7,
) -> Path:
    """A beeswarm of the drivers over ``table``'s instances (a sample of at most ``sample``):
    one dot per instance and driver, placed by its contribution, coloured by the value of the
    driver's first feature; drivers that move no drawn risk are left out. Writes a PNG to
    ``path``; refuses an empty table."""
    if table.empty:
        raise ValueError(f"{explainer.task}: no instances to draw")
    if len(table) > sample:
        table = table.sample(sample, random_state=seed)
    x = explainer.encode(table)
    grouped, risk = explainer.driver_matrix(x)
    shown = moving_drivers(grouped, risk)
    plt = _pyplot()
    fig = plt.figure()
    try:
        fig.set_size_inches(9, 0.45 * max_display + 1.8)
        if len(shown):
            values = shap.Explanation(
                values=grouped[:, shown],
                data=_lead_values(explainer, x)[:, shown],
                feature_names=[explainer.drivers[g].label for g in shown],
            )
            shap.plots.beeswarm(
                values, max_display=max_display, show=False, ax=fig.gca(), plot_size=None
            )
        else:  # shap cannot draw an empty beeswarm: say so instead
            fig.gca().text(0.5, 0.5, NOTHING_MOVES, ha="center", va="center")
        ax = fig.gca()
        ax.set_xlabel("what each driver adds to the risk (calibrated log-odds)")
        ax.set_title(title or f"{explainer.task.replace('_', ' ')}: drivers of the risk")
        return _save(fig, path)
    finally:
        plt.close(fig)


def write_waterfall(
    explainer: DriverExplainer,
    row: pd.Series,
    path: Path,
    *,
    title: str | None = None,
    max_display: int = 10,
) -> Path:
    """A waterfall of one instance's drivers from the model's average risk to its own, each
    driver labelled with its first feature's value in dealer terms; drivers that move this
    risk by less than ``MIN_DRIVER_RISK`` are left out. Writes a PNG to ``path``."""
    frame = row.to_frame().T.infer_objects()
    x = explainer.encode(frame)
    contrib = explainer.contributions(x)
    slope, intercept = explainer.model.calibration_
    grouped, risk = explainer.driver_matrix(x)
    drawn = moving_drivers(grouped, risk)
    shown = []
    for g in drawn:
        name = explainer.drivers[g].features[0]
        spec = explainer.feature_set.spec(name)
        value = frame[name].to_numpy()
        missing = pd.isna(value[0]) or (spec.unit == "category" and str(value[0]) == "unknown")
        shown.append("unknown" if missing else str(format_values(spec, value)[0]))
    plt = _pyplot()
    fig = plt.figure()
    try:
        if len(drawn):
            values = shap.Explanation(
                values=grouped[0, drawn],
                base_values=float(slope * contrib[0, -1] + intercept),
                data=np.array(shown, dtype=object),
                feature_names=[explainer.drivers[g].label for g in drawn],
            )
            shap.plots.waterfall(values, max_display=max_display, show=False)
        else:  # shap cannot draw an empty waterfall: say so instead
            fig.gca().text(0.5, 0.5, NOTHING_MOVES, ha="center", va="center")
            fig.gca().set_axis_off()
        fig.gca().set_title(
            title or f"{explainer.task.replace('_', ' ')}: risk {risk[0]:.0%} (log-odds scale)"
        )
        return _save(fig, path)
    finally:
        plt.close(fig)
