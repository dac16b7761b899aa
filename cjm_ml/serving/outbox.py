"""The CRM write-back: a durable outbox of risk updates and the deliverer that sends them.

``Outbox.enqueue`` stores an update in a SQLite table in the same transaction that decides
whether it is new; ``Deliverer`` posts pending updates to each dealer group's CRM webhook.

Guarantees:

- **Per rooftop.** An update may name the rooftop whose instances it carries (``rooftop_id``,
  added to the body): a rooftop's key lists and requeues only its rooftops' deliveries.
- **Each changed risk, once.** An update equal to the last one enqueued for the same customer,
  task and rooftop (ignoring ``VOLATILE_FIELDS`` such as ``scored_at``) is not enqueued again.
- **Never an older model after a newer one.** Each update carries the ``generation`` of the
  models that scored it (it grows with every reload, across processes); one whose generation is
  lower than one already queued or sent for that customer and task is dropped (``stale``), so
  what the CRM receives for a customer and task never goes back to an older model.
- **Stable idempotency keys.** The key is ``cjm-`` and 32 hex digits of SHA-256 over the dealer
  group, customer, task, the update's place in that customer's task history (``sequence``, 1,
  2, ..., across rooftops) and the hash of its content. Enqueueing the same update again
  returns the same key, so a batch re-run after a crash makes no second key; an update that
  changes risk back to an earlier value is a new update with its own key (it must overwrite
  the one in between). The key and body are written once and every retry sends exactly those
  bytes.
- **Order per customer.** A customer's update is sent only after every earlier one of that
  customer (any task) is delivered: a failing, in-flight or parked update holds the later ones.
- **Nothing lost.** A delivery is claimed with a lease before it is sent; a process that dies
  mid-send leaves it in flight, and once the lease runs out any deliverer sends it again with
  the same key (the CRM drops the duplicate). Failures are retried with exponential backoff
  and jitter; ``next_attempt_at`` is in the table, so a restart continues where it was.
- **Parked, not dropped.** After ``RetryPolicy.max_attempts`` failures, or at once when the
  CRM refuses the update (a 4xx other than 408, 425, 429), the delivery is parked with its last
  error, listed by ``Outbox.deliveries``, and sent again after ``Outbox.requeue``.

Requests are signed: ``X-CJM-Signature: sha256=<hex>`` is HMAC-SHA256 with the group's secret
over ``<X-CJM-Timestamp>.<body>`` (the timestamp, a dot, then the raw body bytes), so a
receiver can refuse tampered and replayed requests (see ``verify_signature``).

The table's schema is versioned (``SCHEMA_VERSION``); opening a file written by an earlier
version upgrades it in place, in one transaction (``_migrate``), keeping every key and body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field

from cjm_ml.serving._sqlite import Connections, ensure_schema, transaction

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-CJM-Signature"
IDEMPOTENCY_HEADER = "X-CJM-Idempotency-Key"
TIMESTAMP_HEADER = "X-CJM-Timestamp"
#: Payload fields that do not make an update different (re-scoring at a later moment).
VOLATILE_FIELDS = frozenset({"scored_at"})
#: Fields the outbox writes into every body (``rooftop_id`` when the update names one); a
#: payload may only repeat them unchanged.
_ENVELOPE_FIELDS = (
    "dealer_group_id",
    "customer_id",
    "task",
    "rooftop_id",
    "sequence",
    "idempotency_key",
)
#: HTTP statuses worth retrying; any other non-2xx means the CRM refuses the update.
_RETRYABLE_STATUSES = frozenset({408, 425, 429})
#: Longest error text kept per delivery (no response bodies: they may hold personal data).
_MAX_ERROR_CHARS = 300

#: 1: the first table; 2: ``rooftop_id`` and ``generation`` (``_migrate`` upgrades a 1 file).
SCHEMA_VERSION = 2
_DDL = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    dealer_group_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    task TEXT NOT NULL,
    rooftop_id TEXT,
    generation INTEGER NOT NULL DEFAULT 0,
    sequence INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    body BLOB NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'in_flight', 'delivered', 'parked', 'discarded')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    next_attempt_at REAL,
    lease_until REAL,
    last_attempt_at REAL,
    delivered_at REAL,
    last_status_code INTEGER,
    last_error TEXT,
    UNIQUE (dealer_group_id, customer_id, task, sequence)
);
CREATE INDEX IF NOT EXISTS outbox_open ON outbox (dealer_group_id, customer_id, id)
    WHERE status IN ('pending', 'in_flight', 'parked');
CREATE INDEX IF NOT EXISTS outbox_by_group ON outbox (dealer_group_id, status, id);
CREATE INDEX IF NOT EXISTS outbox_by_rooftop ON outbox (dealer_group_id, rooftop_id, id)
"""
#: What version 2 adds to a version 1 table (the rooftop of a legacy row: see ``_migrate``).
_ADDED_COLUMNS = {"rooftop_id": "TEXT", "generation": "INTEGER NOT NULL DEFAULT 0"}
_OPEN = "('pending', 'in_flight', 'parked')"


