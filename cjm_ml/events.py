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


def _violations(
    file: str, rows: np.ndarray, column: str, values: pd.Series, rule: str, message: str
) -> list[Violation]:
    """Violations for the 0-based positions ``rows`` (reported 1-based)."""
    return [
        Violation(file, int(r) + 1, column, repr(v), rule, message)
        for r, v in zip(rows.tolist(), values.iloc[rows].tolist(), strict=True)
    ]


def _blank(s: pd.Series) -> pd.Series:
    """True where a value is missing or only whitespace."""
    if not (pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype)):
        return s.isna()
    as_str = s.astype("string")
    return as_str.isna() | (as_str.str.strip() == "")


def _parse_ts(raw: pd.Series, file: str) -> tuple[pd.Series, list[Violation]]:
    """Parse timestamps to UTC; naive and unparsable values are violations."""
    violations: list[Violation] = []
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC").astype(TS_DTYPE), violations
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        bad = np.flatnonzero(raw.notna().to_numpy())
        violations += _violations(
            file,
            bad,
            "ts",
            raw.astype("string"),
            "ts_timezone",
            "timestamp has no timezone; give it in UTC (e.g. 2025-03-01T14:05:00Z)",
        )
        return pd.Series(pd.NaT, index=raw.index, dtype=TS_DTYPE), violations
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
    violations += _violations(
        file,
        np.flatnonzero(naive_parsable.to_numpy()),
        "ts",
        raw,
        "ts_timezone",
        "timestamp has no timezone; give it in UTC (e.g. 2025-03-01T14:05:00Z)",
    )
    violations += _violations(
        file,
        np.flatnonzero(unparsable.to_numpy()),
        "ts",
        raw,
        "ts_parsable",
        "not an ISO 8601 timestamp",
    )
    return parsed.astype(TS_DTYPE), violations


def _check_attributes(attrs: pd.Series, file: str) -> list[Violation]:
    """Attributes must be empty or a JSON object."""
    text = attrs.astype("string")
    filled = text.notna() & (text.str.strip() != "")
    looks_like_object = text.str.strip().str.startswith("{").fillna(False).astype(bool)
    candidates = np.flatnonzero((filled & looks_like_object).to_numpy())
    bad = [int(i) for i in np.flatnonzero((filled & ~looks_like_object).to_numpy())]
    for i, raw in zip(candidates.tolist(), text.iloc[candidates].tolist(), strict=True):
        try:
            ok = isinstance(json.loads(raw), dict)
        except json.JSONDecodeError:
            ok = False
        if not ok:
            bad.append(i)
    return _violations(
        file,
        np.array(sorted(bad), dtype=int),
        "attributes",
        attrs,
        "attributes_json",
        'attributes must be a JSON object such as {"appointment_id": "a-1"}',
    )


def validate_events(
    raw: pd.DataFrame, file: str = "<events>"
) -> tuple[pd.DataFrame, list[Violation]]:
    """Check a raw event table against the event model.

    Returns the typed table (categoricals, UTC timestamps, sorted by customer and time) and the
    list of violations; the table is only meaningful when the list is empty. Never raises on
    bad data: every problem becomes a ``Violation`` naming file, row, column, value and rule.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        return empty_events(), [
            Violation(file, None, c, "<absent>", "required_column", "required column is missing")
            for c in missing
        ]
    df = raw.reset_index(drop=True).copy()
    for c in OPTIONAL_COLUMNS:
        if c not in df.columns:
            df[c] = pd.NA
    cat = catalogue()
    violations: list[Violation] = []
    for c in REQUIRED_COLUMNS:
        if c == "ts":
            continue
        blank = np.flatnonzero(_blank(df[c]).to_numpy())
        violations += _violations(file, blank, c, df[c], f"{c}_required", f"{c} is missing")

    ids = df["event_id"].astype("string")
    dup = ids.notna() & ids.duplicated(keep="first")
    if dup.any():
        first_row = {v: i for i, v in reversed(list(enumerate(ids.tolist())))}
        for r in np.flatnonzero(dup.to_numpy()).tolist():
            violations.append(
                Violation(
                    file,
                    r + 1,
                    "event_id",
                    repr(ids.iloc[r]),
                    "event_id_unique",
                    f"duplicate event_id, first seen on row {first_row[ids.iloc[r]] + 1}",
                )
            )

    ts, ts_violations = _parse_ts(df["ts"], file)
    violations += ts_violations
    blank_ts = np.flatnonzero(_blank(df["ts"]).to_numpy())
    violations += _violations(file, blank_ts, "ts", df["ts"], "ts_required", "ts is missing")

    etype = df["event_type"].astype("string").str.strip()
    unknown = etype.notna() & (etype != "") & ~etype.isin(cat.event_type_keys)
    violations += _violations(
        file,
        np.flatnonzero(unknown.to_numpy()),
        "event_type",
        df["event_type"],
        "event_type_known",
        "unknown event type; see the catalogue in the README",
    )

    channel = df["channel"].astype("string").str.strip().replace("", pd.NA)
    bad_channel = channel.notna() & ~channel.isin(cat.channels)
    violations += _violations(
        file,
        np.flatnonzero(bad_channel.to_numpy()),
        "channel",
        df["channel"],
        "channel_known",
        f"unknown channel; expected one of {', '.join(cat.channels)}",
    )

    value = pd.to_numeric(df["value"], errors="coerce")
    bad_value = df["value"].notna() & value.isna() & ~_blank(df["value"])
    violations += _violations(
        file,
        np.flatnonzero(bad_value.to_numpy()),
        "value",
        df["value"],
        "value_numeric",
        "value must be a number",
    )
    violations += _check_attributes(df["attributes"], file)
    violations.sort(key=lambda v: (v.row or 0, EVENT_COLUMNS.index(v.column)))
    if violations:
        return empty_events(), violations

    dtypes = event_dtypes()
    typed = pd.DataFrame(
        {
            "event_id": ids,
            "dealer_group_id": df["dealer_group_id"].astype("string").astype("category"),
            "rooftop_id": df["rooftop_id"].astype("string").astype("category"),
            "customer_id": df["customer_id"].astype("string"),
            "ts": ts,
            "event_type": etype.astype(dtypes["event_type"]),
            "channel": channel.astype(dtypes["channel"]),
            "source": df["source"].astype("string").replace("", pd.NA).astype("category"),
            "vehicle_id": df["vehicle_id"].astype("string").replace("", pd.NA),
            "value": value.astype("float64"),
            "attributes": df["attributes"].astype("string").replace("", pd.NA),
        }
    )
    return sort_events(typed), []


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
