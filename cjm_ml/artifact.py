"""The model artifact: the one contract between training and serving.

Whatever training decided travels in it, and serving and the explanations read only it: the
task and its parameters (windows and standards: ``TaskParams``), the features with their
registry entries and the user's declared features (``cjm_ml.featureset``), the category
levels, the one encoder (feature columns -> LightGBM's input), the one Platt calibration, the
risk bands, and the norms the sentences compare against (per dealer group, and pooled across
groups for a group with too little data or none).
A bundle trained with other parameters serves with those parameters.

On disk a bundle is a folder: ``model.txt`` (LightGBM's own text format) and ``bundle.json``
(everything else). ``ModelArtifact.load`` validates the whole bundle before it returns, so a
holder can keep what it serves when a new bundle is damaged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from functools import cached_property
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError
from scipy.special import expit

from cjm_ml.featureset import DeclaredFeature, FeatureSet
from cjm_ml.io import atomic_dir
from cjm_ml.params import MODEL_NAMES, Task, TaskParams

#: Version of the bundle layout written by ``ModelArtifact.save`` (4: norms per dealer group).
BUNDLE_FORMAT = 4
#: The key of ``ModelArtifact.norms_`` (and of the bundle's ``norms``) holding the norms pooled
#: over every dealer group the model was trained on; every other key is a dealer group id.
POOLED_NORMS = "*"

#: Up to this many rows, a table counts as few (a request's): per-row Python beats the fixed
#: cost of a vectorised call.
_FEW_ROWS = 64
#: Up to this many rows, LightGBM predicts on one thread: starting OpenMP threads costs more
#: than it saves for a request's few rows (rows are predicted independently: same results).
_ONE_THREAD_ROWS = 1_000


class BundleError(ValueError):
    """A model bundle that cannot be served: missing, damaged, or for another code version."""


def model_features(feature_set: FeatureSet, features: Sequence[str] | None = None) -> list[str]:
    """The features a model reads, in order: ``features`` (a subset of the set's features:
    training drops the constant ones), or every feature of the set (the registry's for the
    task, then the declared ones). Raises ``ValueError`` for an empty list, a repeated name, or
    a name the set does not have (naming them)."""
    task, known = feature_set.task, feature_set.names
    if features is None:
        return known
    names = [str(name) for name in features]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"{task}: unknown features {unknown}")
    if not names:
        raise ValueError(f"{task}: a model needs at least one feature")
    if len(set(names)) != len(names):
        raise ValueError(
            f"{task}: repeated features {sorted(n for n in set(names) if names.count(n) > 1)}"
        )
    return names


class ModelArtifact:
    """A fitted risk model for one task, as serving sees it (see the module docstring).

    ``features`` are the features it reads, in its input's column order: the task's registered
    and ``declared`` features (``feature_set``: every feature lookup goes through it), or the
    subset training fitted on (it drops the constant ones). Learned attributes
    end in ``_``: ``booster_``, ``categories_`` (feature -> learned levels,
    sorted), ``calibration_`` (Platt slope, intercept), ``bands_`` (risk thresholds of
    "medium" and "high"), ``norms_`` (dealer group id -> feature -> the group's comparison
    value, and ``POOLED_NORMS`` -> the values across groups; read them with ``norms_for``),
    ``metadata_`` (registered name and version, metrics, data description).
    """

    booster_: lgb.Booster
    categories_: dict[str, list[str]]
    calibration_: tuple[float, float]
    bands_: dict[str, float]

    def __init__(
        self,
        task: Task,
        *,
        hyperparameters: Mapping[str, Any] | None = None,
        task_params: TaskParams | None = None,
        features: Sequence[str] | None = None,
        declared: Sequence[DeclaredFeature] = (),
    ) -> None:
        self.task = task
        self.task_params = task_params or TaskParams()
        self.hyperparameters: dict[str, Any] = dict(hyperparameters or {})
        self.feature_set = FeatureSet(task, tuple(declared))
        self.features: list[str] = model_features(self.feature_set, features)
        self.norms_: dict[str, dict[str, float]] = {}
        self.metadata_: dict[str, Any] = {}

    # -------------------------------------------------------------------------- encoding
    @cached_property
    def _levels(self) -> dict[str, tuple[pa.Array, dict[str, float]]]:
        """Per categorical feature: its learned levels, and level -> code (its position)."""
        return {
            name: (
                pa.array(levels, type=pa.large_string()),
                {level: float(i) for i, level in enumerate(levels)},
            )
            for name, levels in self.categories_.items()
        }

    def encode(self, table: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """The model's input as LightGBM reads it: a float matrix, one column per feature in
        the artifact's order; a categorical is the position of its level among the learned
        levels (NaN: missing or a level never seen in training).

        ``table``: a feature table or its columns (name -> 1-D array or list). Refuses a table
        missing a feature, or a numeric feature that is not numbers, by name."""
        missing = [f for f in self.features if f not in table]
        if missing:
            raise ValueError(f"{self.task}: feature table lacks {', '.join(missing)}")
        columns, bad = [], []
        for name in self.features:
            values = _values(table[name])
            if name in self.categories_:
                values = self._codes(name, values)
            elif not _is_number(values.dtype):
                bad.append(f"{name} ({values.dtype})")
                continue
            columns.append(_floats(values))
        if bad:
            raise ValueError(f"{self.task}: features must be numbers: {', '.join(bad)}")
        rows = len(columns[0]) if columns else 0
        out = np.empty((rows, len(columns)), dtype=np.float64)
        for j, values in enumerate(columns):
            out[:, j] = values
        return out

    def encode_row(self, row: Mapping[str, Any]) -> np.ndarray:
        """One instance (feature name -> value) as a 1-row ``encode`` output, without pandas
        (the per-request path). Refuses a row missing a feature or with a non-numeric value,
        naming the feature."""
        x = np.empty((1, len(self.features)))
        for j, name in enumerate(self.features):
            if name not in row:
                raise ValueError(f"{self.task}: the instance lacks feature {name!r}")
            value = row[name]
            missing = value is None or value is pd.NA
            if name in self.categories_:
                code = None if missing else self.level_codes(name).get(str(value))
                x[0, j] = np.nan if code is None else code
                continue
            try:
                x[0, j] = np.nan if missing else float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{self.task}: feature {name!r} must be a number, got {value!r}"
                ) from None
        return x

    def level_codes(self, name: str) -> dict[str, float]:
        """A categorical feature's learned level -> the code ``encode`` gives it."""
        return self._levels[name][1]

    def _codes(self, name: str, values: Any) -> np.ndarray:
        """Codes of a column of category values (NaN: missing, or not a learned level)."""
        learned, by_level = self._levels[name]
        if getattr(values, "dtype", None) != pd.StringDtype():
            values = pd.array(values).astype("string")
        if len(values) <= _FEW_ROWS:  # a dict beats a vectorised lookup's fixed cost
            return np.array([by_level.get(v, np.nan) for v in values.tolist()], dtype=np.float64)
        found = pc.fill_null(pc.index_in(pa.array(values), value_set=learned), -1)
        at = found.to_numpy(zero_copy_only=False)
        return np.where(at >= 0, at, np.nan).astype(np.float64)

    # -------------------------------------------------------------------------- risk
    def predict_raw(self, table: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """LightGBM's uncalibrated log-odds (class-weighted if balancing was on)."""
        return self.raw_of(self.encode(table))

    def raw_of(self, x: np.ndarray) -> np.ndarray:
        """Raw log-odds of an encoded matrix (``encode``'s output)."""
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

    def band(self, risk: np.ndarray) -> np.ndarray:
        """ "high", "medium" or "low" for each risk, by the thresholds learned at fit time
        (the top 20% and the next 30% of the validation period's risk)."""
        risk = np.asarray(risk, dtype=float)
        return np.select(
            [risk >= self.bands_["high"], risk >= self.bands_["medium"]], ["high", "medium"], "low"
        )

    def norms_for(self, group: str | None) -> tuple[dict[str, float], bool]:
        """The comparison values the sentences quote for dealer group ``group``, and whether
        they are the group's own: its own norms where training had enough of its instances,
        else the pooled ones (``False``: "across groups"). ``None``: the model's only group if
        it was trained on one, else the pooled norms. Empty when the model carries none."""
        groups = [g for g in self.norms_ if g != POOLED_NORMS]
        if group is None and len(groups) == 1:
            group = groups[0]
        if group is not None and group != POOLED_NORMS and group in self.norms_:
            return dict(self.norms_[group]), True
        return dict(self.norms_.get(POOLED_NORMS, {})), False

    @property
    def identity(self) -> tuple[str, str]:
        """Registered name and version, from the bundle metadata ("unregistered" if none)."""
        name = self.metadata_.get("model_name", MODEL_NAMES[self.task])
        return str(name), str(self.metadata_.get("version", "unregistered"))

    # -------------------------------------------------------------------------- bundle
    def save(self, folder: Path, metadata: Mapping[str, Any] | None = None) -> Path:
        """Write the artifact as a self-contained bundle folder (``model.txt`` and
        ``bundle.json``; ``metadata`` replaces the stored metadata if given). Replaces
        ``folder`` atomically."""
        spec: dict[str, Any] = {
            "format": BUNDLE_FORMAT,
            "task": self.task,
            "task_params": self.task_params.model_dump(mode="json"),
            "features": [asdict(self.feature_set.spec(name)) for name in self.features],
            "declared": self.feature_set.dump(),
            "categories": self.categories_,
            "calibration": {"slope": self.calibration_[0], "intercept": self.calibration_[1]},
            "bands": self.bands_,
            "norms": self.norms_,
            "hyperparameters": self.hyperparameters,
            "metadata": dict(self.metadata_ if metadata is None else metadata),
        }
        with atomic_dir(folder) as tmp:
            text = self.booster_.model_to_string()
            (tmp / "model.txt").write_text(text)
            spec["model_sha256"] = hashlib.sha256(text.encode()).hexdigest()
            (tmp / "bundle.json").write_text(json.dumps(spec, indent=2, default=str) + "\n")
        return folder

    @classmethod
    def load(cls, folder: Path) -> ModelArtifact:
        """Load and validate a bundle written by ``save``. Raises ``BundleError`` (saying
        which file and why) for a missing or damaged bundle, another bundle format, features
        this version's registry does not have for the task (a subset is fine: training drops
        constant features), or a booster that does not match them."""
        folder = Path(folder)
        spec = _read_spec(folder)
        artifact = cls.__new__(cls)
        try:
            stored = [f["name"] for f in spec["features"]]
            try:
                feature_set = FeatureSet.of(spec["task"], spec.get("declared", []))
                features = model_features(feature_set, stored)
            except ValueError as exc:
                raise BundleError(
                    f"{folder}: the bundle's features do not fit this version's registry "
                    f"({exc}); retrain the model"
                ) from exc
            ModelArtifact.__init__(
                artifact,
                spec["task"],
                hyperparameters=spec["hyperparameters"],
                task_params=TaskParams.model_validate(spec["task_params"]),
                features=features,
                declared=feature_set.declared,
            )
            artifact.categories_ = {k: [str(v) for v in vs] for k, vs in spec["categories"].items()}
            calibration = spec["calibration"]
            artifact.calibration_ = (float(calibration["slope"]), float(calibration["intercept"]))
            artifact.bands_ = {k: float(v) for k, v in spec["bands"].items()}
            artifact.norms_ = _read_norms(spec["norms"], artifact.features, folder)
            artifact.metadata_ = dict(spec["metadata"])
        except (AttributeError, KeyError, TypeError, ValueError, ValidationError) as exc:
            if isinstance(exc, BundleError):
                raise
            raise BundleError(f"{folder / 'bundle.json'}: not a valid bundle ({exc!r})") from exc
        artifact.booster_ = _read_booster(folder, len(artifact.features), spec.get("model_sha256"))
        return artifact


def _read_spec(folder: Path) -> dict[str, Any]:
    """``bundle.json`` of a bundle folder, checked for the format this version writes."""
    path = folder / "bundle.json"
    try:
        spec = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise BundleError(f"{folder}: not a model bundle (no bundle.json)") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: unreadable ({exc})") from exc
    if not isinstance(spec, dict) or spec.get("format") != BUNDLE_FORMAT:
        found = spec.get("format") if isinstance(spec, dict) else None
        raise BundleError(f"{folder}: bundle format {found}, need {BUNDLE_FORMAT}")
    return spec


def _read_norms(norms: Any, features: list[str], folder: Path) -> dict[str, dict[str, float]]:
    """The bundle's norms: dealer group id (and ``POOLED_NORMS``, required) -> feature of the
    bundle -> a finite number. Raises ``BundleError`` naming the group or feature otherwise."""
    where = folder / "bundle.json"
    if not isinstance(norms, dict) or POOLED_NORMS not in norms:
        raise BundleError(f"{where}: norms must map dealer groups and {POOLED_NORMS!r} to values")
    out: dict[str, dict[str, float]] = {}
    for group, values in norms.items():
        if not isinstance(values, dict):
            raise BundleError(f"{where}: the norms of {group!r} are not feature -> value")
        unknown = sorted(set(values) - set(features))
        if unknown:
            raise BundleError(f"{where}: the norms of {group!r} name unknown features {unknown}")
        out[group] = {name: float(v) for name, v in values.items()}
        if not all(np.isfinite(v) for v in out[group].values()):
            raise BundleError(f"{where}: the norms of {group!r} are not all finite numbers")
    return out


def _read_booster(folder: Path, features: int, sha256: Any) -> lgb.Booster:
    """The bundle's booster. ``model.txt`` must be exactly the text the bundle was saved with
    (its sha256): LightGBM aborts the whole process on some damaged model files, so nothing
    unverified reaches it. Then it must read ``features`` columns."""
    path = folder / "model.txt"
    try:
        text = path.read_bytes()
    except FileNotFoundError as exc:
        raise BundleError(f"{folder}: not a model bundle (no model.txt)") from exc
    except OSError as exc:
        raise BundleError(f"{path}: unreadable ({exc})") from exc
    if hashlib.sha256(text).hexdigest() != sha256:
        raise BundleError(f"{path}: not the model this bundle was saved with (checksum differs)")
    try:
        booster = lgb.Booster(model_str=text.decode())
    except (lgb.basic.LightGBMError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not a LightGBM model ({exc})") from exc
    if booster.num_feature() != features:
        raise BundleError(
            f"{path}: the booster reads {booster.num_feature()} features, the bundle {features}"
        )
    return booster


def _is_number(dtype: Any) -> bool:
    """Whether a column of this dtype holds plain numbers (ints, floats, booleans)."""
    kind = getattr(dtype, "type", None)
    if kind is None or not isinstance(kind, type):
        return False
    if issubclass(kind, np.timedelta64 | np.longdouble):
        return False
    if issubclass(kind, np.integer | np.floating | np.bool_):
        return True
    return isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.kind in "iufb"


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
