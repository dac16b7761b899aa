"""The journey map: analytics on the canonical events and the HTML report built from them."""

from cjm_ml.journey.analytics import (
    KPIS,
    POST_SALE_STEPS,
    journey_ends,
    journey_flows,
    post_sale_journey,
    rooftop_kpis,
    source_attribution,
    stage_funnel,
    stage_times,
    top_paths,
    transitions,
)
from cjm_ml.rules import GROUP, JourneyRules

__all__ = [
    "GROUP",
    "KPIS",
    "POST_SALE_STEPS",
    "JourneyRules",
    "journey_ends",
    "journey_flows",
    "post_sale_journey",
    "rooftop_kpis",
    "source_attribution",
    "stage_funnel",
    "stage_times",
    "top_paths",
    "transitions",
]
