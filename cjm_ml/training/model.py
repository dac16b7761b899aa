"""The risk model (LightGBM + isotonic calibration) and the logistic baseline.

Both take a feature table (the output of ``cjm_ml.features``) and the task's registered
features; the fitted model carries what serving needs: the feature list, the category levels
it was trained with, and the calibrator.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.class_weight import compute_sample_weight

from cjm_ml.features.registry import features_for
from cjm_ml.io import atomic_dir
from cjm_ml.params import Task


class TrainingParams(BaseModel):
    """LightGBM hyperparameters. Small trees by default: explanations (TreeSHAP) cost grows
    with trees x leaves x depth^2, and the scoring API explains every score."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    num_leaves: int = Field(7, ge=2)
    max_depth: int = Field(6, ge=1)
    learning_rate: float = Field(0.05, gt=0)
    n_estimators: int = Field(1000, ge=1, description="Upper bound; early stopping picks fewer.")
    early_stopping_rounds: int = Field(50, ge=1)
    min_child_samples: int = Field(100, ge=1)
    feature_fraction: float = Field(0.9, gt=0, le=1)
    reg_lambda: float = Field(1.0, ge=0)
    balance_classes: bool = Field(
        True,
        description="Weight classes equally in fitting and early stopping; calibration undoes it.",
    )
    seed: int = 7


#: Version of the bundle layout written by ``RiskModel.save``.
BUNDLE_FORMAT = 2


