"""The registry's explanation entries: wording, frictions and fixes are complete and consistent."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, cast

import pytest

from cjm_ml import registry
from cjm_ml.params import TASKS, Task
from cjm_ml.registry import (
    FEATURES,
    FRICTION_SPECS,
    FeatureSpec,
    Fix,
    FrictionSpec,
    Wording,
    check_registry,
    feature_spec,
    features_for,
    friction_spec,
    frictions_for,
    template_fields,
)
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
    assert feature_spec("first_response_minutes").fix == Fix(kind="at_most")
    assert feature_spec("vehicle_on_hold").fix == Fix(
        kind="set", value=1.0, only_when=("specific_vehicle", 1.0)
    )
    assert friction_spec("slow_first_response").label == "Slow first reply to the lead"
    assert template_fields("booked {appointment_lead_days} ahead; {standard}") == [
        "appointment_lead_days",
        "standard",
    ]


def test_unknown_friction_is_refused_by_name() -> None:
    with pytest.raises(KeyError, match="unknown friction 'no_coffee'"):
        friction_spec("no_coffee")


def _use(monkeypatch: pytest.MonkeyPatch, specs: tuple[FeatureSpec, ...]) -> None:
    """Make ``specs`` the registry for one test."""
    monkeypatch.setattr(registry, "FEATURES", specs)
    monkeypatch.setattr(registry, "_BY_NAME", {f.name: f for f in specs})


def _swap(monkeypatch: pytest.MonkeyPatch, name: str, **changes: Any) -> None:
    """The registry with one entry changed."""
    _use(
        monkeypatch,
        tuple(dataclasses.replace(f, **changes) if f.name == name else f for f in FEATURES),
    )


@pytest.mark.parametrize(
    ("name", "changes", "message"),
    [
        ("rescheduled", {"wording": None}, "'rescheduled' has no wording"),
        (
            "rescheduled",
            {
                "wording": Wording(
                    label="Rescheduled",
                    says="replaced {first_response_minutes}",
                    zero="x",
                    unknown="y",
                )
            },
            "wording field {first_response_minutes} is not a feature of every task",
        ),
        (
            "prior_leads",
            {"wording": Wording(label="Leads", says="{value}", unknown="?")},
            "needs a zero",
        ),
        ("used_vehicle", {"actionable": True}, "actionable features, and only they"),
        ("vehicle_on_hold", {"friction": "no_coffee"}, "unknown friction 'no_coffee'"),
        ("open_recall", {"stage": "valet"}, "unknown stage 'valet'"),
        ("open_recall", {"touchpoint": "car_wash"}, "unknown event type 'car_wash'"),
        ("used_vehicle", {"fix": Fix(kind="set", value=1.0)}, "a fix belongs to a friction"),
        (
            "vehicle_on_hold",
            {"fix": Fix(kind="set", value=1.0, only_when=("lead_type", 1.0))},
            "'vehicle_on_hold': its fix depends on an unknown feature",
        ),
        (
            "sales_csi_score",
            {"wording": Wording(label="CSI", says="{value}", unknown="?", standard="{standard}")},
            "'sales_csi_score': a standard needs a norm",
        ),
        (
            "open_recall",
            {"fix": None},
            "friction 'open_recall': no feature expresses it with a fix",
        ),
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


def _flag(name: str, tasks: tuple[Task, ...], **changes: Any) -> FeatureSpec:
    """A context flag of the appointment stage, complete enough for ``check_registry``."""
    fields: dict[str, Any] = {
        "name": name,
        "stage": "appointment",
        "touchpoint": "appointment_set",
        "unit": "flag",
        "description": f"the appointment was {name}",
        "actionable": False,
        "tasks": tasks,
        "wording": Wording(label=name, says=name, zero=f"not {name}", unknown=f"{name}?"),
    }
    return FeatureSpec(**(fields | changes))


def test_a_task_gets_the_entries_that_name_it_in_declaration_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hold = {"actionable": True, "friction": "no_vehicle_hold", "fix": Fix(kind="set", value=1.0)}
    confirm = {**hold, "friction": "no_confirmation"}
    _use(
        monkeypatch,
        (
            _flag("confirmed", ("no_show",), **confirm),
            _flag("kept", TASKS, **hold),
            _flag("moved", ("no_show", "service_defection"), **confirm),
        ),
    )
    assert [f.name for f in features_for("no_show")] == ["confirmed", "kept", "moved"]
    assert [f.name for f in features_for("service_defection")] == ["kept", "moved"]
    assert [f.name for f in features_for("lead_leakage")] == ["kept"]
    assert [f.name for f in frictions_for("no_show")] == ["no_confirmation", "no_vehicle_hold"]
    assert [f.name for f in frictions_for("service_defection")] == [
        "no_vehicle_hold",
        "no_confirmation",
    ]
    assert feature_spec("moved").tasks == ("no_show", "service_defection")
    with pytest.raises(KeyError, match="unknown feature 'vdp_views_7d'"):
        feature_spec("vdp_views_7d")


def test_check_registry_refuses_a_name_declared_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    kept = feature_spec("prior_appointments_kept")
    _use(monkeypatch, (*FEATURES, dataclasses.replace(kept, description="kept, again")))
    with pytest.raises(ValueError, match="'prior_appointments_kept' is declared twice"):
        check_registry()


def test_every_entry_can_be_built_again_from_its_mapping() -> None:
    for spec in FEATURES:
        fields = dataclasses.asdict(spec)
        fields["wording"] = Wording(**fields["wording"])
        fields["fix"] = Fix(**fields["fix"]) if fields["fix"] is not None else None
        assert FeatureSpec(**fields) == spec
    for friction in FRICTION_SPECS:
        assert FrictionSpec(**dataclasses.asdict(friction)) == friction


def test_entries_take_keywords_only() -> None:
    with pytest.raises(TypeError, match="positional"):
        cast(Any, Fix)("set", 1.0)
    with pytest.raises(TypeError, match="positional"):
        cast(Any, Wording)("Kept", "kept")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: _flag("kept", ("no_show",), unit="hours"),
            "feature 'kept': unit 'hours' is not one of "
            "'minutes', 'days', 'days_until', 'years', 'count', 'km', 'flag', 'category', "
            "'score', 'number'",
        ),
        (
            lambda: _flag("kept", cast(Any, ("test_drive",))),
            "feature 'kept': task 'test_drive' is not one of "
            "'lead_leakage', 'no_show', 'service_defection'",
        ),
        (
            lambda: _flag("kept", ("no_show", "no_show")),
            "feature 'kept': tasks must be a non-empty tuple of distinct tasks",
        ),
        (
            lambda: _flag("kept", cast(Any, ["no_show"])),
            "feature 'kept': tasks must be a non-empty tuple of distinct tasks",
        ),
        (lambda: _flag("kept", ()), "feature 'kept': tasks must be a non-empty tuple"),
        (lambda: _flag("kept visits", TASKS), "feature 'kept visits': name must be an identifier"),
        (
            lambda: _flag("kept", TASKS, actionable="yes"),
            "feature 'kept': actionable must be True or False",
        ),
        (
            lambda: Fix(kind=cast(Any, "halve")),
            "fix 'halve': kind 'halve' is not one of 'set', 'at_most', 'at_least'",
        ),
        (
            lambda: Fix(kind="set", value=1.0, only_when=cast(Any, ("specific_vehicle",))),
            "fix 'set': only_when must be (feature, value)",
        ),
        (
            lambda: Fix(kind="set", value=1.0, only_when=("specific_vehicle", cast(Any, True))),
            "fix 'set': only_when must be (feature, value)",
        ),
        (
            lambda: Wording(label="Kept", says="kept {value"),
            "wording 'Kept': 'kept {value' is not a format string "
            "(expected '}' before end of string)",
        ),
        (
            lambda: Wording(label="Kept", says="kept", when=("rescheduled", 0.0, "{")),
            "wording 'Kept': '{' is not a format string",
        ),
        (
            lambda: Wording(label="Kept", says="kept", norm=cast(Any, "mean")),
            "wording 'Kept': norm 'mean' is not one of 'median', 'share', 'sla'",
        ),
        (
            lambda: Wording(label="Kept", says="kept", noun=cast(Any, ("visit",))),
            "wording 'Kept': noun must be (singular, plural)",
        ),
        (
            lambda: Wording(label="Kept", says="kept", levels=cast(Any, (("sms",),))),
            "wording 'Kept': levels must be a tuple of (value, words) pairs",
        ),
        (
            lambda: Wording(label="Kept", says="kept", when=cast(Any, ("rescheduled", "0", "x"))),
            "wording 'Kept': when must be (feature, value, template)",
        ),
        (
            lambda: FrictionSpec(
                name="no coffee", label="No coffee", stage="showroom", touchpoint=None
            ),
            "friction 'no coffee': name must be an identifier",
        ),
        (
            lambda: FrictionSpec(name="no_coffee", label="", stage="showroom", touchpoint=None),
            "friction 'no_coffee': label must be given",
        ),
    ],
)
def test_an_entry_with_a_value_outside_its_vocabulary_is_refused_when_built(
    build: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build()
