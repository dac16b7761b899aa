"""One router per area of the API; each handler parses, calls ``cjm_ml.serving.service`` and
shapes the response."""
