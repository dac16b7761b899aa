"""The task parameters: defaults, the moments derived from them, and refusals by field."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from cjm_ml.params import (
    MODEL_NAMES,
    TASKS,
    LeadLeakageParams,
    NoShowParams,
    ServiceDefectionParams,
    TaskParams,
    read_task_params,
)


def test_defaults_are_the_published_windows_and_cutoffs() -> None:
    p = TaskParams()
    assert p.response_sla_minutes == 15
    assert p.lead_cutoff == timedelta(hours=2)
    assert p.no_show_cutoff == timedelta(hours=24)
    assert p.defection_cutoff == timedelta(days=7)
    assert (p.lead_leakage.window_days, p.service_defection.window_days) == (30, 210)
    assert set(MODEL_NAMES) == set(TASKS) == {"lead_leakage", "no_show", "service_defection"}


def test_open_lookback_is_the_window_and_a_day_or_the_booking_horizon() -> None:
    p = TaskParams(
        lead_leakage=LeadLeakageParams(window_days=10),
        no_show=NoShowParams(booked_ahead_max_days=90),
        service_defection=ServiceDefectionParams(window_days=100),
    )
    assert p.open_lookback("lead_leakage") == timedelta(days=11)
    assert p.open_lookback("no_show") == timedelta(days=90)
    assert p.open_lookback("service_defection") == timedelta(days=101)


def test_derived_moments_follow_the_parameters() -> None:
    p = TaskParams(
        lead_leakage=LeadLeakageParams(cutoff_after_lead_minutes=45),
        no_show=NoShowParams(cutoff_before_start_hours=6),
        service_defection=ServiceDefectionParams(cutoff_after_delivery_days=3),
    )
    assert (p.lead_cutoff, p.no_show_cutoff, p.defection_cutoff) == (
        timedelta(minutes=45),
        timedelta(hours=6),
        timedelta(days=3),
    )


def test_parameters_are_frozen() -> None:
    with pytest.raises(ValidationError, match="frozen"):
        TaskParams().response_sla_minutes = 5  # type: ignore[misc]


def test_a_non_positive_window_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match=r"lead_leakage\.window_days\n.*greater than 0"):
        TaskParams.model_validate({"lead_leakage": {"window_days": 0}})


def test_an_unknown_setting_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match=r"no_show\.cutoff_hours\n.*Extra inputs"):
        TaskParams.model_validate({"no_show": {"cutoff_hours": 24}})


def test_the_parameters_file_s_windows_section_is_read_and_others_ignored(tmp_path: Path) -> None:
    path = tmp_path / "params.toml"
    path.write_text(
        "[windows]\nresponse_sla_minutes = 60\n[windows.no_show]\ncutoff_before_start_hours = 6\n"
        "[lightgbm]\nnum_leaves = 15\n"
    )
    assert read_task_params(path) == TaskParams(
        response_sla_minutes=60, no_show=NoShowParams(cutoff_before_start_hours=6)
    )
    path.write_text("[lightgbm]\nnum_leaves = 15\n")
    assert read_task_params(path) is None


def test_the_parameters_file_s_errors_name_the_file_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "params.toml"
    path.write_text("[windows.service_defection]\nwindow_days = -1\nwindow = 3\n")
    with pytest.raises(ValueError) as bad:
        read_task_params(path)
    assert str(bad.value) == (
        f"{path}: [windows] service_defection.window_days: Input should be greater than 0; "
        "[windows] service_defection.window: unknown key"
    )
    path.write_text("[windows\n")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: not valid TOML: "):
        read_task_params(path)
    with pytest.raises(FileNotFoundError, match=r"none\.toml: parameters file not found"):
        read_task_params(tmp_path / "none.toml")


def test_differences_name_the_settings_that_differ() -> None:
    other = TaskParams(
        response_sla_minutes=30, service_defection=ServiceDefectionParams(window_days=180)
    )
    assert TaskParams().differences(other) == [
        "response_sla_minutes",
        "service_defection.window_days",
    ]
    assert other.differences(other) == []
