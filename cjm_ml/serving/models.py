"""The champions the service scores with: loaded together, validated, swapped whole on reload,
and the same in every process.

Source: the MLflow registry's ``champion`` of each model when a tracking server is configured
(``MLFLOW_TRACKING_URI``), otherwise the exported bundles under the models directory. A load
validates the whole set before anything is swapped: each bundle (``ModelArtifact.load``:
format, keys, parameters, the checksum of ``model.txt`` before LightGBM reads it, feature
count), then each model scores and explains a probe instance (risk a probability, bands that
exist). Any failure keeps the set being served and names the task and the reason.

A reload publishes the validated set as a new *generation* (``generations.py``): every process
of ``cjm serve`` watches for it and swaps to the same bytes, and the reload answers once each
live process serves it. ``ModelSet.generation`` grows strictly across processes. A request in
flight finishes on the set it started with; none sees a half-loaded set.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from cjm_ml.artifact import ModelArtifact
from cjm_ml.params import MODEL_NAMES, TASKS, Task
from cjm_ml.serving.generations import (
    GenerationError,
    GenerationStore,
    ProcessReport,
    Published,
    process_started,
)

log = logging.getLogger(__name__)

#: How often each process looks for a newer generation (a stat of the marker).
WATCH_INTERVAL_S = 0.2
#: How long a reload waits for every live process to serve the new generation.
RELOAD_WAIT_S = 20.0


class ModelsUnavailable(RuntimeError):
    """Some champion could not be loaded; ``problems`` maps each task (or "generation") to
    why, and the message lists them."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{task}: {why}" for task, why in problems.items()))
        self.problems = problems


class ReloadIncomplete(RuntimeError):
    """The new generation is published and served here, but some live process did not switch
    to it in time (``lagging``: their reports)."""

    def __init__(self, generation: int, lagging: list[ProcessReport]) -> None:
        super().__init__(f"generation {generation} not served by every process")
        self.generation = generation
        self.lagging = lagging


@dataclass(frozen=True)
class ModelSet:
    """One loaded champion per task, where they came from, when, and their generation (0: not
    published; otherwise strictly increasing across every process of the service)."""

    models: dict[Task, ModelArtifact]
    source: str
    generation: int = 0
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def versions(self) -> dict[str, str]:
        """Each task's model version."""
        return {task: model.identity[1] for task, model in self.models.items()}

    def describe(self) -> list[dict[str, object]]:
        """Name, version, generation, source and training metrics of each model (for GET
        /v1/models)."""
        out = []
        for task, model in self.models.items():
            meta = model.metadata_
            name, version = model.identity
            out.append(
                {
                    "task": task,
                    "model_name": name,
                    "version": version,
                    "generation": self.generation,
                    "source": self.source,
                    "loaded_at": self.loaded_at.isoformat(),
                    "features": len(model.features),
                    "test_roc_auc": meta.get("metrics", {}).get("lightgbm_roc_auc"),
                    "bands": model.bands_,
                }
            )
        return out


def load_models(models_dir: Path, registry: bool | None = None) -> ModelSet:
    """All three champions, validated (see the module docstring): from the MLflow registry if
    ``registry`` (default: when MLFLOW_TRACKING_URI is set), else from ``models_dir/<task>/``
    bundles. Raises ``ModelsUnavailable`` naming every task that failed and why."""
    use_registry = bool(os.environ.get("MLFLOW_TRACKING_URI")) if registry is None else registry
    # (read directly: importing the tracking module would load MLflow for bundle-only serving)
    models: dict[Task, ModelArtifact] = {}
    problems: dict[str, str] = {}
    for task in TASKS:
        try:
            model = _from_registry(task) if use_registry else ModelArtifact.load(models_dir / task)
            check_model(model)
        except (OSError, ValueError, LookupError) as exc:
            problems[task] = str(exc)
        else:
            models[task] = model
    if problems:
        raise ModelsUnavailable(problems)
    source = "mlflow registry" if use_registry else f"bundles in {models_dir}"
    return ModelSet(models, source)


def check_model(model: ModelArtifact) -> None:
    """Refuse (``ValueError``, saying why) a loaded model that cannot serve: it must give a
    probability and a band for a probe instance with every feature missing, and explain it."""
    from cjm_ml.explain.drivers import DriverExplainer

    bands = model.bands_
    if not all(isinstance(bands.get(b), float) and math.isfinite(bands[b]) for b in _BANDS):
        raise ValueError(f"risk bands must give 'medium' and 'high', got {bands}")
    if not all(math.isfinite(v) for v in model.calibration_):
        raise ValueError(f"calibration is not finite: {model.calibration_}")
    probe = {
        name: np.array([None], dtype=object) if name in model.categories_ else np.array([np.nan])
        for name in model.features
    }
    try:
        risk = model.predict_risk(probe)
        model.band(risk)
        DriverExplainer(model, threads=1).explain_each(probe)
    except Exception as exc:  # any failure here would be every request's 500: refuse the model
        raise ValueError(f"cannot score a probe instance ({exc!r})") from exc
    if not (0.0 <= float(risk[0]) <= 1.0):
        raise ValueError(f"scores a probe instance {float(risk[0])}, not a risk")


_BANDS = ("medium", "high")


