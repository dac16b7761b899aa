"""The declarative mapping of one source export onto the canonical journey events.

A mapping file (TOML) says, for one export of one dealer system, how its rows become events.
Nothing here is specific to one system: a new export shape needs a new file, not new code.

- ``source``: the kind of export (``SourceKind``), ``dealer_group_id``: whose data it is, and
  ``row_key``: the columns that identify a source row (a load is idempotent per row key).
- ``[rooftops]``: each rooftop value the export uses (a name, a DMS store code) -> its
  ``rooftop_id`` and IANA ``time_zone``; ``default_time_zone`` for rooftops that name none.
- ``[times]``: each time column and its format: a ``strftime`` pattern or ``"ISO"`` (ISO 8601),
  or ``{ format = ..., zone = "UTC" }``. Naive times are read in the rooftop's zone (or the
  column's ``zone``); times that carry an offset keep it.
- ``[columns]``: canonical fields every event of a row carries (``rooftop`` is required) ->
  the export's column: a column name, or ``{ column = ..., values = { word = value },
  skip = [words] }`` to map its words (words in ``skip`` become missing).
- ``[events.<name>]``: one rule per event a row may yield. ``event_type`` (fixed) or
  ``event_types`` (a column's words -> event types; words in ``skip`` yield no event);
  ``channel`` (fixed) or ``channels`` (a column's words -> channels); ``when``: conditions on
  columns (``{ confirmation_sent = "Y" }``, a list of words, or ``{ present = false }``);
  ``columns``: the fields only this event carries (at least ``ts`` here or in ``[columns]``;
  ``recorded_ts``, when the system recorded it if later, is optional, a time like ``ts``);
  ``required = false`` when a row without this event's time simply lacks the event;
  ``attributes``: the export's other columns this event carries as attributes (name ->
  column, or ``{ column, values, skip }``; a column in ``[times]`` is written as an ISO time):
  a vehicle's model year, a customer's tenure, for features declared over them.
- ``[identity]``: the columns holding email, phone and name (personal data: hashed by
  ``cjm_ml.ingest.identity``, and the only columns that may carry it; they may feed nothing
  else), the DMS customer number, VIN, web visitor id, and ``source_ids`` (system -> column of
  that system's id, so a CRM lead id joins across exports).

Event types and channels are checked against the catalogue (``cjm_ml.events.catalogue``).
Errors name the file and the key path (``scheduler.toml: events.outcome.event_types.values."No
Show": unknown event type 'appointment_noshow'``). Applying a mapping is the pipeline's job.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cjm_ml.events import catalogue
from cjm_ml.tomlfiles import KeyPathError, key_path, read_toml_model

SourceKind = Literal[
    "adf",
    "crm_leads",
    "crm_activities",
    "scheduler",
    "dms_deals",
    "dms_repair_orders",
    "web",
    "customers",
    "vehicles",
]
#: The shipped mapping of each source kind that has one (``data/mappings/<name>.toml``) and the
#: export of ``cjm simulate --raw-exports`` it reads (a file, or the ADF folder), in the order
#: a whole folder of exports is best loaded: profiles first, web hits last (a visitor becomes
#: known through a lead that carries the visitor id).
SHIPPED_MAPPINGS: dict[str, tuple[str, str]] = {
    "customers": ("customers", "customers.csv"),
    "adf": ("adf_leads", "adf"),
    "crm_leads": ("crm_leads", "crm_leads.csv"),
    "crm_activities": ("crm_activities", "crm_activities.csv"),
    "scheduler": ("scheduler_appointments", "scheduler_appointments.csv"),
    "dms_deals": ("dms_deals", "dms_deals.csv"),
    "dms_repair_orders": ("dms_repair_orders", "dms_repair_orders.csv"),
    "web": ("web_events", "web_events.csv"),
}
#: The format word for ISO 8601 times (any strftime pattern is the other choice).
ISO = "ISO"
#: Canonical fields read as times: their columns must be declared in ``[times]``.
#: ``recorded_ts``: when the system recorded the event, if later than ``ts`` (a no-show
#: entered the next morning); features see the event only from then on.
TIME_FIELDS: tuple[str, ...] = ("ts", "scheduled_ts", "recorded_ts")
#: Canonical fields whose words are never mapped (times, ids, amounts; rooftops via
#: ``[rooftops]``).
UNMAPPED_FIELDS: tuple[str, ...] = (
    *TIME_FIELDS,
    "rooftop",
    "vehicle_id",
    "value",
    "appointment_id",
    "rescheduled_from",
    "ro_id",
)
_SAMPLE_TIME = datetime(2001, 2, 3, 4, 5, 6)


class MappingError(ValueError):
    """A mapping file that cannot be used, or an export that lacks its columns."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _zone(name: str) -> str:
    """``name`` if it is an IANA time zone; raises ValueError naming it otherwise."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {name!r} (an IANA name, e.g. 'America/Chicago')"
        ) from None
    return name


def _as_tuple(value: Any) -> Any:
    """A single string read as a list of one."""
    return (value,) if isinstance(value, str) else value


class Rooftop(_Strict):
    """One rooftop value of the export: its ``rooftop_id`` and, unless the default, its zone."""

    rooftop_id: str = Field(min_length=1)
    time_zone: str | None = None

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else _zone(value)


class Rooftops(_Strict):
    """The export's rooftop values -> rooftops, with a default zone."""

    default_time_zone: str | None = None
    values: dict[str, Rooftop] = Field(min_length=1)

    @field_validator("default_time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else _zone(value)

    @model_validator(mode="after")
    def _one_zone_each(self) -> Rooftops:
        zones: dict[str, str] = {}
        for word, rooftop in self.values.items():
            zone = rooftop.time_zone or self.default_time_zone
            if zone is None:
                raise KeyPathError(
                    ("values", word, "time_zone"), "no time zone, and no default_time_zone"
                )
            seen = zones.setdefault(rooftop.rooftop_id, zone)
            if seen != zone:
                raise KeyPathError(
                    ("values", word, "time_zone"),
                    f"{zone!r}, but {rooftop.rooftop_id!r} is in {seen!r} under another value",
                )
        return self

    def time_zone(self, word: str) -> str:
        """The IANA zone of a rooftop value; raises KeyError naming an unmapped value."""
        rooftop = self.values[word]
        zone = rooftop.time_zone or self.default_time_zone
        assert zone is not None  # _one_zone_each refuses a rooftop without one
        return zone


class TimeColumn(_Strict):
    """A time column's format (``ISO`` or a strftime pattern) and the zone of its naive times
    (``None``: the rooftop's)."""

    format: str
    zone: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_format(cls, value: Any) -> Any:
        return {"format": value} if isinstance(value, str) else value

    @field_validator("format")
    @classmethod
    def _readable(cls, value: str) -> str:
        if value == ISO:
            return value
        if "%" not in value:
            raise ValueError(f"{value!r} is neither {ISO!r} nor a strftime pattern")
        try:
            datetime.strptime(_SAMPLE_TIME.strftime(value), value)
        except ValueError as e:
            raise ValueError(f"{value!r} is not a strftime pattern that can be read: {e}") from None
        return value

    @field_validator("zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else _zone(value)


class Column(_Strict):
    """An export column, and optionally its words -> canonical values (``values``) and the
    words that stand for nothing (``skip``). Written as a plain column name when unmapped."""

    column: str = Field(min_length=1)
    values: dict[str, str] = {}
    skip: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"column": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _skip_apart(self) -> Column:
        for word in self.skip:
            if word in self.values:
                raise KeyPathError(("skip",), f"{word!r} is mapped in values too")
        return self

    @property
    def mapped(self) -> bool:
        """Whether the column's words are mapped (rather than taken as they are)."""
        return bool(self.values or self.skip)


#: The name of an attribute an export's column becomes (``[events.<name>.attributes]``).
_ATTRIBUTE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Columns(_Strict):
    """Canonical fields -> export columns (all optional here; ``Mapping`` says what is
    required where)."""

    ts: Column | None = None
    recorded_ts: Column | None = None
    rooftop: Column | None = None
    source: Column | None = None
    vehicle_id: Column | None = None
    value: Column | None = None
    appointment_id: Column | None = None
    scheduled_ts: Column | None = None
    rescheduled_from: Column | None = None
    ro_id: Column | None = None
    survey: Column | None = None
    condition: Column | None = None
    task: Column | None = None
    status: Column | None = None

    @model_validator(mode="after")
    def _no_word_maps(self) -> Columns:
        for field in UNMAPPED_FIELDS:
            given = getattr(self, field)
            if given is not None and given.mapped:
                raise KeyPathError(
                    (field,), f"{field} takes the column as it is, without values or skip"
                )
        return self

    def fields(self) -> dict[str, Column]:
        """The mapped fields, in declaration order."""
        return {name: c for name, c in self if c is not None}


class Condition(_Strict):
    """A condition on a column: one of ``equals`` (words), or ``present`` (filled in or not).
    Written as a word or a list of words for ``equals``."""

    equals: tuple[str, ...] | None = None
    present: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_words(cls, value: Any) -> Any:
        if isinstance(value, str | list):
            return {"equals": _as_tuple(value)}
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Condition:
        if (self.equals is None) == (self.present is None):
            raise ValueError("give exactly one of equals (words) or present (true/false)")
        return self


def _check_words(column: Column | None, name: str, known: tuple[str, ...], kind: str) -> None:
    """Refuses a value map with no words, or one mapping a word to an unknown ``kind``."""
    if column is None:
        return
    if not column.values:
        raise KeyPathError((name, "values"), f"no words mapped to {kind}s")
    for word, target in column.values.items():
        if target not in known:
            raise KeyPathError((name, "values", word), f"unknown {kind} {target!r}")


class EventRule(_Strict):
    """How a row yields one event: its type, channel, conditions and its own fields."""

    event_type: str | None = None
    event_types: Column | None = None
    channel: str | None = None
    channels: Column | None = None
    when: dict[str, Condition] = {}
    required: bool = True
    columns: Columns = Columns()
    attributes: dict[str, Column] = {}

    @field_validator("attributes")
    @classmethod
    def _own_attribute_names(cls, value: dict[str, Column]) -> dict[str, Column]:
        for name in value:
            if not _ATTRIBUTE_NAME.match(name):
                raise KeyPathError((name,), "lower case letters, digits and _, from a letter")
            if name in Columns.model_fields:
                raise KeyPathError((name,), f"a canonical field: map it in columns ({name} = ...)")
        return value

    @model_validator(mode="after")
    def _known_types_and_channels(self) -> EventRule:
        cat = catalogue()
        if (self.event_type is None) == (self.event_types is None):
            raise ValueError("give exactly one of event_type (fixed) or event_types (a column)")
        if self.event_type is not None and self.event_type not in cat.event_type_keys:
            raise KeyPathError(("event_type",), f"unknown event type {self.event_type!r}")
        _check_words(self.event_types, "event_types", cat.event_type_keys, "event type")
        if self.channel is not None and self.channels is not None:
            raise ValueError("give at most one of channel (fixed) or channels (a column)")
        if self.channel is not None and self.channel not in cat.channels:
            raise KeyPathError(("channel",), f"unknown channel {self.channel!r}")
        _check_words(self.channels, "channels", cat.channels, "channel")
        return self


class Identity(_Strict):
    """The columns that identify a person; ``email``, ``phone`` and ``name`` are personal
    data (hashed at ingest), the others keys taken as they are."""

    email: tuple[str, ...] = ()
    phone: tuple[str, ...] = ()
    name: tuple[str, ...] = ()
    dms_customer_number: str | None = None
    vin: str | None = None
    web_visitor_id: str | None = None
    source_ids: dict[str, str] = {}

    @field_validator("email", "phone", "name", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return _as_tuple(value)

    def personal_columns(self) -> dict[str, str]:
        """Column -> ``email``/``phone``/``name``: the columns holding personal data."""
        return {c: kind for kind in ("email", "phone", "name") for c in getattr(self, kind)}

    def key_columns(self) -> dict[str, str]:
        """Column -> key kind for the columns taken as they are (``source_id:<system>`` for
        a system's ids)."""
        keys = {
            kind: getattr(self, kind) for kind in ("dms_customer_number", "vin", "web_visitor_id")
        }
        keys |= {f"source_id:{system}": c for system, c in self.source_ids.items()}
        return {c: kind for kind, c in keys.items() if c is not None}


class Mapping(_Strict):
    """One source export's mapping onto canonical events (see the module docstring)."""

    source: SourceKind
    dealer_group_id: str = Field(min_length=1)
    row_key: tuple[str, ...] = Field(min_length=1)
    rooftops: Rooftops
    times: dict[str, TimeColumn] = {}
    columns: Columns
    events: dict[str, EventRule] = Field(min_length=1)
    identity: Identity = Identity()

    @model_validator(mode="after")
    def _consistent(self) -> Mapping:
        if self.columns.rooftop is None:
            raise KeyPathError(("columns", "rooftop"), "missing: the column naming the rooftop")
        shared = self.columns.fields()
        for name, rule in self.events.items():
            own = rule.columns.fields()
            for field in own:
                if field in shared or field == "rooftop":
                    raise KeyPathError(
                        ("events", name, "columns", field), "already mapped in [columns]"
                    )
            if "ts" not in own and "ts" not in shared:
                raise KeyPathError(
                    ("events", name), "no time: map ts in [columns] or in its columns"
                )
        for path, column in self._fields():
            if path[-1] in TIME_FIELDS and column.column not in self.times:
                raise KeyPathError(
                    path, f"column {column.column!r} is a time: give its format in [times]"
                )
        self._personal_data_stays_apart()
        return self

    def _fields(self) -> Iterator[tuple[tuple[str, ...], Column]]:
        """(key path, column) of every canonical field, shared ones first, and every other
        attribute an event rule carries."""
        for field, column in self.columns.fields().items():
            yield ("columns", field), column
        for name, rule in self.events.items():
            for field, column in rule.columns.fields().items():
                yield ("events", name, "columns", field), column
            for attribute, column in rule.attributes.items():
                yield ("events", name, "attributes", attribute), column

    def _personal_data_stays_apart(self) -> None:
        """Refuses a personal-data column that also feeds an event, a condition or the key."""
        personal = self.identity.personal_columns()
        for column, paths in self.column_uses().items():
            if column not in personal:
                continue
            elsewhere = [p for p in paths if not p.startswith("identity.")]
            if elsewhere:
                raise KeyPathError(
                    ("identity", personal[column]),
                    f"column {column!r} holds personal data and may feed nothing else"
                    f" ({', '.join(elsewhere)})",
                )

    def column_uses(self) -> dict[str, tuple[str, ...]]:
        """Each export column the mapping reads -> the key paths that read it, in the order
        the file names them."""
        uses: dict[str, list[str]] = {}

        def use(column: str, *path: str) -> None:
            uses.setdefault(column, []).append(key_path(path))

        for i, column in enumerate(self.row_key):
            use(column, "row_key", f"[{i}]")
        for column in self.times:
            use(column, "times", column)
        for path, field in self._fields():
            use(field.column, *path)
        for name, rule in self.events.items():
            for kind in ("event_types", "channels"):
                words = getattr(rule, kind)
                if words is not None:
                    use(words.column, "events", name, kind, "column")
            for column in rule.when:
                use(column, "events", name, "when", column)
        for column, kind in self.identity.personal_columns().items():
            use(column, "identity", kind)
        for column, kind in self.identity.key_columns().items():
            use(column, "identity", *kind.split(":", 1))
        return {c: tuple(paths) for c, paths in uses.items()}

    def required_columns(self) -> tuple[str, ...]:
        """Every export column the mapping reads, in the order the file names them."""
        return tuple(self.column_uses())


def load_mapping(path: Path | str) -> Mapping:
    """The mapping in a TOML file; raises MappingError naming the file and, for each problem,
    the key path (unknown keys, event types, channels and zones, missing fields, time columns
    without a format, personal data feeding events)."""
    return read_toml_model(path, "mapping", Mapping, MappingError)


def shipped_mapping(name: str) -> Mapping:
    """The example mapping shipped as ``data/mappings/<name>.toml`` (one per raw export of the
    simulator: ``adf_leads``, ``crm_leads``, ``crm_activities``, ``scheduler_appointments``,
    ``dms_deals``, ``dms_repair_orders``, ``web_events``, ``customers``); raises MappingError
    naming an unknown one and the shipped names."""
    folder = resources.files("cjm_ml").joinpath("data/mappings")
    shipped = sorted(
        f.name.removesuffix(".toml") for f in folder.iterdir() if f.name.endswith(".toml")
    )
    if name not in shipped:
        raise MappingError(f"no shipped mapping {name!r} (shipped: {', '.join(shipped)})")
    with resources.as_file(folder.joinpath(f"{name}.toml")) as path:
        return load_mapping(path)


def mapping_for(source: str | None, path: Path | None) -> Mapping:
    """The mapping of ``cjm ingest``: the file at ``path``, or the shipped mapping of the
    ``source`` kind; with both, the file must map that kind. Raises MappingError naming an
    unknown kind, a kind without a shipped mapping, a mismatch, or neither given."""
    if path is None and source is None:
        raise MappingError("give the export's mapping (--mapping FILE) or its kind (--source)")
    if source is not None and source not in get_args(SourceKind):
        kinds = ", ".join(get_args(SourceKind))
        raise MappingError(f"unknown source kind {source!r}; expected one of {kinds}")
    if path is None:
        if source not in SHIPPED_MAPPINGS:
            raise MappingError(f"no shipped mapping for {source!r} exports; give --mapping FILE")
        return shipped_mapping(SHIPPED_MAPPINGS[source][0])
    mapping = load_mapping(path)
    if source is not None and mapping.source != source:
        raise MappingError(f"{path.name}: maps {mapping.source!r} exports, not {source!r}")
    return mapping


def check_columns(mapping: Mapping, columns: Iterable[str], *, export: str) -> None:
    """Refuses an export (named ``export``, e.g. its file name) whose header lacks a column
    the mapping reads: the error names each missing column, where the mapping reads it, and a
    close match among the header's columns the mapping does not read, if there is one."""
    header = list(columns)
    uses = mapping.column_uses()
    unread = [c for c in header if c not in uses]  # a hint never names a column in use
    missing = []
    for column, paths in uses.items():
        if column in header:
            continue
        close = difflib.get_close_matches(column, unread, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        missing.append(f"{column!r} (read by {', '.join(paths)}{hint})")
    if missing:
        raise MappingError(f"{export}: no column {'; no column '.join(missing)}")
