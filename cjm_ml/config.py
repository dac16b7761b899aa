"""The one typed settings object. Reading it has no side effects (no folders, no logging)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Project settings, from ``CJM_*`` environment variables or an ignored ``.env`` file."""

    model_config = SettingsConfigDict(env_prefix="CJM_", env_file=".env", extra="ignore")
    data_dir: Path = Path("data")
    models_dir: Path = Path("models")
    log_level: str = "INFO"
    tenants_file: Path = Field(
        Path("tenants.json"), description="Dealer groups, hashed API keys and CRM webhooks."
    )
    event_store_path: Path | None = Field(None, description="Default: data/serving/events.db.")
    outbox_path: Path | None = Field(None, description="Default: data/serving/outbox.db.")
    outbox_max_attempts: int = Field(10, ge=1, description="Tries before a delivery is parked.")
    outbox_base_delay_s: float = Field(5.0, gt=0, description="First retry delay (doubles).")
    outbox_max_delay_s: float = Field(900.0, gt=0, description="Longest retry delay.")
    outbox_poll_s: float = Field(2.0, gt=0, description="How often the deliverer looks.")
    admin_key_hash: str | None = Field(
        None, description="sha256:<hex> of the operator key that may reload models."
    )
    pii_salt: SecretStr | None = Field(
        None,
        description="Secret salt for hashing emails, phones and names at ingest (CJM_PII_SALT); "
        "keep it: another salt gives every customer new hashes.",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    keep_alive_s: int = Field(
        5, ge=1, description="An idle keep-alive connection is closed after this many seconds."
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="A connection whose request headers are not complete this many seconds "
        "after it opened (or after the first byte of its next request) is closed.",
    )
    max_connections: int = Field(
        512,
        ge=1,
        description="Open connections per server process; one more is answered 503 and closed.",
    )

    @property
    def event_store_file(self) -> Path:
        """The embedded event store (default data/serving/events.db)."""
        return self.event_store_path or self.data_dir / "serving" / "events.db"

    @property
    def outbox_file(self) -> Path:
        """The CRM outbox (default data/serving/outbox.db)."""
        return self.outbox_path or self.data_dir / "serving" / "outbox.db"

    @property
    def mlflow_dir(self) -> Path:
        """The embedded MLflow tracking store and artifacts (unless MLFLOW_TRACKING_URI is set)."""
        return self.data_dir / "mlflow"

    @property
    def demo_dir(self) -> Path:
        """Where ``cjm demo`` puts the simulated group and everything built from it."""
        return self.data_dir / "demo"
