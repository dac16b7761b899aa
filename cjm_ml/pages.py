"""What every HTML page of cjm-ml (the journey map, the coverage report) sets up the same way:
its Jinja2 templates, autoescaped, strict about missing variables, with the shared filters
that word values through ``cjm_ml.formatting``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from cjm_ml.formatting import format_count, format_percent


def page_templates(package: str, **filters: Callable[..., Any]) -> Environment:
    """The Jinja2 environment of ``package``'s ``templates/`` folder: autoescaped, a missing
    variable is an error, blocks trimmed; filters ``count`` and ``percent`` plus ``filters``."""
    env = Environment(
        loader=PackageLoader(package, "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(count=format_count, percent=format_percent, **filters)
    return env
