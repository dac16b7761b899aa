"""Logging setup, called by entry points only (never on import)."""

from __future__ import annotations

import logging


def configure_logging(level: str = "INFO") -> None:
    """Send cjm_ml's logs to stderr with timestamps; leave other libraries at WARNING."""
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("cjm_ml").setLevel(level.upper())
