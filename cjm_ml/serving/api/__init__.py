"""The scoring API (FastAPI): ``main.create_app`` builds it from the routers in ``routes/``,
the dependencies in ``deps`` and the middleware in ``middleware``."""
