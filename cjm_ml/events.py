"""The canonical journey event model: one table every part of cjm-ml reads.

The catalogue of stages, channels and event types is data (``data/journey_catalogue.json``);
this module loads it, defines the table's columns and dtypes, and validates files against it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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
    "recorded_ts",
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
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "channel",
    "source",
    "vehicle_id",
    "value",
    "attributes",
    "recorded_ts",
)
TS_DTYPE = "datetime64[us, UTC]"
#: When the source system recorded an event (``ts`` is when it happened): a CRM writes a
#: no-show, a lost lead or a closed repair order after the fact. Missing means "recorded when
#: it happened"; it is never before ``ts``. Features see an event only once it is recorded.
RECORDED_TS = "recorded_ts"
#: How many violations a report lists row by row before it counts the rest.
MAX_REPORTED_VIOLATIONS = 200
#: From this many violations a report starts with a summary by rule and value.
SUMMARY_FROM = 10
#: How many distinct values of one rule the summary lists (the most common first) ...
SUMMARY_VALUES = 10
#: ... and how many of each value's first rows it names.
SUMMARY_FIRST_ROWS = 3


@dataclass(frozen=True)
class Stage:
    """A journey stage, in the order customers normally pass through them."""

    key: str
    label: str
    order: int
    color: str


#: How an attribute is read: ``id`` a JSON string or integer (read as a string), ``start`` an
#: ISO 8601 time with its zone, not before the event itself, ``word`` one of the rule's
#: ``values`` (the catalogue says so too).
AttributeKind = Literal["id", "start", "word"]
#: An id's part in the booking chain: ``books`` (the event books an appointment under it) or
#: ``refers`` (it names a booking of the same customer in the same file).
BookingRole = Literal["books", "refers"]


@dataclass(frozen=True)
class AttributeRule:
    """What an event type's ``attributes`` must carry under ``key``."""

    key: str
    kind: AttributeKind
    required: bool = False
    booking: BookingRole | None = None
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class EventType:
    """One touchpoint of the journey, the stage it belongs to and its typed attributes."""

    key: str
    stage: str
    label: str
    actor: str
    value_meaning: str | None
    attributes: tuple[AttributeRule, ...] = ()


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

    def attribute_rules(self) -> tuple[tuple[str, AttributeRule], ...]:
        """(event type key, rule) for every typed attribute, in catalogue order."""
        return tuple((e.key, rule) for e in self.event_types for rule in e.attributes)

    def booking_types(self) -> tuple[str, ...]:
        """The event types that book an appointment (an attribute with the ``books`` role; a
        reschedule books a new one), in catalogue order."""
        return tuple(
            e.key for e in self.event_types if any(r.booking == "books" for r in e.attributes)
        )


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
                attributes=_attribute_rules(e["key"], e.get("attributes", {}), raw),
            )
        )
    order = {s.key: s.order for s in stages}
    types.sort(key=lambda t: order[t.stage])  # stable: keeps listing order within a stage
    return Catalogue(stages=stages, channels=tuple(raw["channels"]), event_types=tuple(types))


def _attribute_rules(
    event_type: str, given: dict[str, dict[str, Any]], raw: dict[str, Any]
) -> tuple[AttributeRule, ...]:
    """An event type's attribute rules from the catalogue; raises ValueError naming an unknown
    kind, booking role or setting."""
    rules = []
    for key, spec in given.items():
        where = f"event type {event_type!r}, attribute {key!r}"
        unknown = set(spec) - {"kind", "required", "booking", "values"}
        if unknown:
            raise ValueError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
        if spec.get("kind") not in raw["attribute_kinds"]:
            raise ValueError(f"{where}: unknown kind {spec.get('kind')!r}")
        booking = spec.get("booking")
        if booking is not None and booking not in raw["booking_roles"]:
            raise ValueError(f"{where}: unknown booking role {booking!r}")
        values = tuple(spec.get("values", ()))
        if (spec["kind"] == "word") != bool(values):
            raise ValueError(f"{where}: a word attribute, and only one, lists its values")
        rules.append(
            AttributeRule(
                key=key,
                kind=spec["kind"],
                required=bool(spec.get("required")),
                booking=booking,
                values=values,
            )
        )
    return tuple(rules)


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
        "recorded_ts": TS_DTYPE,
    }


