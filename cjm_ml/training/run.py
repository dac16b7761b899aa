"""One training run for one task: search, fit, baseline, and the test-period report.

Pure apart from the fitting itself: a feature table (and optionally the simulator's truth) in,
a ``TrainingReport`` out. Tracking and registration are ``cjm_ml.training.tracking``'s job.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline
from tqdm.auto import tqdm

from cjm_ml.featureset import DeclaredFeature, FeatureSet
from cjm_ml.params import Task, TaskParams
from cjm_ml.training.config import TrainingConfig, load_training_config
from cjm_ml.training.evaluate import (
    calibration_table,
    capture_ratio,
    constant_model_verdict,
    risk_metrics,
    slice_metrics,
)
from cjm_ml.training.model import (
    RiskModel,
    TrainingParams,
    baseline_matrix,
    constant_features,
    logistic_baseline,
)
from cjm_ml.training.norms import norms_by_group
from cjm_ml.training.split import TimeSplit, time_split

log = logging.getLogger(__name__)

#: Columns the report slices the test period by, per task (rooftop and source always).
SLICES: dict[Task, tuple[str, ...]] = {
    "lead_leakage": ("rooftop_id", "marketing_source", "lead_type"),
    "no_show": ("rooftop_id", "marketing_source", "appointment_kind"),
    "service_defection": ("rooftop_id", "marketing_source", "vehicle_condition"),
}


#: Why a run fitted nothing (``TrainingReport.refusal`` when ``model`` is None).
NOTHING_TO_FIT = (
    "every feature is constant or always missing in the training rows: nothing to fit, "
    "no model trained"
)


@dataclass
class TrainingReport:
    """What one run produced and measured. ``metrics`` has a row per scorer (``lightgbm``,
    ``logistic``, and ``truth`` on simulated data) and a column per metric. ``dropped``: the
    registered features left out of the model, feature -> why (constant or always missing in
    the training rows). ``model`` and ``baseline`` are None when every feature was dropped:
    nothing was fitted, and the tables are empty (``refusal`` says so)."""

    task: Task
    model: RiskModel | None
    baseline: Pipeline | None
    split: TimeSplit
    metrics: pd.DataFrame
    calibration: pd.DataFrame
    slices: pd.DataFrame
    importance: pd.DataFrame
    search: pd.DataFrame
    data: dict[str, str | int | float]
    seconds: dict[str, float] = field(default_factory=dict)
    test_risk: np.ndarray = field(default_factory=lambda: np.empty(0))
    baseline_risk: np.ndarray = field(default_factory=lambda: np.empty(0))
    truth_risk: np.ndarray | None = None
    dropped: dict[str, str] = field(default_factory=dict)

    @property
    def auc(self) -> float:
        """The LightGBM model's test-period ROC AUC (NaN when nothing was fitted)."""
        if "lightgbm" not in self.metrics.index:
            return float("nan")
        return float(self.metrics.loc["lightgbm", "roc_auc"])

    @property
    def refusal(self) -> str | None:
        """Why this run's model must not be promoted (None when it may be): nothing was
        fitted, or its test AUC cannot be told from a constant model's
        (``constant_model_verdict``)."""
        if self.model is None:
            return NOTHING_TO_FIT
        return constant_model_verdict(_labels(self.split.test), self.auc)

    def dropped_lines(self) -> list[str]:
        """One line per dropped feature, for the console: ``name: why``."""
        return [f"{name}: {why}" for name, why in self.dropped.items()]

    def summary(self) -> dict[str, float]:
        """Flat metrics for tracking: ``<scorer>_<metric>`` (capture included on simulated data)."""
        return {
            f"{scorer}_{name}": float(value)
            for scorer, row in self.metrics.iterrows()
            for name, value in row.items()
            if pd.notna(value)
        }


#: The console table's columns: what ``cjm train`` prints per task.
HEADLINE = {
    "roc_auc": "AUC",
    "pr_auc": "PR AUC",
    "brier": "Brier",
    "precision_top10": "top-10% precision",
    "capture": "capture of ceiling",
}


def headline(report: TrainingReport) -> pd.DataFrame:
    """The per-task table people read: LightGBM against the baseline (and the truth ceiling
    on simulated data) on AUC, PR AUC, Brier, top-10% precision and capture."""
    columns = [c for c in HEADLINE if c in report.metrics.columns]
    table = report.metrics[columns].rename(columns=HEADLINE)
    return table.rename(index={"lightgbm": "LightGBM", "logistic": "logistic", "truth": "ceiling"})


