"""Friction drivers: the model's explanations in dealer language, roll-ups and the fix to try."""

from cjm_ml.explain.drivers import (
    Driver,
    DriverExplainer,
    DriverSpec,
    Explanations,
    InstanceExplanation,
    Play,
    RecommendedAction,
    drivers_for,
    feature_phrases,
    group_norms,
    load_playbook,
    recommended_action,
)
from cjm_ml.explain.rollup import (
    HOTSPOT_COLUMNS,
    WhatIfCheck,
    hotspots,
    planted_recovery,
    recovery_rate,
    resimulated_what_if,
    rollup,
)

__all__ = [
    "HOTSPOT_COLUMNS",
    "Driver",
    "DriverExplainer",
    "DriverSpec",
    "Explanations",
    "InstanceExplanation",
    "Play",
    "RecommendedAction",
    "WhatIfCheck",
    "drivers_for",
    "feature_phrases",
    "group_norms",
    "hotspots",
    "load_playbook",
    "planted_recovery",
    "recommended_action",
    "recovery_rate",
    "resimulated_what_if",
    "rollup",
]