class DeliveryStatus(StrEnum):
    """Where a delivery stands."""

    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    PARKED = "parked"
    DISCARDED = "discarded"


@dataclass(frozen=True)
class WebhookTarget:
    """A dealer group's CRM endpoint, signing secret and request timeout (seconds)."""

    url: str
    secret: str = field(repr=False)
    timeout_s: float = 10.0


@dataclass(frozen=True)
class RetryPolicy:
    """How failed deliveries are retried and when they are parked.

    The n-th retry waits ``min(max_delay_s, base_delay_s * 2**(n-1))``, half of it fixed and
    half random (jitter), so a recovering CRM is not hit by every retry at once. A delivery
    left in flight longer than ``lease_margin_s`` past its timeouts is taken to be orphaned by
    a crashed process and sent again.
    """

    max_attempts: int = 10
    base_delay_s: float = 5.0
    max_delay_s: float = 900.0
    lease_margin_s: float = 30.0

    def delay_s(self, attempts: int, rng: random.Random) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** max(attempts - 1, 0))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass(frozen=True)
class CrmUpdate:
    """One update to enqueue: whose it is, its JSON ``payload``, the rooftop whose instances it
    carries (None: not tied to one; listed to whole-group keys only) and the ``generation`` of
    the models that scored it."""

    dealer_group_id: str
    customer_id: str
    task: str
    payload: Mapping[str, Any]
    rooftop_id: str | None = None
    generation: int = 0


@dataclass(frozen=True)
class EnqueueResult:
    """The update's idempotency key and sequence; ``created`` False when it was unchanged or
    ``stale`` (scored by older models than an update already queued or sent for the customer
    and task: then the key and sequence are that newer update's)."""

    idempotency_key: str
    sequence: int
    created: bool
    stale: bool = False


class Delivery(BaseModel):
    """One update in the outbox, as ``GET /v1/outbox`` lists it."""

    id: int
    idempotency_key: str
    dealer_group_id: str
    customer_id: str
    task: str
    rooftop_id: str | None = Field(
        description="The rooftop whose instances it carries (none: a whole-group update)."
    )
    sequence: int
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class Backlog:
    """What the outbox still holds, across every dealer group: ``waiting`` (pending, in backoff
    or in flight: they will go, given time), ``held`` (pending behind a parked update of the
    same customer: they wait for a requeue), ``parked``, and ``next_due_at`` (Unix seconds when
    the earliest waiting head is due, or its lease ends; None when nothing waits)."""

    waiting: int
    held: int
    parked: int
    next_due_at: float | None


