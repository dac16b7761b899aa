"""Request and response bodies of the scoring API (pydantic): the OpenAPI contract.

Event types and channels are enumerations built from the journey catalogue, so an unknown type
is refused field by field before any work is done, and the docs list the allowed values.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
)

from cjm_ml.events import catalogue

#: Most events accepted in one request (POST /v1/events, or inline in a score request).
MAX_EVENTS = 5000
#: Most customers scored in one request.
MAX_CUSTOMERS = 100
#: Largest request body (413 over it: by its Content-Length, or as a streamed body passes it).
MAX_BODY_BYTES = 16 * 1024 * 1024

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


_ISO_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def check_time_text(value: object) -> object:
    """``value`` if it is written as an ISO 8601 date and time (or is a ``datetime``, from
    Python code). Refuses numbers and numeric strings, which would otherwise be read as Unix
    times, and every other non-string (the zone is checked next: ``AwareDatetime``)."""
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_DATE_TIME.match(value)):
        return value
    raise ValueError("must be an ISO 8601 date and time with a timezone, e.g. 2026-01-05T10:00Z")


When = Annotated[AwareDatetime, BeforeValidator(check_time_text), AfterValidator(check_time)]


def check_finite(value: Any) -> Any:
    """``value`` (JSON: objects, arrays, strings, numbers...) if every number in it is finite.
    Refuses NaN and Infinity (Python's JSON reader takes them, and 1e400 reads as Infinity)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return value


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
    value: float | None = Field(None, allow_inf_nan=False, strict=True)
    attributes: Annotated[dict[str, Any] | None, AfterValidator(check_finite)] = None
    recorded_ts: When | None = Field(
        None,
        description="When the source system recorded the event, if later than ts (a no-show "
        "entered the next morning): features see it only from then on.",
    )


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
    customers: list[CustomerIn] = Field(
        min_length=1,
        max_length=MAX_CUSTOMERS,
        description=f"At most {MAX_EVENTS} inline events in all, over every customer.",
    )
    as_of: When | None = Field(None, description="Cutoff; default: the request time.")
    push: bool = Field(
        False, strict=True, description="Also send changed risks to the CRM (outbox)."
    )

    @field_validator("customers", mode="before")
    @classmethod
    def _few_enough_events(cls, customers: object) -> object:
        """Refuses more than ``MAX_EVENTS`` inline events over all the customers, counted
        before any event is validated."""
        if isinstance(customers, list):
            given = (
                c.get("events") if isinstance(c, dict) else getattr(c, "events", None)
                for c in customers
            )
            total = sum(len(events) for events in given if isinstance(events, list))
            if total > MAX_EVENTS:
                raise ValueError(f"at most {MAX_EVENTS} inline events in all (got {total})")
        return customers


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
    #: The generation of the models that scored it (``ModelSet.generation``): what the outbox
    #: orders a customer's updates by. Not part of the response.
    model_generation: int = Field(0, exclude=True)


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


class ProcessModelOut(BaseModel):
    """What one process of the service serves of a model."""

    pid: int
    generation: int = Field(description="The model generation it serves (0: none).")
    version: str | None = Field(description="Its version of this model (None: not loaded).")


class ModelOut(BaseModel):
    """A champion in use: name, version, where it came from and how it tested."""

    task: TaskName
    model_name: str
    version: str
    generation: int = Field(
        description="The model generation this process serves: every reload publishes a new "
        "one, and every process of the service switches to it."
    )
    processes: list[ProcessModelOut] = Field(
        description="Each live process of the service: its generation and version of this model."
    )
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


#: What each refusal the API gives means, as the OpenAPI spec documents it.
REFUSALS: dict[int, str] = {
    400: "The body is not JSON text (UTF-8).",
    401: "The API key is missing or wrong.",
    403: "Another rooftop's or dealer group's data than the key may see.",
    404: "Not found: e.g. a customer or rooftop with no events stored.",
    409: "An event_id already stored with other content.",
    413: f"The request body is over {MAX_BODY_BYTES // (1024 * 1024)} MiB.",
    422: "A field is missing, of the wrong type or out of range: detail names it (loc).",
    503: "Not ready (models not loaded) or too busy (see Retry-After).",
}


def refusals(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` for the refusals an operation gives: each code's meaning
    (``REFUSALS``) and its body, a ``ProblemOut``."""
    return {c: {"model": ProblemOut, "description": REFUSALS[c]} for c in codes}


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
            "recorded_ts": "" if e.recorded_ts is None else e.recorded_ts.isoformat(),
        }
        for e in events
    ]
    return pd.DataFrame(rows, dtype=object)
