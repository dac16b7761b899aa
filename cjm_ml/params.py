"""The prediction tasks' windows and cutoffs: one typed object, no literals elsewhere.

The simulator uses the same defaults to compute its ground truth "as known at the cutoff", so
the truth tables and the feature tables describe the same prediction moment.

An analyst sets them in the ``[windows]`` section of the parameters file (``read_task_params``),
the same TOML file whose ``[split]``, ``[norms]``, ``[lightgbm]`` and ``[search]`` sections
training reads; each reader ignores the other's sections.
"""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cjm_ml.tomlfiles import error_lines

Task = Literal["lead_leakage", "no_show", "service_defection"]
TASKS: tuple[Task, ...] = ("lead_leakage", "no_show", "service_defection")
#: The parameters file's section holding ``TaskParams`` (the windows and standards).
WINDOWS_SECTION = "windows"
#: Registered model name per task (MLflow registry, bundles, API responses).
MODEL_NAMES: dict[Task, str] = {
    "no_show": "cjm-no-show",
    "lead_leakage": "cjm-lead-leakage",
    "service_defection": "cjm-service-defection",
}


class LeadLeakageParams(BaseModel):
    """A lead "goes dark" when no sales appointment is set and no showroom visit happens."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    cutoff_after_lead_minutes: float = Field(
        120, gt=0, description="Score this long after the lead arrives, so the BDC can still act."
    )
    window_days: float = Field(30, gt=0, description="Days after the lead to look for a next step.")


class NoShowParams(BaseModel):
    """One instance per booked appointment (sales and service)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    cutoff_before_start_hours: float = Field(
        24, gt=0, description="Score this long before the start, or at booking if booked later."
    )
    booked_ahead_max_days: float = Field(
        365,
        gt=0,
        description="How far ahead a booking can be made: how far back a call list looks for "
        "customers with an open booking.",
    )


class ServiceDefectionParams(BaseModel):
    """A buyer "defects" when no repair order opens at any rooftop of the group in the window."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    cutoff_after_delivery_days: float = Field(
        7, gt=0, description="Score this long after delivery."
    )
    window_days: float = Field(
        210, gt=0, description="Days after delivery to look for a repair order."
    )


class TaskParams(BaseModel):
    """Windows and cutoffs for all three prediction tasks, plus the group's response standard."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    response_sla_minutes: float = Field(
        15, gt=0, description="Group standard for the first reply to a lead."
    )
    lead_leakage: LeadLeakageParams = LeadLeakageParams()
    no_show: NoShowParams = NoShowParams()
    service_defection: ServiceDefectionParams = ServiceDefectionParams()

    def open_lookback(self, task: Task) -> timedelta:
        """How far back an instance of ``task`` can still be open: the customers a call list
        has to look at. A lead or a delivery stays open for its window (a day of slack: the
        window is counted from the event, not the day); a booking until its start."""
        if task == "lead_leakage":
            return timedelta(days=self.lead_leakage.window_days + 1)
        if task == "service_defection":
            return timedelta(days=self.service_defection.window_days + 1)
        return timedelta(days=self.no_show.booked_ahead_max_days)

    @property
    def lead_cutoff(self) -> timedelta:
        """Time from the lead to the lead-leakage prediction moment."""
        return timedelta(minutes=self.lead_leakage.cutoff_after_lead_minutes)

    @property
    def no_show_cutoff(self) -> timedelta:
        """Time before the scheduled start of the no-show prediction moment."""
        return timedelta(hours=self.no_show.cutoff_before_start_hours)

    @property
    def defection_cutoff(self) -> timedelta:
        """Time from delivery to the service-defection prediction moment."""
        return timedelta(days=self.service_defection.cutoff_after_delivery_days)

    def differences(self, other: TaskParams) -> list[str]:
        """The dotted names of the settings (``lead_leakage.window_days``) whose values differ
        between ``self`` and ``other``, in field order; empty when they are equal."""
        mine, theirs = _flat(self.model_dump()), _flat(other.model_dump())
        return [name for name in mine if mine[name] != theirs[name]]


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dump as ``{"a.b": value}``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def read_task_params(path: Path) -> TaskParams | None:
    """The windows and standards of the parameters file at ``path``: its ``[windows]`` section
    (``response_sla_minutes``, ``[windows.lead_leakage]``, ``[windows.no_show]``,
    ``[windows.service_defection]``), validated, a key left out keeping its default; ``None``
    when the file has no such section. Other sections (training's) are not read here.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file and the
    key for invalid TOML, a setting outside any section, a value out of range or an unknown key.
    """
    raw = read_parameters_toml(path)
    loose = [k for k, v in raw.items() if not isinstance(v, dict)]
    if loose:
        raise ValueError(
            f"{path}: {', '.join(loose)}: a setting outside any section; the windows and "
            f"standards go under [{WINDOWS_SECTION}]"
        )
    if WINDOWS_SECTION not in raw:
        return None
    try:
        return TaskParams.model_validate(raw[WINDOWS_SECTION])
    except ValidationError as exc:
        raise ValueError(
            f"{path}: " + "; ".join(error_lines(exc, f"[{WINDOWS_SECTION}] "))
        ) from exc


def read_parameters_toml(path: Path) -> dict[str, Any]:
    """The parameters file at ``path`` as parsed TOML. Raises ``FileNotFoundError`` for a
    missing file and ``ValueError`` (naming the file) for one that is not TOML."""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{path}: parameters file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
