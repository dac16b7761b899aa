"""The event store: typed read-back, idempotent appends, conflicts, tenancy, time queries."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from cjm_ml.events import EventValidationError, load_events, validate_events
from cjm_ml.features.pipeline import open_feature_columns
from cjm_ml.io import write_parquet_atomic
from cjm_ml.serving.store import (
    AppendResult,
    EventConflictError,
    EventStore,
    SqliteEventStore,
)
from cjm_ml.simulation import SimulatedGroup

UTC = "UTC"


def _raw(*rows: dict[str, object]) -> pd.DataFrame:
    """A raw events table as an API client would send it (strings, ISO timestamps)."""
    base = {
        "dealer_group_id": "dg-01",
        "rooftop_id": "rt-01",
        "customer_id": "c-1",
        "event_type": "lead_form",
        "channel": "web",
        "source": None,
        "vehicle_id": None,
        "value": None,
        "attributes": None,
    }
    return pd.DataFrame([{**base, **r} for r in rows])


def _five() -> pd.DataFrame:
    return _raw(
        {"event_id": "e-1", "ts": "2025-03-01T14:00:00Z", "value": 31500.0, "source": "google"},
        {"event_id": "e-2", "ts": "2025-03-01T14:05:00Z", "event_type": "sms_sent",
         "channel": "sms"},
        {"event_id": "e-3", "ts": "2025-03-02T09:00:00Z", "event_type": "appointment_set",
         "channel": "phone", "value": 48.0,
         "attributes": '{"appointment_id": "a-1", "scheduled_ts": "2025-03-04T09:00:00Z"}'},
        {"event_id": "e-4", "ts": "2025-03-01T10:00:00Z", "customer_id": "c-2",
         "rooftop_id": "rt-02", "event_type": "lead_call", "channel": "phone", "value": 95.0},
        {"event_id": "e-5", "ts": "2025-03-05T10:00:00Z", "customer_id": "c-2",
         "rooftop_id": "rt-02", "event_type": "showroom_visit", "channel": "in_person"},
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteEventStore]:
    s = SqliteEventStore(tmp_path / "serving" / "events.db")
    yield s
    s.close()


def test_sqlite_store_is_an_event_store(store: SqliteEventStore) -> None:
    assert isinstance(store, EventStore)


def test_read_back_is_typed_exactly_like_load_events(
    store: SqliteEventStore, small_group: SimulatedGroup, tmp_path: Path
) -> None:
    customers = small_group.events["customer_id"].drop_duplicates().iloc[:300].tolist()
    events = small_group.events[small_group.events["customer_id"].isin(customers)]
    path = tmp_path / "events.parquet"
    write_parquet_atomic(events, path)
    loaded = load_events(path)

    assert store.append(loaded, file=path.name) == AppendResult(inserted=len(events), duplicates=0)

    wanted = customers[10:13]
    raw_subset = pd.read_parquet(path).query("customer_id in @wanted")
    expected, violations = validate_events(raw_subset)
    assert violations == []
    got = store.customer_events("dg-01", reversed(wanted))
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    # the whole group, read back, is the file as load_events reads it
    everything = store.events_since("dg-01", pd.Timestamp("2000-01-01", tz=UTC))
    pd.testing.assert_frame_equal(everything, loaded, check_exact=True)


def test_raw_string_events_are_validated_stored_and_typed(store: SqliteEventStore) -> None:
    raw = _five()
    assert store.append(raw) == AppendResult(inserted=5, duplicates=0)
    expected, _ = validate_events(raw)
    pd.testing.assert_frame_equal(store.customer_events("dg-01", ["c-1", "c-2"]), expected)
    one = store.customer_events("dg-01", ["c-1"])
    assert one["event_id"].tolist() == ["e-1", "e-2", "e-3"]
    assert one["ts"].iloc[1] == pd.Timestamp("2025-03-01T14:05:00Z")
    assert one["attributes"].iloc[2] == (
        '{"appointment_id": "a-1", "scheduled_ts": "2025-03-04T09:00:00Z"}'
    )
    assert pd.isna(one["value"].iloc[1]) and one["value"].iloc[0] == 31500.0
    assert store.customer_events("dg-01", ["c-unknown"]).empty


def test_append_is_idempotent_on_event_id(store: SqliteEventStore) -> None:
    raw = _five()
    store.append(raw)
    assert store.append(raw) == AppendResult(inserted=0, duplicates=5)
    more = pd.concat(
        [raw, _raw({"event_id": "e-6", "ts": "2025-03-06T10:00:00Z", "event_type": "test_drive",
                    "channel": "in_person"})],
        ignore_index=True,
    )  # fmt: skip
    assert store.append(more) == AppendResult(inserted=1, duplicates=5)
    assert store.count() == 6
    assert store.customer_events("dg-01", ["c-1"])["event_id"].tolist() == [
        "e-1", "e-2", "e-3", "e-6",
    ]  # fmt: skip


def test_same_event_id_with_other_content_is_a_conflict_and_nothing_is_stored(
    store: SqliteEventStore,
) -> None:
    store.append(_five())
    batch = _raw(
        {"event_id": "e-7", "ts": "2025-03-07T10:00:00Z"},
        {"event_id": "e-2", "ts": "2025-03-01T15:05:00Z", "event_type": "sms_sent",
         "channel": "sms", "value": 1.0},
        {"event_id": "e-1", "ts": "2025-03-01T14:00:00Z", "value": 31500.0, "source": "google"},
    )  # fmt: skip
    with pytest.raises(EventConflictError) as err:
        store.append(batch, file="batch.csv")
    assert [(c.row, c.event_id, c.columns) for c in err.value.conflicts] == [
        (2, "e-2", ("ts", "value"))
    ]
    assert "batch.csv row 2, event_id 'e-2': already stored with a different ts, value" in str(
        err.value
    )
    assert store.count() == 5  # e-7 was not stored either
    assert store.customer_events("dg-01", ["c-1"])["ts"].iloc[1] == pd.Timestamp(
        "2025-03-01T14:05:00Z"
    )


def test_attributes_with_other_spacing_are_the_same_event(store: SqliteEventStore) -> None:
    store.append(_raw({"event_id": "e-1", "ts": "2025-03-01T14:00:00Z",
                       "attributes": '{"a": 1, "b": "x"}'}))  # fmt: skip
    again = _raw({"event_id": "e-1", "ts": "2025-03-01T14:00:00Z",
                  "attributes": '{"b":"x","a":1}'})  # fmt: skip
    assert store.append(again) == AppendResult(inserted=0, duplicates=1)
    changed = _raw({"event_id": "e-1", "ts": "2025-03-01T14:00:00Z", "attributes": '{"a": 2}'})
    with pytest.raises(EventConflictError, match="different attributes"):
        store.append(changed)


def test_invalid_events_are_refused_by_the_event_model_rules(store: SqliteEventStore) -> None:
    bad = _raw(
        {"event_id": "e-1", "ts": "2025-03-01T14:00:00Z"},
        {"event_id": "e-2", "ts": "2025-03-01 14:00:00", "event_type": "teleport"},
    )
    with pytest.raises(EventValidationError) as err:
        store.append(bad, file="request")
    assert {(v.row, v.column, v.rule) for v in err.value.violations} == {
        (2, "ts", "ts_timezone"),
        (2, "event_type", "event_type_known"),
    }
    assert store.count() == 0


def test_event_ids_and_customers_are_scoped_per_dealer_group(store: SqliteEventStore) -> None:
    store.append(_five())
    other = _raw(
        {"event_id": "e-1", "dealer_group_id": "dg-02", "rooftop_id": "rt-51",
         "ts": "2025-04-01T10:00:00Z", "event_type": "lead_chat", "channel": "chat"}
    )  # fmt: skip
    assert store.append(other) == AppendResult(inserted=1, duplicates=0)
    assert store.customer_events("dg-01", ["c-1"])["event_id"].tolist() == ["e-1", "e-2", "e-3"]
    theirs = store.customer_events("dg-02", ["c-1"])
    assert theirs["rooftop_id"].tolist() == ["rt-51"]
    assert store.count("dg-01") == 5 and store.count("dg-02") == 1
    holdings = store.customer_rooftops(["c-1", "c-2", "c-9"])
    assert holdings == [
        ("c-1", "dg-01", "rt-01"),
        ("c-1", "dg-02", "rt-51"),
        ("c-2", "dg-01", "rt-02"),
    ]


def test_events_since_and_active_customers_filter_time_and_rooftop(
    store: SqliteEventStore,
) -> None:
    store.append(_five())
    since = pd.Timestamp("2025-03-01T14:05:00Z")
    assert store.events_since("dg-01", since)["event_id"].tolist() == ["e-2", "e-3", "e-5"]
    assert store.events_since("dg-01", since, rooftops=["rt-02"])["event_id"].tolist() == ["e-5"]
    until = pd.Timestamp("2025-03-05T10:00:00Z")
    assert store.events_since("dg-01", since, until=until)["event_id"].tolist() == ["e-2", "e-3"]
    assert store.active_customers("dg-01", since) == ["c-1", "c-2"]
    assert store.active_customers("dg-01", pd.Timestamp("2025-03-03", tz=UTC)) == ["c-2"]
    assert store.active_customers("dg-01", since, rooftops=["rt-01"]) == ["c-1"]
    assert store.active_customers("dg-02", since) == []
    with pytest.raises(ValueError, match="since has no timezone"):
        store.events_since("dg-01", pd.Timestamp("2025-03-01"))


def test_a_single_string_of_customer_ids_is_refused(store: SqliteEventStore) -> None:
    with pytest.raises(TypeError, match="collection of ids, not one string"):
        store.customer_events("dg-01", "c-1")


def test_events_survive_reopening_and_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with SqliteEventStore(path) as store:
        store.append(_five())
    with SqliteEventStore(path) as store:
        assert store.count() == 5
        assert store.append(_five()).duplicates == 5
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute("UPDATE cjm_schema SET version = 99 WHERE component = 'events'")
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match="events schema version 99 is newer"):
        SqliteEventStore(path)


def test_concurrent_appends_from_threads_store_each_event_once(store: SqliteEventStore) -> None:
    batches = [
        _raw(*({"event_id": f"e-{i}", "customer_id": f"c-{i % 7}",
                "ts": f"2025-03-01T10:{i % 60:02d}:00Z"} for i in range(start, start + 300)))
        for start in (0, 200, 400, 100)
    ]  # fmt: skip
    results: list[AppendResult] = []
    errors: list[BaseException] = []

    def append(batch: pd.DataFrame) -> None:
        try:
            results.append(store.append(batch))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r.inserted for r in results) == 700
    assert sum(r.duplicates for r in results) == 500
    assert store.count() == 700


def test_recorded_ts_is_stored_and_scoring_at_now_sees_only_what_was_recorded_by_then(
    store: SqliteEventStore,
) -> None:
    """A call made at 10:10 and logged at 10:40: scored at 10:20 the lead is still unanswered
    (20 minutes waited), scored at 10:50 it was answered after 10 minutes."""
    raw = _raw(
        {"event_id": "lead", "ts": "2025-03-03T10:00:00Z", "recorded_ts": None},
        {"event_id": "call", "ts": "2025-03-03T10:10:00Z", "event_type": "outbound_call",
         "channel": "phone", "value": 180.0, "recorded_ts": "2025-03-03T10:40:00Z"},
    )  # fmt: skip
    store.append(raw)
    got = store.customer_events("dg-01", ["c-1"])
    expected, _ = validate_events(raw)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert got["recorded_ts"].isna().tolist() == [True, False]
    assert got["recorded_ts"].iloc[1] == pd.Timestamp("2025-03-03T10:40:00Z")
    seen = {}
    for now in ("10:20", "10:50"):
        columns = open_feature_columns(got, "lead_leakage", pd.Timestamp(f"2025-03-03T{now}Z"))
        assert list(columns["instance_id"]) == ["lead"]
        seen[now] = (columns["outbound_calls"][0], columns["first_response_minutes"][0])
    assert seen == {"10:20": (0.0, 20.0), "10:50": (1.0, 10.0)}
    # the same event sent again is a duplicate; with another recorded_ts it is another event
    assert store.append(raw).duplicates == 2
    changed = raw.assign(recorded_ts=[None, "2025-03-03T11:00:00Z"])
    with pytest.raises(EventConflictError, match="already stored with a different recorded_ts"):
        store.append(changed)


#: The events table as schema 1 (cjm-ml before recorded_ts) created it.
EVENTS_SCHEMA_1 = """
CREATE TABLE cjm_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL);
INSERT INTO cjm_schema VALUES ('events', 1);
CREATE TABLE events (
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
    PRIMARY KEY (dealer_group_id, event_id)
);
CREATE INDEX events_by_customer ON events (customer_id, dealer_group_id, ts);
CREATE INDEX events_by_time ON events (dealer_group_id, ts);
"""


def test_a_schema_1_event_store_is_upgraded_in_place_keeping_every_event(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    five = _five()
    with sqlite3.connect(path) as conn:
        conn.executescript(EVENTS_SCHEMA_1)
        conn.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (r.dealer_group_id, r.event_id, r.rooftop_id, r.customer_id,
                 pd.Timestamp(r.ts).value // 1000, r.event_type, r.channel, r.source,
                 r.vehicle_id, None if pd.isna(r.value) else r.value, r.attributes)
                for r in five.itertuples()
            ],
        )  # fmt: skip
    with sqlite3.connect(path) as conn:
        before = conn.execute("SELECT * FROM events ORDER BY event_id").fetchall()
    with SqliteEventStore(path) as store:
        expected, _ = validate_events(five)
        got = store.customer_events("dg-01", ["c-1", "c-2"])
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        assert got["recorded_ts"].isna().all()
        assert store.append(five) == AppendResult(inserted=0, duplicates=5)
        late = _raw({"event_id": "e-6", "ts": "2025-03-06T10:00:00Z", "event_type": "sms_sent",
                     "recorded_ts": "2025-03-06T18:30:00Z"})  # fmt: skip
        assert store.append(late).inserted == 1
    with SqliteEventStore(path) as store:  # opening it again changes nothing
        assert store.count() == 6
        got = store.customer_events("dg-01", ["c-1"])
        assert got["recorded_ts"].dropna().tolist() == [pd.Timestamp("2025-03-06T18:30:00Z")]
    with sqlite3.connect(path) as conn:
        after = conn.execute(
            "SELECT * FROM events WHERE event_id != 'e-6' ORDER BY event_id"
        ).fetchall()
        assert after == [(*row, None) for row in before]
        version = conn.execute("SELECT version FROM cjm_schema WHERE component = 'events'")
        assert version.fetchone() == (2,)
        columns = [r[1] for r in conn.execute("PRAGMA table_info(events)")]
        assert columns[-1] == "recorded_ts"