def empty_events() -> pd.DataFrame:
    """An empty canonical event table with the right dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in event_dtypes().items()})


# --------------------------------------------------------------------------------------------
# Validation


@dataclass(frozen=True)
class Violation:
    """One broken rule: where (file, 1-based data row, column), the bad value, and the rule.

    ``column`` is a column of the table, or ``attributes.KEY`` for one attribute."""

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
    """Raised when an events file breaks the event model; carries every violation found.

    Its text is the summary first (from ``SUMMARY_FROM`` violations: each rule, its distinct
    values with their count and first rows), then the violations row by row, the first
    ``MAX_REPORTED_VIOLATIONS`` of them and a count of the rest."""

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = violations
        super().__init__(report(violations))


def report(violations: list[Violation]) -> str:
    """The text of a validation report (see ``EventValidationError``)."""
    shown = violations[:MAX_REPORTED_VIOLATIONS]
    files = dict.fromkeys(v.file for v in violations)
    lines = [f"{len(violations):,} violation(s) in {', '.join(files)}"]
    if len(violations) >= SUMMARY_FROM:
        lines += ["Summary by rule (value: rows, first rows):", *_summary(violations)]
        lines.append(f"Row by row (the first {len(shown):,}):")
    lines += [str(v) for v in shown]
    if len(violations) > len(shown):
        lines.append(f"... and {len(violations) - len(shown):,} more")
    return "\n".join(lines)


@dataclass
class _ValueCount:
    rows: int
    first_rows: list[int]


def _summary(violations: list[Violation]) -> list[str]:
    """Per rule and column, its distinct values by count (the most common first, capped)."""
    groups: dict[tuple[str, str], dict[str, _ValueCount]] = {}
    messages: dict[tuple[str, str], str | None] = {}
    for v in violations:
        group = (v.rule, v.column)
        values = groups.setdefault(group, {})
        count = values.get(v.value)
        if count is None:
            values[v.value] = count = _ValueCount(rows=0, first_rows=[])
        count.rows += 1
        if len(count.first_rows) < SUMMARY_FIRST_ROWS and v.row is not None:
            count.first_rows.append(v.row)
        if messages.setdefault(group, v.message) != v.message:
            messages[group] = None  # the message varies by row: the detail below has it
    lines = []
    for (rule, column), values in groups.items():
        total = sum(c.rows for c in values.values())
        said = f": {messages[(rule, column)]}" if messages[(rule, column)] else ""
        lines.append(
            f"  {rule}, column {column!r}: {total:,} row(s), {len(values):,} distinct "
            f"value(s){said}"
        )
        ranked = sorted(values.items(), key=lambda item: -item[1].rows)  # stable: first seen
        for value, count in ranked[:SUMMARY_VALUES]:
            first = ", ".join(str(r) for r in count.first_rows)
            lines.append(f"    {value}: {count.rows:,} row(s), first {first or 'none'}")
        if len(ranked) > SUMMARY_VALUES:
            lines.append(f"    and {len(ranked) - SUMMARY_VALUES:,} more value(s)")
    return lines


_OFFSET_RE = r"(?:Z|[+-]\d{2}(?::?\d{2})?)$"
_NAIVE_TS = "timestamp has no timezone; give it in UTC (e.g. 2025-03-01T14:05:00Z)"
#: A date followed by a time of day (at least the hour): a start must say when in the day.
_HAS_TIME_RE = r"^\d{4}-?\d{2}-?\d{2}[T ]\d{2}"
_NAIVE_START = "needs a time of day with its time zone (e.g. 2025-03-04T15:30:00Z)"
_NOT_ISO = "not an ISO 8601 timestamp"


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


def _where(mask: pd.Series | np.ndarray) -> np.ndarray:
    """0-based positions where ``mask`` is True."""
    return np.flatnonzero(np.asarray(mask, dtype=bool))


def _blank(s: pd.Series) -> pd.Series:
    """True where a value is missing or only whitespace."""
    if not (pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype)):
        return s.isna()
    as_str = s.astype("string")
    return as_str.isna() | (as_str.str.strip() == "")


def _flag(s: pd.Series) -> np.ndarray:
    """A nullable boolean Series as a plain array, missing -> False."""
    return s.fillna(False).to_numpy(dtype=bool)


def _parse_ts(raw: pd.Series, file: str, column: str = "ts") -> tuple[pd.Series, list[Violation]]:
    """Parse the timestamps of ``column`` to UTC; naive and unparsable values are violations
    (rules ``<column>_timezone`` and ``<column>_parsable``)."""
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC").astype(TS_DTYPE), []
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        naive_ts = _violations(
            file, _where(raw.notna()), column, raw.astype("string"), f"{column}_timezone",
            _NAIVE_TS,
        )  # fmt: skip
        return pd.Series(pd.NaT, index=raw.index, dtype=TS_DTYPE), naive_ts
    parsed, naive, unparsable = _parse_iso(raw.astype("string"))
    violations = [
        *_violations(file, _where(naive), column, raw, f"{column}_timezone", _NAIVE_TS),
        *_violations(file, _where(unparsable), column, raw, f"{column}_parsable", _NOT_ISO),
    ]
    return parsed, violations


def _parse_recorded(table: pd.DataFrame, file: str) -> tuple[pd.Series | None, list[Violation]]:
    """``recorded_ts`` parsed like ``ts`` (NaT where not given), or ``None`` for a file without
    the column or with it empty throughout (no parsing, no check, a null column typed)."""
    raw = table.get(RECORDED_TS)
    if raw is None or (not isinstance(raw.dtype, pd.DatetimeTZDtype) and not raw.notna().any()):
        return None, []
    return _parse_ts(raw, file, RECORDED_TS)


def _parse_iso(text: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """ISO 8601 texts as UTC moments (NaT unless given with an offset or Z), and where a
    present text is naive but parsable, or not parsable at all."""
    text = text.str.strip()
    present = _flag(text.notna() & (text != ""))
    has_offset = _flag(text.str.contains(_OFFSET_RE, regex=True))
    parsed = pd.to_datetime(
        text.where(present & has_offset), utc=True, errors="coerce", format="ISO8601"
    )
    naive = present & ~has_offset
    naive_parsable = (
        naive & pd.to_datetime(text.where(naive), errors="coerce", format="ISO8601").notna()
    )
    unparsable = present & ((has_offset & parsed.isna().to_numpy()) | (naive & ~naive_parsable))
    return parsed.astype(TS_DTYPE), naive_parsable, unparsable


# --------------------------------------------------------------------------------------------
# Attributes, read without parsing every row in Python: a flat object of plain strings and
# numbers (what exports write) is recognised and read by regular expressions over the whole
# column (pyarrow, RE2); only the rest (nested values, escapes, a key given twice) goes
# through ``json.loads``, one row at a time.

_WS = r"[ \t\n\r]*"  # JSON's whitespace, nothing more
_JSON_STRING = r'"[^"\\\x00-\x1f]*"'  # no escapes, no control characters
_JSON_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_JSON_SCALAR = rf"(?:{_JSON_STRING}|{_JSON_NUMBER}|true|false|null)"
_PAIR = rf"{_JSON_STRING}{_WS}:{_WS}{_JSON_SCALAR}"
_FLAT_OBJECT = rf"^{_WS}\{{{_WS}(?:{_PAIR}{_WS}(?:,{_WS}{_PAIR}{_WS})*)?\}}{_WS}$"
_INTEGER = r"^-?(?:0|[1-9][0-9]*)$"
_NOT_AN_OBJECT = 'attributes must be a JSON object such as {"appointment_id": "a-1"}'

# How an attribute is given on a row.
_ABSENT, _STRING, _INTEGER_ID, _OTHER = 0, 1, 2, 3


@dataclass(frozen=True)
class _Attribute:
    """One attribute on every row: how it is given (``_ABSENT``, ``_STRING``, ``_INTEGER_ID``
    or ``_OTHER``; JSON null counts as absent) and its text (the string, the integer's
    digits, other values as JSON; <NA> where absent)."""

    given: np.ndarray
    text: pd.Series


@dataclass(frozen=True)
class _Attributes:
    """The ``attributes`` column read once: where it is not a JSON object, each typed key, and
    the text the typed table keeps (integer ids written as strings)."""

    not_an_object: np.ndarray
    keys: dict[str, _Attribute]
    normalised: pd.Series


def _typed_keys() -> tuple[str, ...]:
    """Every attribute key the catalogue types, in catalogue order."""
    return tuple(dict.fromkeys(rule.key for _, rule in catalogue().attribute_rules()))


def _id_keys() -> tuple[str, ...]:
    """The attribute keys the catalogue reads as ids (normalised to strings on every row)."""
    return tuple(dict.fromkeys(r.key for _, r in catalogue().attribute_rules() if r.kind == "id"))


def _read_attributes(column: pd.Series) -> _Attributes:
    """Read the ``attributes`` column: flat objects by regular expression, the rest by
    ``json.loads`` row by row."""
    text = column.astype("string")
    arrow = _arrow_text(text)
    filled = _flag(text.notna() & (text.str.strip() != ""))
    flat = filled & _arrow_flag(pc.match_substring_regex(arrow, _FLAT_OBJECT))
    keys: dict[str, _Attribute] = {}
    for key in _typed_keys():
        twice = pc.greater(pc.count_substring_regex(arrow, rf'"{re.escape(key)}"{_WS}:'), 1)
        flat &= ~_arrow_flag(twice)  # a key given twice: json.loads keeps the last one
    for key in _typed_keys():
        keys[key] = _flat_attribute(arrow, flat, key)
    slow = np.flatnonzero(filled & ~flat)
    not_an_object = np.zeros(len(text), dtype=bool)
    normalised = text.copy()
    ids = _id_keys()
    for i, raw_text in zip(slow.tolist(), text.iloc[slow].tolist(), strict=True):
        try:
            parsed = json.loads(raw_text)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            not_an_object[i] = True
            continue
        for key, attribute in keys.items():
            attribute.given[i], attribute.text.iloc[i] = _classify(parsed.get(key))
        if any(_classify(parsed.get(k))[0] == _INTEGER_ID for k in ids):
            as_text = {k: str(v) if k in ids and _classify(v)[0] == _INTEGER_ID else v
                       for k, v in parsed.items()}  # fmt: skip
            normalised.iloc[i] = json.dumps(as_text, ensure_ascii=False)
    _normalise_flat_ids(normalised, arrow, flat, keys, ids)
    return _Attributes(not_an_object=not_an_object, keys=keys, normalised=normalised)


def _arrow_flag(mask: pa.Array) -> np.ndarray:
    """A pyarrow boolean array as a plain array, null -> False."""
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _flat_attribute(arrow: pa.Array, flat: np.ndarray, key: str) -> _Attribute:
    """``key`` on the flat rows, read from its JSON token."""
    pattern = rf'"{re.escape(key)}"{_WS}:{_WS}(?P<v>"[^"]*"|[^ \t\n\r,}}]+)'
    found = pc.struct_field(pc.extract_regex(arrow, pattern), [0])
    token = pc.if_else(pa.array(flat), found, pa.scalar(None, type=found.type))
    null = pc.equal(token, "null")
    quoted = _arrow_flag(pc.starts_with(token, '"'))
    integer = _arrow_flag(pc.match_substring_regex(token, _INTEGER))
    present = _arrow_flag(pc.is_valid(token)) & ~_arrow_flag(null)
    given = np.select(
        [quoted, integer, present], [_STRING, _INTEGER_ID, _OTHER], default=_ABSENT
    ).astype(np.int8)
    unquoted = pc.if_else(pa.array(quoted), pc.utf8_slice_codeunits(token, 1, -1), token)
    text = pc.if_else(pa.array(given != _ABSENT), unquoted, pa.scalar(None, type=found.type))
    return _Attribute(given=given, text=pd.Series(pd.arrays.ArrowStringArray(text)))


def _classify(value: Any) -> tuple[int, str | None]:
    """How a parsed JSON value is given, and its text."""
    if value is None:
        return _ABSENT, None
    if isinstance(value, str):
        return _STRING, value
    if isinstance(value, int) and not isinstance(value, bool):
        return _INTEGER_ID, str(value)
    return _OTHER, json.dumps(value)


def _normalise_flat_ids(
    normalised: pd.Series,
    arrow: pa.Array,
    flat: np.ndarray,
    keys: dict[str, _Attribute],
    ids: tuple[str, ...],
) -> None:
    """Quote the integer ids of the flat rows in ``normalised`` (other rows are left)."""
    rows = np.zeros(len(flat), dtype=bool)
    for key in ids:
        rows |= flat & (keys[key].given == _INTEGER_ID)
    if not rows.any():
        return
    names = "|".join(re.escape(k) for k in ids)
    at = np.flatnonzero(rows)
    quoted = pc.replace_substring_regex(
        arrow.take(pa.array(at)),
        rf'("(?:{names})"{_WS}:{_WS})(-?[0-9]+)({_WS}[,}}])',
        r'\1"\2"\3',
    )
    normalised.iloc[at] = pd.array(quoted.to_pylist(), dtype="string")


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
    recorded_ts: pd.Series | None  # UTC; NaT where not given or not valid; None: on no row
    recorded_violations: list[Violation]
    event_type: pd.Series  # stripped strings
    event_type_code: np.ndarray  # position in the catalogue, -1 where unknown
    channel: pd.Series  # stripped strings, <NA> where blank
    value: pd.Series  # numbers, NaN where missing or not a number
    attributes: _Attributes


def _read_raw(raw: pd.DataFrame, file: str) -> _RawEvents:
    """The raw table with its optional columns added and its shared columns normalised."""
    table = raw.reset_index(drop=True).copy()
    for c in OPTIONAL_COLUMNS:
        if c not in table.columns and c != RECORDED_TS:  # recorded_ts: see _parse_recorded
            table[c] = pd.NA
    ts, ts_violations = _parse_ts(table["ts"], file)
    recorded_ts, recorded_violations = _parse_recorded(table, file)
    event_type = table["event_type"].astype("string").str.strip()
    return _RawEvents(
        file=file,
        table=table,
        event_id=table["event_id"].astype("string"),
        ts=ts,
        ts_violations=ts_violations,
        recorded_ts=recorded_ts,
        recorded_violations=recorded_violations,
        event_type=event_type,
        event_type_code=_catalogue_positions(event_type),
        channel=table["channel"].astype("string").str.strip().replace("", pd.NA),
        value=pd.to_numeric(table["value"], errors="coerce"),
        attributes=_read_attributes(table["attributes"]),
    )


def _catalogue_positions(event_type: pd.Series) -> np.ndarray:
    """Each event type's position in the catalogue, -1 where it is not listed."""
    keys = pa.array(catalogue().event_type_keys, type=pa.large_string())
    found = pc.index_in(_arrow_text(event_type), value_set=keys)
    return np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), dtype=np.int64)


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


