"""Each rooftop's process settings, the group standard, and the deviations the simulator plants."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cjm_ml.params import Task

ConfirmationChannel = Literal["sms", "email", "none"]


class RooftopProcess(BaseModel):
    """How one store runs its journey. Every setting is a probability or a time, never a flag
    in code: the simulator reads these, and ``rooftops.json`` records them."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    response_median_minutes: float = Field(
        10, gt=0, description="BDC median first reply, open hours."
    )
    response_spread: float = Field(0.9, gt=0, description="Log-normal sigma of the reply time.")
    no_response_rate: float = Field(0.03, ge=0, le=1, description="Leads never answered.")
    call_answer_rate: float = Field(0.75, ge=0, le=1, description="Inbound calls picked up live.")
    follow_up_attempts: float = Field(
        3.0, ge=0, description="Mean follow-ups after the first reply."
    )
    trade_credit_follow_up_rate: float = Field(
        0.85, ge=0, le=1, description="Trade-in or credit submissions given a follow-up task."
    )
    confirmation_channel: ConfirmationChannel = "sms"
    confirmation_rate_far: float = Field(
        0.92, ge=0, le=1, description="Confirmations for appointments booked 3+ days ahead."
    )
    confirmation_rate_near: float = Field(
        0.40, ge=0, le=1, description="Confirmations for appointments booked 1-3 days ahead."
    )
    vehicle_hold_rate: float = Field(0.70, ge=0, le=1, description="Specific vehicles put on hold.")
    delivery_education_rate: float = Field(0.90, ge=0, le=1)
    first_service_booked_rate: float = Field(
        0.70, ge=0, le=1, description="First service appointment booked at delivery."
    )
    reminder_channel_match_rate: float = Field(
        0.85, ge=0, le=1, description="Reminders sent on the customer's preferred channel."
    )
    recall_outreach_rate: float = Field(0.85, ge=0, le=1, description="Open recalls notified.")
    online_booking_friction: float = Field(
        0.15, ge=0, le=1, description="Share of online service bookings abandoned."
    )
    mpi_transparency_rate: float = Field(
        0.85, ge=0, le=1, description="Inspections sent with photos and prices."
    )
    utc_offset_hours: int = -6


class Rooftop(BaseModel):
    """A store of the dealer group with its process."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    rooftop_id: str
    name: str
    size_weight: float = Field(1.0, gt=0, description="Relative share of the group's customers.")
    process: RooftopProcess


class PlantedDeviation(BaseModel):
    """A process setting where a rooftop deviates from the group standard, and the friction
    (a named term of the causal model) it drives."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    rooftop_id: str
    friction: str
    task: Task
    setting: str
    value: float | str
    group_standard: float | str


GROUP_STANDARD = RooftopProcess()

#: Deviation templates, applied in order to rooftops 2, 4, 5, 6, ... of the group.
#: Each entry: friction name -> (task, {setting: deviant value}).
DEVIATION_TEMPLATES: tuple[dict[str, tuple[Task, dict[str, float | str]]], ...] = (
    {
        "slow_first_response": (
            "lead_leakage",
            {"response_median_minutes": 150.0, "no_response_rate": 0.12, "follow_up_attempts": 1.2},
        ),
        "no_trade_credit_follow_up": ("lead_leakage", {"trade_credit_follow_up_rate": 0.2}),
    },
    {
        "no_confirmation": (
            "no_show",
            {
                "confirmation_channel": "email",
                "confirmation_rate_far": 0.15,
                "confirmation_rate_near": 0.05,
            },
        ),
        "no_vehicle_hold": ("no_show", {"vehicle_hold_rate": 0.1}),
    },
    {
        "first_service_not_booked": ("service_defection", {"first_service_booked_rate": 0.12}),
        "reminder_channel_mismatch": ("service_defection", {"reminder_channel_match_rate": 0.25}),
    },
    {
        "online_booking_friction": ("service_defection", {"online_booking_friction": 0.6}),
        "no_delivery_education": ("service_defection", {"delivery_education_rate": 0.35}),
    },
)

_NAMES = (
    "Northgate Toyota",
    "Lakeside Honda",
    "Riverside Hyundai",
    "Summit Ford",
    "Bayview Chevrolet",
    "Cedar Hill Kia",
    "Harbor Nissan",
    "Prairie Subaru",
    "Valley Mazda",
    "Granite Volkswagen",
)
_OFFSETS = (-5, -6, -6, -7, -8, -5)


def default_rooftops(n: int, seed: int) -> tuple[list[Rooftop], list[PlantedDeviation]]:
    """The demo group: ``n`` rooftops near the standard, with planted deviations.

    Rooftop 2 gets a slow BDC, rooftop 4 skips confirmations and holds, rooftop 5 skips first
    service booking and ignores reminder preferences, rooftop 6 has online-booking friction.
    With fewer rooftops the templates wrap onto the ones there are. Refuses ``n < 2``.
    """
    if n < 2:
        raise ValueError("a dealer group needs at least 2 rooftops (one standard, one deviating)")
    rng = np.random.default_rng([seed, 1001])
    deviant_slots = [i for i in (1, 3, 4, 5) if i < n] or [1]
    assignments: dict[int, list[int]] = {}
    for t in range(len(DEVIATION_TEMPLATES)):
        # More templates than slots: wrap onto rooftops 2, 3, ... in turn.
        slot = deviant_slots[t] if t < len(deviant_slots) else 1 + t % (n - 1)
        assignments.setdefault(slot, []).append(t)
    rooftops: list[Rooftop] = []
    planted: list[PlantedDeviation] = []
    for i in range(n):
        rid = f"rt-{i + 1:02d}"
        # Natural variation around the standard, small enough not to count as a deviation.
        settings: dict[str, float | str] = {
            "response_median_minutes": float(np.round(rng.uniform(7, 13), 1)),
            "utc_offset_hours": _OFFSETS[i % len(_OFFSETS)],
        }
        for t in assignments.get(i, []):
            for friction, (task, overrides) in DEVIATION_TEMPLATES[t].items():
                settings.update(overrides)
                for setting, value in overrides.items():
                    planted.append(
                        PlantedDeviation(
                            rooftop_id=rid,
                            friction=friction,
                            task=task,
                            setting=setting,
                            value=value,
                            group_standard=getattr(GROUP_STANDARD, setting),
                        )
                    )
        process = GROUP_STANDARD.model_copy(update=settings)
        name = _NAMES[i] if i < len(_NAMES) else f"Rooftop {i + 1}"
        weight = float(np.round(rng.uniform(0.7, 1.4), 2))
        rooftops.append(Rooftop(rooftop_id=rid, name=name, size_weight=weight, process=process))
    return rooftops, planted


def fix_rooftop(rooftops: list[Rooftop], rooftop_id: str, settings: list[str]) -> list[Rooftop]:
    """The same group with one rooftop's named settings reset to the group standard (what-if)."""
    ids = [r.rooftop_id for r in rooftops]
    if rooftop_id not in ids:
        raise KeyError(f"unknown rooftop {rooftop_id!r}; the group has {', '.join(ids)}")
    unknown = [s for s in settings if s not in RooftopProcess.model_fields]
    if unknown:
        raise KeyError(f"unknown process setting(s) {unknown}")
    out = []
    for r in rooftops:
        if r.rooftop_id == rooftop_id:
            update = {s: getattr(GROUP_STANDARD, s) for s in settings}
            r = r.model_copy(update={"process": r.process.model_copy(update=update)})
        out.append(r)
    return out
