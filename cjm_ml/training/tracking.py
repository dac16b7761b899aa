"""MLflow tracking, the model registry, champion promotion and the exported bundles.

Embedded default: a SQLite tracking store and an artifact folder under the data directory
(``<data_dir>/mlflow/``), no server. ``MLFLOW_TRACKING_URI`` (MLflow's own variable) points
everything at a real MLflow server instead. Each task's model is registered under its own name;
the ``champion`` alias moves to a new version only when it beats the current champion's AUC on
the new run's test period, and never to a model that cannot beat a constant one (nothing fitted,
or a test AUC within noise of 0.5: ``TrainingReport.refusal``).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from cjm_ml.artifact import ModelArtifact
from cjm_ml.config import Settings
from cjm_ml.params import MODEL_NAMES, Task
from cjm_ml.training import plots
from cjm_ml.training.evaluate import risk_metrics
from cjm_ml.training.pyfunc import BUNDLE_ARTIFACT
from cjm_ml.training.run import TrainingReport

log = logging.getLogger(__name__)

CHAMPION = "champion"
_MODEL_CODE = Path(__file__).with_name("mlflow_model.py")


@dataclass(frozen=True)
class Promotion:
    """Whether a new version became the champion, and why."""

    promoted: bool
    reason: str
    version: str
    auc: float
    champion_version: str | None = None
    champion_auc: float | None = None


@dataclass(frozen=True)
class TrackedRun:
    """Where a training run went: its MLflow run, registered version, promotion and bundle."""

    run_id: str
    model_name: str
    promotion: Promotion
    bundle: Path | None


def configure_tracking(settings: Settings | None = None) -> str:
    """Point MLflow at ``MLFLOW_TRACKING_URI`` if set, else the embedded SQLite store under
    the data directory (created on first use). Returns the URI in use."""
    settings = settings or Settings()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = _server_uri()
    if uri is None:
        folder = settings.mlflow_dir.resolve()
        folder.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{folder / 'mlflow.db'}"
    # set_tracking_uri also exports MLFLOW_TRACKING_URI; keep the user's environment as it was
    # so child processes (and later calls) do not mistake our store for a server of theirs.
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    before = {name: os.environ.get(name) for name in names}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return uri


def _server_uri() -> str | None:
    """The MLflow server the user pointed us at with MLFLOW_TRACKING_URI, if any."""
    return os.environ.get("MLFLOW_TRACKING_URI") or None


def _experiment(task: Task, settings: Settings) -> str:
    """The task's experiment id; a new one keeps artifacts beside the embedded store."""
    name = MODEL_NAMES[task]
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = None
    if _server_uri() is None:
        location = (settings.mlflow_dir / "artifacts").resolve().as_uri()
    return str(mlflow.create_experiment(name, artifact_location=location))


class ChampionUnusable(Exception):
    """The registered champion cannot be loaded by this version of the code."""

    def __init__(self, version: str, reason: str) -> None:
        super().__init__(f"champion v{version} cannot be loaded ({reason})")
        self.version = version


def champion(client: MlflowClient, task: Task) -> ModelArtifact | None:
    """The task's current champion, loaded from the registry (None if there is none yet).
    Raises ``ChampionUnusable`` when it was written by an incompatible version of the code."""
    try:
        version = client.get_model_version_by_alias(MODEL_NAMES[task], CHAMPION)
    except MlflowException:
        return None
    try:
        return _load_version(MODEL_NAMES[task], str(version.version))
    except (ValueError, FileNotFoundError) as exc:
        raise ChampionUnusable(str(version.version), str(exc)) from exc


def _load_version(name: str, version: str) -> ModelArtifact:
    folder = mlflow.artifacts.download_artifacts(f"models:/{name}/{version}")
    model = ModelArtifact.load(Path(folder) / "artifacts" / BUNDLE_ARTIFACT)
    model.metadata_.update(model_name=name, version=version)
    return model


