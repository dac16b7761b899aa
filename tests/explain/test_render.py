"""Sentences from the registry's wording: values in dealer terms, comparisons with the group."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from cjm_ml.explain.drivers import DriverExplainer
from cjm_ml.explain.render import feature_phrases
from cjm_ml.formatting import format_standard, format_values
from cjm_ml.params import TASKS, Task
from cjm_ml.registry import FEATURES, feature_spec, features_for


def _fmt(name: str, values: list[object]) -> list[str]:
    return list(format_values(feature_spec(name), np.array(values, dtype=object)))


def _phrases(
    task: Task, feature: str, rows: list[dict[str, object]], pooled: bool = False, **norms: float
) -> list[str]:
    return feature_phrases(pd.DataFrame(rows), task, feature, norms, pooled=pooled).tolist()


_FEATURE_NAME = re.compile("|".join(f.name for f in FEATURES if "_" in f.name))


def test_values_read_in_dealer_terms() -> None:
    assert _fmt("first_response_minutes", [0.4, 12, 60, 190, 3000]) == [
        "under a minute",
        "12 min",
        "1 h",
        "3 h 10 min",
        "2 days",
    ]
    assert _fmt("appointment_lead_days", [0.01, 0.3, 0.99, 1.2, 9.4]) == [
        "under an hour",
        "7 h",
        "1 day",
        "1 day",
        "9 days",
    ]
    assert _fmt("distance_to_rooftop_km", [0.5, 48.4]) == ["under 1 km", "48 km"]
    assert _fmt("texts_sent", [1.0, 3.0]) == ["1 text", "3 texts"]
    assert _fmt("marketing_source", ["referral", "google_paid_search", "tiktok_ads"]) == [
        "a referral",
        "Google paid search",
        "tiktok ads",
    ]
    assert _fmt("sales_csi_score", [7.0, 8.5]) == ["7", "8.5"]
    assert _fmt("used_vehicle", [1.0, 0.0]) == ["yes", "no"]
    assert format_standard(feature_spec("confirmation_sent"), 0.6) == "60%"
    assert format_standard(feature_spec("first_response_minutes"), 15) == "15 min"
    assert format_standard(feature_spec("distance_to_rooftop_km"), 14.2) == "14 km"


def test_sentences_compare_with_the_group_standard() -> None:
    assert _phrases(
        "lead_leakage",
        "first_response_minutes",
        [
            {"first_response_minutes": 190.0, "responded_before_cutoff": 1.0},
            {"first_response_minutes": 120.0, "responded_before_cutoff": 0.0},
        ],
    ) == [
        "First reply took 3 h 10 min; the group standard is 15 min",
        "No reply yet after 2 h; the group standard is 15 min",
    ]
    assert _phrases(
        "lead_leakage",
        "responded_within_sla",
        [
            {
                "responded_within_sla": 0.0,
                "responded_before_cutoff": 1.0,
                "first_response_minutes": 40,
            }
        ],
    ) == ["First reply took 40 min, beyond the group standard of 15 min"]
    rows = [
        {"confirmation_sent": 0.0, "confirmation_channel": "none", "appointment_lead_days": 9.0},
        {"confirmation_sent": 1.0, "confirmation_channel": "sms", "appointment_lead_days": 0.5},
    ]
    assert _phrases("no_show", "confirmation_sent", rows, confirmation_sent=0.6) == [
        "No confirmation sent for an appointment booked 9 days ahead; "
        "60% of appointments in the group are confirmed",
        "Confirmation sent by text for an appointment booked 12 h ahead; "
        "60% of appointments in the group are confirmed",
    ]
    rows = [{"first_service_booked_at_delivery": 0.0}, {"first_service_booked_at_delivery": None}]
    assert _phrases(
        "service_defection", "first_service_booked_at_delivery", rows,
        first_service_booked_at_delivery=0.7,
    ) == [
        "First service not booked at delivery; 70% of first services in the group are booked "
        "at delivery",
        "First service booking unknown",
    ]  # fmt: skip
    rows = [{"vehicle_on_hold": 0.0, "specific_vehicle": 0.0}]
    assert _phrases("no_show", "vehicle_on_hold", rows) == ["No specific vehicle to hold"]


@pytest.mark.parametrize("task", TASKS)
def test_every_registered_feature_reads_cleanly(
    task: Task, tables: dict[Task, pd.DataFrame], explainers: dict[Task, DriverExplainer]
) -> None:
    """Real rows of the small group, plus each feature missing and at zero in turn: no raw
    feature names, no NaN, no placeholders, no underscores, a capital letter first."""
    sample = tables[task].sample(200, random_state=1).reset_index(drop=True)
    variants = [sample]
    for f in features_for(task):
        missing = sample.copy()
        missing[f.name] = "unknown" if f.unit == "category" else np.nan
        variants.append(missing)
        if f.unit != "category":
            variants.append(sample.assign(**{f.name: 0.0}))
    rows = pd.concat(variants, ignore_index=True)
    for f in features_for(task):
        for text in feature_phrases(rows, task, f.name, explainers[task].norms):
            assert isinstance(text, str) and text, f.name
            assert text[0].isupper() or text[0].isdigit(), (f.name, text)
            assert not _FEATURE_NAME.search(text), (f.name, text)
            assert not re.search(r"\b(nan|none|inf)\b", text, re.IGNORECASE), (f.name, text)
            for bad in ("{", "}", "_", "<NA>"):
                assert bad not in text, (f.name, text)


def test_a_group_quoting_the_pooled_norms_says_across_groups() -> None:
    """Every comparison with figures from the data says whose they are: "in the group" for the
    group's own, "across groups" for the pooled ones; the response standard is a standard,
    the same either way."""
    rows = [
        {"confirmation_sent": 0.0, "confirmation_channel": "none", "appointment_lead_days": 9.0}
    ]
    assert _phrases("no_show", "confirmation_sent", rows, True, confirmation_sent=0.55) == [
        "No confirmation sent for an appointment booked 9 days ahead; "
        "55% of appointments across groups are confirmed"
    ]
    rows = [{"appointment_lead_days": 9.0}]
    assert [
        _phrases("no_show", "appointment_lead_days", rows, pooled, appointment_lead_days=4.0)[0]
        for pooled in (False, True)
    ] == [
        "Booked 9 days ahead; the median in the group is 4 days",
        "Booked 9 days ahead; the median across groups is 4 days",
    ]
    rows = [{"delivery_education_done": 0.0, "reminder_channel_matches_preference": 0.0,
             "preferred_channel": "sms"}]  # fmt: skip
    norms = {"delivery_education_done": 0.8, "reminder_channel_matches_preference": 0.75}
    assert _phrases("service_defection", "delivery_education_done", rows, True, **norms) == [
        "Nobody walked the owner through the vehicle's features at delivery; "
        "80% of deliveries across groups include the walkthrough"
    ]
    assert _phrases(
        "service_defection", "reminder_channel_matches_preference", rows, False, **norms
    ) == [
        "The last service reminder did not go out by text, the customer's preferred channel; "
        "75% of reminders in the group go out on the preferred channel"
    ]
    rows = [{"first_response_minutes": 190.0, "responded_before_cutoff": 1.0}]
    assert _phrases("lead_leakage", "first_response_minutes", rows, True) == [
        "First reply took 3 h 10 min; the group standard is 15 min"
    ]


def test_feature_phrases_refuses_unknown_feature_and_missing_column() -> None:
    with pytest.raises(KeyError, match="no_show has no feature 'lead_type'"):
        feature_phrases(pd.DataFrame({"x": [1]}), "no_show", "lead_type")
    with pytest.raises(ValueError, match="lacks appointment_lead_days, which the wording"):
        feature_phrases(pd.DataFrame({"confirmation_sent": [0.0]}), "no_show", "confirmation_sent")


def test_a_feature_without_a_comparison_quotes_its_frictions() -> None:
    row = {"confirmation_sent": 0.0, "confirmation_channel": "none", "appointment_lead_days": 3.0}
    assert _phrases("no_show", "confirmation_channel", [row], confirmation_sent=0.9) == [
        "No confirmation sent for an appointment booked 3 days ahead; 90% of appointments in the "
        "group are confirmed"
    ]
