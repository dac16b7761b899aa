"""Request and response bodies of the scoring API (pydantic): the OpenAPI contract.

Event types and channels are enumerations built from the journey catalogue, so an unknown type
is refused field by field before any work is done, and the docs list the allowed values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from cjm_ml.events import catalogue

#: Most events accepted in one request (POST /v1/events, or inline in a score request).
MAX_EVENTS = 5000
#: Most customers scored in one request.
MAX_CUSTOMERS = 100

EventType = StrEnum("EventType", {k: k for k in catalogue().event_type_keys})  # type: ignore[misc]
Channel = StrEnum("Channel", {c: c for c in catalogue().channels})  # type: ignore[misc]
TaskName = Literal["lead_leakage", "no_show", "service_defection"]
_Id = Field(min_length=1, max_length=128, pattern=r"^[\w.:@/-]+$")


#: Times the service accepts: anything else is a typo or a test of the edges (422).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def check_time(value: datetime | None) -> datetime | None:
    """A timezone-aware time between ``EARLIEST`` and ``LATEST``."""
    if value is not None and not EARLIEST <= value < LATEST:
        raise ValueError(f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
    return value


When = Annotated[AwareDatetime, AfterValidator(check_time)]


class EventIn(BaseModel):
    """One journey event in the canonical model (see the README's event table)."""

    model_config = ConfigDict(extra="forbid")
    event_id: str = _Id
    dealer_group_id: str | None = Field(
        None, max_length=128, description="Defaults to the API key's dealer group."
    )
    rooftop_id: str = _Id
    customer_id: str = _Id
    ts: When = Field(description="With a timezone; naive times are refused.")
    event_type: EventType
    channel: Channel | None = None
    source: str | None = Field(None, max_length=128)
    vehicle_id: str | None = Field(None, max_length=128)
    value: float | None = Field(None, allow_inf_nan=False)
    attributes: dict[str, Any] | None = None


class EventsIn(BaseModel):
    """A batch of events to append to the event store."""

    model_config = ConfigDict(extra="forbid")
    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class AppendOut(BaseModel):
    """What an append did: events stored now, and events already stored as sent."""

    inserted: int
    duplicates: int


class CustomerIn(BaseModel):
    """A customer to score: by id (events from the store) or with the journey events inline."""

    model_config = ConfigDict(extra="forbid")
    customer_id: str = _Id
    events: list[EventIn] | None = Field(
        None, max_length=MAX_EVENTS, description="If given, scored from these events alone."
    )


class ScoreIn(BaseModel):
    """Who to score, and when (default: now)."""

    model_config = ConfigDict(extra="forbid")
    customers: list[CustomerIn] = Field(min_length=1, max_length=MAX_CUSTOMERS)
    as_of: When | None = Field(None, description="Cutoff; default: the request time.")
    push: bool = Field(False, description="Also send changed risks to the CRM (outbox).")


class DriverOut(BaseModel):
    """One reason behind a score, in dealer language."""

    sentence: str
    friction: str | None = Field(description="The friction it names, if the dealer can act.")
    kind: Literal["friction", "context"]
    stage: str
    touchpoint: str | None
    share: float = Field(description="Its share of the risk the drivers explain (0-1).")
    direction: Literal["raises", "lowers"]


class ActionOut(BaseModel):
    """What to do now about the top friction."""

    friction: str
    action: str
    owner: str
    channel: str | None = None
    urgency: str | None = None


class WhatIfOut(BaseModel):
    """The risk if one friction were removed, beside the current risk."""

    friction: str
    label: str
    risk: float
    current_risk: float


class InstanceScore(BaseModel):
    """The score of one open instance (a lead, a booked appointment, a delivery)."""

    instance_id: str
    rooftop_id: str
    anchor_ts: datetime
    scheduled_ts: datetime | None = None
    risk: float
    band: Literal["high", "medium", "low"]
    drivers_up: list[DriverOut]
    drivers_down: list[DriverOut]
    action: ActionOut | None
    what_if: list[WhatIfOut]


class CustomerScore(BaseModel):
    """A customer's open instances for the task (empty when nothing is open)."""

    customer_id: str
    instances: list[InstanceScore]


class ScoreOut(BaseModel):
    """Scores for one task, with the model that made them and the cutoff used."""

    task: TaskName
    model_name: str
    model_version: str
    cutoff: datetime
    customers: list[CustomerScore]


class _CustomerRef(BaseModel):
    customer_id: str


class QueueItem(InstanceScore, _CustomerRef):
    """One call-list row: the customer (first) and the instance's score."""


class QueueOut(BaseModel):
    """The call list: open instances ranked by risk, with the model and the cutoff used."""

    task: TaskName
    model_name: str
    model_version: str
    cutoff: str = Field(description="ISO 8601 with the UTC offset (+00:00).")
    items: list[QueueItem]


class ModelOut(BaseModel):
    """A champion in use: name, version, where it came from and how it tested."""

    task: TaskName
    model_name: str
    version: str
    source: str = Field(description="The MLflow registry, or the bundles' folder.")
    loaded_at: str = Field(description="ISO 8601 with the UTC offset (+00:00).")
    features: int
    test_roc_auc: float | None
    bands: dict[str, float] = Field(description='Lowest risk of the "medium" and "high" bands.')


class HealthOut(BaseModel):
    """The process is up."""

    status: Literal["ok"]


class ReadyOut(BaseModel):
    """All three champions are loaded."""

    status: Literal["ready"]
    models: int


class NotReadyOut(BaseModel):
    """Some champion is not loaded (503), and why."""

    status: Literal["not ready"]
    reason: str | None


class RequeueOut(BaseModel):
    """How many parked deliveries were queued again."""

    requeued: int


class ProblemDetail(BaseModel):
    """One thing wrong with a request: where (``loc``) and why (``msg``)."""

    loc: list[str | int]
    msg: str
    type: str


class ProblemOut(BaseModel):
    """The body of every 4xx answer."""

    detail: list[ProblemDetail] | str


#: The refusals every endpoint documents (401/403/404/409/413/422/503, each a ``ProblemOut``).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    c: {"model": ProblemOut} for c in (401, 403, 404, 409, 413, 422, 503)
}


def problem(loc: Iterable[str | int], msg: str, kind: str = "value_error") -> dict[str, Any]:
    """One ``ProblemDetail`` entry: where (``loc``), why (``msg``) and the kind of problem."""
    return {"loc": list(loc), "msg": msg, "type": kind}


def events_frame(events: list[EventIn], dealer_group_id: str) -> pd.DataFrame:
    """Request events as a raw event table (strings, like a CSV), ready for validate_events."""
    rows = [
        {
            "event_id": e.event_id,
            "dealer_group_id": e.dealer_group_id or dealer_group_id,
            "rooftop_id": e.rooftop_id,
            "customer_id": e.customer_id,
            "ts": e.ts.isoformat(),
            "event_type": str(e.event_type),
            "channel": "" if e.channel is None else str(e.channel),
            "source": e.source or "",
            "vehicle_id": e.vehicle_id or "",
            "value": "" if e.value is None else repr(e.value),
            "attributes": "" if e.attributes is None else json.dumps(e.attributes),
        }
        for e in events
    ]
    return pd.DataFrame(rows, dtype=object)
