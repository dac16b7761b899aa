"""The service's event store: journey events appended idempotently, read back per customer.

``EventStore`` is the protocol the API codes against; ``SqliteEventStore`` is the embedded
default (one local database file, WAL mode). Incoming events are validated with
``cjm_ml.events.validate_events`` (the same rules as ``cjm validate``) and read back typed exactly
like ``cjm_ml.events.load_events`` output, so features built from the store match features built
from a file.

Idempotency is per dealer group and ``event_id``: sending an event again is a no-op, sending a
different event under an id already stored is a conflict and nothing of that batch is written.

Each event keeps ``recorded_ts`` (when its source system recorded it; null: when it happened),
so scoring at "now" sees only the events recorded before "now" (``cjm_ml.features.timeline``).
The table's schema is versioned (``SCHEMA_VERSION``); opening a file written by an earlier
version upgrades it in place, in one transaction (``_migrate``), keeping every event.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import pyarrow as pa

from cjm_ml.events import (
    EVENT_COLUMNS,
    MAX_REPORTED_VIOLATIONS,
    TS_DTYPE,
    EventValidationError,
    empty_events,
    event_dtypes,
    sort_events,
    validate_events,
)
from cjm_ml.serving._sqlite import Connections, ensure_schema, transaction

log = logging.getLogger(__name__)

#: 1: the first table; 2: ``recorded_ts`` (``_migrate`` upgrades a 1 file).
SCHEMA_VERSION = 2
#: ``ts`` and ``recorded_ts`` are stored as integer microseconds since the Unix epoch (UTC), the
#: canonical resolution (``recorded_ts`` NULL: recorded when it happened).
_DDL = """
CREATE TABLE IF NOT EXISTS events (
    dealer_group_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    rooftop_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    channel TEXT,
    source TEXT,
    vehicle_id TEXT,
    value REAL,
    attributes TEXT,
    recorded_ts INTEGER,
    PRIMARY KEY (dealer_group_id, event_id)
);
CREATE INDEX IF NOT EXISTS events_by_customer ON events (customer_id, dealer_group_id, ts);
CREATE INDEX IF NOT EXISTS events_by_time ON events (dealer_group_id, ts)
"""
_INCOMING_DDL = "CREATE TEMP TABLE IF NOT EXISTS incoming (" + ", ".join(EVENT_COLUMNS) + ")"
_COLUMN_LIST = ", ".join(EVENT_COLUMNS)
_SELECT = f"SELECT {_COLUMN_LIST} FROM events"
#: Columns compared when an event_id is already stored (all but the key itself).
_CONTENT_COLUMNS = tuple(c for c in EVENT_COLUMNS if c not in ("dealer_group_id", "event_id"))
_EPOCH = pd.Timestamp(0, tz="UTC")
#: What version 2 adds to a version 1 table (NULL for the events stored before: recorded when
#: they happened, which is all version 1 knew).
_ADDED_COLUMNS = {"recorded_ts": "INTEGER"}
_NAT = np.iinfo(np.int64).min


@dataclass(frozen=True)
class AppendResult:
    """What an append did: events newly stored, and events already stored as they were sent."""

    inserted: int
    duplicates: int


@dataclass(frozen=True)
class EventConflict:
    """An ``event_id`` already stored with different content: input row (1-based) and columns."""

    row: int
    event_id: str
    columns: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"row {self.row}, event_id {self.event_id!r}: already stored with a different "
            f"{', '.join(self.columns)}"
        )


class EventConflictError(ValueError):
    """Raised when a batch reuses stored event ids for different events; nothing was written."""

    def __init__(self, file: str, conflicts: list[EventConflict]) -> None:
        self.file = file
        self.conflicts = conflicts
        shown = [f"{file} {c}" for c in conflicts[:MAX_REPORTED_VIOLATIONS]]
        if len(conflicts) > len(shown):
            shown.append(f"... and {len(conflicts) - len(shown)} more conflicts")
        super().__init__(
            f"{len(conflicts)} event id conflict(s); an event_id names one event forever, "
            "send a changed event under a new id (nothing of this batch was stored):\n"
            + "\n".join(shown)
        )


@runtime_checkable
class EventStore(Protocol):
    """Where the service keeps journey events; any implementation with these methods will do."""

    def append(self, events: pd.DataFrame, file: str = "<events>") -> AppendResult:
        """Validate and store events, idempotent on (dealer group, event_id)."""
        ...

    def customer_events(self, dealer_group_id: str, customer_ids: Iterable[str]) -> pd.DataFrame:
        """Every stored event of these customers of one dealer group, canonical and typed."""
        ...

    def events_since(
        self,
        dealer_group_id: str,
        since: datetime,
        rooftops: Collection[str] | None = None,
        until: datetime | None = None,
    ) -> pd.DataFrame:
        """A dealer group's events with ``since <= ts < until`` (at these rooftops if given)."""
        ...

    def active_customers(
        self, dealer_group_id: str, since: datetime, rooftops: Collection[str] | None = None
    ) -> list[str]:
        """Customers of a dealer group with an event at or after ``since``, sorted."""
        ...

    def customer_rooftops(self, customer_ids: Iterable[str]) -> list[tuple[str, str, str]]:
        """Which dealer groups and rooftops hold events of these customers (all groups)."""
        ...

    def close(self) -> None:
        """Release the store's resources."""
        ...


