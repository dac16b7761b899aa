"""The canonical journey event model: one table every part of cjm-ml reads.

The catalogue of stages, channels and event types is data (``data/journey_catalogue.json``);
this module loads it, defines the table's columns and dtypes, and validates files against it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "dealer_group_id",
    "rooftop_id",
    "customer_id",
    "ts",
    "event_type",
    "channel",
    "source",
    "vehicle_id",
    "value",
    "attributes",
)
#: Columns that must be present and non-empty on every row.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "event_id",
    "dealer_group_id",
    "rooftop_id",
    "customer_id",
    "ts",
    "event_type",
)
#: Columns that may be absent from a file; they are added empty.
OPTIONAL_COLUMNS: tuple[str, ...] = ("channel", "source", "vehicle_id", "value", "attributes")
TS_DTYPE = "datetime64[us, UTC]"
#: How many violations a report lists before it summarises the rest.
MAX_REPORTED_VIOLATIONS = 200


@dataclass(frozen=True)
class Stage:
    """A journey stage, in the order customers normally pass through them."""

    key: str
    label: str
    order: int
    color: str


@dataclass(frozen=True)
class EventType:
    """One touchpoint of the journey and the stage it belongs to."""

    key: str
    stage: str
    label: str
    actor: str
    value_meaning: str | None


@dataclass(frozen=True)
class Catalogue:
    """Stages, channels and event types of the journey, loaded from package data."""

    stages: tuple[Stage, ...]
    channels: tuple[str, ...]
    event_types: tuple[EventType, ...]

    @property
    def event_type_keys(self) -> tuple[str, ...]:
        """Event type keys in catalogue order (stage order, then listing order)."""
        return tuple(e.key for e in self.event_types)

    @property
    def stage_keys(self) -> tuple[str, ...]:
        """Stage keys in journey order."""
        return tuple(s.key for s in self.stages)

    def stage_of(self, event_type: str) -> Stage:
        """The stage of an event type; raises KeyError naming the unknown type."""
        for e in self.event_types:
            if e.key == event_type:
                return self.stage(e.stage)
        raise KeyError(f"unknown event type {event_type!r}")

    def stage(self, key: str) -> Stage:
        """A stage by key; raises KeyError naming the unknown stage."""
        for s in self.stages:
            if s.key == key:
                return s
        raise KeyError(f"unknown stage {key!r}")

    def event_type(self, key: str) -> EventType:
        """An event type by key; raises KeyError naming the unknown type."""
        for e in self.event_types:
            if e.key == key:
                return e
        raise KeyError(f"unknown event type {key!r}")

    def stage_map(self) -> dict[str, str]:
        """Event type key -> stage key."""
        return {e.key: e.stage for e in self.event_types}


@cache
def catalogue() -> Catalogue:
    """The journey catalogue shipped with the package (read once, then cached)."""
    raw = json.loads(
        resources.files("cjm_ml").joinpath("data/journey_catalogue.json").read_text("utf-8")
    )
    stages = tuple(
        Stage(key=s["key"], label=s["label"], order=i, color=s["color"])
        for i, s in enumerate(raw["stages"])
    )
    stage_keys = {s.key for s in stages}
    types = []
    for e in raw["event_types"]:
        if e["stage"] not in stage_keys:
            raise ValueError(f"event type {e['key']!r} names unknown stage {e['stage']!r}")
        types.append(
            EventType(
                key=e["key"],
                stage=e["stage"],
                label=e["label"],
                actor=e["actor"],
                value_meaning=e["value"],
            )
        )
    order = {s.key: s.order for s in stages}
    types.sort(key=lambda t: order[t.stage])  # stable: keeps listing order within a stage
    return Catalogue(stages=stages, channels=tuple(raw["channels"]), event_types=tuple(types))


def event_dtypes() -> dict[str, Any]:
    """The typed dtypes of the canonical table, categoricals fixed to the catalogue."""
    return dict(_event_dtypes())


@cache
def _event_dtypes() -> dict[str, Any]:
    cat = catalogue()
    return {
        "event_id": "string",
        "dealer_group_id": "category",
        "rooftop_id": "category",
        "customer_id": "string",
        "ts": TS_DTYPE,
        "event_type": pd.CategoricalDtype(list(cat.event_type_keys)),
        "channel": pd.CategoricalDtype(list(cat.channels)),
        "source": "category",
        "vehicle_id": "string",
        "value": "float64",
        "attributes": "string",
    }


def empty_events() -> pd.DataFrame:
    """An empty canonical event table with the right dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in event_dtypes().items()})


