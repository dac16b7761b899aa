"""The registry's explanation entries: wording, frictions and fixes are complete and consistent."""

from __future__ import annotations

import dataclasses

import pytest

from cjm_ml import registry
from cjm_ml.registry import (
    FEATURES,
    FRICTION_SPECS,
    Fix,
    Wording,
    check_registry,
    feature_spec,
    friction_spec,
    frictions_for,
    template_fields,
)
from cjm_ml.params import TASKS
from cjm_ml.simulation.rooftops import DEVIATION_TEMPLATES


def test_every_feature_reads_as_a_sentence_and_every_friction_can_be_fixed() -> None:
    check_registry()
    for f in FEATURES:
        assert f.wording is not None and f.wording.label and f.wording.unknown, f.name
        assert (f.friction is not None) == f.actionable, f.name
    for fr in FRICTION_SPECS:
        fixed = [f for f in FEATURES if f.friction == fr.name and f.fix is not None]
        assert fixed, fr.name


def test_frictions_per_task() -> None:
    assert [f.name for f in frictions_for("lead_leakage")] == [
        "slow_first_response",
        "open_crm_tasks",
        "no_trade_credit_follow_up",
    ]
    assert [f.name for f in frictions_for("no_show")] == [
        "no_confirmation",
        "no_vehicle_hold",
        "vehicle_status_changed",
        "online_booking_friction",
        "reminder_channel_mismatch",
    ]
    assert [f.name for f in frictions_for("service_defection")] == [
        "online_booking_friction",
        "reminder_channel_mismatch",
        "no_delivery_education",
        "first_service_not_booked",
        "open_recall",
    ]


def test_every_friction_the_simulator_plants_is_expressed_for_its_task() -> None:
    for template in DEVIATION_TEMPLATES:
        for friction, (task, _) in template.items():
            assert friction in [f.name for f in frictions_for(task)], (friction, task)


def test_the_response_features_make_one_friction_with_the_group_standard_as_fix() -> None:
    names = [f.name for f in FEATURES if f.friction == "slow_first_response"]
    assert names == [
        "first_response_minutes",
        "responded_before_cutoff",
        "responded_within_sla",
        "outbound_calls",
        "texts_sent",
        "emails_sent",
        "missed_calls",
    ]
    assert feature_spec("first_response_minutes").fix == Fix("at_most")
    assert feature_spec("vehicle_on_hold").fix == Fix("set", 1.0, ("specific_vehicle", 1.0))
    assert friction_spec("slow_first_response").label == "Slow first reply to the lead"
    assert template_fields("booked {appointment_lead_days} ahead; {standard}") == [
        "appointment_lead_days",
        "standard",
    ]


def test_unknown_friction_is_refused_by_name() -> None:
    with pytest.raises(KeyError, match="unknown friction 'no_coffee'"):
        friction_spec("no_coffee")


def _swap(monkeypatch: pytest.MonkeyPatch, name: str, **changes: object) -> None:
    specs = tuple(dataclasses.replace(f, **changes) if f.name == name else f for f in FEATURES)
    monkeypatch.setattr(registry, "FEATURES", specs)
    monkeypatch.setattr(registry, "_BY_NAME", {f.name: f for f in specs})


@pytest.mark.parametrize(
    ("name", "changes", "message"),
    [
        ("rescheduled", {"wording": None}, "'rescheduled' has no wording"),
        (
            "rescheduled",
            {"wording": Wording("Rescheduled", "replaced {first_response_minutes}", "x", "y")},
            "wording field {first_response_minutes} is not a feature of every task",
        ),
        ("prior_leads", {"wording": Wording("Leads", "{value}", unknown="?")}, "needs a zero"),
        ("used_vehicle", {"actionable": True}, "actionable features, and only they"),
        ("vehicle_on_hold", {"friction": "no_coffee"}, "unknown friction 'no_coffee'"),
    ],
)
def test_check_registry_refuses_an_incomplete_entry(
    monkeypatch: pytest.MonkeyPatch, name: str, changes: dict[str, object], message: str
) -> None:
    _swap(monkeypatch, name, **changes)
    with pytest.raises((ValueError, KeyError), match=message.replace("{", r"\{")):
        check_registry()


def test_every_task_has_frictions() -> None:
    for task in TASKS:
        assert frictions_for(task), task