def _valid_recorded_times(raw: _RawEvents) -> list[Violation]:
    """A naive or unparsable ``recorded_ts``, then one before the event's own ``ts`` (a
    blank one is allowed: recorded when it happened)."""
    if raw.recorded_ts is None:
        return []
    early = _where(raw.recorded_ts < raw.ts)  # NaT on either side compares False
    if not len(early):
        return raw.recorded_violations
    return [
        *raw.recorded_violations,
        *_violations(
            raw.file,
            early,
            RECORDED_TS,
            raw.table[RECORDED_TS],
            "recorded_before_event",
            "recorded_ts is before the event's own ts (an event is recorded when or after it "
            "happens)",
        ),
    ]


def _known_event_types(raw: _RawEvents) -> list[Violation]:
    """An event type the catalogue does not list (blank ones are ``_required_values``')."""
    etype = raw.event_type
    unknown = _flag(etype.notna() & (etype != "")) & (raw.event_type_code < 0)
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
    return _violations(
        raw.file,
        _where(raw.attributes.not_an_object),
        "attributes",
        raw.table["attributes"],
        "attributes_json",
        _NOT_AN_OBJECT,
    )


def _typed_attributes(raw: _RawEvents) -> list[Violation]:
    """The catalogue's attribute rules, event type by event type: a required attribute
    missing, an id that is neither a string nor an integer, a start that is not ISO 8601 with
    its zone or is before the event itself (rows whose attributes are no JSON object are
    ``_json_attributes``')."""
    violations: list[Violation] = []
    codes = {key: i for i, key in enumerate(catalogue().event_type_keys)}
    for event_type, rule in catalogue().attribute_rules():
        rows = (raw.event_type_code == codes[event_type]) & ~raw.attributes.not_an_object
        attribute = raw.attributes.keys[rule.key]
        column = f"attributes.{rule.key}"
        if rule.required:
            missing = rows & (
                (attribute.given == _ABSENT)
                | ((attribute.given == _STRING) & _flag(attribute.text.str.strip() == ""))
            )
            violations += [
                Violation(
                    file=raw.file,
                    row=r + 1,
                    column=column,
                    value="<absent>" if pd.isna(text) else repr(text),
                    rule="attribute_required",
                    message=f"{event_type} needs {rule.key} in its attributes",
                )
                for r, text in zip(
                    _where(missing).tolist(), attribute.text[missing].tolist(), strict=True
                )
            ]
        if rule.kind == "id":
            wrong = rows & (attribute.given == _OTHER)
            violations += _violations(
                raw.file,
                _where(wrong),
                column,
                attribute.text,
                "attribute_id",
                f"{rule.key} must be a JSON string or integer",
            )
        elif rule.kind == "word":
            given = rows & (attribute.given != _ABSENT)
            wrong = given & ~_flag(attribute.text.isin(rule.values))
            violations += _violations(
                raw.file,
                _where(wrong),
                column,
                attribute.text,
                "attribute_word",
                f"{rule.key} must be one of {', '.join(rule.values)}",
            )
        else:
            violations += _starts(raw, _where(rows & (attribute.given != _ABSENT)), rule.key)
    return violations


