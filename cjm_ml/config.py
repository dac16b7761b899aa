"""The one typed settings object. Reading it has no side effects (no folders, no logging)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Project settings, from ``CJM_*`` environment variables or an ignored ``.env`` file."""

    model_config = SettingsConfigDict(env_prefix="CJM_", env_file=".env", extra="ignore")
    data_dir: Path = Path("data")
    models_dir: Path = Path("models")
    log_level: str = "INFO"

    @property
    def mlflow_dir(self) -> Path:
        """The embedded MLflow tracking store and artifacts (unless MLFLOW_TRACKING_URI is set)."""
        return self.data_dir / "mlflow"

    @property
    def demo_dir(self) -> Path:
        """Where ``cjm demo`` puts the simulated group and everything built from it."""
        return self.data_dir / "demo"
