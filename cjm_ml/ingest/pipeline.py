"""Applying a mapping to an export: source rows in, canonical events appended to a dataset.

``ingest(mapping, inputs, data_dir=..., salt=...)`` reads the export (CSV read as text,
Parquet, or ADF documents when the mapping's ``source`` is ``"adf"``), checks it has every
column the mapping reads, and turns each row into its events, column by column (no loop over
rows):

- **Times**: each ``[times]`` column is parsed with its format. Times that carry an offset
  keep it; naive ones are read in the column's ``zone`` or the rooftop's, then converted to UTC.
  At the autumn change a local time happens twice: it is read as the first (daylight) one; in
  the spring gap it does not exist: it is moved to the first time after the gap. Both are
  counted in the report (``ambiguous_times``, ``nonexistent_times``), never silently. A column
  mapped to ``recorded_ts`` (when the system recorded the event) is read the same way; an
  event recorded before it happened is refused.
- **Events**: each ``[events.<name>]`` rule yields an event for the rows meeting its ``when``
  conditions whose event-type word is not skipped and, for a rule with ``required = false``,
  whose time is filled in. A booking whose value is not mapped carries the hours from ``ts``
  to ``scheduled_ts`` where the catalogue gives that meaning to its value (rounded to 0.01).
  Ids and times of the catalogue's attributes go into ``attributes`` (JSON).
- **Identity**: emails and phones are hashed (``hash_pii``), names are read by nothing and
  dropped; the hashes, DMS customer number, VIN, web visitor id and source ids resolve each
  row's ``customer_id`` in the group's ``IdentityMap``. No clear personal value leaves this
  module. A row with none of these keys cannot be anyone's: it is refused (counted, logged by
  row number) and yields nothing.
- **Ids**: ``event_id`` is ``<source>:<row key>:<rule>`` (the row key's columns joined by
  ``|``), so the same export loaded twice adds nothing: events whose id is already in the
  dataset, or repeated in the export (the first row is kept), are counted as duplicates.

Bad data stops the load with an ``IngestError`` naming the file, the 1-based data row, the
column and the rule (an unknown rooftop or word, a time not in its format, a required time
missing, an event the event model refuses); nothing is written then. A load writes one Parquet
file under ``<data_dir>/events/`` (temp then rename), and none when it adds nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import SecretStr

from cjm_ml.config import Settings
from cjm_ml.events import EVENT_COLUMNS, catalogue, report, validate_events
from cjm_ml.ingest.adf import read_adf
from cjm_ml.ingest.identity import IdentityMap, hash_pii, pii_salt
from cjm_ml.ingest.mapping import ISO, Column, EventRule, Mapping, TimeColumn, check_columns
from cjm_ml.io import write_parquet_atomic

log = logging.getLogger(__name__)

#: Canonical fields written into ``attributes`` (the others are columns of the event table).
ATTRIBUTE_FIELDS: tuple[str, ...] = (
    "appointment_id",
    "scheduled_ts",
    "rescheduled_from",
    "ro_id",
    "survey",
    "condition",
    "task",
    "status",
)
#: How many rows an error names before it counts the rest.
ERROR_ROWS = 5
_FILE = "__file"
_ROW = "__row"
_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"


class IngestError(ValueError):
    """An export the pipeline refuses; names file, row, column and rule, never a value of
    personal data."""


@dataclass(frozen=True)
class IngestReport:
    """What one load did: rows read and refused (no identity key), events written and
    skipped as duplicates, customers new and merged, DST times resolved, and the file
    written (``None`` when the load added nothing)."""

    rows_read: int
    events_written: int
    duplicates_skipped: int
    new_customers: int
    merged_customers: int
    refused_rows: int
    ambiguous_times: int
    nonexistent_times: int
    path: Path | None


# --- reading -------------------------------------------------------------------------------


def read_export(mapping: Mapping, inputs: Sequence[Path]) -> pd.DataFrame:
    """The export's rows as text (empty -> missing), with each row's file and 1-based data row;
    refuses a missing file, an unsupported suffix and a file lacking a column the mapping
    reads."""
    if mapping.source == "adf":
        frame = read_adf(list(inputs)).astype("string")
        frame[_FILE] = frame["source_file"].map(lambda f: Path(str(f)).name)
        frame[_ROW] = np.arange(1, len(frame) + 1)
        check_columns(mapping, frame.columns, export=", ".join(p.name for p in inputs))
        return frame.reset_index(drop=True)
    frames = []
    for path in inputs:
        frame = _read_table(path)
        check_columns(mapping, frame.columns, export=path.name)
        frame[_FILE] = path.name
        frame[_ROW] = np.arange(1, len(frame) + 1)
        frames.append(frame)
    if not frames:
        raise IngestError("no input files")
    return pd.concat(frames, ignore_index=True)


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    elif suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        raise IngestError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")
    text = frame.astype("string").apply(lambda c: c.str.strip())
    return text.mask(text.eq(""))


# --- errors --------------------------------------------------------------------------------


def _refuse(frame: pd.DataFrame, bad: pd.Series, column: str, rule: str) -> None:
    """Raises an IngestError naming the first bad rows (file and row), the column and rule."""
    positions = np.flatnonzero(bad.fillna(False).to_numpy(dtype=bool))
    if not len(positions):
        return
    shown = [f"{frame[_FILE].iat[p]} row {frame[_ROW].iat[p]}" for p in positions[:ERROR_ROWS]]
    more = f" and {len(positions) - ERROR_ROWS:,} more" if len(positions) > ERROR_ROWS else ""
    raise IngestError(f"{'; '.join(shown)}{more}: column {column!r}: {rule}")


def _words(frame: pd.DataFrame, column: Column, key: str) -> pd.Series:
    """A mapped column's canonical values: mapped words replaced, skipped words missing, and,
    when words are mapped, any other word refused."""
    raw = frame[column.column]
    out = raw.mask(raw.isin(column.skip))
    if not column.values:
        return out
    unknown = out.notna() & ~out.isin(list(column.values))
    _refuse(frame, unknown, column.column, f"a word {key} does not map (add it to values or skip)")
    return out.map(column.values).astype("string")


# --- times ---------------------------------------------------------------------------------


@dataclass
class _Times:
    values: dict[str, pd.Series]
    ambiguous: int = 0
    nonexistent: int = 0


def _read_times(frame: pd.DataFrame, mapping: Mapping, zones: pd.Series) -> _Times:
    """Every ``[times]`` column parsed to UTC (see the module docstring for DST)."""
    times = _Times(values={})
    for column, spec in mapping.times.items():
        raw = frame[column]
        zoned = raw.str.contains(_OFFSET, regex=True).fillna(False) & (spec.format == ISO)
        out = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")
        if zoned.any():
            out[zoned] = pd.to_datetime(raw[zoned], format="ISO8601", utc=True)
        naive = _parse(raw.where(~zoned), spec)
        if isinstance(naive.dtype, pd.DatetimeTZDtype):  # the pattern holds %z
            out = out.fillna(naive.dt.tz_convert("UTC"))
        else:
            local_zones = zones if spec.zone is None else pd.Series(spec.zone, index=frame.index)
            out = out.fillna(_localise(naive, local_zones, times))
        bad = raw.notna() & out.isna()
        _refuse(frame, bad, column, f"not a time in the format {spec.format!r}")
        times.values[column] = out.astype("datetime64[us, UTC]")
    return times


def _parse(raw: pd.Series, spec: TimeColumn) -> pd.Series:
    fmt = "ISO8601" if spec.format == ISO else spec.format
    return pd.to_datetime(raw, format=fmt, errors="coerce")


def _localise(naive: pd.Series, zones: pd.Series, times: _Times) -> pd.Series:
    """Naive local times -> UTC per zone: the first of an ambiguous time, a nonexistent one
    moved to the end of the gap; both counted on ``times``."""
    out = pd.Series(pd.NaT, index=naive.index, dtype="datetime64[us, UTC]")
    for zone in zones.dropna().unique():
        local = naive[(zones == zone) & naive.notna()]
        if local.empty:
            continue
        first = np.ones(len(local), dtype=bool)
        times.nonexistent += int(
            local.dt.tz_localize(zone, ambiguous=first, nonexistent="NaT").isna().sum()
        )
        times.ambiguous += int(
            local.dt.tz_localize(zone, ambiguous="NaT", nonexistent="shift_forward").isna().sum()
        )
        utc = local.dt.tz_localize(zone, ambiguous=first, nonexistent="shift_forward")
        out[local.index] = utc.dt.tz_convert("UTC")
    return out


# --- events --------------------------------------------------------------------------------


def _condition_met(frame: pd.DataFrame, rule: EventRule) -> pd.Series:
    met = pd.Series(True, index=frame.index)
    for column, condition in rule.when.items():
        if condition.present is not None:
            met &= frame[column].notna() == condition.present
        else:
            met &= frame[column].isin(condition.equals or ()).fillna(False).astype(bool)
    return met


def _field(frame: pd.DataFrame, times: _Times, column: Column, key: str) -> pd.Series:
    if column.column in times.values:
        return times.values[column.column]
    return _words(frame, column, key)


def _rule_events(
    frame: pd.DataFrame, mapping: Mapping, name: str, rule: EventRule, times: _Times
) -> pd.DataFrame:
    """The events one rule yields, one per row that yields it, with its source row index."""
    key = f"events.{name}"
    fields = {**mapping.columns.fields(), **rule.columns.fields()}
    fields.pop("rooftop")
    values = {f: _field(frame, times, c, f"{key}.columns.{f}") for f, c in fields.items()}
    carried = {
        a: _field(frame, times, c, f"{key}.attributes.{a}") for a, c in rule.attributes.items()
    }
    if rule.event_type is not None:
        event_type = pd.Series(rule.event_type, index=frame.index, dtype="string")
    else:
        assert rule.event_types is not None  # EventRule refuses neither
        event_type = _words(frame, rule.event_types, f"{key}.event_types")
    met = _condition_met(frame, rule)
    if rule.event_types is not None:
        words = frame[rule.event_types.column]
        _refuse(frame, met & words.isna(), rule.event_types.column, f"{key}: no event type")
    met &= event_type.notna()
    ts_column = fields["ts"].column
    if rule.required:
        _refuse(frame, met & values["ts"].isna(), ts_column, f"{key}: its time is missing")
    met &= values["ts"].notna()
    if rule.channel is not None:
        channel = pd.Series(rule.channel, index=frame.index, dtype="string")
    elif rule.channels is not None:
        channel = _words(frame, rule.channels, f"{key}.channels")
    else:
        channel = pd.Series(pd.NA, index=frame.index, dtype="string")
    rows = frame.index[met.to_numpy(dtype=bool)]
    if "value" in values:
        value = pd.to_numeric(values["value"], errors="coerce")
        bad = values["value"].notna() & value.isna()
        _refuse(frame, bad & met, fields["value"].column, f"{key}: value is not a number")
    else:
        value = _lead_hours(event_type, values)
    return pd.DataFrame(
        {
            "row": rows,
            "rule": name,
            "ts": values["ts"].loc[rows],
            "recorded_ts": values.get("recorded_ts", _no_time(frame)).loc[rows],
            "event_type": event_type.loc[rows],
            "channel": channel.loc[rows],
            "source": values.get("source", _missing(frame)).loc[rows],
            "vehicle_id": values.get("vehicle_id", _missing(frame)).loc[rows],
            "value": value.loc[rows].astype("float64"),
            "attributes": _attributes(values, carried, frame.index).loc[rows],
        }
    ).reset_index(drop=True)


def _missing(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(pd.NA, index=frame.index, dtype="string")


def _no_time(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")


def _lead_hours(event_type: pd.Series, values: dict[str, pd.Series]) -> pd.Series:
    """Hours from ``ts`` to ``scheduled_ts`` for event types whose value means that."""
    hours_types = [
        e.key
        for e in catalogue().event_types
        if (e.value_meaning or "").startswith("hours from") and "start" in (e.value_meaning or "")
    ]
    if "scheduled_ts" not in values:
        return pd.Series(np.nan, index=event_type.index)
    hours = (values["scheduled_ts"] - values["ts"]).dt.total_seconds() / 3600
    return hours.round(2).where(event_type.isin(hours_types).fillna(False))


def _attributes(
    values: dict[str, pd.Series], carried: dict[str, pd.Series], index: pd.Index
) -> pd.Series:
    """The JSON attributes of each row: its filled-in canonical attribute fields (of
    ``values``), then the rule's own (``carried``), times as ISO UTC."""
    parts = []
    fields = {f: values[f] for f in ATTRIBUTE_FIELDS if f in values} | carried
    for field, value in fields.items():
        text = (
            value.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
            if isinstance(value.dtype, pd.DatetimeTZDtype)
            else value.astype("string")
        )
        escaped = text.str.replace("\\", "\\\\", regex=False).str.replace('"', '\\"', regex=False)
        parts.append((f'"{field}": "' + escaped + '"').fillna(""))
    joined = pd.Series("", index=index, dtype="string")
    for part in parts:
        sep = pd.Series(np.where(joined.eq("") | part.eq(""), "", ", "), index=index)
        joined = joined + sep + part
    return ("{" + joined + "}").replace("{}", pd.NA)