@dataclass
class RunReport:
    """What a delivery run did: attempts made and how they ended."""

    attempted: int = 0
    delivered: int = 0
    retrying: int = 0
    parked: int = 0


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON (sorted keys, no spaces, UTF-8); NaN and infinity are refused."""
    return json.dumps(
        obj,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_json_default,
    ).encode("utf-8")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-CJM-Signature`` value: ``sha256=`` HMAC over ``<timestamp>.<body>``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    now: float | None = None,
    tolerance_s: float = 300.0,
) -> bool:
    """Whether a received webhook is signed with ``secret`` within ``tolerance_s`` of now.

    ``headers`` must be case-insensitive for ``X-CJM-...`` lookups as HTTP libraries give them
    (httpx, Starlette, ``http.server``).
    """
    raw_ts = headers.get(TIMESTAMP_HEADER)
    given = headers.get(SIGNATURE_HEADER)
    if raw_ts is None or given is None or not raw_ts.isdigit():
        return False
    timestamp = int(raw_ts)
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), given)


class Outbox:
    """The durable outbox: a SQLite table of risk updates waiting for, or past, delivery."""

    def __init__(self, path: Path) -> None:
        self._connections = Connections(Path(path), self._init_connection)
        self._connections.get()

    @property
    def path(self) -> Path:
        """The database file."""
        return self._connections.path

    @staticmethod
    def _init_connection(conn: sqlite3.Connection) -> None:
        _migrate(conn)
        ensure_schema(conn, "outbox", SCHEMA_VERSION, _DDL)

    def enqueue(
        self,
        dealer_group_id: str,
        customer_id: str,
        task: str,
        payload: Mapping[str, Any],
        now: float | None = None,
        *,
        rooftop_id: str | None = None,
        generation: int = 0,
    ) -> EnqueueResult:
        """Store one update for delivery unless it is unchanged or stale (``enqueue_many``)."""
        update = CrmUpdate(dealer_group_id, customer_id, task, payload, rooftop_id, generation)
        return self.enqueue_many([update], now)[0]

    def enqueue_many(
        self,
        updates: Iterable[CrmUpdate | tuple[str, str, str, Mapping[str, Any]]],
        now: float | None = None,
    ) -> list[EnqueueResult]:
        """Store updates (``CrmUpdate``, or (dealer_group_id, customer_id, task, payload)) in
        one transaction; their results, in order.

        A payload is the update's JSON object (risk, band, drivers, action, model version...);
        the body sent adds ``dealer_group_id``, ``customer_id``, ``task``, ``rooftop_id`` (when
        given), ``sequence`` and ``idempotency_key``. An update equal to the last one of its
        customer, task and rooftop is not stored again; one scored by an older generation of
        models than an update already queued or sent for its customer and task is dropped
        (``stale``, logged at debug). ``ValueError`` for a payload that is not JSON (NaN
        included) or that contradicts those fields; then nothing is stored.
        """
        created_at = time.time() if now is None else now
        prepared = [_prepare(u if isinstance(u, CrmUpdate) else CrmUpdate(*u)) for u in updates]
        conn = self._connections.get()
        with transaction(conn):
            results = [_enqueue_one(conn, *p, created_at) for p in prepared]
        created = sum(r.created for r in results)
        stale = sum(r.stale for r in results)
        if created or stale:
            log.info(
                "enqueued %d CRM updates (%d unchanged, %d stale)",
                created,
                len(results) - created - stale,
                stale,
            )
        return results

    def open_rooftops(
        self, dealer_group_id: str, task: str, customer_ids: Iterable[str], rooftops: Iterable[str]
    ) -> dict[str, set[str]]:
        """Per customer, the ``rooftops`` where its latest update for ``task`` lists instances
        (a payload's non-empty ``instances``, each with its ``rooftop_id``): what the CRM still
        shows there, so an update with no instances must follow when they close. Customers with
        none are left out."""
        rows = (
            self._connections.get()
            .execute(
                "SELECT customer_id, rooftop_id, body FROM outbox o "
                "WHERE dealer_group_id = ? AND task = ? "
                "AND customer_id IN (SELECT value FROM json_each(?)) "
                "AND sequence = (SELECT MAX(p.sequence) FROM outbox p "
                "WHERE p.dealer_group_id = o.dealer_group_id AND p.customer_id = o.customer_id "
                "AND p.task = o.task AND p.rooftop_id IS o.rooftop_id) "
                "ORDER BY customer_id, sequence",
                (dealer_group_id, task, json.dumps(list(customer_ids))),
            )
            .fetchall()
        )
        wanted = set(rooftops)
        shown: dict[str, dict[str, bool]] = {}
        for customer, rooftop, body in rows:
            listed = _instance_rooftops(bytes(body))
            if rooftop is None:  # a whole-customer update (schema 1): it replaced everything
                shown[customer] = dict.fromkeys(listed, True)
            else:
                shown.setdefault(customer, {})[rooftop] = rooftop in listed
        out = {c: {r for r, on in s.items() if on and r in wanted} for c, s in shown.items()}
        return {c: r for c, r in out.items() if r}

    def deliveries(
        self,
        dealer_group_id: str,
        status: DeliveryStatus | str | None = None,
        limit: int = 100,
        after_id: int = 0,
        rooftops: Iterable[str] | None = None,
    ) -> list[Delivery]:
        """A dealer group's deliveries in enqueue order (``status`` to filter, paged by id);
        with ``rooftops``, only the updates of those rooftops (not whole-group ones)."""
        where = "dealer_group_id = ? AND id > ?"
        params: tuple[Any, ...] = (dealer_group_id, after_id)
        if status is not None:
            where += " AND status = ?"
            params += (DeliveryStatus(status).value,)
        if rooftops is not None:
            where += " AND rooftop_id IN (SELECT value FROM json_each(?))"
            params += (json.dumps(sorted(rooftops)),)
        rows = (
            self._connections.get()
            .execute(f"{_SELECT_DELIVERY} WHERE {where} ORDER BY id LIMIT ?", (*params, limit))
            .fetchall()
        )
        return [_delivery(r) for r in rows]

    def counts(self, dealer_group_id: str) -> dict[DeliveryStatus, int]:
        """How many of a dealer group's deliveries are in each status (zeros included)."""
        rows = (
            self._connections.get()
            .execute(
                "SELECT status, COUNT(*) FROM outbox WHERE dealer_group_id = ? GROUP BY status",
                (dealer_group_id,),
            )
            .fetchall()
        )
        found = dict(rows)
        return {s: int(found.get(s.value, 0)) for s in DeliveryStatus}

    def newest_generation(self) -> int:
        """The highest model generation of any stored update (0: none): new generations must
        stay above it, or the outbox would drop their updates as stale."""
        row = self._connections.get().execute("SELECT MAX(generation) FROM outbox").fetchone()
        return int(row[0] or 0)

    def backlog(self) -> Backlog:
        """What is left to deliver across every dealer group (read only): deliveries that will
        go, given time, those held behind a parked one, the parked ones, and when the next due
        head is due."""
        row = (
            self._connections.get()
            .execute(
                f"WITH open AS (SELECT id, dealer_group_id, customer_id, status, next_attempt_at, "
                f"lease_until FROM outbox WHERE status IN {_OPEN}), "
                "heads AS (SELECT o.* FROM open o JOIN (SELECT MIN(id) AS id FROM open "
                "GROUP BY dealer_group_id, customer_id) USING (id)) "
                "SELECT TOTAL(o.status != 'parked' AND h.status != 'parked'), "
                "TOTAL(o.status != 'parked' AND h.status = 'parked'), "
                "TOTAL(o.status = 'parked'), "
                "(SELECT MIN(CASE status WHEN 'pending' THEN next_attempt_at "
                "WHEN 'in_flight' THEN lease_until END) FROM heads) "
                "FROM open o JOIN heads h USING (dealer_group_id, customer_id)"
            )
            .fetchone()
        )
        return Backlog(
            waiting=int(row[0]), held=int(row[1]), parked=int(row[2]), next_due_at=row[3]
        )

    def requeue(
        self,
        dealer_group_id: str,
        ids: Iterable[int] | None = None,
        now: float | None = None,
        rooftops: Iterable[str] | None = None,
    ) -> int:
        """Send parked deliveries again from a fresh attempt count; returns how many.

        ``ids`` None requeues every parked delivery of the group (with ``rooftops``: of those
        rooftops only); ids of other groups or rooftops, or not parked, are left alone.
        """
        return self._change_parked(
            dealer_group_id,
            ids,
            "status = 'pending', attempts = 0, next_attempt_at = ?",
            (time.time() if now is None else now,),
            rooftops,
        )

    def discard(self, dealer_group_id: str, ids: Iterable[int]) -> int:
        """Give up on parked deliveries (kept, marked discarded); unblocks later updates."""
        return self._change_parked(dealer_group_id, ids, "status = 'discarded'", ())

    def prune(self, delivered_before: float) -> int:
        """Delete deliveries delivered before a time, keeping each customer+task+rooftop's
        latest.

        The latest stays because it is what the next update is compared with (and holds the
        newest generation the next one must not go below).
        """
        conn = self._connections.get()
        with transaction(conn):
            return conn.execute(
                "DELETE FROM outbox WHERE status = 'delivered' AND delivered_at < ? "
                "AND sequence < (SELECT MAX(o.sequence) FROM outbox o WHERE "
                "o.dealer_group_id = outbox.dealer_group_id AND "
                "o.customer_id = outbox.customer_id AND o.task = outbox.task AND "
                "o.rooftop_id IS outbox.rooftop_id)",
                (delivered_before,),
            ).rowcount

    def close(self) -> None:
        """Close every connection; the file stays."""
        self._connections.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------
    # Used by the Deliverer

    def _claim(
        self, now: float, limit: int, lease_s: Mapping[str, float], default_lease_s: float
    ) -> list[_Claim]:
        """Take up to ``limit`` due heads (one per customer) in flight under a lease."""
        conn = self._connections.get()
        with transaction(conn):
            rows = conn.execute(
                "WITH heads AS (SELECT MIN(id) AS id FROM outbox "
                f"WHERE status IN {_OPEN} GROUP BY dealer_group_id, customer_id) "
                "SELECT o.id, o.idempotency_key, o.dealer_group_id, o.body, o.attempts "
                "FROM outbox o JOIN heads USING (id) "
                "WHERE (o.status = 'pending' AND o.next_attempt_at <= ?) "
                "OR (o.status = 'in_flight' AND o.lease_until <= ?) "
                "ORDER BY o.next_attempt_at, o.id LIMIT ?",
                (now, now, limit),
            ).fetchall()
            claims = [
                _Claim(id=r[0], key=r[1], dealer_group_id=r[2], body=bytes(r[3]), attempt=r[4] + 1)
                for r in rows
            ]
            conn.executemany(
                "UPDATE outbox SET status = 'in_flight', attempts = ?, last_attempt_at = ?, "
                "lease_until = ? WHERE id = ?",
                [
                    (c.attempt, now, now + lease_s.get(c.dealer_group_id, default_lease_s), c.id)
                    for c in claims
                ],
            )
        return claims

    def _record(
        self, outcomes: list[_Outcome], now: float, policy: RetryPolicy, rng: random.Random
    ) -> RunReport:
        """Write the outcomes of claimed deliveries (only while the claim is still ours)."""
        report = RunReport(attempted=len(outcomes))
        conn = self._connections.get()
        with transaction(conn):
            for o in outcomes:
                c = o.claim
                if o.delivered:
                    conn.execute(
                        "UPDATE outbox SET status = 'delivered', delivered_at = ?, "
                        "last_status_code = ?, last_error = NULL, lease_until = NULL, "
                        "next_attempt_at = NULL WHERE id = ? AND status != 'delivered'",
                        (now, o.status_code, c.id),
                    )
                    report.delivered += 1
                    continue
                park = not o.retryable or c.attempt >= policy.max_attempts
                if park:
                    status, next_at = "parked", None
                    report.parked += 1
                else:
                    wait = max(
                        policy.delay_s(c.attempt, rng),
                        min(o.retry_after_s or 0.0, policy.max_delay_s),
                    )
                    status, next_at = "pending", now + wait
                    report.retrying += 1
                conn.execute(
                    "UPDATE outbox SET status = ?, next_attempt_at = ?, lease_until = NULL, "
                    "last_status_code = ?, last_error = ? "
                    "WHERE id = ? AND status = 'in_flight' AND attempts = ?",
                    (status, next_at, o.status_code, o.error, c.id, c.attempt),
                )
                if park:
                    log.warning(
                        "parked CRM update %s of dealer group %s after %d attempt(s): %s",
                        c.key,
                        c.dealer_group_id,
                        c.attempt,
                        o.error,
                    )
        return report

    def _change_parked(
        self,
        dealer_group_id: str,
        ids: Iterable[int] | None,
        assignments: str,
        params: tuple[Any, ...],
        rooftops: Iterable[str] | None = None,
    ) -> int:
        conn = self._connections.get()
        where = "dealer_group_id = ? AND status = 'parked'"
        args: tuple[Any, ...] = (*params, dealer_group_id)
        if ids is not None:
            where += " AND id IN (SELECT value FROM json_each(?))"
            args += (json.dumps([int(i) for i in ids]),)
        if rooftops is not None:
            where += " AND rooftop_id IN (SELECT value FROM json_each(?))"
            args += (json.dumps(sorted(rooftops)),)
        with transaction(conn):
            changed = conn.execute(f"UPDATE outbox SET {assignments} WHERE {where}", args).rowcount
        log.info("%d parked CRM updates of dealer group %s changed", changed, dealer_group_id)
        return int(changed)


class Deliverer:
    """Sends the outbox's due deliveries to each dealer group's CRM, in order per customer.

    ``run_once`` is one delivery run (what ``cjm push`` and the tests call); ``start`` runs it
    in a background thread every ``poll_interval_s`` (or at once after ``wake``) until ``stop``.
    Deliveries of different customers go out in parallel on ``max_workers`` threads.
    """

    def __init__(
        self,
        outbox: Outbox,
        targets: Mapping[str, WebhookTarget],
        policy: RetryPolicy | None = None,
        client: httpx.Client | None = None,
        max_workers: int = 4,
        batch_size: int = 64,
        rng: random.Random | None = None,
    ) -> None:
        self.outbox = outbox
        self.targets = dict(targets)
        self.policy = policy or RetryPolicy()
        self._client = client or httpx.Client(follow_redirects=False)
        self._owns_client = client is None
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="cjm-crm")
        self.batch_size = batch_size
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # Three httpx phases (connect, write, read) can each take the timeout.
        self._lease_s = {
            g: 3 * t.timeout_s + self.policy.lease_margin_s for g, t in self.targets.items()
        }

    def run_once(self, now: float | None = None) -> RunReport:
        """Deliver everything due at ``now`` (default: the clock), head by head per customer.

        Loops until nothing is due: after a customer's update is delivered its next one goes
        in the following round; a failed one waits for its backoff (past ``now``).
        """
        return self._run(now, should_stop=lambda: False)

    def start(self, poll_interval_s: float = 1.0) -> None:
        """Run deliveries in a background thread until ``stop``."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the deliverer is already running")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(poll_interval_s,), name="cjm-outbox", daemon=True
        )
        self._thread.start()

    def wake(self) -> None:
        """Start the next background run now (call after enqueueing)."""
        self._wake.set()

    def stop(self, timeout_s: float | None = 30.0) -> None:
        """Stop the background thread after the requests in flight; claims left are leased."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("the CRM delivery thread did not stop within %s s", timeout_s)
            self._thread = None

    def close(self) -> None:
        """Stop, then release the worker threads and the HTTP client (not the outbox)."""
        self.stop()
        self._pool.shutdown(wait=True)
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Deliverer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, now: float | None, should_stop: Callable[[], bool]) -> RunReport:
        total = RunReport()
        while not should_stop():
            started = time.time() if now is None else now
            claims = self.outbox._claim(
                started, self.batch_size, self._lease_s, self.policy.lease_margin_s
            )
            if not claims:
                break
            outcomes = list(self._pool.map(self._send, claims))
            report = self.outbox._record(
                outcomes, time.time() if now is None else now, self.policy, self._rng
            )
            for name in ("attempted", "delivered", "retrying", "parked"):
                setattr(total, name, getattr(total, name) + getattr(report, name))
        if total.attempted:
            log.info(
                "CRM delivery run: %d attempts, %d delivered, %d to retry, %d parked",
                total.attempted,
                total.delivered,
                total.retrying,
                total.parked,
            )
        return total

    def _loop(self, poll_interval_s: float) -> None:
        while not self._stop.is_set():
            try:
                self._run(None, should_stop=self._stop.is_set)
            except Exception:
                log.exception("CRM delivery run failed; trying again in %s s", poll_interval_s)
            self._wake.wait(poll_interval_s)
            self._wake.clear()

    def _send(self, claim: _Claim) -> _Outcome:
        """Post one claimed delivery; never raises (every failure becomes an outcome)."""
        target = self.targets.get(claim.dealer_group_id)
        if target is None:
            return _Outcome(
                claim,
                False,
                False,
                None,
                f"no CRM webhook configured for dealer group {claim.dealer_group_id}",
            )
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: claim.key,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(target.secret, timestamp, claim.body),
        }
        try:
            response = self._client.post(
                target.url, content=claim.body, headers=headers, timeout=target.timeout_s
            )
        except httpx.TimeoutException:
            return _Outcome(claim, False, True, None, f"no answer within {target.timeout_s} s")
        except httpx.HTTPError as exc:
            return _Outcome(claim, False, True, None, _error_text(exc))
        except Exception as exc:  # a bug must not stop deliveries or lose the claim
            log.exception("sending CRM update %s failed", claim.key)
            return _Outcome(claim, False, True, None, _error_text(exc))
        code = response.status_code
        if 200 <= code < 300:
            return _Outcome(claim, True, False, code, None)
        retryable = code >= 500 or code in _RETRYABLE_STATUSES
        reason = "" if retryable else " (the CRM refused the update; fix, then requeue)"
        return _Outcome(
            claim,
            False,
            retryable,
            code,
            f"HTTP {code} {response.reason_phrase}{reason}",
            _retry_after(response.headers.get("Retry-After")),
        )


