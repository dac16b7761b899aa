"""The risk model (LightGBM + isotonic calibration) and the logistic baseline.

Both take a feature table (the output of ``cjm_ml.features``) and the task's registered
features; the fitted model carries what serving needs: the feature list, the category levels
it was trained with, and the calibrator.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.class_weight import compute_sample_weight

from cjm_ml.registry import features_for
from cjm_ml.io import atomic_dir
from cjm_ml.params import MODEL_NAMES, Task


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


@dataclass(frozen=True)
class _Codes:
    """How LightGBM codes one categorical feature: the learned levels, the code of each
    (NaN: not in the booster's stored categories), and the integer type of the codes."""

    learned: pa.Array
    code: np.ndarray
    code_type: type

    @cached_property
    def by_level(self) -> dict[str, float]:
        """Learned level -> code."""
        return dict(zip(self.learned.to_pylist(), self.code.tolist(), strict=True))

    def encode(self, values: Any) -> np.ndarray:
        """Codes of a column of strings (NaN: missing, or not a learned level)."""
        if getattr(values, "dtype", None) != pd.StringDtype():
            values = pd.array(values).astype("string")
        if len(values) <= _FEW_ROWS:  # a dict beats a vectorised lookup's fixed cost
            by_level = self.by_level
            return np.array([by_level.get(v, np.nan) for v in values.tolist()], dtype=np.float64)
        found = pc.fill_null(pc.index_in(pa.array(values), value_set=self.learned), -1)
        at = found.to_numpy(zero_copy_only=False)
        return np.where(at >= 0, self.code[np.maximum(at, 0)], np.nan)


class RiskModel:
    """Calibrated risk for one task. ``fit`` returns self; learned attributes end in ``_``."""

    # How ``encode`` maps categorical levels for a booster (derived, cached on first use).
    _codes_for: lgb.Booster | None = None
    _codes: list[_Codes | None] | None = None

    def __init__(self, task: Task, params: TrainingParams | None = None) -> None:
        self.task = task
        self.params = params or TrainingParams()
        self.metadata_: dict[str, Any] = {}

    @property
    def features(self) -> list[str]:
        """The task's model features, in registry order."""
        return [f.name for f in features_for(self.task)]

    def matrix(self, table: pd.DataFrame | Mapping[str, Any]) -> pd.DataFrame:
        """The model's input: registered features, categoricals fixed to the learned levels
        (an unseen level becomes missing). Refuses a table missing a feature, by name."""
        self._check_features(table)
        if isinstance(table, pd.DataFrame):
            x = table[self.features].copy()
        else:
            x = pd.DataFrame({f: table[f] for f in self.features})
        for name, levels in self.categories_.items():
            values = x[name].astype("string").astype(object)
            x[name] = pd.Categorical(values.where(values.isin(levels)), categories=levels)
        return x

    def encode(self, table: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """The model's input as LightGBM reads it: a float matrix, one column per registered
        feature; a categorical is the code of its learned level (NaN: missing or unseen).

        The matrix LightGBM itself derives from ``matrix(table)``, built straight from the
        columns (a one-row table costs microseconds, not milliseconds). ``table``: a feature
        table or its columns (name -> 1-D array). Refuses a table missing a feature, or a
        numeric feature that is not numbers, by name."""
        self._check_features(table)
        plan = self._category_codes()
        encoded, kinds, bad = [], [], []
        for name, codes in zip(self.features, plan, strict=True):
            values = _values(table[name])
            if codes is not None:  # LightGBM's codes: int8/int16... or float64 with NaN
                values = codes.encode(values)
                kind = np.float64 if np.isnan(values).any() else codes.code_type
            else:
                kind = values.dtype.type
                if not issubclass(kind, np.integer | np.floating | np.bool_) or issubclass(
                    kind, np.timedelta64 | np.longdouble
                ):
                    bad.append(f"{name} ({values.dtype})")
            encoded.append(values)
            kinds.append(kind)
        if bad:
            raise ValueError(f"{self.task}: features must be numbers: {', '.join(bad)}")
        rows = len(encoded[0]) if encoded else 0
        out = np.empty((rows, len(encoded)), dtype=np.result_type(*kinds, np.float32))
        for j, values in enumerate(encoded):
            out[:, j] = _floats(values)
        return out

    def _check_features(self, table: pd.DataFrame | Mapping[str, Any]) -> None:
        missing = [f for f in self.features if f not in table]
        if missing:
            raise ValueError(f"{self.task}: feature table lacks {', '.join(missing)}")

    def _category_codes(self) -> list[_Codes | None]:
        """Per feature: None for a number; for a categorical, its learned levels and the code
        LightGBM gives each (its position in the booster's stored categories, NaN if absent),
        so that encoding matches LightGBM's own pandas conversion. Cached per booster."""
        booster = self.booster_
        if self._codes_for is booster and self._codes is not None:
            return self._codes
        categorical = [f for f in self.features if f in self.categories_]
        stored = booster.pandas_categorical
        if stored is None:  # LightGBM then takes each column's own levels: the learned ones
            stored = [self.categories_[f] for f in categorical]
        if len(stored) != len(categorical):
            raise ValueError(
                f"{self.task}: the booster stores {len(stored)} categorical features, "
                f"the model has {len(categorical)}"
            )
        lightgbm_levels = dict(zip(categorical, stored, strict=True))
        plan: list[_Codes | None] = []
        for f in self.features:
            if f not in lightgbm_levels:
                plan.append(None)
                continue
            position = {level: i for i, level in enumerate(lightgbm_levels[f])}
            learned = self.categories_[f]
            code = np.array([position.get(v, np.nan) for v in learned], dtype=np.float64)
            count = len(position)  # pandas stores codes in the smallest integer type that fits
            code_type = next(t for t in (np.int8, np.int16, np.int32, np.int64)
                             if count < np.iinfo(t).max)  # fmt: skip
            plan.append(_Codes(pa.array(learned, type=pa.large_string()), code, code_type))
        self._codes_for, self._codes = booster, plan
        return plan

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

    def predict_raw(self, table: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """LightGBM's uncalibrated log-odds (class-weighted if balancing was on)."""
        x = self.encode(table)
        threads = 1 if len(x) <= _ONE_THREAD_ROWS else 0  # 0: OpenMP's default
        return np.asarray(
            self.booster_.predict(x, raw_score=True, num_threads=threads), dtype=float
        )

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated risk from raw log-odds: ``sigmoid(slope * raw + intercept)``."""
        slope, intercept = self.calibration_
        return np.asarray(expit(slope * np.asarray(raw, dtype=float) + intercept), dtype=float)

    def predict_risk(self, table: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """Calibrated risk: the probability of the outcome for each row. ``table``: a feature
        table or its columns (as ``open_feature_columns`` gives them)."""
        return self.calibrate(self.predict_raw(table))

    @property
    def identity(self) -> tuple[str, str]:
        """Registered name and version, from the bundle metadata ("unregistered" if none)."""
        name = self.metadata_.get("model_name", MODEL_NAMES[self.task])
        return str(name), str(self.metadata_.get("version", "unregistered"))

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


#: Up to this many rows, a table counts as few (a request's): per-row Python beats the fixed
#: cost of a vectorised call.
_FEW_ROWS = 64
#: Up to this many rows, LightGBM predicts on one thread: starting OpenMP threads costs more
#: than it saves for a request's few rows (rows are predicted independently: same results).
_ONE_THREAD_ROWS = 1_000


def _values(column: Any) -> Any:
    """A column as a numpy or pandas extension array."""
    if isinstance(column, pd.Series | pd.Index):
        column = column.array
    if isinstance(column, pd.arrays.NumpyExtensionArray):
        return column.to_numpy()
    return column if hasattr(column, "dtype") else np.asarray(column)


def _floats(values: Any) -> np.ndarray:
    """A numeric column as float64 (missing -> NaN)."""
    if isinstance(values, np.ndarray):
        return values.astype(np.float64, copy=False)
    return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan))


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
