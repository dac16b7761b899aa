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


def slice_metrics(table: pd.DataFrame, risk: np.ndarray, by: str) -> pd.DataFrame:
    """``risk_metrics`` per value of a column (rooftop, marketing source)."""
    y = table["label"].astype(int).to_numpy()
    rows = []
    for value, idx in table.groupby(by, observed=True).indices.items():
        rows.append({by: value, **risk_metrics(y[idx], risk[idx])})
    return pd.DataFrame(rows)


def capture_ratio(auc_model: float, auc_truth: float) -> float:
    """How much of the truth's ranking power the model captures: (AUC - 0.5) / (ceiling - 0.5)."""
    return (auc_model - 0.5) / (auc_truth - 0.5)
