"""The coverage page in a real browser: headless Chromium opens the page of the simulated
group served on 127.0.0.1; every section is on screen, the tasks' states and the constant
feature read as the console prints them, nothing else is loaded, the page fits the window,
a screenshot is saved, and the console logs no error. Chromium comes from Debian
(`make browser`); without it this test fails, it never skips."""

from __future__ import annotations

from pathlib import Path

import pytest

from cjm_ml.features.coverage import profile_events
from cjm_ml.formatting import task_label
from cjm_ml.profiling.report import SECTIONS, write_page
from cjm_ml.simulation import SimulatedGroup
from tests.journey.browser import CHROMIUM, chromium, serve


def test_coverage_page_renders_in_a_real_browser(
    small_group: SimulatedGroup, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: run `make browser`")
    report = profile_events(small_group.events)
    site = tmp_path / "site"
    write_page(report, site / "coverage.html", "events.parquet")
    with serve(site) as url, chromium(tmp_path / "profile", width=1280) as browser:
        browser.open(f"{url}/coverage.html")
        text = browser.evaluate("document.body.innerText")
        shown = browser.evaluate(
            "[...document.querySelectorAll('main > section')].map(s => {"
            " const box = s.getBoundingClientRect(); return [s.id, box.width, box.height]; })"
        )
        loaded = browser.evaluate("performance.getEntriesByType('resource').length")
        overflow = browser.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        stage_borders = browser.evaluate(
            "[...document.querySelectorAll('.stage')].map(s => getComputedStyle(s).borderTopColor)"
        )
        shot = browser.screenshot(tmp_path / "coverage.png")
        errors = browser.console_errors()

    assert [s[0] for s in shown] == [anchor for anchor, _ in SECTIONS]
    assert all(width > 600 and height > 100 for _, width, height in shown), shown
    for task in report.tasks:
        assert task_label(task.task) in text
        assert task.verdict == "can be built and trained"
    assert text.count("can be built and trained") == 3
    assert "prior_service_visits\tEarlier repair orders\tconstant (always 0)" in text
    assert report.summary in text
    for rooftop in report.rooftops:
        assert rooftop.rooftop_id in text
    assert len(set(stage_borders)) == len(report.stages)  # each stage in its catalogue colour
    assert loaded == 0  # self-contained: nothing but the page itself
    assert overflow <= 0  # nothing wider than the window
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    assert errors == [], errors
