"""The champions the service scores with: loaded together, swapped whole on reload.

Source: the MLflow registry's ``champion`` of each model when a tracking server is configured
(``MLFLOW_TRACKING_URI``), otherwise the exported bundles under the models directory. A reload
loads all three first and then swaps one reference, so a request in flight finishes on the set
it started with and no request ever sees a half-loaded set.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cjm_ml.artifact import ModelArtifact
from cjm_ml.params import MODEL_NAMES, TASKS, Task

log = logging.getLogger(__name__)


class ModelsUnavailable(RuntimeError):
    """Some champion could not be loaded; the message names which and why."""


@dataclass(frozen=True)
class ModelSet:
    """One loaded champion per task, with where they came from and when."""

    models: dict[Task, ModelArtifact]
    source: str
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def describe(self) -> list[dict[str, object]]:
        """Name, version, source and training metrics of each model (for GET /v1/models)."""
        out = []
        for task, model in self.models.items():
            meta = model.metadata_
            name, version = model.identity
            out.append(
                {
                    "task": task,
                    "model_name": name,
                    "version": version,
                    "source": self.source,
                    "loaded_at": self.loaded_at.isoformat(),
                    "features": len(model.features),
                    "test_roc_auc": meta.get("metrics", {}).get("lightgbm_roc_auc"),
                    "bands": model.bands_,
                }
            )
        return out


def load_models(models_dir: Path, registry: bool | None = None) -> ModelSet:
    """Load all three champions: from the MLflow registry if ``registry`` (default: when
    MLFLOW_TRACKING_URI is set), else from ``models_dir/<task>/`` bundles."""
    use_registry = bool(os.environ.get("MLFLOW_TRACKING_URI")) if registry is None else registry
    # (read directly: importing the tracking module would load MLflow for bundle-only serving)
    models: dict[Task, ModelArtifact] = {}
    problems = []
    for task in TASKS:
        try:
            models[task] = (
                _from_registry(task) if use_registry else ModelArtifact.load(models_dir / task)
            )
        except (FileNotFoundError, ValueError, LookupError) as exc:
            problems.append(f"{task}: {exc}")
    if problems:
        raise ModelsUnavailable("; ".join(problems))
    source = "mlflow registry" if use_registry else f"bundles in {models_dir}"
    return ModelSet(models, source)


def _from_registry(task: Task) -> ModelArtifact:
    from mlflow import MlflowClient

    from cjm_ml.training.tracking import champion, configure_tracking

    configure_tracking()
    model = champion(MlflowClient(), task)
    if model is None:
        raise LookupError(f"{MODEL_NAMES[task]} has no champion in the registry")
    return model


class ModelHolder:
    """The service's current ``ModelSet``; ``reload`` swaps in a new one atomically."""

    def __init__(self, models_dir: Path, registry: bool | None = None) -> None:
        self.models_dir = models_dir
        self.registry = registry
        self._lock = threading.Lock()
        self._current: ModelSet | None = None
        self.last_error: str | None = None

    @property
    def current(self) -> ModelSet | None:
        """The loaded set, or None before the first successful load."""
        return self._current

    def reload(self) -> ModelSet:
        """Load all champions anew and swap them in; on failure keep serving the old set."""
        with self._lock:
            try:
                fresh = load_models(self.models_dir, self.registry)
            except ModelsUnavailable as exc:
                self.last_error = str(exc)
                log.warning("models not (re)loaded: %s", exc)
                raise
            self._current, self.last_error = fresh, None
            versions = ", ".join(f"{m['model_name']} v{m['version']}" for m in fresh.describe())
            log.info("models loaded from %s: %s", fresh.source, versions)
            return fresh