def _starts(raw: _RawEvents, rows: np.ndarray, key: str) -> list[Violation]:
    """A start (at ``rows``, given) that is not ISO 8601 with a time of day and its zone, or
    that is before the event's own ``ts``."""
    column = f"attributes.{key}"
    attribute = raw.attributes.keys[key]
    text = attribute.text.iloc[rows].where(attribute.given[rows] == _STRING)
    parsed, naive, unparsable = _parse_iso(text)
    unparsable |= attribute.given[rows] != _STRING
    dated_only = ~naive & ~unparsable & ~_flag(text.str.strip().str.contains(_HAS_TIME_RE))
    ts = raw.ts.iloc[rows].to_numpy()
    early = (parsed.notna() & (parsed.to_numpy() < ts)).to_numpy() & ~dated_only
    early &= ~pd.isna(ts)
    shown = attribute.text
    return [
        *_violations(raw.file, rows[naive | dated_only], column, shown, "attribute_ts_timezone",
                     f"{key} {_NAIVE_START}"),
        *_violations(raw.file, rows[unparsable], column, shown, "attribute_ts_parsable",
                     f"{key} is {_NOT_ISO}"),
        *_violations(raw.file, rows[early], column, shown, "start_before_event",
                     f"{key} is before the event's own ts"),
    ]  # fmt: skip