def decide_promotion(
    report: TrainingReport, version: str, current: ModelArtifact | ChampionUnusable | None
) -> Promotion:
    """Never promote a model that cannot beat a constant one (``TrainingReport.refusal``:
    nothing fitted, or a test AUC within noise of 0.5), whatever the champion; otherwise
    promote when there is no usable champion, or when the new model's AUC beats the
    champion's on the same test period (the new run's); a tie keeps the champion."""
    auc = report.auc
    refusal = report.refusal
    if refusal is not None:
        return Promotion(False, f"not promoted: {refusal}", version, auc)
    if current is None:
        return Promotion(True, "first version: no champion yet", version, auc)
    if isinstance(current, ChampionUnusable):
        return Promotion(True, f"{current}; replaced", version, auc, current.version)
    test = report.split.test
    try:
        risk = current.predict_risk(test)
    except ValueError as exc:
        reason = f"champion cannot score this feature table ({exc}); replaced"
        return Promotion(True, reason, version, auc, current.metadata_.get("version"))
    champ_auc = risk_metrics(test["label"].astype(int).to_numpy(), risk)["roc_auc"]
    champ_version = current.metadata_.get("version")
    period = f"{report.data['test_from']} to {report.data['test_to']}"
    if auc > champ_auc:
        reason = f"AUC {auc:.4f} beats champion v{champ_version} ({champ_auc:.4f}) on {period}"
        return Promotion(True, reason, version, auc, champ_version, champ_auc)
    reason = f"AUC {auc:.4f} does not beat champion v{champ_version} ({champ_auc:.4f}) on {period}"
    return Promotion(False, reason, version, auc, champ_version, champ_auc)


def track(
    report: TrainingReport, settings: Settings | None = None, *, export: bool = True
) -> TrackedRun:
    """Log a training run to MLflow, register its model, promote it if it is better, and
    export the (possibly unchanged) champion as a bundle under the models directory (none
    when the task has no usable champion). A run that fitted nothing registers no model; one
    that cannot beat a constant model is registered but never promoted (``decide_promotion``);
    either way the reason is logged as a warning and tagged on the run."""
    settings = settings or Settings()
    configure_tracking(settings)
    task, name = report.task, MODEL_NAMES[report.task]
    if report.model is None:
        return _track_nothing_fitted(report, settings, export=export)
    client = MlflowClient()
    current: ModelArtifact | ChampionUnusable | None
    try:
        current = champion(client, task)
    except ChampionUnusable as exc:
        current = exc
    model = report.model
    with (
        mlflow.start_run(experiment_id=_experiment(task, settings), run_name=task) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        _log_report(report)
        bundle = model.save(
            Path(tmp) / BUNDLE_ARTIFACT,
            metadata={
                "run_id": run.info.run_id,
                "metrics": report.summary(),
                "data": report.data,
                "dropped_features": report.dropped,
            },
        )
        sample = report.split.test.head(50)[model.features]
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(_MODEL_CODE),
            artifacts={BUNDLE_ARTIFACT: str(bundle)},
            registered_model_name=name,
            signature=infer_signature(
                _signature_frame(sample), model.predict_risk(report.split.test.head(50))
            ),
            input_example=_signature_frame(sample.head(3)),
            pip_requirements=_requirements(),
        )
        version = str(info.registered_model_version)
        promotion = decide_promotion(report, version, current)
        mlflow.set_tags(
            {"promoted": str(promotion.promoted).lower(), "promotion_reason": promotion.reason}
        )
        if promotion.champion_auc is not None:
            mlflow.log_metric("champion_roc_auc_same_test", promotion.champion_auc)
    client.set_model_version_tag(name, version, "promotion_reason", promotion.reason)
    if promotion.promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
        log.info("%s v%s: %s", name, version, promotion.reason)
    else:
        log.warning("%s v%s: %s", name, version, promotion.reason)
    path = _export_if_any(task, settings) if export else None
    return TrackedRun(run.info.run_id, name, promotion, path)


