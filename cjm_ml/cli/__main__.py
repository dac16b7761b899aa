"""``python -m cjm_ml.cli``: the ``cjm`` command line."""

from cjm_ml.cli.main import app

app()
