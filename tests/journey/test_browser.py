"""The journey map in a real browser: headless Chromium opens the page served on 127.0.0.1,
every chart draws, the rooftop names and KPI values are on screen, a screenshot is saved, and
the page logs no console error. Chromium comes from Debian (`make browser`); without it these
tests fail, they never skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from cjm_ml.formatting import format_kpi
from cjm_ml.journey.analytics import KPIS, rooftop_kpis
from cjm_ml.journey.report import write_report
from cjm_ml.simulation import SimulatedGroup
from tests.journey.browser import CHROMIUM, chromium, serve

CHARTS_DRAWN = """(() => {
  const divs = [...document.querySelectorAll('.plotly-graph-div')];
  const drawn = divs.filter(d => {
    const svg = d.querySelector('svg.main-svg');
    if (!svg) return false;
    const box = svg.getBoundingClientRect();
    const heatmap = d.querySelector('g.hm image');
    const marks = d.querySelectorAll('g.sankey-node').length >= 5
      || d.querySelectorAll('g.point path').length >= 5
      || (heatmap !== null && (heatmap.getAttribute('href') || '').startsWith('data:image'));
    return box.width > 300 && box.height > 200 && marks;
  });
  return {charts: divs.length, drawn: drawn.map(d => d.id)};
})()"""
ALL_DRAWN = (
    "(() => { const d = document.querySelectorAll('.plotly-graph-div');"
    " return d.length > 0 && [...d].every(x => x.querySelector('svg.main-svg')"
    " && x.querySelectorAll('path, image').length > 5); })()"
)


def _require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: run `make browser` "
            "(it installs Debian's chromium package)"
        )


@pytest.mark.slow
def test_journey_map_renders_in_a_real_browser(small_group: SimulatedGroup, tmp_path: Path) -> None:
    _require_chromium()
    names = {r.rooftop_id: r.name for r in small_group.rooftops}
    site = tmp_path / "site"
    write_report(small_group.events, site / "journey.html", rooftop_names=names)
    with serve(site) as url, chromium(tmp_path / "profile") as browser:
        browser.open(f"{url}/journey.html")
        assert browser.wait_until(ALL_DRAWN, timeout=60), "the charts did not draw"
        charts = browser.evaluate(CHARTS_DRAWN)
        text = browser.evaluate("document.body.innerText")
        sankey_labels = browser.evaluate(
            "[...document.querySelectorAll('#chart-journey-flow g.sankey-node text')].map(t => {"
            " const lines = [...t.querySelectorAll('tspan.line')].map(x => x.textContent);"
            " return lines.length ? lines.join(' ') : t.textContent; })"
        )
        shot = browser.screenshot(tmp_path / "journey.png")
        errors = browser.console_errors()

    assert charts["charts"] == 5
    assert sorted(charts["drawn"]) == sorted(
        [
            "chart-journey-flow",
            "chart-stage-funnel",
            "chart-sources",
            "chart-journey-ends",
            "chart-post-sale",
        ]
    )
    assert {"Online research", "Lead intake", "Delivery", "Went quiet"} <= set(sankey_labels)
    for name in names.values():
        assert name in text, name
    kpis = rooftop_kpis(small_group.events)
    for kpi in KPIS:
        for value in kpis.loc[kpis["kpi"] == kpi.key, "value"]:
            assert format_kpi(value, kpi.unit) in text, kpi.key
    assert "Lakeside Honda on first response (median)" in text  # the planted slow BDC
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 100_000
    assert errors == [], errors


def test_console_errors_fail_the_page(tmp_path: Path) -> None:
    """The console check is real: an error logged or thrown by a page is caught."""
    _require_chromium()
    site = tmp_path / "site"
    site.mkdir()
    (site / "broken.html").write_text(
        "<html><body><p id='p'>ok</p><script>console.log('fine');"
        "console.error('boom');missingFunction();</script>"
        "<img src='/missing.png'></body></html>"
    )
    with serve(site) as url, chromium(tmp_path / "profile") as browser:
        browser.open(f"{url}/broken.html")
        errors = browser.console_errors()
        assert browser.evaluate("document.getElementById('p').textContent") == "ok"
    assert any(e == "console.error: boom" for e in errors), errors
    assert any("missingFunction is not defined" in e for e in errors), errors
    assert any("404" in e for e in errors), errors
    assert not any(e.endswith(": fine") for e in errors)  # console.log is not an error
