"""Metrics on the test period: ranking, calibration, the BDC's call list, slices, ceiling."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


def top_share(y: np.ndarray, risk: np.ndarray, share: float) -> tuple[float, float]:
    """Precision and recall when calling the riskiest ``share`` of instances."""
    k = max(1, int(np.ceil(len(risk) * share)))
    top = np.argsort(-risk, kind="stable")[:k]
    hits = float(y[top].sum())
    return hits / k, hits / max(float(y.sum()), 1.0)


def risk_metrics(y: np.ndarray, risk: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC, Brier, log loss, and precision/recall in the top 10% and 20%.

    AUCs are NaN when only one class is present (a small slice)."""
    y = np.asarray(y, dtype=int)
    risk = np.clip(np.asarray(risk, dtype=float), 1e-6, 1 - 1e-6)
    two_classes = len(np.unique(y)) == 2
    out = {
        "n": float(len(y)),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
        "roc_auc": float(roc_auc_score(y, risk)) if two_classes else float("nan"),
        "pr_auc": float(average_precision_score(y, risk)) if two_classes else float("nan"),
        "brier": float(brier_score_loss(y, risk)),
        "log_loss": float(log_loss(y, risk, labels=[0, 1])),
    }
    for share in (0.1, 0.2):
        precision, recall = top_share(y, risk, share)
        out[f"precision_top{int(share * 100)}"] = precision
        out[f"recall_top{int(share * 100)}"] = recall
    return out


def calibration_table(y: np.ndarray, risk: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Per risk decile: instances, mean predicted risk, observed outcome rate."""
    frame = pd.DataFrame({"y": np.asarray(y, dtype=float), "risk": np.asarray(risk, dtype=float)})
    frame["decile"] = pd.qcut(frame["risk"].rank(method="first"), bins, labels=False) + 1
    return (
        frame.groupby("decile")
        .agg(instances=("y", "size"), predicted=("risk", "mean"), observed=("y", "mean"))
        .reset_index()
    )


#: The columns of ``risk_metrics``'s result, in order (a slice table's columns after ``by``).
METRICS = (
    "n",
    "positive_rate",
    "roc_auc",
    "pr_auc",
    "brier",
    "log_loss",
    "precision_top10",
    "recall_top10",
    "precision_top20",
    "recall_top20",
)


def slice_metrics(table: pd.DataFrame, risk: np.ndarray, by: str) -> pd.DataFrame:
    """``risk_metrics`` per value of a column (rooftop, marketing source): one row per value
    present, its AUCs NaN where the slice has one class only; rows missing the value are left
    out (a column missing everywhere gives a table with no rows, and every column)."""
    y = table["label"].astype(int).to_numpy()
    risk = np.asarray(risk, dtype=float)
    rows = [
        {by: value, **risk_metrics(y[idx], risk[idx])}
        for value, idx in table.groupby(by, observed=True).indices.items()
        if len(idx)
    ]
    return pd.DataFrame(rows, columns=[by, *METRICS])


#: The least margin over 0.5 a test AUC needs to count as better than a constant model.
MIN_AUC_NOISE = 0.01


def auc_noise(auc: float, positives: int, negatives: int) -> float:
    """How far from 0.5 an AUC must be to beat a constant model: twice the AUC's standard
    error on a test set of ``positives`` and ``negatives`` (Hanley & McNeil, 1982), at least
    ``MIN_AUC_NOISE``. NaN without both classes."""
    if positives < 1 or negatives < 1 or not np.isfinite(auc):
        return float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    return max(2 * float(np.sqrt(max(variance, 0.0))), MIN_AUC_NOISE)


def constant_model_verdict(y: np.ndarray, auc: float) -> str | None:
    """Why a model whose test-period AUC on labels ``y`` is ``auc`` cannot be told from a
    constant one (one risk for everybody), or None when it beats one: its AUC must exceed 0.5
    by more than ``auc_noise``. The one home of the rule that keeps such a model from being
    promoted."""
    y = np.asarray(y, dtype=int)
    positives = int(y.sum())
    noise = auc_noise(auc, positives, len(y) - positives)
    if not np.isfinite(noise):
        return (
            f"the test period has {positives:,} of {len(y):,} outcomes: no AUC, so no evidence "
            "the model beats a constant one"
        )
    if auc - 0.5 <= noise:
        return f"AUC {auc:.3f} is within noise (±{noise:.3f}) of a constant model"
    return None


def capture_ratio(auc_model: float, auc_truth: float) -> float:
    """How much of the truth's ranking power the model captures: (AUC - 0.5) / (ceiling - 0.5)."""
    return (auc_model - 0.5) / (auc_truth - 0.5)