class SqliteEventStore:
    """The embedded event store: one SQLite file in WAL mode, safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self._connections = Connections(Path(path), self._init_connection)
        self._connections.get()  # create the file and schema now, so a bad path fails here

    @property
    def path(self) -> Path:
        """The database file."""
        return self._connections.path

    @staticmethod
    def _init_connection(conn: sqlite3.Connection) -> None:
        _migrate(conn)
        ensure_schema(conn, "events", SCHEMA_VERSION, _DDL)
        conn.execute(_INCOMING_DDL)

    def append(self, events: pd.DataFrame, file: str = "<events>") -> AppendResult:
        """Validate ``events`` and store the new ones in one transaction.

        Raises ``EventValidationError`` (the rules of ``cjm validate``, rows as given) or
        ``EventConflictError`` when an event_id is already stored with different content; in
        both cases nothing of the batch is stored. Re-sending stored events is a no-op counted
        in ``duplicates``.
        """
        typed, violations = validate_events(events, file=file)
        if violations:
            raise EventValidationError(violations)
        if typed.empty:
            return AppendResult(inserted=0, duplicates=0)
        conn = self._connections.get()
        with transaction(conn):
            conn.execute("DELETE FROM temp.incoming")
            conn.executemany(
                f"INSERT INTO temp.incoming ({_COLUMN_LIST}) "
                f"VALUES ({', '.join('?' * len(EVENT_COLUMNS))})",
                zip(*(_sql_values(typed[c]) for c in EVENT_COLUMNS), strict=True),
            )
            conflicts = _find_conflicts(conn)
            if conflicts:  # the rollback empties temp.incoming too
                raise EventConflictError(file, _locate(conflicts, events))
            inserted = conn.execute(
                f"INSERT INTO events ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM temp.incoming i "
                "WHERE NOT EXISTS (SELECT 1 FROM events e "
                "WHERE e.dealer_group_id = i.dealer_group_id AND e.event_id = i.event_id)"
            ).rowcount
            conn.execute("DELETE FROM temp.incoming")
        result = AppendResult(inserted=inserted, duplicates=len(typed) - inserted)
        log.info("stored %d new events (%d already stored)", result.inserted, result.duplicates)
        return result

    def customer_events(self, dealer_group_id: str, customer_ids: Iterable[str]) -> pd.DataFrame:
        """Every stored event of these customers of one dealer group, typed like ``load_events``.

        Customers with no events in the group are simply absent; other groups' events never
        appear, even under the same customer id.
        """
        ids = _id_list(customer_ids, "customer_ids")
        rows = (
            self._connections.get()
            .execute(
                f"{_SELECT} WHERE dealer_group_id = ? "
                "AND customer_id IN (SELECT value FROM json_each(?)) "
                "ORDER BY customer_id, ts, event_id",
                (dealer_group_id, json.dumps(ids)),
            )
            .fetchall()
        )
        return _to_frame(rows, ordered=True)

    def events_since(
        self,
        dealer_group_id: str,
        since: datetime,
        rooftops: Collection[str] | None = None,
        until: datetime | None = None,
    ) -> pd.DataFrame:
        """A dealer group's events with ``since <= ts < until``, at ``rooftops`` if given."""
        where, params = _time_filter(dealer_group_id, since, rooftops, until)
        rows = self._connections.get().execute(f"{_SELECT} WHERE {where}", params).fetchall()
        return _to_frame(rows)

    def active_customers(
        self, dealer_group_id: str, since: datetime, rooftops: Collection[str] | None = None
    ) -> list[str]:
        """Customers of a dealer group with an event at or after ``since`` (at ``rooftops``)."""
        where, params = _time_filter(dealer_group_id, since, rooftops, None)
        rows = (
            self._connections.get()
            .execute(f"SELECT DISTINCT customer_id FROM events WHERE {where} ORDER BY 1", params)
            .fetchall()
        )
        return [r[0] for r in rows]

    def customer_rooftops(self, customer_ids: Iterable[str]) -> list[tuple[str, str, str]]:
        """Distinct (customer_id, dealer_group_id, rooftop_id) holding events of these customers,
        sorted.

        Spans every dealer group on purpose: it is what tells "another group's customer" (403)
        from "no such customer" (404). Never return it to a caller.
        """
        ids = _id_list(customer_ids, "customer_ids")
        rows = (
            self._connections.get()
            .execute(
                "SELECT DISTINCT customer_id, dealer_group_id, rooftop_id FROM events "
                "WHERE customer_id IN (SELECT value FROM json_each(?)) ORDER BY 1, 2, 3",
                (json.dumps(ids),),
            )
            .fetchall()
        )
        return [(str(c), str(g), str(r)) for c, g, r in rows]

    def count(self, dealer_group_id: str | None = None) -> int:
        """How many events are stored (in one dealer group if given)."""
        conn = self._connections.get()
        if dealer_group_id is None:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        return int(
            conn.execute(
                "SELECT COUNT(*) FROM events WHERE dealer_group_id = ?", (dealer_group_id,)
            ).fetchone()[0]
        )

    def close(self) -> None:
        """Close every connection; the file stays."""
        self._connections.close()

    def __enter__(self) -> SqliteEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Conversions between the canonical table and SQL rows