def _from_registry(task: Task) -> ModelArtifact:
    """The task's registry champion; LookupError when there is none or it cannot be loaded."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from cjm_ml.training.tracking import ChampionUnusable, champion, configure_tracking

    try:
        configure_tracking()
        model = champion(MlflowClient(), task)
    except (ChampionUnusable, MlflowException) as exc:
        raise LookupError(f"{MODEL_NAMES[task]}: {exc}") from exc
    if model is None:
        raise LookupError(f"{MODEL_NAMES[task]} has no champion in the registry")
    return model


class ModelHolder:
    """This process's current ``ModelSet``, kept the same as the other processes' through the
    published generations (``state_dir``, default ``<models_dir>/.serving``; new generations
    stay above ``floor``)."""

    def __init__(
        self,
        models_dir: Path,
        registry: bool | None = None,
        state_dir: Path | None = None,
        *,
        floor: int = 0,
    ) -> None:
        self.models_dir = models_dir
        #: Generations published here stay above this (the outbox's newest: if the state
        #: folder is lost, numbering must not restart below what the CRM already received).
        self.floor = floor
        self.registry = registry
        self.generations = GenerationStore(state_dir or models_dir / ".serving")
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._current: ModelSet | None = None
        self._token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._started = process_started(os.getpid())
        self._seen: tuple[int, int] | None = None
        self._failed: int | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def current(self) -> ModelSet | None:
        """The loaded set, or None before the first successful load."""
        return self._current

    @property
    def generation(self) -> int:
        """The generation served here (0: none)."""
        return 0 if self._current is None else self._current.generation

    def start(self) -> ModelSet | None:
        """Load the champions and publish them; if they do not load, serve the newest
        published generation instead (another process's). None when neither is possible: not
        ready, ``last_error`` says why."""
        try:
            return self.reload(wait_s=None)
        except ModelsUnavailable as exc:
            if not self.follow():
                self.last_error = str(exc)
                return None
            log.warning("the models do not load (%s): serving generation %d", exc, self.generation)
            return self._current

    def reload(self, wait_s: float | None = RELOAD_WAIT_S) -> ModelSet:
        """Load and validate all champions, publish them as a new generation and serve it;
        then wait up to ``wait_s`` for every live process to serve it too (None: do not
        wait). Raises ``ModelsUnavailable`` (nothing swapped, the old set still served) or
        ``ReloadIncomplete`` (swapped here, some process did not follow in time)."""
        with self._lock:
            try:
                fresh = load_models(self.models_dir, self.registry)
                generation = self.generations.publish(
                    fresh.models, fresh.source, max(self.generation, self.floor)
                )
            except (ModelsUnavailable, GenerationError) as exc:
                self.last_error = str(exc)
                log.warning("models not (re)loaded: %s", exc)
                self._report()
                if isinstance(exc, GenerationError):
                    raise ModelsUnavailable({"generation": str(exc)}) from exc
                raise
            self._seen = self.generations.marker_stamp()
            fresh = replace(fresh, generation=generation)
            self._swap(fresh)
        if wait_s is not None:
            self._wait_for_everyone(generation, wait_s)
        return fresh

    def follow(self) -> bool:
        """Serve the newest published generation if it is newer than this one (each bundle
        checked against the marker); whether the set served changed. A generation that does
        not load is not tried again until the marker changes."""
        stamp = self.generations.marker_stamp()
        if stamp is None or stamp == self._seen:
            return False
        with self._lock:
            published = self.generations.published()
            self._seen = stamp
            if published is None or published.generation <= self.generation:
                return False
            return self._adopt(published)

    def processes(self) -> list[ProcessReport]:
        """What each live serving process reports it serves."""
        return self.generations.processes()

    def watch(self, interval_s: float = WATCH_INTERVAL_S) -> None:
        """Follow newer generations from a background thread until ``close``."""
        if self._watcher is None:
            self._watcher = threading.Thread(
                target=self._watch, args=(interval_s,), name="cjm-models-watch", daemon=True
            )
            self._watcher.start()

    def close(self) -> None:
        """Stop following and withdraw this process's report."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=30)
        self.generations.forget(self._token)

    # ---------------------------------------------------------------------- inside
    def _adopt(self, published: Published) -> bool:
        try:
            models = self.generations.load(published)
        except GenerationError as exc:
            self._failed, self.last_error = published.generation, str(exc)
            log.error("model generation %d not loaded: %s", published.generation, exc)
            self._report()
            return False
        self._swap(ModelSet(models, published.source, published.generation))
        return True

    def _swap(self, fresh: ModelSet) -> None:
        self._current, self.last_error, self._failed = fresh, None, None
        versions = ", ".join("{} v{}".format(*m.identity) for m in fresh.models.values())
        log.info("models of generation %d from %s: %s", fresh.generation, fresh.source, versions)
        self._report()

    def _report(self) -> None:
        current = self._current
        report = ProcessReport(
            pid=os.getpid(),
            generation=self.generation,
            versions={} if current is None else current.versions,
            failed_generation=self._failed,
            error=self.last_error,
            started=self._started,
            at=datetime.now(UTC).isoformat(),
        )
        self.generations.report(self._token, report)

    def _wait_for_everyone(self, generation: int, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while True:
            lagging = [p for p in self.processes() if p.generation < generation]
            failed = all((p.failed_generation or 0) >= generation for p in lagging)
            if not lagging:
                return
            if failed or time.monotonic() >= deadline:
                raise ReloadIncomplete(generation, lagging)
            time.sleep(0.05)

    def _watch(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.follow()
            except Exception:  # the watcher must outlive any one bad look; logged
                log.exception("looking for a newer model generation failed")
