"""The scoring service: the API (``api/``: app factory, dependencies, routers per area), its use
cases (``service``), scoring at now (``scoring``), the champions (``models``), the event store,
dealer-group tenants, the CRM write-back outbox, and the server processes (``server``).

Modules are imported directly (``cjm_ml.serving.store`` and so on); nothing is imported here so
that a light process (the outbox deliverer) does not pay for pandas.
"""
