"""The risk model (LightGBM + Platt calibration) and the logistic baseline.

Both take a feature table (the output of ``cjm_ml.features``) and the task's registered
features. Fitting the risk model produces the model artifact (``cjm_ml.artifact``): what
serving needs and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.class_weight import compute_sample_weight

from cjm_ml.artifact import ModelArtifact
from cjm_ml.featureset import DeclaredFeature, FeatureSet, feature_set_of
from cjm_ml.params import Task, TaskParams
from cjm_ml.registry import FeatureSpec
from cjm_ml.training.norms import norms_by_group


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


class NothingToFit(ValueError):
    """Every feature of the task is constant (or always missing) in the training rows."""


def constant_features(table: pd.DataFrame, task: Task | FeatureSet) -> dict[str, str]:
    """The task's features (or the feature set's) that carry no information in ``table``:
    feature -> why, ``"always missing"`` or ``"constant (always <value>)"`` (one value and
    never missing). LightGBM never splits on them, so dropping them changes no tree; they are
    left out of the model (and so of its explanations). Refuses a table missing a feature, by
    name."""
    feature_set = feature_set_of(task)
    task, names = feature_set.task, feature_set.names
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise ValueError(f"{task}: feature table lacks {', '.join(missing)}")
    out: dict[str, str] = {}
    for name in names:
        column = table[name]
        known = column.dropna()
        if known.empty:
            out[name] = "always missing"
        elif len(known) == len(column) and known.nunique() == 1:
            value = known.iloc[0]
            shown = f"{value:g}" if isinstance(value, int | float | np.number) else str(value)
            out[name] = f"constant (always {shown})"
    return out


class RiskModel(ModelArtifact):
    """The trainable risk model: ``fit`` learns a ``ModelArtifact`` (features, booster,
    levels, calibration, bands, norms) from a feature table and returns self; it reads the
    task's registered features and the ``declared`` ones. ``dropped_``: the features ``fit``
    left out (``constant_features``: feature -> why)."""

    dropped_: dict[str, str]

    def __init__(
        self,
        task: Task,
        params: TrainingParams | None = None,
        task_params: TaskParams | None = None,
        declared: Sequence[DeclaredFeature] = (),
    ) -> None:
        params = params or TrainingParams()
        super().__init__(
            task, hyperparameters=params.model_dump(), task_params=task_params, declared=declared
        )

    @property
    def params(self) -> TrainingParams:
        """The LightGBM hyperparameters it was (or will be) fitted with."""
        return TrainingParams(**self.hyperparameters)

    def fit(self, train: pd.DataFrame, valid: pd.DataFrame) -> RiskModel:
        """Fit on ``train``, stop early and calibrate on ``valid`` (both labelled). The norms
        default to those of ``train`` and ``valid`` together, per dealer group and pooled
        (``norms_by_group``; ``train_task`` sets them from every labelled instance).

        The model reads the registered features that vary in ``train``: the constant or
        always-missing ones are dropped (``dropped_``); raises ``NothingToFit`` when none is
        left."""
        self.dropped_ = constant_features(train, self.feature_set)
        kept = [f for f in self.feature_set.names if f not in self.dropped_]
        if not kept:
            raise NothingToFit(
                f"{self.task}: every feature is constant or always missing in the training "
                "rows; nothing to fit"
            )
        self.features = kept
        kept_set = set(kept)
        categorical = [
            f.name for f in self.feature_set.specs if f.unit == "category" and f.name in kept_set
        ]
        self.categories_ = {
            c: sorted(train[c].astype("string").dropna().unique().tolist()) for c in categorical
        }
        self.__dict__.pop("_levels", None)  # levels changed: forget the cached lookups
        y_train = train["label"].astype(int).to_numpy()
        y_valid = valid["label"].astype(int).to_numpy()
        self.booster_ = self._fit_booster(self.encode(train), y_train, self.encode(valid), y_valid)
        # Platt scaling on the validation period: monotone, so the call-list order and the AUC
        # are exactly LightGBM's, and it undoes the class weighting's shift of the odds.
        platt = LogisticRegression(C=1e6).fit(self.predict_raw(valid)[:, None], y_valid)
        self.calibration_ = (float(platt.coef_[0, 0]), float(platt.intercept_[0]))
        # Risk bands: the riskiest 20% of the validation period is "high", the next 30% "medium".
        medium, high = np.quantile(self.predict_risk(valid), [0.5, 0.8])
        self.bands_ = {"medium": float(medium), "high": float(high)}
        self.norms_ = self.own_norms(
            norms_by_group(pd.concat([train, valid]), self.feature_set, self.task_params)
        )
        return self

    def own_norms(self, norms: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        """``norms`` (``norms_by_group``'s) restricted to the features the model reads."""
        return {
            group: {k: v for k, v in values.items() if k in self.features}
            for group, values in norms.items()
        }

    def _fit_booster(
        self, x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray
    ) -> lgb.Booster:
        """LightGBM on the encoded matrices (categoricals as level positions, declared as
        categorical), early-stopped on the validation period with the same class weights."""
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
        eval_weight = compute_sample_weight("balanced", y_valid) if p.balance_classes else None
        classifier.fit(
            x_train,
            y_train,
            feature_name=self.features,
            categorical_feature=[j for j, f in enumerate(self.features) if f in self.categories_],
            eval_X=(x_valid,),
            eval_y=(y_valid,),
            eval_sample_weight=[eval_weight],
            eval_metric="binary_logloss",
            callbacks=[lgb.early_stopping(p.early_stopping_rounds, verbose=False)],
        )
        # Keep only the trees early stopping chose: the fitted and a reloaded model are the same.
        return lgb.Booster(
            model_str=classifier.booster_.model_to_string(num_iteration=classifier.best_iteration_)
        )


def logistic_baseline(task: Task | FeatureSet, features: Sequence[str] | None = None) -> Pipeline:
    """Logistic regression on the same features (``features``, default every one of the
    task's or the feature set's):
    median-imputed, scaled numerics with missing-value indicators, one-hot categoricals
    (unknown levels ignored)."""
    specs = _specs(task, features)
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


def baseline_matrix(
    table: pd.DataFrame, task: Task | FeatureSet, features: Sequence[str] | None = None
) -> pd.DataFrame:
    """The baseline's input: ``features`` (default every one of the task's or the feature
    set's), categoricals as plain strings."""
    specs = _specs(task, features)
    x = table[[f.name for f in specs]].copy()
    for f in specs:
        if f.unit == "category":
            x[f.name] = x[f.name].astype("string").fillna("unknown").astype(object)
    return x


def _specs(task: Task | FeatureSet, features: Sequence[str] | None) -> list[FeatureSpec]:
    """The entries of ``features`` (default: every one of the set), in the set's order."""
    specs = list(feature_set_of(task).specs)
    return specs if features is None else [f for f in specs if f.name in set(features)]