# --------------------------------------------------------------------------------------------
# Validation


@dataclass(frozen=True)
class Violation:
    """One broken rule: where (file, 1-based data row, column), the bad value, and the rule."""

    file: str
    row: int | None
    column: str
    value: str
    rule: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file} row {self.row}" if self.row is not None else self.file
        return (
            f"{where}, column {self.column!r}: {self.message} "
            f"(value {self.value}; rule {self.rule})"
        )


class EventValidationError(ValueError):
    """Raised when an events file breaks the event model; carries every violation found."""

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = violations
        shown = violations[:MAX_REPORTED_VIOLATIONS]
        lines = [str(v) for v in shown]
        if len(violations) > len(shown):
            lines.append(f"... and {len(violations) - len(shown)} more violations")
        super().__init__(f"{len(violations)} violation(s):\n" + "\n".join(lines))


_OFFSET_RE = r"(?:Z|[+-]\d{2}(?::?\d{2})?)$"
_NAIVE_TS = "timestamp has no timezone; give it in UTC (e.g. 2025-03-01T14:05:00Z)"


def _violations(
    file: str, rows: np.ndarray, column: str, values: pd.Series, rule: str, message: str
) -> list[Violation]:
    """Violations for the 0-based positions ``rows`` (reported 1-based)."""
    return [
        Violation(
            file=file, row=int(r) + 1, column=column, value=repr(v), rule=rule, message=message
        )
        for r, v in zip(rows.tolist(), values.iloc[rows].tolist(), strict=True)
    ]


def _where(mask: pd.Series) -> np.ndarray:
    """0-based positions where ``mask`` is True."""
    return np.flatnonzero(mask.to_numpy())


def _blank(s: pd.Series) -> pd.Series:
    """True where a value is missing or only whitespace."""
    if not (pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype)):
        return s.isna()
    as_str = s.astype("string")
    return as_str.isna() | (as_str.str.strip() == "")


def _parse_ts(raw: pd.Series, file: str) -> tuple[pd.Series, list[Violation]]:
    """Parse timestamps to UTC; naive and unparsable values are violations."""
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC").astype(TS_DTYPE), []
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        naive = _violations(
            file, _where(raw.notna()), "ts", raw.astype("string"), "ts_timezone", _NAIVE_TS
        )
        return pd.Series(pd.NaT, index=raw.index, dtype=TS_DTYPE), naive
    return _parse_ts_text(raw, file)


def _parse_ts_text(raw: pd.Series, file: str) -> tuple[pd.Series, list[Violation]]:
    """``_parse_ts`` for timestamps given as text: ISO 8601 with an offset (or Z)."""
    text = raw.astype("string").str.strip()
    present = text.notna() & (text != "")
    has_offset = text.str.contains(_OFFSET_RE, regex=True).fillna(False).astype(bool)
    parsed = pd.to_datetime(
        text.where(present & has_offset), utc=True, errors="coerce", format="ISO8601"
    )
    naive = present & ~has_offset
    naive_parsable = (
        naive & pd.to_datetime(text.where(naive), errors="coerce", format="ISO8601").notna()
    )
    unparsable = present & ((has_offset & parsed.isna()) | (naive & ~naive_parsable))
    violations = [
        *_violations(file, _where(naive_parsable), "ts", raw, "ts_timezone", _NAIVE_TS),
        *_violations(
            file, _where(unparsable), "ts", raw, "ts_parsable", "not an ISO 8601 timestamp"
        ),
    ]
    return parsed.astype(TS_DTYPE), violations


