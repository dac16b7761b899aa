"""Every wording of a value, on three-row fixtures: the sentences' forms, the page's forms (the
same durations), labels of sources and tasks, and what is refused."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from cjm_ml.formatting import (
    NOT_KNOWN,
    SOURCE_PHRASES,
    format_categories,
    format_count,
    format_counts,
    format_days,
    format_deviation,
    format_duration,
    format_hours,
    format_km,
    format_kpi,
    format_minutes,
    format_percent,
    format_points,
    format_scores,
    format_standard,
    format_values,
    source_label,
    task_label,
)
from cjm_ml.registry import feature_spec


@dataclass(frozen=True)
class _Wording:
    norm: str | None = None
    noun: tuple[str, str] = ("", "")
    levels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _Feature:
    name: str
    unit: str
    wording: _Wording | None = _Wording()


def test_arrays_read_in_dealer_terms() -> None:
    assert format_minutes(np.array([0.4, 190, 3000])).tolist() == [
        "under a minute",
        "3 h 10 min",
        "2 days",
    ]
    assert format_days(np.array([0.01, 0.3, 9.4])).tolist() == ["under an hour", "7 h", "9 days"]
    assert format_km(np.array([0.5, 48.4, 1.0])).tolist() == ["under 1 km", "48 km", "1 km"]
    assert format_scores(np.array([7.0, 8.54, 10])).tolist() == ["7", "8.5", "10"]
    assert format_counts(np.array([0, 1, 3]), ("text", "texts")).tolist() == [
        "0 texts",
        "1 text",
        "3 texts",
    ]
    words = format_categories(np.array(["sms", "oem_site", "sms"], dtype=object), {"sms": "text"})
    assert words.tolist() == ["text", "oem site", "text"]


def test_features_read_by_their_unit_and_wording() -> None:
    flag = _Feature("used_vehicle", "flag")
    assert format_values(flag, np.array([1.0, 0.0, 0.6])).tolist() == ["yes", "no", "yes"]
    share = _Feature("confirmation_sent", "flag", _Wording(norm="share"))
    assert format_standard(share, 0.604) == "60%"
    sla = _Feature("first_response_minutes", "minutes", _Wording(norm="sla"))
    assert format_standard(sla, 15) == "15 min"
    count = _Feature("texts_sent", "count", _Wording(norm="median", noun=("text", "texts")))
    assert format_standard(count, 2.25) == "2.2"
    assert format_values(feature_spec("marketing_source"), np.array(["referral"])).tolist() == [
        "a referral"
    ]


def test_features_without_a_wording_or_with_an_odd_unit_are_refused() -> None:
    with pytest.raises(ValueError, match="feature 'x' has no wording"):
        format_values(_Feature("x", "count", None), np.array([1.0]))
    with pytest.raises(ValueError, match="feature 'x' has no wording"):
        format_standard(_Feature("x", "count", None), 1.0)
    with pytest.raises(ValueError, match="feature 'y': no wording for unit 'euros'"):
        format_values(_Feature("y", "euros"), np.array([1.0]))


def test_a_page_words_durations_as_the_sentences_do() -> None:
    assert [format_duration(m) for m in (0.2, 50, 190.4)] == [
        "under a minute",
        "50 min",
        "3 h 10 min",
    ]
    assert [format_hours(h) for h in (0.25, 5.5, 300)] == ["15 min", "5 h 30 min", "12 days"]
    assert format_duration(float("nan")) == format_hours(None) == NOT_KNOWN == "–"


def test_counts_percentages_and_points() -> None:
    assert [format_count(n) for n in (0, 5400, 1_250_000.0)] == ["0", "5,400", "1,250,000"]
    assert [format_percent(x) for x in (0.1203, 1.0, float("nan"))] == ["12%", "100%", "–"]
    assert format_percent(0.1203, 1) == "12.0%"
    assert [format_points(x) for x in (0.12, 0.0, -0.004)] == ["+12.0 pts", "+0.0 pts", "−0.4 pts"]


def test_kpis_and_their_deviation_from_the_group() -> None:
    assert [format_kpi(v, "minutes") for v in (60, 224.2, None)] == ["1 h", "3 h 44 min", "–"]
    assert format_kpi(0.1203, "share") == "12.0%"
    assert format_kpi(8.53, "score") == "8.5"
    assert format_deviation(50, "minutes") == "+50 min vs group"
    assert format_deviation(-196.3, "minutes") == "−3 h 16 min vs group"
    assert format_deviation(-0.2648, "share") == "−26.5 pts vs group"
    assert format_deviation(-0.6, "score") == "−0.6 vs group"
    with pytest.raises(ValueError, match="unknown KPI unit 'hours'"):
        format_kpi(1.0, "hours")
    with pytest.raises(ValueError, match="unknown KPI unit 'hours'"):
        format_deviation(1.0, "hours")


def test_sources_and_tasks_by_name() -> None:
    assert [source_label(s) for s in ("cars_com", "unknown", "tiktok_ads")] == [
        "Cars.com",
        "Source not recorded",
        "Tiktok ads",
    ]
    assert source_label("_") == "Source not recorded"
    assert [task_label(t) for t in ("lead_leakage", "service_defection", "churn")] == [
        "Leads going dark",
        "Buyers not back for first service",
        "churn",
    ]


def test_the_sentences_name_sources_as_the_page_does() -> None:
    """The registry's marketing-source wording is ``SOURCE_PHRASES``, one table with the page's
    labels (same sources, same order)."""
    assert feature_spec("marketing_source").wording.levels == SOURCE_PHRASES  # type: ignore[union-attr]
    assert dict(SOURCE_PHRASES)["oem_website"] == "the OEM website"
    assert source_label("oem_website") == "OEM website"