def idempotency_key(
    dealer_group_id: str, customer_id: str, task: str, sequence: int, content_hash: str
) -> str:
    """The key of an update: SHA-256 over group, customer, task, sequence and content hash."""
    identity = canonical_json([dealer_group_id, customer_id, task, sequence, content_hash])
    return "cjm-" + hashlib.sha256(identity).hexdigest()[:32]


# --------------------------------------------------------------------------------------------
# Internals


@dataclass(frozen=True)
class _Claim:
    id: int
    key: str
    dealer_group_id: str
    body: bytes
    attempt: int


@dataclass(frozen=True)
class _Outcome:
    claim: _Claim
    delivered: bool
    retryable: bool
    status_code: int | None
    error: str | None
    retry_after_s: float | None = None


_SELECT_DELIVERY = (
    "SELECT id, idempotency_key, dealer_group_id, customer_id, task, rooftop_id, sequence, "
    "status, attempts, created_at, next_attempt_at, last_attempt_at, delivered_at, "
    "last_status_code, last_error, body FROM outbox"
)


def _delivery(row: tuple[Any, ...]) -> Delivery:
    """A row of ``_SELECT_DELIVERY`` as a ``Delivery``."""
    (
        id_,
        key,
        group,
        customer,
        task,
        rooftop,
        sequence,
        status,
        attempts,
        created,
        next_at,
        last_at,
        delivered,
        code,
        error,
        body,
    ) = row
    return Delivery(
        id=id_,
        idempotency_key=key,
        dealer_group_id=group,
        customer_id=customer,
        task=task,
        rooftop_id=rooftop,
        sequence=sequence,
        status=DeliveryStatus(status),
        attempts=attempts,
        created_at=_utc(created),
        next_attempt_at=_utc(next_at),
        last_attempt_at=_utc(last_at),
        delivered_at=_utc(delivered),
        last_status_code=code,
        last_error=error,
        payload=json.loads(bytes(body)),
    )