def _sql_values(s: pd.Series) -> list[Any]:
    """A typed canonical column as Python values SQLite binds (None for missing, ts as µs)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        levels = np.array([*s.cat.categories.tolist(), None], dtype=object)
        return list(levels[s.cat.codes.to_numpy()].tolist())  # code -1 picks the None
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        micros = s.astype(TS_DTYPE).array.asi8
        if s.isna().any():  # NaT -> NULL
            return [None if m == _NAT else m for m in micros.tolist()]
        return list(micros.tolist())
    if s.dtype.kind == "f":
        floats = s.to_numpy()
        out = floats.astype(object)
        out[np.isnan(floats)] = None
        return list(out.tolist())
    return list(s.to_numpy(dtype=object, na_value=None).tolist())


def _to_frame(rows: list[tuple[Any, ...]], ordered: bool = False) -> pd.DataFrame:
    """SQL rows -> the canonical typed table, exactly as ``validate_events`` types a file.

    ``ordered``: the rows already come in canonical order (customer, time, event_id). Built
    column by column from the Python values: a request's few rows cost under a millisecond.
    """
    if not rows:
        return empty_events()
    cols = dict(zip(EVENT_COLUMNS, zip(*rows, strict=True), strict=True))
    dtypes = event_dtypes()

    def text(column: str) -> Any:  # pd.array(..., dtype="string"), built 5x faster
        return pd.arrays.ArrowStringArray(pa.array(cols[column], type=pa.large_string()))

    micros = np.array(cols["ts"], dtype="int64").view("datetime64[us]")
    recorded = cols["recorded_ts"]
    recorded_micros = np.fromiter(
        (_NAT if r is None else r for r in recorded), np.int64, len(recorded)
    ).view("datetime64[us]")
    typed = pd.DataFrame(
        {
            "event_id": text("event_id"),
            "dealer_group_id": _categorical(cols["dealer_group_id"]),
            "rooftop_id": _categorical(cols["rooftop_id"]),
            "customer_id": text("customer_id"),
            "ts": pd.DatetimeIndex(micros).tz_localize("UTC"),
            "event_type": _categorical(cols["event_type"], dtypes["event_type"]),
            "channel": _categorical(cols["channel"], dtypes["channel"]),
            "source": _categorical(cols["source"]),
            "vehicle_id": text("vehicle_id"),
            "value": np.array(cols["value"], dtype="float64"),  # None -> NaN
            "attributes": text("attributes"),
            "recorded_ts": pd.DatetimeIndex(recorded_micros).tz_localize("UTC"),
        },
        copy=False,
    )
    return typed if ordered else sort_events(typed)


def _categorical(values: tuple[Any, ...], dtype: pd.CategoricalDtype | None = None) -> Any:
    """Text values (None: missing) as a categorical of ``dtype``'s levels, or else of their
    sorted distinct values as "string" levels (what ``astype("string").astype("category")``
    gives)."""
    if dtype is None:
        dtype = _string_levels(tuple(sorted({v for v in values if v is not None})))
    position = _level_positions(dtype)
    codes = np.fromiter((-1 if v is None else position[v] for v in values), np.int64, len(values))
    return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)


@lru_cache(maxsize=4096)
def _string_levels(levels: tuple[str, ...]) -> pd.CategoricalDtype:
    """The categorical dtype of these (sorted) "string" levels: rooftops repeat, so cached."""
    return pd.CategoricalDtype(pd.Index(pd.array(levels, dtype="string")))


@lru_cache(maxsize=4096)
def _level_positions(dtype: pd.CategoricalDtype) -> dict[str, int]:
    """A categorical dtype's level -> code."""
    return {str(v): i for i, v in enumerate(dtype.categories)}


