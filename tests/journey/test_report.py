"""The journey map page: self-contained, in dealer language, every section present, flags
highlighted, hotspots shown or explained, and written atomically."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from cjm_ml.events import catalogue
from cjm_ml.formatting import format_kpi
from cjm_ml.journey.analytics import KPIS, rooftop_kpis
from cjm_ml.journey.report import build_report, rooftop_names_of, write_report
from cjm_ml.rules import JourneyRules

NAMES = {"rt-01": "Northgate Toyota", "rt-02": "Lakeside Honda"}
RULES = JourneyRules(min_sample=1)


def _visible_text(page: str) -> str:
    """What a reader sees outside the charts: the page without scripts, styles and tags."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


@pytest.fixture(scope="module")
def page(lead_journeys: pd.DataFrame) -> str:
    return build_report(lead_journeys, rooftop_names=NAMES, rules=RULES)


def _hotspots() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "task": ["lead_leakage", "lead_leakage", "no_show"],
            "rooftop_id": ["rt-02", "rt-02", "rt-01"],
            "driver": ["Slow first reply", "No follow-up on a trade-in", "No confirmation sent"],
            "stage": ["response", "response", "appointment"],
            "mean_contribution": [0.12, 0.04, 0.09],
            "instances": [5400, 800, 3000],
        }
    )


def test_page_is_self_contained_with_every_section(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert page.count(get_plotlyjs()) == 1  # the library itself is inlined, once ...
    assert not re.search(r"<script[^>]+src=", page)  # ... and nothing is fetched
    assert not re.search(r"https?://", page.replace(get_plotlyjs(), ""))
    for section in ("flow", "funnel", "kpis", "hotspots", "sources", "next", "post-sale"):
        assert page.count(f"id='{section}'") == 1, section
    for chart in ("journey-flow", "stage-funnel", "sources", "journey-ends", "post-sale"):
        assert page.count(f'id="chart-{chart}"') == 1, chart
    text = _visible_text(page)
    for title in (
        "How customers move through the journey",
        "Stage funnel by rooftop",
        "Rooftop KPIs against the group standard",
        "Friction hotspots by rooftop",
        "Marketing sources: from lead to sale and service",
        "What happens next, and where journeys go quiet",
        "After the sale: the owner's journey",
    ):
        assert title in text


def test_kpi_table_shows_names_values_and_highlights_deviations(
    page: str, lead_journeys: pd.DataFrame
) -> None:
    text = _visible_text(page)
    assert "Northgate Toyota" in text and "Lakeside Honda" in text
    assert "Answered within 15 min" in text  # the SLA from TaskParams, in the heading
    # rt-02 answers in a median 60 min against the group's 10: flagged, with its size
    assert re.search(r"class='num flag'[^>]*><span class='big'>1 h</span><br>", page)
    assert "+50 min vs group" in text
    assert "−25.0 pts vs group" in text  # lead to sale: 0% against 25%
    kpis = rooftop_kpis(lead_journeys, rules=RULES)
    for kpi in KPIS:
        for value in kpis.loc[kpis["kpi"] == kpi.key, "value"]:
            assert format_kpi(value, kpi.unit) in text, kpi.key
    flagged_cells = page.count("class='num flag'")
    assert flagged_cells == int(kpis["flagged"].sum()) == 7
    assert "Flagged: Lakeside Honda on first response (median)" in text


def test_page_speaks_dealer_language_not_column_names(page: str) -> None:
    text = _visible_text(page)
    for raw in (
        "rooftop_id",
        "first_response_minutes",
        "lead_to_appointment",
        "marketing_source",
        "event_type",
        "google_paid_search",
        "trade_in_tool",
        "csi_survey",
        "went_quiet",
        "_rate",
    ):
        assert raw not in text, raw
    assert not re.search(r"\b(nan|None|NaN|<NA>)\b", text)
    assert "Google paid search" in text and "Source not recorded" in text
    assert "Online research" in page and "Customer satisfaction" in page


def test_stage_colours_come_from_the_catalogue(page: str) -> None:
    for stage in catalogue().stages:
        assert stage.color in page, stage.key


def test_hotspots_are_shown_when_given_and_explained_when_not(
    page: str, lead_journeys: pd.DataFrame
) -> None:
    assert "Friction hotspots are not available: train the models first" in _visible_text(page)
    with_hotspots = _visible_text(
        build_report(lead_journeys, hotspots=_hotspots(), rooftop_names=NAMES)
    )
    assert "not available" not in with_hotspots
    assert "Leads going dark" in with_hotspots and "Appointment no-shows" in with_hotspots
    slow, trade_in = with_hotspots.index("Slow first reply"), with_hotspots.index("trade-in")
    assert slow < trade_in  # biggest friction first
    assert "+12.0 pts" in with_hotspots and "5,400" in with_hotspots
    with pytest.raises(ValueError, match=r"hotspots table is missing column\(s\): driver, stage"):
        build_report(lead_journeys, hotspots=_hotspots().drop(columns=["driver", "stage"]))


def test_sections_without_enough_history_say_so(funnel_journeys: pd.DataFrame) -> None:
    text = _visible_text(build_report(funnel_journeys))
    assert "No delivery has been followed for the full 210-day first-service window yet" in text
    assert "No lead has been followed for the full 60-day sale window yet" in text
    assert "rt-01" in text  # rooftops without a name show their id


def test_empty_events_are_refused(lead_journeys: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="the events table is empty"):
        build_report(lead_journeys.iloc[:0])


def test_write_report_is_atomic(tmp_path: Path, lead_journeys: pd.DataFrame) -> None:
    out = write_report(lead_journeys, tmp_path / "map" / "report.html", rooftop_names=NAMES)
    assert out.read_text(encoding="utf-8") == build_report(lead_journeys, rooftop_names=NAMES)
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]
    failed = tmp_path / "failed.html"
    with pytest.raises(ValueError):
        write_report(lead_journeys.iloc[:0], failed)
    assert list(tmp_path.glob("*.html")) == [] and list(tmp_path.glob(".*")) == []


def test_funnel_cells_worse_than_the_group_are_red(page: str) -> None:
    """Conversion 5 points or more below the group's is highlighted (``rules.worse_than_group``),
    with durations worded as the driver sentences word them."""
    assert page.count("class='num low'") == 3
    assert "<span class='small'>1 h · p90 1 h</span>" in page
    assert "23 h 55 min · p90 43 h 11 min" in page
    assert not re.search(r"\d\.\d h\b", _visible_text(page))  # no "3.2 h" any more


def test_rooftop_names_come_from_the_rooftop_records() -> None:
    assert rooftop_names_of([{"rooftop_id": "rt-01", "name": "Northgate Toyota"}, {"x": 1}]) == {
        "rt-01": "Northgate Toyota"
    }
