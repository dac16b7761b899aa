"""Pictures of a training run: ROC curves, calibration, feature importance.

Plain matplotlib ``Figure`` objects (no pyplot, so no display backend and no global state).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from cjm_ml.training.run import TrainingReport

_NAMES = {"lightgbm": "LightGBM", "logistic": "logistic baseline", "truth": "simulator truth"}


def roc_figure(report: TrainingReport) -> Figure:
    """ROC curves on the test period: the model, the baseline and (if known) the truth."""
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    y = report.split.test["label"].astype(int).to_numpy()
    scores = {"lightgbm": report.test_risk, "logistic": report.baseline_risk}
    if report.truth_risk is not None:
        scores["truth"] = report.truth_risk
    for name, risk in scores.items():
        fpr, tpr, _ = roc_curve(y, risk)
        auc = report.metrics.loc[name, "roc_auc"]
        ax.plot(fpr, tpr, label=f"{_NAMES[name]} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="share of non-events flagged", ylabel="share of events caught")
    ax.set_title(f"{report.task.replace('_', ' ')}: test period")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def calibration_figure(report: TrainingReport) -> Figure:
    """Mean predicted risk against the observed rate, per risk decile."""
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    table = report.calibration
    top = float(max(table["predicted"].max(), table["observed"].max()) * 1.05)
    ax.plot([0, top], [0, top], color="grey", linestyle=":", linewidth=1)
    ax.plot(table["predicted"], table["observed"], marker="o")
    ax.set(xlabel="predicted risk (decile mean)", ylabel="observed rate", xlim=(0, top))
    ax.set_title(f"{report.task.replace('_', ' ')}: calibration")
    fig.tight_layout()
    return fig


def importance_figure(report: TrainingReport, top: int = 15) -> Figure:
    """The features LightGBM used most (share of total gain), described in dealer terms;
    features it never split on are left out."""
    used = report.importance[report.importance["gain"] > 0]
    table = used.head(top).iloc[::-1]
    assert report.model is not None  # importance is empty when nothing was fitted
    labels = [report.model.feature_set.spec(f).description for f in table["feature"]]
    fig = Figure(figsize=(9, 0.35 * len(table) + 1))
    ax = fig.subplots()
    ax.barh(np.arange(len(table)), table["share"], color="#3b6ea5")
    ax.set_yticks(np.arange(len(table)), labels, fontsize=8)
    ax.set_xlabel("share of the model's total gain")
    ax.set_title(f"{report.task.replace('_', ' ')}: what the model uses")
    fig.tight_layout()
    return fig
