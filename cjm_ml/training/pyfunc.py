"""The MLflow pyfunc face of a risk model: feature rows in, calibrated risk out.

Logged as "models from code" (``mlflow_model.py``), not a pickle: the model's state is the
bundle folder (``ModelArtifact.save``) carried as an MLflow artifact, so the registered model and
the exported bundle under ``models/`` are the same files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from cjm_ml.artifact import ModelArtifact

#: The artifact key under which the bundle folder travels with the MLflow model.
BUNDLE_ARTIFACT = "bundle"


class RiskPyfunc(PythonModel):
    """Calibrated risk for rows of a task's feature table (the registered features)."""

    def load_context(self, context: Any) -> None:
        """Load the bundle that was logged with the model."""
        self.model = ModelArtifact.load(Path(context.artifacts[BUNDLE_ARTIFACT]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """The calibrated risk of each row."""
        return self.model.predict_risk(model_input)