def _events(frame: pd.DataFrame, mapping: Mapping, times: _Times) -> pd.DataFrame:
    """Every rule's events, with their source row, rule and stable ``event_id``."""
    events = pd.concat(
        [_rule_events(frame, mapping, name, rule, times) for name, rule in mapping.events.items()],
        ignore_index=True,
    )
    row_key = frame[list(mapping.row_key)].astype("string").fillna("")
    key = row_key.iloc[:, 0]
    for column in row_key.columns[1:]:
        key = key + "|" + row_key[column]
    _refuse(
        frame, frame[list(mapping.row_key)].isna().all(axis=1), mapping.row_key[0], "no row key"
    )
    events["event_id"] = (
        f"{mapping.source}:" + key.iloc[events["row"]].to_numpy() + ":" + events["rule"]
    ).astype("string")
    return events


def _identity_batch(frame: pd.DataFrame, mapping: Mapping, salt: str) -> pd.DataFrame:
    """Each row's keys for the identity map: emails and phones hashed (the first filled in
    when several columns hold them), ids as they are; no clear personal value."""
    identity = mapping.identity
    batch = pd.DataFrame({"dealer_group_id": mapping.dealer_group_id}, index=frame.index)
    for kind in ("email", "phone"):
        hashed = _missing(frame)
        for column in getattr(identity, kind):
            hashed = hashed.fillna(hash_pii(frame[column], kind, salt))
        if getattr(identity, kind):
            batch[f"{kind}_hash"] = hashed
    for kind in ("dms_customer_number", "vin", "web_visitor_id"):
        column = getattr(identity, kind)
        if column is not None:
            batch[kind] = frame[column]
    source_id, source = _missing(frame), _missing(frame)
    for system, column in identity.source_ids.items():
        fill = source_id.isna() & frame[column].notna()
        source_id = source_id.mask(fill, frame[column])
        source = source.mask(fill, system)
    if identity.source_ids:
        batch["source_id"], batch["source"] = source_id, source
    return batch


