"""SQLite plumbing shared by the serving stores: WAL, durable commits, one connection per thread.

The event store and the outbox may share one database file or use two; each keeps its schema
version in the ``cjm_schema`` table under its own component name.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: How long a writer waits for another connection's write lock before giving up (seconds).
BUSY_TIMEOUT_S = 30.0


def connect(path: Path) -> sqlite3.Connection:
    """Open ``path`` in WAL mode with durable commits; transactions are explicit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL syncs the WAL on every commit: an acknowledged write survives a power cut too.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA temp_store=MEMORY")
    # Up to 64 MiB of page cache (allocated as used): bulk appends touch three B-trees at random.
    conn.execute("PRAGMA cache_size=-65536")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception (write lock taken first)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def ensure_schema(conn: sqlite3.Connection, component: str, version: int, ddl: str) -> None:
    """Create ``component``'s tables at ``version``; refuse a file written by a newer version."""
    with transaction(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS cjm_schema "
            "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        row = conn.execute(
            "SELECT version FROM cjm_schema WHERE component = ?", (component,)
        ).fetchone()
        if row is not None and row[0] > version:
            raise RuntimeError(
                f"{component} schema version {row[0]} is newer than this cjm-ml ({version})"
            )
        for statement in ddl.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            "INSERT INTO cjm_schema (component, version) VALUES (?, ?) "
            "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
            (component, version),
        )


class Connections:
    """One connection per thread to one database file, all closed together by ``close``."""

    def __init__(self, path: Path, init: Callable[[sqlite3.Connection], None]) -> None:
        if str(path) == ":memory:":
            raise ValueError("a serving store needs a database file, not ':memory:'")
        self.path = Path(path)
        self._init = init
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened (and its schema ensured) on first use."""
        if self._closed:
            raise RuntimeError(f"{self.path} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.path} is closed")
            conn = connect(self.path)
            self._all.append(conn)
        self._init(conn)
        self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close every connection opened so far; later use raises."""
        with self._lock:
            self._closed = True
            for conn in self._all:
                conn.close()
            self._all.clear()