def _known_bookings(raw: _RawEvents) -> list[Violation]:
    """An id that should name a booking (an outcome's ``appointment_id``, a reschedule's
    ``rescheduled_from``) but that no booking of the same customer in the table carries."""
    codes = {key: i for i, key in enumerate(catalogue().event_type_keys)}
    customer = _arrow_text(raw.table["customer_id"])
    booked: list[pa.Array] = []
    refers: list[tuple[np.ndarray, str]] = []
    for event_type, rule in catalogue().attribute_rules():
        attribute = raw.attributes.keys[rule.key]
        rows = (raw.event_type_code == codes[event_type]) & ~raw.attributes.not_an_object
        rows &= (attribute.given == _STRING) | (attribute.given == _INTEGER_ID)
        if rule.booking == "books":
            booked.append(_customer_and(customer, attribute, _where(rows)))
        elif rule.booking == "refers":
            rows &= _flag(attribute.text.str.strip() != "")
            refers.append((rows, rule.key))
    known = pa.concat_arrays(booked) if booked else pa.array([], type=pa.large_string())
    violations: list[Violation] = []
    for rows, key in refers:
        at = _where(rows)
        named = _customer_and(customer, raw.attributes.keys[key], at)
        unknown = at[~_arrow_flag(pc.is_in(named, value_set=known))]
        violations += _violations(
            raw.file,
            unknown,
            f"attributes.{key}",
            raw.attributes.keys[key].text,
            "booking_known",
            "no booking of this customer in the file has this appointment_id",
        )
    return violations