def console_lines(report: TrainingReport) -> list[str]:
    """What ``cjm train`` prints for one run: the data and timings, the headline table and the
    split by kind, the features left out of the model (and why), and, when nothing was
    fitted, that plainly."""
    d = report.data
    lines = [
        f"\n{report.task}: {d['labelled']:,} labelled instances; test period {d['test_from']} "
        f"to {d['test_to']} ({d['test_instances']:,})"
    ]
    if report.model is None:
        lines.append(f"No model trained: {NOTHING_TO_FIT}.")
    else:
        lines[0] += (
            f"; LightGBM {report.seconds['lightgbm']:.1f} s, "
            f"logistic {report.seconds['logistic']:.1f} s"
        )
        lines.append(headline(report).to_string(float_format="{:.3f}".format, na_rep=""))
        lines.append(by_kind(report).to_string(float_format="{:.3f}".format))
    if report.dropped:
        lines.append(
            f"Left out of the model ({len(report.dropped)} feature(s) with nothing to learn):"
        )
        lines += [f"  {line}" for line in report.dropped_lines()]
    return lines


def by_kind(report: TrainingReport) -> pd.DataFrame:
    """The test period split by the task's kind (lead type, appointment kind, new or used):
    instances, AUC against the baseline, and the ceiling and capture where known."""
    kind = SLICES[report.task][-1]
    rows = report.slices[report.slices["slice"] == kind].set_index("value")
    names = {
        "n": "instances",
        "roc_auc": "AUC",
        "logistic_roc_auc": "logistic AUC",
        "truth_roc_auc": "ceiling",
        "capture": "capture",
    }
    table = rows[[c for c in names if c in rows.columns]].rename(columns=names)
    table.index.name = kind.replace("_", " ")
    return table.astype({"instances": int})