def _id_list(ids: Iterable[str], name: str) -> list[str]:
    """Distinct ids as a list; refuses a bare string (which would iterate its characters)."""
    if isinstance(ids, str):
        raise TypeError(f"{name} must be a collection of ids, not one string")
    return list(dict.fromkeys(str(i) for i in ids))


def _micros(when: datetime, name: str) -> int:
    """A timezone-aware instant as integer microseconds since the epoch; naive times refused."""
    ts = pd.Timestamp(when)
    if ts.tzinfo is None:
        raise ValueError(f"{name} has no timezone; give it in UTC (e.g. 2025-03-01T14:05:00Z)")
    return int((ts.tz_convert("UTC") - _EPOCH) // pd.Timedelta(microseconds=1))


def _time_filter(
    dealer_group_id: str,
    since: datetime,
    rooftops: Collection[str] | None,
    until: datetime | None,
) -> tuple[str, tuple[Any, ...]]:
    """WHERE clause and parameters for a group's events in a time range at some rooftops."""
    where = "dealer_group_id = ? AND ts >= ?"
    params: tuple[Any, ...] = (dealer_group_id, _micros(since, "since"))
    if until is not None:
        where += " AND ts < ?"
        params += (_micros(until, "until"),)
    if rooftops is not None:
        where += " AND rooftop_id IN (SELECT value FROM json_each(?))"
        params += (json.dumps(_id_list(rooftops, "rooftops")),)
    return where, params


def _migrate(conn: sqlite3.Connection) -> None:
    """Upgrade a schema 1 events table in place, in one transaction (nothing to do on a new
    or current file): add ``recorded_ts``, NULL for every stored event. Events are kept."""
    with transaction(conn):
        columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
        if not columns or set(_ADDED_COLUMNS) <= columns:
            return
        for name, kind in _ADDED_COLUMNS.items():
            if name not in columns:
                conn.execute(f"ALTER TABLE events ADD COLUMN {name} {kind}")
        stored = int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    log.info("upgraded the event store to schema %d (%d events kept)", SCHEMA_VERSION, stored)


def _find_conflicts(conn: sqlite3.Connection) -> list[tuple[str, tuple[str, ...]]]:
    """Incoming events whose id is stored with other content: (event_id, differing columns)."""
    differs = [f"i.{c} IS NOT e.{c}" for c in _CONTENT_COLUMNS]
    rows = conn.execute(
        f"SELECT i.event_id, i.attributes, e.attributes, {', '.join(differs)} "
        "FROM temp.incoming i JOIN events e "
        "ON e.dealer_group_id = i.dealer_group_id AND e.event_id = i.event_id "
        f"WHERE {' OR '.join(differs)}"
    ).fetchall()
    conflicts = []
    for event_id, new_attrs, old_attrs, *flags in rows:
        columns = [c for c, f in zip(_CONTENT_COLUMNS, flags, strict=True) if f]
        if "attributes" in columns and _same_json(new_attrs, old_attrs):
            columns.remove("attributes")  # same object, other spelling: not a conflict
        if columns:
            conflicts.append((str(event_id), tuple(columns)))
    return conflicts


def _same_json(a: str | None, b: str | None) -> bool:
    """Whether two attribute texts hold the same JSON object."""
    if a is None or b is None:
        return a is b
    return bool(json.loads(a) == json.loads(b))


def _locate(conflicts: list[tuple[str, tuple[str, ...]]], raw: pd.DataFrame) -> list[EventConflict]:
    """Conflicts with their 1-based row in the batch as it was sent, in row order."""
    rows = pd.Index(raw["event_id"].astype("string")).get_indexer([c[0] for c in conflicts]) + 1
    located = [
        EventConflict(row=int(r), event_id=eid, columns=cols)
        for r, (eid, cols) in zip(rows.tolist(), conflicts, strict=True)
    ]
    return sorted(located, key=lambda c: c.row)