def _prepare(update: CrmUpdate) -> tuple[CrmUpdate, dict[str, Any], str]:
    """Check an update; the update, its body without the envelope, and its content hash
    (over the body without volatile fields)."""
    envelope = {
        "dealer_group_id": update.dealer_group_id,
        "customer_id": update.customer_id,
        "task": update.task,
    }
    if update.rooftop_id is not None:
        envelope["rooftop_id"] = update.rooftop_id
    for name, value in envelope.items():
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string")
    if not isinstance(update.generation, int) or update.generation < 0:
        raise ValueError("generation must be a whole number, 0 or more")
    payload = update.payload
    clashes = [
        f for f in _ENVELOPE_FIELDS if f in payload and payload[f] != envelope.get(f, object())
    ]
    if clashes:
        raise ValueError(f"payload sets {', '.join(clashes)}; the outbox adds these fields itself")
    body = {k: v for k, v in payload.items() if k not in _ENVELOPE_FIELDS}
    content = {k: v for k, v in body.items() if k not in VOLATILE_FIELDS}
    try:
        content_hash = hashlib.sha256(canonical_json(content)).hexdigest()
        canonical_json(body)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"payload is not valid JSON: {exc}") from None
    return update, body, content_hash


def _enqueue_one(
    conn: sqlite3.Connection,
    update: CrmUpdate,
    body: dict[str, Any],
    content_hash: str,
    created_at: float,
) -> EnqueueResult:
    """Store one prepared update inside the caller's transaction, unless it is stale (older
    models than one queued or sent for the customer and task) or unchanged (equal to the last
    one of its rooftop: that one then takes on the update's generation if it is higher)."""
    identity = (update.dealer_group_id, update.customer_id, update.task)
    stale = _stale(conn, update)
    if stale is not None:
        return stale
    last = conn.execute(
        "SELECT id, sequence, content_hash, idempotency_key, status FROM outbox "
        "WHERE dealer_group_id = ? AND customer_id = ? AND task = ? AND rooftop_id IS ? "
        "ORDER BY sequence DESC LIMIT 1",
        (*identity, update.rooftop_id),
    ).fetchone()
    if last is not None and last[2] == content_hash and last[4] != "discarded":
        conn.execute(
            "UPDATE outbox SET generation = MAX(generation, ?) WHERE id = ?",
            (update.generation, last[0]),
        )
        return EnqueueResult(last[3], last[1], created=False)
    top = conn.execute(
        "SELECT MAX(sequence) FROM outbox WHERE dealer_group_id = ? AND customer_id = ? "
        "AND task = ?",
        identity,
    ).fetchone()[0]
    sequence = 1 if top is None else top + 1
    key = idempotency_key(*identity, sequence, content_hash)
    envelope = dict(zip(("dealer_group_id", "customer_id", "task"), identity, strict=True))
    if update.rooftop_id is not None:
        envelope["rooftop_id"] = update.rooftop_id
    document = {**body, **envelope, "sequence": sequence, "idempotency_key": key}
    conn.execute(
        "INSERT INTO outbox (idempotency_key, dealer_group_id, customer_id, task, rooftop_id, "
        "generation, sequence, content_hash, body, status, created_at, next_attempt_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
        (
            key,
            *identity,
            update.rooftop_id,
            update.generation,
            sequence,
            content_hash,
            canonical_json(document),
            created_at,
            created_at,
        ),
    )
    return EnqueueResult(key, sequence, created=True)