def fingerprint(table: pd.DataFrame) -> str:
    """A short content hash of a feature table (row order matters: tables are built sorted)."""
    hashed = pd.util.hash_pandas_object(table, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def _labels(frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(frame["label"].astype(int).to_numpy(), dtype=int)


def _fit_best(
    task: Task,
    split: TimeSplit,
    candidates: list[TrainingParams],
    task_params: TaskParams,
    progress: bool,
    declared: Sequence[DeclaredFeature] = (),
) -> tuple[RiskModel, pd.DataFrame]:
    """Fit each candidate; keep the best by validation-period AUC (never the test period)."""
    rows, best, best_auc = [], None, -np.inf
    y_valid = _labels(split.valid)
    bar = tqdm(candidates, desc=f"{task}: LightGBM", unit="fit", disable=not progress)
    for params in bar:
        model = RiskModel(task, params, task_params, declared).fit(split.train, split.valid)
        auc = risk_metrics(y_valid, model.predict_risk(split.valid))["roc_auc"]
        rows.append({**params.model_dump(), "trees": model.booster_.num_trees(), "valid_auc": auc})
        if auc > best_auc:
            best, best_auc = model, auc
    assert best is not None  # candidates is never empty
    return best, pd.DataFrame(rows)


def train_task(
    table: pd.DataFrame,
    task: Task,
    config: TrainingConfig | None = None,
    *,
    task_params: TaskParams | None = None,
    truth: pd.DataFrame | None = None,
    search: bool | None = None,
    progress: bool = False,
    declared: Sequence[DeclaredFeature] | None = None,
) -> TrainingReport:
    """Train and evaluate one task on its feature table.

    Splits by time, fits LightGBM (every search candidate when ``search``; ``None``: when the
    training period has fewer rows than ``config.search_below_rows``), fits the logistic
    baseline on the same training rows, and measures both on the test period: metrics,
    calibration deciles, slices, importance. ``task_params``: the windows and standards the
    table was built with (default: the embedded ones); they travel in the model artifact, and
    the norms its sentences quote come from every labelled instance, per dealer group (a group
    under ``config.norms.min_group_instances`` quotes the pooled ones). ``truth``
    (``instance_id``, ``true_prob``) adds the simulator's ceiling and each model's capture of it.
    ``declared``: the declared features the table carries beside the registry's (default:
    those ``table.attrs["declared"]`` names, as ``build_feature_table`` sets it); the model
    reads them and its artifact carries them.

    Features constant (or always missing) in the training period are left out of the model
    and listed in ``dropped``; LightGBM never splits on them, so the trees are those it would
    grow with them. When every feature is, nothing is fitted: the report has no model, empty
    tables and says why (``refusal``), so tracking promotes nothing.
    """
    config = config or load_training_config()
    task_params = task_params or TaskParams()
    feature_set = FeatureSet.of(
        task, table.attrs.get("declared", ()) if declared is None else declared
    )
    split = time_split(table, config.split.valid_share, config.split.test_share)
    dropped = constant_features(split.train, feature_set)
    if dropped:
        log.info("%s: left out %d constant feature(s): %s", task, len(dropped), dropped)
    if len(dropped) == len(feature_set.names):
        log.warning("%s: %s", task, NOTHING_TO_FIT)
        return _nothing_fitted(task, table, split, dropped)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    if search is None:
        search = len(split.train) < config.search_below_rows
        if search and config.search:
            log.info(
                "%s: %d training rows (< %d): searching the grid",
                task,
                len(split.train),
                config.search_below_rows,
            )
    candidates = config.candidates(task, search)
    model, searched = _fit_best(
        task, split, candidates, task_params, progress, feature_set.declared
    )
    seconds["lightgbm"] = time.perf_counter() - started
    labelled = pd.concat([split.train, split.valid, split.test])
    model.norms_ = model.own_norms(
        norms_by_group(
            labelled, feature_set, task_params, min_instances=config.norms.min_group_instances
        )
    )
    started = time.perf_counter()
    baseline = logistic_baseline(feature_set, model.features).fit(
        baseline_matrix(split.train, feature_set, model.features), _labels(split.train)
    )
    seconds["logistic"] = time.perf_counter() - started

    test, y = split.test, _labels(split.test)
    scores = {
        "lightgbm": model.predict_risk(test),
        "logistic": baseline.predict_proba(baseline_matrix(test, feature_set, model.features))[
            :, 1
        ],
    }
    if truth is not None:
        known = test[["instance_id"]].merge(truth[["instance_id", "true_prob"]], how="left")
        if known["true_prob"].notna().all():
            scores["truth"] = known["true_prob"].to_numpy(dtype=float)
        else:
            log.warning("%s: truth lacks some test instances; no ceiling reported", task)
    return TrainingReport(
        task=task,
        model=model,
        baseline=baseline,
        split=split,
        metrics=_metrics(y, scores),
        calibration=calibration_table(y, scores["lightgbm"]),
        slices=pd.concat(
            [_slice(test, scores, by) for by in SLICES[task] if by in test.columns],
            ignore_index=True,
        ),
        importance=_importance(model),
        search=searched,
        data=_describe_data(table, split),
        seconds=seconds,
        test_risk=scores["lightgbm"],
        baseline_risk=scores["logistic"],
        truth_risk=scores.get("truth"),
        dropped=dropped,
    )


def _nothing_fitted(
    task: Task, table: pd.DataFrame, split: TimeSplit, dropped: dict[str, str]
) -> TrainingReport:
    """The report of a run whose every feature was dropped: no model, empty tables."""
    return TrainingReport(
        task=task,
        model=None,
        baseline=None,
        split=split,
        metrics=pd.DataFrame(columns=list(HEADLINE)),
        calibration=pd.DataFrame(columns=["decile", "instances", "predicted", "observed"]),
        slices=pd.DataFrame(columns=["slice", "value", "n", "roc_auc"]),
        importance=pd.DataFrame(columns=["feature", "gain", "share"]),
        search=pd.DataFrame(),
        data=_describe_data(table, split),
        dropped=dropped,
    )


def _metrics(y: np.ndarray, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row of test-period metrics per scorer; with the truth, each one's capture of it."""
    metrics = pd.DataFrame({name: risk_metrics(y, s) for name, s in scores.items()}).T
    if "truth" in scores:
        ceiling = metrics.loc["truth", "roc_auc"]
        metrics["capture"] = [capture_ratio(a, ceiling) for a in metrics["roc_auc"]]
    return metrics


def _importance(model: RiskModel) -> pd.DataFrame:
    """LightGBM's gain per feature and its share, largest first."""
    gain = model.booster_.feature_importance("gain")
    return (
        pd.DataFrame({"feature": model.features, "gain": gain, "share": gain / gain.sum()})
        .sort_values("gain", ascending=False, kind="stable")
        .reset_index(drop=True)
    )


def _describe_data(table: pd.DataFrame, split: TimeSplit) -> dict[str, str | int | float]:
    """What the run was trained on: fingerprint, sizes, label rate, each period's range."""
    cutoffs = {part: getattr(split, part)["cutoff_ts"] for part in ("train", "valid", "test")}
    return {
        "fingerprint": fingerprint(table),
        "instances": len(table),
        "labelled": int(table["label"].notna().sum()),
        "positive_rate": float(table["label"].dropna().astype(float).mean()),
        **{f"{p}_instances": len(c) for p, c in cutoffs.items()},
        **{f"{p}_from": str(c.min()) for p, c in cutoffs.items()},
        **{f"{p}_to": str(c.max()) for p, c in cutoffs.items()},
    }


def _slice(test: pd.DataFrame, scores: dict[str, np.ndarray], by: str) -> pd.DataFrame:
    """LightGBM's metrics per value of ``by``, with the baseline's and the truth's AUC beside."""
    out = slice_metrics(test, scores["lightgbm"], by).rename(columns={by: "value"})
    for name in ("logistic", "truth"):
        if name in scores:
            other = slice_metrics(test, scores[name], by)
            out[f"{name}_roc_auc"] = other["roc_auc"].to_numpy()
    if "truth" in scores:
        out["capture"] = capture_ratio(out["roc_auc"], out["truth_roc_auc"])
    out.insert(0, "slice", by)
    out["value"] = out["value"].astype(str)
    return out