class RiskModel:
    """Calibrated risk for one task. ``fit`` returns self; learned attributes end in ``_``."""

    def __init__(self, task: Task, params: TrainingParams | None = None) -> None:
        self.task = task
        self.params = params or TrainingParams()
        self.metadata_: dict[str, Any] = {}

    @property
    def features(self) -> list[str]:
        """The task's model features, in registry order."""
        return [f.name for f in features_for(self.task)]

    def matrix(self, table: pd.DataFrame) -> pd.DataFrame:
        """The model's input: registered features, categoricals fixed to the learned levels
        (an unseen level becomes missing). Refuses a table missing a feature, by name."""
        missing = [f for f in self.features if f not in table.columns]
        if missing:
            raise ValueError(f"{self.task}: feature table lacks {', '.join(missing)}")
        x = table[self.features].copy()
        for name, levels in self.categories_.items():
            values = x[name].astype("string").astype(object)
            x[name] = pd.Categorical(values.where(values.isin(levels)), categories=levels)
        return x

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame) -> RiskModel:
        """Fit on ``train``, stop early and calibrate on ``valid`` (both labelled)."""
        categorical = [f.name for f in features_for(self.task) if f.unit == "category"]
        self.categories_: dict[str, list[str]] = {
            c: sorted(train[c].astype("string").dropna().unique().tolist()) for c in categorical
        }
        x_train, x_valid = self.matrix(train), self.matrix(valid)
        y_train = train["label"].astype(int).to_numpy()
        y_valid = valid["label"].astype(int).to_numpy()
        p = self.params
        classifier = lgb.LGBMClassifier(
            objective="binary",
            num_leaves=p.num_leaves,
            max_depth=p.max_depth,
            learning_rate=p.learning_rate,
            n_estimators=p.n_estimators,
            min_child_samples=p.min_child_samples,
            colsample_bytree=p.feature_fraction,
            reg_lambda=p.reg_lambda,
            class_weight="balanced" if p.balance_classes else None,
            random_state=p.seed,
            deterministic=True,
            force_row_wise=True,
            n_jobs=2,
            verbose=-1,
        )
        # Early stopping judges the validation period with the same class weights as training.
        eval_weight = compute_sample_weight("balanced", y_valid) if p.balance_classes else None
        classifier.fit(
            x_train,
            y_train,
            eval_X=(x_valid,),
            eval_y=(y_valid,),
            eval_sample_weight=[eval_weight],
            eval_metric="binary_logloss",
            callbacks=[lgb.early_stopping(p.early_stopping_rounds, verbose=False)],
        )
        # Keep only the trees early stopping chose: the fitted and a reloaded model are the same.
        self.booster_ = lgb.Booster(
            model_str=classifier.booster_.model_to_string(num_iteration=classifier.best_iteration_)
        )
        # Platt scaling on the validation period: monotone, so the call-list order and the AUC
        # are exactly LightGBM's, and it undoes the class weighting's shift of the odds.
        platt = LogisticRegression(C=1e6).fit(self.predict_raw(valid)[:, None], y_valid)
        self.calibration_ = (float(platt.coef_[0, 0]), float(platt.intercept_[0]))
        # Risk bands: the riskiest 20% of the validation period is "high", the next 30% "medium".
        medium, high = np.quantile(self.predict_risk(valid), [0.5, 0.8])
        self.bands_ = {"medium": float(medium), "high": float(high)}
        return self

    def predict_raw(self, table: pd.DataFrame) -> np.ndarray:
        """LightGBM's uncalibrated log-odds (class-weighted if balancing was on)."""
        return np.asarray(self.booster_.predict(self.matrix(table), raw_score=True), dtype=float)

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated risk from raw log-odds: ``sigmoid(slope * raw + intercept)``."""
        slope, intercept = self.calibration_
        return np.asarray(expit(slope * np.asarray(raw, dtype=float) + intercept), dtype=float)

    def predict_risk(self, table: pd.DataFrame) -> np.ndarray:
        """Calibrated risk: the probability of the outcome for each row."""
        return self.calibrate(self.predict_raw(table))

    def band(self, risk: np.ndarray) -> np.ndarray:
        """ "high", "medium" or "low" for each risk, by the thresholds learned at fit time
        (the top 20% and the next 30% of the validation period's risk)."""
        risk = np.asarray(risk, dtype=float)
        return np.select(
            [risk >= self.bands_["high"], risk >= self.bands_["medium"]], ["high", "medium"], "low"
        )

    def save(self, folder: Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write the model as a self-contained bundle: ``model.txt`` (LightGBM's own text
        format) and ``bundle.json`` (task, features with their registry entries, category
        levels, calibration, hyperparameters, ``metadata``). Replaces ``folder`` atomically."""
        spec = {
            "format": BUNDLE_FORMAT,
            "task": self.task,
            "features": [asdict(f) for f in features_for(self.task)],
            "categories": self.categories_,
            "calibration": {"slope": self.calibration_[0], "intercept": self.calibration_[1]},
            "bands": self.bands_,
            "params": self.params.model_dump(),
            "metadata": metadata or {},
        }
        with atomic_dir(folder) as tmp:
            self.booster_.save_model(tmp / "model.txt")
            (tmp / "bundle.json").write_text(json.dumps(spec, indent=2, default=str) + "\n")
        return folder

    @classmethod
    def load(cls, folder: Path) -> RiskModel:
        """Load a bundle written by ``save``; refuses one whose features differ from the
        registry's (the model would read the wrong columns)."""
        folder = Path(folder)
        try:
            spec = json.loads((folder / "bundle.json").read_text())
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{folder}: not a model bundle (no bundle.json)") from exc
        if spec.get("format") != BUNDLE_FORMAT:
            raise ValueError(f"{folder}: bundle format {spec.get('format')}, need {BUNDLE_FORMAT}")
        model = cls(spec["task"], TrainingParams(**spec["params"]))
        stored = [f["name"] for f in spec["features"]]
        if stored != model.features:
            raise ValueError(
                f"{folder}: the bundle's features differ from this version's registry "
                f"({sorted(set(stored) ^ set(model.features))}); retrain the model"
            )
        model.categories_ = {k: list(v) for k, v in spec["categories"].items()}
        model.calibration_ = (spec["calibration"]["slope"], spec["calibration"]["intercept"])
        model.bands_ = {k: float(v) for k, v in spec["bands"].items()}
        model.booster_ = lgb.Booster(model_file=str(folder / "model.txt"))
        model.metadata_ = dict(spec["metadata"])
        return model


def logistic_baseline(task: Task) -> Pipeline:
    """Logistic regression on the same features: median-imputed, scaled numerics with
    missing-value indicators, one-hot categoricals (unknown levels ignored)."""
    specs = features_for(task)
    categorical = [f.name for f in specs if f.unit == "category"]
    numeric = [f.name for f in specs if f.unit != "category"]
    columns = ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median", add_indicator=True,
                                                    keep_empty_features=True),
                                      StandardScaler()), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )  # fmt: skip
    return make_pipeline(columns, LogisticRegression(max_iter=2000))


def baseline_matrix(table: pd.DataFrame, task: Task) -> pd.DataFrame:
    """The baseline's input: registered features, categoricals as plain strings."""
    x = table[[f.name for f in features_for(task)]].copy()
    for f in features_for(task):
        if f.unit == "category":
            x[f.name] = x[f.name].astype("string").fillna("unknown").astype(object)
    return x