def _stale(conn: sqlite3.Connection, update: CrmUpdate) -> EnqueueResult | None:
    """The newest update queued or sent for the customer and task when ``update`` was scored
    by older models than it (then ``update`` is dropped); None when ``update`` may go."""
    newest = conn.execute(
        "SELECT generation, idempotency_key, sequence FROM outbox WHERE dealer_group_id = ? "
        "AND customer_id = ? AND task = ? AND status != 'discarded' "
        "ORDER BY generation DESC, sequence DESC LIMIT 1",
        (update.dealer_group_id, update.customer_id, update.task),
    ).fetchone()
    if newest is None or update.generation >= newest[0]:
        return None
    log.debug(
        "dropped a %s update of dealer group %s scored by model generation %d: %s is "
        "from generation %d",
        update.task,
        update.dealer_group_id,
        update.generation,
        newest[1],
        newest[0],
    )
    return EnqueueResult(newest[1], newest[2], created=False, stale=True)


def _migrate(conn: sqlite3.Connection) -> None:
    """Upgrade a schema 1 outbox table in place, in one transaction (nothing to do on a new or
    current file): add ``rooftop_id`` and ``generation``. A row's rooftop is that of its
    payload's instances when they are all at one rooftop, else none (a whole-group update,
    listed to whole-group keys only); its generation is 0. Keys and bodies are kept."""
    with transaction(conn):
        columns = {row[1] for row in conn.execute("PRAGMA table_info(outbox)")}
        if not columns or set(_ADDED_COLUMNS) <= columns:
            return
        for name, kind in _ADDED_COLUMNS.items():
            if name not in columns:
                conn.execute(f"ALTER TABLE outbox ADD COLUMN {name} {kind}")
        rooftops = [
            (next(iter(found)), id_)
            for id_, body in conn.execute("SELECT id, body FROM outbox").fetchall()
            if len(found := _instance_rooftops(bytes(body))) == 1
        ]
        conn.executemany("UPDATE outbox SET rooftop_id = ? WHERE id = ?", rooftops)
    log.info("upgraded the outbox to schema %d (%d rows given a rooftop)", 2, len(rooftops))


def _instance_rooftops(body: bytes) -> set[str]:
    """The rooftops of the instances a stored body lists (none when it lists none)."""
    instances = json.loads(body).get("instances")
    if not isinstance(instances, list):
        return set()
    return {str(i["rooftop_id"]) for i in instances if isinstance(i, dict) and i.get("rooftop_id")}


def _json_default(value: Any) -> Any:
    """JSON for datetimes (ISO 8601) and numpy scalars; anything else is refused."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    item = getattr(value, "item", None)  # numpy and pandas scalars
    if callable(item):
        result = item()
        if isinstance(result, float) and not math.isfinite(result):
            raise ValueError(f"{result} is not a JSON number")
        return result
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _utc(seconds: float | None) -> datetime | None:
    """Unix seconds as an aware UTC datetime."""
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


def _error_text(exc: BaseException) -> str:
    """A short, body-free description of a failed request."""
    return f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds (dates are ignored)."""
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())
