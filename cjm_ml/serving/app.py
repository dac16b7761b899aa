"""The scoring API as an ASGI application factory, for process managers and containers:
``uvicorn --factory cjm_ml.serving.app:create`` builds it from the ``CJM_*`` settings.

``cjm serve`` builds the same application under its own supervisor (``serving.server``:
several ``SO_REUSEPORT`` workers with ``TCP_NODELAY``); the routes live in ``serving.api``.
"""

from __future__ import annotations

from fastapi import FastAPI

from cjm_ml.config import Settings
from cjm_ml.serving.api.main import create_app


def create() -> FastAPI:
    """The scoring API configured from the environment (``CJM_*`` variables or ``.env``)."""
    return create_app(Settings())