def _arrow_text(column: pd.Series) -> pa.Array:
    """A column as a pyarrow ``large_string`` array."""
    text = pa.array(column.astype("string").array, type=pa.large_string())
    return text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text


def _customer_and(customer: pa.Array, attribute: _Attribute, at: np.ndarray) -> pa.Array:
    """``customer_id`` and the attribute's text at ``at``, joined: one key per booking."""
    ids = _arrow_text(attribute.text.iloc[at])
    separator = pa.scalar("\x1f", type=pa.large_string())
    return pc.binary_join_element_wise(customer.take(pa.array(at)), ids, separator)


#: The rules every row is checked against, in the order their violations are gathered (a
#: report lists them by row, then by column in ``EVENT_COLUMNS`` order).
_RULES = (
    _required_values,
    _unique_event_ids,
    _valid_timestamps,
    _valid_recorded_times,
    _known_event_types,
    _known_channels,
    _numeric_values,
    _json_attributes,
    _typed_attributes,
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
            "attributes": raw.attributes.normalised.replace("", pd.NA),
            "recorded_ts": (
                pd.Series(pd.NaT, index=table.index, dtype=TS_DTYPE)
                if raw.recorded_ts is None
                else raw.recorded_ts
            ),
        }
    )


def validate_events(
    raw: pd.DataFrame, file: str = "<events>", *, whole_file: bool = False
) -> tuple[pd.DataFrame, list[Violation]]:
    """Check a raw event table against the event model.

    Returns the typed table (categoricals, UTC timestamps, ids in attributes as strings,
    ``recorded_ts`` always present, NaT where not given; sorted by customer and time) and the
    list of violations; the table is only meaningful when the list is empty. Never raises on
    bad data: every problem becomes a ``Violation`` naming file, row, column, value and rule,
    listed by row, then column. A missing required column is reported alone. ``whole_file``:
    the table holds every event of its customers (a file, not a batch), so an outcome must
    also name a booking of the same customer in it.
    """
    missing = _missing_columns(raw, file)
    if missing:
        return empty_events(), missing
    read = _read_raw(raw, file)
    rules = (*_RULES, _known_bookings) if whole_file else _RULES
    violations = [v for rule in rules for v in rule(read)]
    violations.sort(key=lambda v: (v.row or 0, EVENT_COLUMNS.index(v.column.split(".")[0])))
    if violations:
        return empty_events(), violations
    return sort_events(_typed(read)), []


def sort_events(events: pd.DataFrame) -> pd.DataFrame:
    """Canonical order: customer, time, then event_id (so ties are deterministic)."""
    return events.sort_values(["customer_id", "ts", "event_id"], kind="stable").reset_index(
        drop=True
    )


def read_raw_events(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet events file, or a folder of Parquet files (``cjm ingest``'s
    ``<data>/events/``, one file per load, read in name order), as it is, without typing
    (strings stay strings)."""
    if path.is_dir():
        parts = sorted(path.glob("*.parquet"))
        if not parts:
            raise ValueError(f"{path}: a folder without Parquet files of events")
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    raise ValueError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")


def load_events(path: Path) -> pd.DataFrame:
    """Read and validate a whole events file (CSV or Parquet, or a folder of Parquet files)
    into the typed canonical table.

    Raises ``EventValidationError`` listing every violation (file, row, column, value, rule;
    outcomes must name a booking of the same customer in the file), or ``FileNotFoundError`` /
    ``ValueError`` for a missing or unsupported file.
    """
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such events file")
    typed, violations = validate_events(read_raw_events(path), file=path.name, whole_file=True)
    if violations:
        raise EventValidationError(violations)
    return typed
