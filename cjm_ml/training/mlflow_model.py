"""Models-from-code entry point: MLflow runs this file to build the pyfunc model."""

from mlflow.models import set_model

from cjm_ml.training.pyfunc import RiskPyfunc

set_model(RiskPyfunc())
