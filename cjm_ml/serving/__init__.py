"""The scoring service's parts: event store, dealer-group tenants, the CRM write-back outbox.

Modules are imported directly (``cjm_ml.serving.store`` and so on); nothing is imported here so
that a light process (the outbox deliverer) does not pay for pandas.
"""