def _has_key(batch: pd.DataFrame) -> pd.Series:
    keys = batch.drop(columns=["dealer_group_id", "source"], errors="ignore")
    return keys.notna().any(axis=1)


def _known_event_ids(data_dir: Path, source: str) -> pa.Array:
    """The event ids earlier loads of this source wrote (an id starts with its source, so no
    other source's files can hold it), as one Arrow string array."""
    paths = sorted((data_dir / "events").glob(f"{source}-*.parquet"))
    columns = [pq.read_table(p, columns=["event_id"]).column("event_id") for p in paths]
    if not columns:
        return pa.array([], type=pa.string())
    return pa.chunked_array(columns).combine_chunks().cast(pa.string())


def _already_written(event_ids: pd.Series, known: pa.Array) -> np.ndarray:
    """Whether each id is among ``known`` (Arrow's hash lookup: no Python objects per id)."""
    if not len(known):
        return np.zeros(len(event_ids), dtype=bool)
    found = pc.is_in(pa.array(event_ids.astype(str), type=pa.string()), value_set=known)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


def _validated(events: pd.DataFrame, frame: pd.DataFrame, mapping: Mapping) -> pd.DataFrame:
    """The events checked by the event model, customer ids provisional (the row key); refuses
    with every violation, each naming the export's file and row, column and rule."""
    rooftop = mapping.columns.rooftop
    assert rooftop is not None  # Mapping refuses a mapping without one
    rooftops = {word: r.rooftop_id for word, r in mapping.rooftops.values.items()}
    raw = pd.DataFrame(
        {
            "event_id": events["event_id"],
            "dealer_group_id": mapping.dealer_group_id,
            "rooftop_id": frame[rooftop.column].map(rooftops).iloc[events["row"]].to_numpy(),
            "customer_id": events["event_id"],
            "ts": events["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "recorded_ts": events["recorded_ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "event_type": events["event_type"],
            "channel": events["channel"],
            "source": events["source"],
            "vehicle_id": events["vehicle_id"],
            "value": events["value"],
            "attributes": events["attributes"],
        }
    )[list(EVENT_COLUMNS)]
    typed, violations = validate_events(raw, file="<ingest>")
    if violations:
        where = [
            f"{frame[_FILE].iat[events['row'].iat[v.row - 1]]} row "
            f"{frame[_ROW].iat[events['row'].iat[v.row - 1]]}, rule "
            f"events.{events['rule'].iat[v.row - 1]}"
            for v in violations[:ERROR_ROWS]
            if v.row is not None
        ]
        raise IngestError(
            f"events the event model refuses ({'; '.join(where)}):\n{report(violations)}"
        )
    return typed


def _rooftop_zones(frame: pd.DataFrame, mapping: Mapping) -> pd.Series:
    """Each row's rooftop time zone; refuses a rooftop value the mapping does not name."""
    rooftop = mapping.columns.rooftop
    assert rooftop is not None  # Mapping refuses a mapping without one
    words = frame[rooftop.column]
    zones = {word: mapping.rooftops.time_zone(word) for word in mapping.rooftops.values}
    _refuse(
        frame,
        ~words.isin(list(zones)),
        rooftop.column,
        "a rooftop the mapping does not name (add it to [rooftops.values])",
    )
    return words.map(zones)


def ingest(mapping: Mapping, inputs: Sequence[Path], *, data_dir: Path, salt: str) -> IngestReport:
    """Load an export through its mapping into ``<data_dir>/events/`` (see the module
    docstring) and return what the load did. Refuses a missing salt, an export lacking a
    column the mapping reads, and bad data (``IngestError``), writing nothing then."""
    salt = pii_salt(Settings(pii_salt=SecretStr(salt)))
    frame = read_export(mapping, inputs)
    zones = _rooftop_zones(frame, mapping)
    times = _read_times(frame, mapping, zones)
    events = _events(frame, mapping, times)
    batch = _identity_batch(frame, mapping, salt)
    keyless = ~_has_key(batch) & frame.index.isin(events["row"])
    if keyless.any():
        rows = frame.loc[keyless, [_FILE, _ROW]].head(ERROR_ROWS)
        log.warning(
            "%d row(s) refused: no identity key filled in (e.g. %s)",
            int(keyless.sum()),
            ", ".join(f"{f} row {r}" for f, r in rows.itertuples(index=False)),
        )
        events = events[~keyless.to_numpy()[events["row"]]]
    known = _known_event_ids(data_dir, mapping.source)
    duplicate = events["event_id"].duplicated().to_numpy() | _already_written(
        events["event_id"], known
    )
    fresh = events[~duplicate].reset_index(drop=True)
    written, new_customers, merged, path = 0, 0, 0, None
    if len(fresh):
        typed = _validated(fresh, frame, mapping)
        rows = fresh.groupby("row")["ts"].min()
        resolution = IdentityMap.open(data_dir, mapping.dealer_group_id).assign(
            batch.loc[rows.index].assign(ts=rows)
        )
        by_row = resolution.customer_ids
        customer = pd.Series(by_row.loc[fresh["row"]].to_numpy(), index=fresh["event_id"])
        typed["customer_id"] = typed["event_id"].map(customer).astype("string")
        typed = typed.sort_values(["customer_id", "ts", "event_id"], ignore_index=True)
        path = _write(typed, data_dir, mapping)
        written, new_customers = len(typed), resolution.new_customers
        merged = resolution.merged_customers
    result = IngestReport(
        rows_read=len(frame),
        events_written=written,
        duplicates_skipped=int(duplicate.sum()),
        new_customers=new_customers,
        merged_customers=merged,
        refused_rows=int(keyless.sum()),
        ambiguous_times=times.ambiguous,
        nonexistent_times=times.nonexistent,
        path=path,
    )
    log.info("ingest %s: %s", mapping.source, result)
    return result


def _write(events: pd.DataFrame, data_dir: Path, mapping: Mapping) -> Path:
    """One file for this load, named by source, time and content, written temp-then-rename."""
    digest = hashlib.sha256("\n".join(events["event_id"]).encode()).hexdigest()[:12]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = data_dir / "events" / f"{mapping.source}-{stamp}-{digest}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(events, path, {"dealer_group_id": mapping.dealer_group_id})
    return path
