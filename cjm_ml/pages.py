"""What every HTML page of cjm-ml (the journey map, the coverage report) sets up the same way:
its Jinja2 templates, autoescaped, strict about missing variables, with the shared filters
that word values through ``cjm_ml.formatting``, and the shared styles before its own."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

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


@cache
def page_css(package: str, name: str) -> Markup:
    """The shared page styles (``cjm_ml/data/page.css``) followed by ``package``'s own
    ``static/<name>``, for inlining into a self-contained page."""
    shared = resources.files("cjm_ml").joinpath("data/page.css").read_text()
    own = resources.files(package).joinpath(f"static/{name}").read_text()
    return Markup(shared + own)
