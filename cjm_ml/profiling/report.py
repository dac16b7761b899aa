"""The coverage report as one self-contained HTML page an analyst opens before training.

``cjm_ml.features.coverage.profile_events`` computes the report; this module only lays it out:
the Jinja2 templates in ``templates/`` (autoescaped) and the CSS in ``static/profile.css``,
inlined, so the page opens offline from a file or an e-mail and loads nothing else. Labels and
stage colours come from the catalogue, task names and numbers from ``cjm_ml.formatting``, and
the feature warnings read as ``cjm features`` and ``cjm train`` print them
(``FeatureIssue.finding``). ``write_page`` is the I/O edge.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from cjm_ml.features.coverage import MOSTLY_MISSING, CoverageReport, warning_lines
from cjm_ml.formatting import task_label
from cjm_ml.io import atomic_path
from cjm_ml.pages import page_css, page_templates

log = logging.getLogger(__name__)

#: The page's sections: anchor and navigation label, in page order.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("tasks", "Tasks"),
    ("stages", "Journey stages"),
    ("rooftops", "Rooftops"),
    ("months", "Months"),
)
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


@cache
def _templates() -> Environment:
    """The page's Jinja2 templates (autoescaped; a missing variable is an error)."""
    return page_templates("cjm_ml.profiling")


def _tasks(report: CoverageReport) -> list[dict[str, Any]]:
    """Each task as the page shows it: its coverage, its name and the warning's headline."""
    return [
        {
            "coverage": t,
            "label": task_label(t.task),
            "headline": (warning_lines(t.task, list(t.issues)) or [""])[0],
        }
        for t in report.tasks
    ]


def _months(report: CoverageReport) -> dict[str, Any]:
    """The month-by-rooftop grid: rooftop ids (busiest first), then a row per month with a
    cell per rooftop (``None``: no event that month) and the bar width of its total."""
    rooftops = [r.rooftop_id for r in report.rooftops]
    busiest = max((m.events for m in report.months), default=1)
    rows = [
        {
            "month": m.month,
            "events": m.events,
            "bar": round(100 * m.events / busiest, 1),
            "cells": [m.by_rooftop.get(r) for r in rooftops],
        }
        for m in report.months
    ]
    return {"rooftops": rooftops, "rows": rows}


def build_page(report: CoverageReport, source: str, title: str = "Data coverage") -> str:
    """The coverage ``report`` of the events file named ``source`` as one self-contained HTML
    document (CSS inlined; no script, no other request)."""
    return (
        _templates()
        .get_template("page.html.j2")
        .render(
            title=title,
            source=source,
            report=report,
            tasks=_tasks(report),
            months=_months(report),
            mostly_missing=MOSTLY_MISSING,
            font=Markup(FONT),
            css=page_css("cjm_ml.profiling", "profile.css"),
            nav=SECTIONS,
        )
    )


def write_page(report: CoverageReport, path: Path, source: str) -> Path:
    """Write ``build_page(report, source)`` to ``path`` atomically (a reader never sees half)
    and return ``path``."""
    page = build_page(report, source)
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    log.info("wrote the coverage report to %s (%.0f kB)", path, len(page.encode()) / 1e3)
    return path