def _track_nothing_fitted(
    report: TrainingReport, settings: Settings, *, export: bool
) -> TrackedRun:
    """Log a run that fitted nothing (every feature dropped): its data, the dropped features
    and why it promotes nothing; no model is registered. The current champion, if any, is
    exported unchanged."""
    task, name = report.task, MODEL_NAMES[report.task]
    reason = f"not promoted: {report.refusal}"
    with mlflow.start_run(experiment_id=_experiment(task, settings), run_name=task) as run:
        mlflow.log_params({f"data.{k}": v for k, v in report.data.items()})
        _log_dropped(report)
        mlflow.set_tags({"promoted": "false", "promotion_reason": reason})
    log.warning("%s: %s", name, reason)
    promotion = Promotion(False, reason, "", report.auc)
    path = _export_if_any(task, settings) if export else None
    return TrackedRun(run.info.run_id, name, promotion, path)


def _export_if_any(task: Task, settings: Settings) -> Path | None:
    """``export_champion``, or None (logged) when the task has no usable champion."""
    try:
        return export_champion(task, settings)
    except (LookupError, ChampionUnusable) as exc:
        log.warning("%s: no champion bundle exported (%s)", MODEL_NAMES[task], exc)
        return None


def _log_dropped(report: TrainingReport) -> None:
    """The features left out of the model, as the ``dropped_features`` tag (``name: why``
    joined by ``; ``, or ``none``) and ``report/dropped_features.json``."""
    mlflow.set_tag("dropped_features", "; ".join(report.dropped_lines()) or "none")
    mlflow.log_dict({"dropped_features": report.dropped}, "report/dropped_features.json")


def _log_report(report: TrainingReport) -> None:
    """Log a report to the active run: parameters, data description, metrics, timings, the
    features the model reads (their registry entries) and those it left out, the report
    tables and the plots."""
    model = report.model
    assert model is not None  # track logs a run that fitted nothing elsewhere
    mlflow.log_params(
        {
            **model.params.model_dump(),
            **{f"data.{k}": v for k, v in report.data.items()},
            "trees": model.booster_.num_trees(),
            "features": len(model.features),
        }
    )
    mlflow.log_metrics(report.summary())
    mlflow.log_metrics({f"seconds_{k}": v for k, v in report.seconds.items()})
    mlflow.log_dict(
        {"features": [asdict(model.feature_set.spec(f)) for f in model.features]},
        "features.json",
    )
    _log_dropped(report)
    for part in ("calibration", "slices", "importance", "search"):
        mlflow.log_text(getattr(report, part).to_csv(index=False), f"report/{part}.csv")
    for part, figure in (
        ("roc", plots.roc_figure(report)),
        ("calibration", plots.calibration_figure(report)),
        ("importance", plots.importance_figure(report)),
    ):
        mlflow.log_figure(figure, f"plots/{part}.png")


def export_champion(task: Task, settings: Settings | None = None) -> Path:
    """Write the task's champion as a self-contained bundle to ``<models_dir>/<task>/``
    (atomically), with its registered name and version in the metadata."""
    settings = settings or Settings()
    configure_tracking(settings)
    model = champion(MlflowClient(), task)
    if model is None:
        raise LookupError(f"{MODEL_NAMES[task]} has no champion yet; train it first")
    return model.save(settings.models_dir / task, metadata=model.metadata_)


def _signature_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Feature rows as MLflow sees them: categoricals as plain strings."""
    frame = rows.copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype | pd.StringDtype):
            frame[column] = frame[column].astype("string").astype(object)
    return frame


def _requirements() -> list[str]:
    """The installed versions of what the pyfunc model imports (no slow inference)."""
    from importlib.metadata import version

    names = ("cjm-ml", "lightgbm", "numpy", "pandas", "pyarrow", "scikit-learn", "mlflow")
    return [f"{n}=={version(n)}" for n in names]


def describe(tracked: TrackedRun) -> str:
    """One line for the console: version, promotion decision and the bundle path."""
    p = tracked.promotion
    where = f"; bundle {tracked.bundle}" if tracked.bundle else ""
    if not p.version:
        return f"{tracked.model_name}: no model registered ({p.reason}){where}"
    verdict = "promoted to champion" if p.promoted else "not promoted"
    reason = p.reason.removeprefix("not promoted: ")
    return f"{tracked.model_name} v{p.version}: {verdict} ({reason}){where}"