@dataclass(frozen=True)
class _RawEvents:
    """A raw event table read once for the rules and the typed table: ``table`` (every
    column, optional ones added empty, rows numbered from 0) and the columns the rules and the
    typed table share, normalised."""

    file: str
    table: pd.DataFrame
    event_id: pd.Series  # as strings
    ts: pd.Series  # UTC; NaT where missing or not valid
    ts_violations: list[Violation]
    event_type: pd.Series  # stripped strings
    channel: pd.Series  # stripped strings, <NA> where blank
    value: pd.Series  # numbers, NaN where missing or not a number


def _read_raw(raw: pd.DataFrame, file: str) -> _RawEvents:
    """The raw table with its optional columns added and its shared columns normalised."""
    table = raw.reset_index(drop=True).copy()
    for c in OPTIONAL_COLUMNS:
        if c not in table.columns:
            table[c] = pd.NA
    ts, ts_violations = _parse_ts(table["ts"], file)
    return _RawEvents(
        file=file,
        table=table,
        event_id=table["event_id"].astype("string"),
        ts=ts,
        ts_violations=ts_violations,
        event_type=table["event_type"].astype("string").str.strip(),
        channel=table["channel"].astype("string").str.strip().replace("", pd.NA),
        value=pd.to_numeric(table["value"], errors="coerce"),
    )


# One rule per check: each returns its violations, in row order.


def _missing_columns(raw: pd.DataFrame, file: str) -> list[Violation]:
    """A required column absent from the file (reported without a row)."""
    return [
        Violation(
            file=file,
            row=None,
            column=c,
            value="<absent>",
            rule="required_column",
            message="required column is missing",
        )
        for c in REQUIRED_COLUMNS
        if c not in raw.columns
    ]


def _required_values(raw: _RawEvents) -> list[Violation]:
    """A blank value in a required column (``ts`` has its own rule), column by column."""
    violations: list[Violation] = []
    for c in REQUIRED_COLUMNS:
        if c != "ts":
            column = raw.table[c]
            blank = _where(_blank(column))
            violations += _violations(
                raw.file, blank, c, column, f"{c}_required", f"{c} is missing"
            )
    return violations


def _unique_event_ids(raw: _RawEvents) -> list[Violation]:
    """An event_id seen on an earlier row (the message names that row)."""
    ids = raw.event_id
    duplicate = _where(ids.notna() & ids.duplicated(keep="first"))
    if not len(duplicate):
        return []
    first_row = {v: i for i, v in reversed(list(enumerate(ids.tolist())))}
    return [
        Violation(
            file=raw.file,
            row=r + 1,
            column="event_id",
            value=repr(ids.iloc[r]),
            rule="event_id_unique",
            message=f"duplicate event_id, first seen on row {first_row[ids.iloc[r]] + 1}",
        )
        for r in duplicate.tolist()
    ]


def _valid_timestamps(raw: _RawEvents) -> list[Violation]:
    """A naive or unparsable timestamp, then a missing one."""
    ts = raw.table["ts"]
    blank = _violations(raw.file, _where(_blank(ts)), "ts", ts, "ts_required", "ts is missing")
    return raw.ts_violations + blank


def _known_event_types(raw: _RawEvents) -> list[Violation]:
    """An event type the catalogue does not list (blank ones are ``_required_values``')."""
    etype = raw.event_type
    unknown = etype.notna() & (etype != "") & ~etype.isin(catalogue().event_type_keys)
    return _violations(
        raw.file,
        _where(unknown),
        "event_type",
        raw.table["event_type"],
        "event_type_known",
        "unknown event type; see the catalogue in the README",
    )


def _known_channels(raw: _RawEvents) -> list[Violation]:
    """A channel the catalogue does not list (a blank channel is allowed)."""
    channels = catalogue().channels
    return _violations(
        raw.file,
        _where(raw.channel.notna() & ~raw.channel.isin(channels)),
        "channel",
        raw.table["channel"],
        "channel_known",
        f"unknown channel; expected one of {', '.join(channels)}",
    )


