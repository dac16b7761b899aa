"""Features declared as data: from the user's own event attributes, or generic per touchpoint.

A dealer's exports carry what matters beyond the journey's touchpoints: the vehicle's model
year and mileage, its warranty end, the customer's tenure. A **features file** (TOML) declares
features over such attributes, without code::

    [features.vehicle_age_years]
    label = "Vehicle age"                    # how the feature reads to a dealer
    event_type = "vehicle_profile_recorded"  # the events it reads (catalogue event type)
    attribute = "model_year"                 # the attribute it reads (none: the events)
    kind = "number"                          # number, category or flag
    take = "years_since"                     # how it is taken at the cutoff (``Take``)
    tasks = ["service_defection"]            # default: every task
    # window_days = 90                       # count, mean, sum: only the last 90 days
    # stage = "delivery"                     # default: the event type's journey stage
    # actionable = false                     # whether the dealer can act on it

How a feature is taken at each instance's cutoff (``Take``), always from the customer's events
that happened *and were known* strictly before the cutoff (``Timeline.window`` with
``known_before``), so declared features keep the point-in-time guarantee:

- ``latest``: the attribute of the latest such event (a number, a category, a flag);
- ``count``: how many such events (in the window); ``mean`` / ``sum``: of a numeric attribute
  over them;
- ``days_since`` / ``years_since``: from the latest such event (or the date its attribute
  holds: an ISO date, a time, or a bare year read as 1 January) to the cutoff;
  ``days_until``: from the cutoff to the date the latest event's attribute holds (a warranty
  end: negative once it has passed).

``generic_features()`` declares the same kind of features for every touchpoint of the
catalogue (a count in the last 7 and 30 days and the days since the last one), named and worded
from the catalogue: a model can then be trained on what any dataset holds, without the
hand-built set. ``declared_columns`` computes any of them for a table of instances.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cjm_ml.events import catalogue
from cjm_ml.features.timeline import NS_DAY, Timeline, Window, to_ns
from cjm_ml.params import TASKS, Task
from cjm_ml.tomlfiles import error_lines, read_toml

Kind = Literal["number", "category", "flag"]
Take = Literal["latest", "count", "mean", "sum", "days_since", "years_since", "days_until"]
#: The takes that read an attribute's value over the window, and those that read a date.
_NUMERIC_TAKES = ("mean", "sum")
_DATE_TAKES = ("days_since", "years_since", "days_until")
#: Words read as a flag's 1 (case-insensitive); any other filled-in word is 0.
TRUE_WORDS = ("1", "true", "yes", "y", "t")
#: The windows (days) and the takes of the generic features of each touchpoint.
GENERIC_WINDOWS_DAYS: tuple[int, ...] = (7, 30)
_DAYS_PER_YEAR = 365.25
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_YEAR = re.compile(r"^\d{4}$")


class FeaturesFileError(ValueError):
    """A features file that cannot be used; names the file and each key path at fault."""


class DeclaredFeature(BaseModel):
    """One declared feature (see the module docstring). Refuses an unknown event type or
    stage, a take that needs an attribute without one, a category or flag taken otherwise
    than ``latest``, and a window on a take that has none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    label: str = Field(min_length=1)
    event_type: str
    attribute: str | None = None
    kind: Kind = "number"
    take: Take = "latest"
    window_days: float | None = Field(default=None, gt=0)
    stage: str | None = None
    tasks: tuple[Task, ...] = TASKS
    actionable: bool = False

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be lower case letters, digits and _, starting with a letter")
        return value

    @field_validator("event_type")
    @classmethod
    def _known_event_type(cls, value: str) -> str:
        if value not in catalogue().event_type_keys:
            raise ValueError(f"unknown event type {value!r}")
        return value

    @field_validator("stage")
    @classmethod
    def _known_stage(cls, value: str | None) -> str | None:
        if value is not None and value not in catalogue().stage_keys:
            raise ValueError(f"unknown stage {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DeclaredFeature:
        if self.take in (*_NUMERIC_TAKES, "latest", "days_until") and self.attribute is None:
            raise ValueError(f"take {self.take!r} reads an attribute: give 'attribute'")
        if self.kind != "number" and self.take != "latest":
            raise ValueError(f"a {self.kind} is taken as 'latest', not {self.take!r}")
        if self.window_days is not None and self.take not in ("count", *_NUMERIC_TAKES):
            raise ValueError(f"take {self.take!r} has no window; drop 'window_days'")
        return self

    @property
    def journey_stage(self) -> str:
        """The declared stage, or the stage of the event type it reads."""
        return self.stage or catalogue().stage_of(self.event_type).key


class FeaturesFile(BaseModel):
    """A features file: ``[features.<name>]`` tables (the name is the key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    features: dict[str, DeclaredFeature]

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, raw: object) -> object:
        if isinstance(raw, dict) and isinstance(raw.get("features"), dict):
            named = {
                k: {"name": k, **v} if isinstance(v, dict) else v
                for k, v in raw["features"].items()
            }
            return {**raw, "features": named}
        return raw


def load_features_file(path: Path | str) -> tuple[DeclaredFeature, ...]:
    """The features declared in a TOML file, in file order; raises ``FeaturesFileError``
    naming the file and, for each problem, its key path."""
    path = Path(path)
    try:
        raw = read_toml(path, "features")
    except ValueError as e:
        raise FeaturesFileError(str(e)) from None
    try:
        return tuple(FeaturesFile.model_validate(raw).features.values())
    except ValidationError as e:
        raise FeaturesFileError("\n".join(error_lines(e, f"{path.name}: "))) from None


def generic_features(event_types: Iterable[str] | None = None) -> tuple[DeclaredFeature, ...]:
    """For each catalogue event type (or the given ones): its count in each of
    ``GENERIC_WINDOWS_DAYS`` before the cutoff and the days since the last one, named
    ``<event type>_<n>d`` / ``days_since_<event type>`` and worded from the catalogue."""
    cat = catalogue()
    out: list[DeclaredFeature] = []
    for key in event_types if event_types is not None else cat.event_type_keys:
        label = cat.event_type(key).label
        out += [
            DeclaredFeature(
                name=f"{key}_{days}d",
                label=f"{label}, last {days} days",
                event_type=key,
                take="count",
                window_days=days,
            )
            for days in GENERIC_WINDOWS_DAYS
        ]
        out.append(
            DeclaredFeature(
                name=f"days_since_{key}",
                label=f"Days since {label.lower()}",
                event_type=key,
                take="days_since",
            )
        )
    return tuple(out)


def declared_columns(
    events: pd.DataFrame | Timeline,
    instances: pd.DataFrame,
    features: Sequence[DeclaredFeature],
) -> pd.DataFrame:
    """Each declared feature for each instance (``customer_id``, ``cutoff_ts``), from the
    customer's events known strictly before the cutoff; aligned with ``instances``' index.
    Numbers and dates as float (NaN: nothing known), categories as strings, flags as 0/1."""
    tl = Timeline.of(events)
    cust = tl.customer_codes(instances["customer_id"])
    cutoff = to_ns(instances["cutoff_ts"])
    columns = {f.name: _column(tl, cust, cutoff, f) for f in features}
    return pd.DataFrame(columns, index=instances.index)


def _column(tl: Timeline, cust: np.ndarray, cutoff: np.ndarray, f: DeclaredFeature) -> object:
    positions = tl.positions(f.event_type)
    start = None if f.window_days is None else cutoff - int(f.window_days * NS_DAY)
    window = tl.window(cust, start, cutoff, known_before=cutoff)
    if f.take == "count":
        return Timeline.count(positions, window).astype(float)
    if f.take in _NUMERIC_TAKES:
        return _over_window(tl, positions, window, f)
    last = Timeline.last(positions, window)
    if f.attribute is None:  # days_since / years_since the event itself
        return _elapsed(cutoff - tl.ts_at(last), f.take)
    values = _attribute_at(tl, last, f.attribute)
    if f.take == "latest":
        return _typed(values, f.kind)
    moments = _as_moments(values)
    elapsed = moments - cutoff if f.take == "days_until" else cutoff - moments
    return _elapsed(elapsed, f.take)


def _attribute_at(tl: Timeline, positions: np.ndarray, key: str) -> pd.Series:
    """The attribute's text at each position (missing where the position is -1)."""
    found = positions >= 0
    out = pd.Series(pd.NA, index=range(len(positions)), dtype="string")
    if found.any():
        out[found] = tl.attribute(positions[found], key).to_numpy()
    return out


def _typed(values: pd.Series, kind: Kind) -> object:
    if kind == "category":
        return pd.array(values, dtype="string")
    if kind == "flag":
        words = values.str.strip().str.lower()
        return np.where(words.isna(), np.nan, words.isin(TRUE_WORDS).astype(float))
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _as_moments(values: pd.Series) -> np.ndarray:
    """Dates, times or bare years (1 January) as ns since the epoch, NaN where unreadable."""
    text = values.str.strip()
    text = text.where(~text.str.fullmatch(_YEAR.pattern).fillna(False), text + "-01-01")
    moments = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
    ns = moments.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(float)
    return np.where(moments.isna().to_numpy(), np.nan, ns)


def _elapsed(ns: np.ndarray, take: Take) -> np.ndarray:
    days = np.asarray(ns, dtype=float) / NS_DAY
    return days / _DAYS_PER_YEAR if take == "years_since" else days


def _over_window(tl: Timeline, positions: np.ndarray, window: Window, f: DeclaredFeature) -> object:
    """The mean or sum of a numeric attribute over each window's known events (NaN: none
    with a value). Prefix sums over the positions; events recorded late are counted only once
    known, by ``Timeline.count`` on the valued positions."""
    assert f.attribute is not None  # the model refuses mean/sum without one
    values = pd.to_numeric(tl.attribute(positions, f.attribute), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    valued = positions[~np.isnan(values)]
    weights = values[~np.isnan(values)]
    total = Timeline.total(valued, weights, window)
    n = Timeline.count(valued, window)
    if f.take == "sum":
        return np.where(n > 0, total, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)