def _numeric_values(raw: _RawEvents) -> list[Violation]:
    """A value that is given but is not a number."""
    given = raw.table["value"]
    bad = given.notna() & raw.value.isna() & ~_blank(given)
    return _violations(
        raw.file, _where(bad), "value", given, "value_numeric", "value must be a number"
    )


def _json_attributes(raw: _RawEvents) -> list[Violation]:
    """Attributes that are given but are not a JSON object."""
    attrs = raw.table["attributes"]
    text = attrs.astype("string")
    filled = text.notna() & (text.str.strip() != "")
    looks_like_object = text.str.strip().str.startswith("{").fillna(False).astype(bool)
    candidates = _where(filled & looks_like_object)
    bad = [int(i) for i in _where(filled & ~looks_like_object)]
    for i, raw_text in zip(candidates.tolist(), text.iloc[candidates].tolist(), strict=True):
        try:
            ok = isinstance(json.loads(raw_text), dict)
        except json.JSONDecodeError:
            ok = False
        if not ok:
            bad.append(i)
    return _violations(
        raw.file,
        np.array(sorted(bad), dtype=int),
        "attributes",
        attrs,
        "attributes_json",
        'attributes must be a JSON object such as {"appointment_id": "a-1"}',
    )


#: The rules every row is checked against, in the order their violations are gathered (a
#: report lists them by row, then by column in ``EVENT_COLUMNS`` order).
_RULES = (
    _required_values,
    _unique_event_ids,
    _valid_timestamps,
    _known_event_types,
    _known_channels,
    _numeric_values,
    _json_attributes,
)


def _typed(raw: _RawEvents) -> pd.DataFrame:
    """The canonical typed table of a raw table that broke no rule (in file order)."""
    dtypes = event_dtypes()
    table = raw.table
    return pd.DataFrame(
        {
            "event_id": raw.event_id,
            "dealer_group_id": table["dealer_group_id"].astype("string").astype("category"),
            "rooftop_id": table["rooftop_id"].astype("string").astype("category"),
            "customer_id": table["customer_id"].astype("string"),
            "ts": raw.ts,
            "event_type": raw.event_type.astype(dtypes["event_type"]),
            "channel": raw.channel.astype(dtypes["channel"]),
            "source": table["source"].astype("string").replace("", pd.NA).astype("category"),
            "vehicle_id": table["vehicle_id"].astype("string").replace("", pd.NA),
            "value": raw.value.astype("float64"),
            "attributes": table["attributes"].astype("string").replace("", pd.NA),
        }
    )


def validate_events(
    raw: pd.DataFrame, file: str = "<events>"
) -> tuple[pd.DataFrame, list[Violation]]:
    """Check a raw event table against the event model.

    Returns the typed table (categoricals, UTC timestamps, sorted by customer and time) and the
    list of violations; the table is only meaningful when the list is empty. Never raises on
    bad data: every problem becomes a ``Violation`` naming file, row, column, value and rule,
    listed by row, then column. A missing required column is reported alone.
    """
    missing = _missing_columns(raw, file)
    if missing:
        return empty_events(), missing
    read = _read_raw(raw, file)
    violations = [v for rule in _RULES for v in rule(read)]
    violations.sort(key=lambda v: (v.row or 0, EVENT_COLUMNS.index(v.column)))
    if violations:
        return empty_events(), violations
    return sort_events(_typed(read)), []


def sort_events(events: pd.DataFrame) -> pd.DataFrame:
    """Canonical order: customer, time, then event_id (so ties are deterministic)."""
    return events.sort_values(["customer_id", "ts", "event_id"], kind="stable").reset_index(
        drop=True
    )


def read_raw_events(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet events file as it is, without typing (strings stay strings)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    raise ValueError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")


def load_events(path: Path) -> pd.DataFrame:
    """Read and validate an events file (CSV or Parquet) into the typed canonical table.

    Raises ``EventValidationError`` listing every violation (file, row, column, value, rule),
    or ``FileNotFoundError`` / ``ValueError`` for a missing or unsupported file.
    """
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such events file")
    typed, violations = validate_events(read_raw_events(path), file=path.name)
    if violations:
        raise EventValidationError(violations)
    return typed
