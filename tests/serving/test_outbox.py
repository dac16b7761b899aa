"""The CRM outbox: stable keys, each update once and in order through failures and restarts."""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cjm_ml.serving import service as use
from cjm_ml.serving.outbox import (
    Deliverer,
    Delivery,
    DeliveryStatus,
    Outbox,
    RetryPolicy,
    WebhookTarget,
    canonical_json,
    sign,
    verify_signature,
)
from cjm_ml.serving.schemas import CustomerIn, CustomerScore
from tests.serving.conftest import Api, open_customer
from tests.serving.receiver import Receiver

SECRET = "dg01-webhook-secret-abcdefghij"
#: Tiny backoff so tests run fast; each run_once call below advances the clock by 1 s.
FAST = RetryPolicy(max_attempts=50, base_delay_s=0.01, max_delay_s=0.05, lease_margin_s=1.0)
T0 = 1_750_000_000.0


def update(risk: float, band: str = "high", **extra: Any) -> dict[str, Any]:
    """A risk update as the scoring side would build it."""
    return {
        "risk": risk,
        "band": band,
        "drivers": [{"feature": "first_response_minutes", "label": "slow first reply"}],
        "action": "call the customer back today",
        "model_version": "lead_leakage@3",
        **extra,
    }


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db")
    yield box
    box.close()


@pytest.fixture
def crm() -> Iterator[Receiver]:
    with Receiver(SECRET, slow_s=2.0) as receiver:
        yield receiver


def deliverer(outbox: Outbox, crm: Receiver, policy: RetryPolicy = FAST) -> Deliverer:
    target = WebhookTarget(crm.url, SECRET, timeout_s=0.25)
    return Deliverer(outbox, {"dg-01": target}, policy, rng=random.Random(3))


# ---------------------------------------------------------------------------------------------
# Enqueueing: each changed risk once, with a stable key


def test_the_same_update_again_keeps_its_key_and_is_not_enqueued_twice(outbox: Outbox) -> None:
    first = outbox.enqueue("dg-01", "c-1", "lead_leakage", update(0.81), now=T0)
    again = outbox.enqueue("dg-01", "c-1", "lead_leakage", update(0.81), now=T0 + 60)
    assert first.created and not again.created
    assert (again.idempotency_key, again.sequence) == (first.idempotency_key, 1)
    assert first.idempotency_key.startswith("cjm-") and len(first.idempotency_key) == 36
    assert len(outbox.deliveries("dg-01")) == 1


def test_rescoring_later_with_the_same_result_is_not_a_change(outbox: Outbox) -> None:
    first = outbox.enqueue("dg-01", "c-1", "no_show", update(0.4, scored_at="2025-03-01T10:00Z"))
    later = outbox.enqueue("dg-01", "c-1", "no_show", update(0.4, scored_at="2025-03-01T11:00Z"))
    assert not later.created and later.idempotency_key == first.idempotency_key


def test_each_change_gets_the_next_sequence_and_a_new_key_even_back_to_an_old_risk(
    outbox: Outbox,
) -> None:
    a = outbox.enqueue("dg-01", "c-1", "lead_leakage", update(0.81))
    b = outbox.enqueue("dg-01", "c-1", "lead_leakage", update(0.35, band="low"))
    a_again = outbox.enqueue("dg-01", "c-1", "lead_leakage", update(0.81))
    other_task = outbox.enqueue("dg-01", "c-1", "no_show", update(0.81))
    assert [r.sequence for r in (a, b, a_again, other_task)] == [1, 2, 3, 1]
    assert len({r.idempotency_key for r in (a, b, a_again, other_task)}) == 4
    bodies = [d.payload for d in outbox.deliveries("dg-01")]
    assert bodies[2] == {
        **update(0.81),
        "dealer_group_id": "dg-01",
        "customer_id": "c-1",
        "task": "lead_leakage",
        "sequence": 3,
        "idempotency_key": a_again.idempotency_key,
    }


def test_keys_depend_only_on_the_updates_so_a_rerun_makes_the_same_keys(tmp_path: Path) -> None:
    history = [("c-1", 0.81), ("c-2", 0.2), ("c-1", 0.5), ("c-1", 0.5), ("c-1", 0.81)]
    keys = []
    for name in ("first.db", "rerun.db"):
        with Outbox(tmp_path / name) as box:
            keys.append(
                [box.enqueue("dg-01", c, "lead_leakage", update(r)).idempotency_key
                 for c, r in history]
            )  # fmt: skip
    assert keys[0] == keys[1]
    assert keys[0][2] == keys[0][3] and len(set(keys[0])) == 4


def test_bad_payloads_are_refused_and_nothing_is_stored(outbox: Outbox) -> None:
    with pytest.raises(ValueError, match="payload sets customer_id, sequence"):
        outbox.enqueue("dg-01", "c-1", "no_show", update(0.3, customer_id="c-2", sequence=9))
    with pytest.raises(ValueError, match="payload is not valid JSON"):
        outbox.enqueue_many(
            [
                ("dg-01", "c-1", "no_show", update(0.3)),
                ("dg-01", "c-2", "no_show", update(float("nan"))),
            ]
        )
    with pytest.raises(ValueError, match="payload is not valid JSON"):
        outbox.enqueue("dg-01", "c-1", "no_show", update(np.float64("inf")))
    assert outbox.deliveries("dg-01") == []
    # the payload may repeat the envelope unchanged; numpy and datetime values are JSON
    same = update(np.float64(0.25), customer_id="c-1", task="no_show",
                  scored_at=datetime(2025, 3, 1, tzinfo=UTC))  # fmt: skip
    assert outbox.enqueue("dg-01", "c-1", "no_show", same).created
    payload = outbox.deliveries("dg-01")[0].payload
    assert (payload["risk"], payload["scored_at"]) == (0.25, "2025-03-01T00:00:00+00:00")


# ---------------------------------------------------------------------------------------------
# Signing


def test_signature_covers_timestamp_and_body() -> None:
    body = b'{"risk":0.8}'
    ts = int(time.time())
    headers = {"X-CJM-Timestamp": str(ts), "X-CJM-Signature": sign(SECRET, ts, body)}
    assert headers["X-CJM-Signature"].startswith("sha256=")
    assert verify_signature(SECRET, body, headers)
    assert not verify_signature(SECRET, b'{"risk":0.1}', headers)
    assert not verify_signature("another-secret-0123456789", body, headers)
    assert not verify_signature(SECRET, body, headers, now=ts + 301)
    assert not verify_signature(SECRET, body, {"X-CJM-Signature": headers["X-CJM-Signature"]})


def test_a_receiver_with_another_secret_refuses_and_the_update_is_parked(
    outbox: Outbox,
) -> None:
    with Receiver("not-the-secret-0123456789") as crm:
        outbox.enqueue("dg-01", "c-1", "lead_leakage", update(0.8), now=T0)
        report = deliverer(outbox, crm).run_once(now=T0)
        assert (report.attempted, report.parked) == (1, 1)
        assert crm.requests[0].signature_ok is False and crm.applied == []
    parked = outbox.deliveries("dg-01", status="parked")[0]
    assert parked.last_status_code == 401 and parked.attempts == 1


# ---------------------------------------------------------------------------------------------
# Delivery: exactly once by key, in order per customer, across failures and restarts


def _enqueue_round(box: Outbox, round_: int, customers: list[str]) -> list[str]:
    keys = []
    for c in customers:
        for task in ("lead_leakage", "no_show"):
            risk = round(0.1 + 0.07 * round_ + 0.01 * customers.index(c), 4)
            keys.append(box.enqueue("dg-01", c, task, update(risk), now=T0).idempotency_key)
    return keys


def test_every_update_arrives_once_in_order_through_failures_timeouts_drops_and_a_restart(
    tmp_path: Path, crm: Receiver
) -> None:
    path = tmp_path / "outbox.db"
    customers = ["c-1", "c-2", "c-3"]
    enqueued: list[str] = []
    box = Outbox(path)
    for round_ in range(3):
        enqueued += _enqueue_round(box, round_, customers)
    crm.script("fail", "slow", "drop", "fail", "ok", "slow", "drop", "fail", "fail", "ok", "drop")
    sender = deliverer(box, crm)
    now = T0
    for _ in range(3):
        now += 1
        sender.run_once(now=now)
    # the service restarts mid-way: new outbox and deliverer on the same file; more updates
    sender.close()
    box.close()
    box = Outbox(path)
    for round_ in range(3, 5):
        enqueued += _enqueue_round(box, round_, customers)
    crm.script("fail", "slow", "drop")
    sender = deliverer(box, crm)
    for _ in range(40):
        now += 1
        sender.run_once(now=now)
        if box.counts("dg-01")[DeliveryStatus.DELIVERED] == len(enqueued):
            break
    sender.close()
    box.close()

    assert len(enqueued) == 30 and len(set(enqueued)) == 30
    assert sorted(crm.applied_keys()) == sorted(enqueued)  # each update applied exactly once
    for customer, keys in crm.customer_order().items():  # in enqueue order per customer
        assert keys == [k for k in enqueued if k in set(keys)], customer
    assert all(seqs == [1, 2, 3, 4, 5] for seqs in crm.sequences_by_customer().values())
    # the timeouts were real: the CRM applied an update whose answer came too late, the
    # outbox sent it again under the same key, and the CRM dropped the repeat
    assert {r.mode for r in crm.requests} == {"ok", "fail", "slow", "drop"}
    assert sum(crm.duplicates.values()) == sum(r.mode == "slow" for r in crm.requests)
    assert all(r.signature_ok for r in crm.requests)


def test_a_customers_later_update_waits_for_the_earlier_one(outbox: Outbox, crm: Receiver) -> None:
    first = outbox.enqueue("dg-01", "c-1", "lead_leakage", update(0.8), now=T0).idempotency_key
    second = outbox.enqueue("dg-01", "c-1", "no_show", update(0.3), now=T0).idempotency_key
    other = outbox.enqueue("dg-01", "c-2", "lead_leakage", update(0.6), now=T0).idempotency_key
    crm.set_mode("fail")
    sender = deliverer(outbox, crm)
    report = sender.run_once(now=T0 + 1)
    assert report.attempted == 2  # c-1's head and c-2's; c-1's second waits
    assert [r.key for r in crm.requests if r.body and r.body["customer_id"] == "c-1"] == [first]
    crm.set_mode("ok")
    sender.run_once(now=T0 + 2)
    sender.close()
    assert crm.applied_keys() in ([first, other, second], [other, first, second])


def test_an_update_that_keeps_failing_is_parked_visible_and_requeued(
    outbox: Outbox, crm: Receiver
) -> None:
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05)
    stuck = outbox.enqueue("dg-01", "c-1", "lead_leakage", update(0.8), now=T0)
    behind = outbox.enqueue("dg-01", "c-1", "lead_leakage", update(0.2, band="low"), now=T0)
    crm.set_mode("fail")
    sender = deliverer(outbox, crm, policy)
    reports = [sender.run_once(now=T0 + i) for i in range(1, 6)]
    assert [(r.attempted, r.retrying, r.parked) for r in reports] == [
        (1, 1, 0), (1, 1, 0), (1, 0, 1), (0, 0, 0), (0, 0, 0),
    ]  # fmt: skip
    parked = outbox.deliveries("dg-01", status=DeliveryStatus.PARKED)
    assert [(d.idempotency_key, d.attempts, d.last_status_code) for d in parked] == [
        (stuck.idempotency_key, 3, 500)
    ]
    assert parked[0].last_error == "HTTP 500 Internal Server Error"
    assert parked[0].next_attempt_at is None
    assert outbox.counts("dg-01")[DeliveryStatus.PENDING] == 1  # the later update still waits
    assert outbox.requeue("dg-02") == 0  # another group cannot touch it
    crm.set_mode("ok")
    assert outbox.requeue("dg-01", [parked[0].id], now=T0 + 10) == 1
    assert sender.run_once(now=T0 + 10).delivered == 2
    sender.close()
    assert crm.applied_keys() == [stuck.idempotency_key, behind.idempotency_key]
    assert len(crm.requests) == 5  # three failures, then each update once


def test_a_refusing_crm_parks_at_once_and_discard_unblocks_the_customer(
    outbox: Outbox, crm: Receiver
) -> None:
    bad = outbox.enqueue("dg-01", "c-1", "no_show", update(0.9), now=T0)
    good = outbox.enqueue("dg-01", "c-1", "no_show", update(0.1, band="low"), now=T0)
    crm.script("reject")
    sender = deliverer(outbox, crm)
    assert sender.run_once(now=T0 + 1).parked == 1
    parked = outbox.deliveries("dg-01", status="parked")[0]
    assert parked.idempotency_key == bad.idempotency_key and parked.attempts == 1
    assert parked.last_error == (
        "HTTP 422 Unprocessable Entity (the CRM refused the update; fix, then requeue)"
    )
    assert outbox.discard("dg-01", [parked.id]) == 1
    sender.run_once(now=T0 + 2)
    sender.close()
    assert crm.applied_keys() == [good.idempotency_key]
    assert outbox.counts("dg-01")[DeliveryStatus.DISCARDED] == 1


def test_a_group_without_a_crm_webhook_is_parked_with_a_clear_error(
    outbox: Outbox, crm: Receiver
) -> None:
    outbox.enqueue("dg-02", "c-9", "service_defection", update(0.7), now=T0)
    sender = deliverer(outbox, crm)
    assert sender.run_once(now=T0 + 1).parked == 1
    sender.close()
    assert outbox.deliveries("dg-02")[0].last_error == (
        "no CRM webhook configured for dealer group dg-02"
    )
    assert outbox.deliveries("dg-01") == []


def test_a_failed_attempt_stores_its_backoff_so_a_restart_waits_for_it(
    tmp_path: Path, crm: Receiver
) -> None:
    policy = RetryPolicy(max_attempts=10, base_delay_s=20.0, max_delay_s=100.0)
    path = tmp_path / "outbox.db"

    def next_attempt(box: Outbox) -> float:
        when = box.deliveries("dg-01")[0].next_attempt_at
        assert when is not None
        return when.timestamp()

    with Outbox(path) as box:
        box.enqueue("dg-01", "c-1", "lead_leakage", update(0.8), now=T0)
        crm.script("fail", "fail")
        sender = deliverer(box, crm, policy)
        sender.run_once(now=T0)
        first = next_attempt(box)
        sender.run_once(now=first + 0.001)
        second = next_attempt(box)
        sender.close()
    assert 10.0 <= first - T0 <= 20.0 and 20.0 <= second - first - 0.001 <= 40.0
    with Outbox(path) as box:  # after a restart the stored backoff still holds
        sender = deliverer(box, crm, policy)
        assert sender.run_once(now=second - 0.5).attempted == 0
        assert sender.run_once(now=second + 0.001).delivered == 1
        sender.close()
    assert len(crm.requests) == 3


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    policy = RetryPolicy(base_delay_s=2.0, max_delay_s=30.0)
    rng = random.Random(0)
    for attempts, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (5, 30.0), (9, 30.0)]:
        delays = [policy.delay_s(attempts, rng) for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling / 4  # jitter spreads the retries


_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from cjm_ml.serving.outbox import Deliverer, Outbox, RetryPolicy, WebhookTarget
    box = Outbox(Path(sys.argv[1]))
    target = WebhookTarget(sys.argv[2], sys.argv[3], timeout_s=5.0)
    Deliverer(box, {"dg-01": target}, RetryPolicy(lease_margin_s=1.0)).run_once()
    """
)


def test_a_process_killed_mid_delivery_leaves_it_to_be_resent_with_the_same_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path) as box:
        k1 = box.enqueue("dg-01", "c-1", "lead_leakage", update(0.8)).idempotency_key
        k2 = box.enqueue("dg-01", "c-1", "no_show", update(0.4)).idempotency_key
        k3 = box.enqueue("dg-01", "c-2", "lead_leakage", update(0.6)).idempotency_key
    with Receiver(SECRET, slow_s=5.0) as crm:
        crm.set_mode("slow")  # the CRM applies both heads, then is slow to answer
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path), crm.url, SECRET])
        try:
            assert crm.wait_for(lambda r: len(r.applied) == 2, timeout_s=20)
        finally:
            child.kill()
            child.wait()
        crm.set_mode("ok")
        with Outbox(path) as box:
            in_flight = box.deliveries("dg-01", status="in_flight")
            assert sorted(d.idempotency_key for d in in_flight) == sorted([k1, k3])
            sender = Deliverer(
                box,
                {"dg-01": WebhookTarget(crm.url, SECRET, timeout_s=5.0)},
                RetryPolicy(lease_margin_s=1.0),
            )
            assert sender.run_once().attempted == 0  # the dead process's lease still holds
            later = time.time() + 3 * 5.0 + 1.0 + 1.0
            assert sender.run_once(now=later).delivered == 3
            sender.close()
            assert {d.idempotency_key: d.attempts for d in box.deliveries("dg-01")} == {
                k1: 2, k2: 1, k3: 2,
            }  # fmt: skip
        assert sorted(crm.applied_keys()) == sorted([k1, k2, k3])
        assert crm.customer_order()["c-1"] == [k1, k2]
        assert dict(crm.duplicates) == {k1: 1, k3: 1}


def test_the_background_loop_delivers_on_wake_and_stops_cleanly(
    outbox: Outbox, crm: Receiver
) -> None:
    sender = deliverer(outbox, crm)
    sender.start(poll_interval_s=30.0)  # only a wake can make it deliver within the test
    keys = [
        outbox.enqueue("dg-01", f"c-{i}", "no_show", update(0.5)).idempotency_key for i in range(5)
    ]
    sender.wake()
    assert crm.wait_for(lambda r: len(r.applied) == 5, timeout_s=10)
    started = time.monotonic()
    sender.close()
    assert time.monotonic() - started < 2.0
    assert sender._thread is None
    assert sorted(crm.applied_keys()) == sorted(keys)
    assert outbox.counts("dg-01")[DeliveryStatus.DELIVERED] == 5


def test_deliveries_are_listed_per_group_with_paging(outbox: Outbox) -> None:
    for i in range(5):
        outbox.enqueue("dg-01", f"c-{i}", "no_show", update(0.5), now=T0 + i)
    outbox.enqueue("dg-02", "c-0", "no_show", update(0.5), now=T0)
    page = outbox.deliveries("dg-01", limit=2)
    assert [d.customer_id for d in page] == ["c-0", "c-1"]
    rest = outbox.deliveries("dg-01", after_id=page[-1].id)
    assert [d.customer_id for d in rest] == ["c-2", "c-3", "c-4"]
    assert rest[0].created_at == datetime.fromtimestamp(T0 + 2, tz=UTC)
    assert rest[0].status is DeliveryStatus.PENDING and rest[0].last_error is None
    assert [d.dealer_group_id for d in outbox.deliveries("dg-02")] == ["dg-02"]
    assert outbox.counts("dg-02") == {
        DeliveryStatus.PENDING: 1, DeliveryStatus.IN_FLIGHT: 0, DeliveryStatus.DELIVERED: 0,
        DeliveryStatus.PARKED: 0, DeliveryStatus.DISCARDED: 0,
    }  # fmt: skip


def test_prune_keeps_the_latest_update_per_customer_and_task(outbox: Outbox, crm: Receiver) -> None:
    for risk in (0.1, 0.2, 0.3):
        outbox.enqueue("dg-01", "c-1", "no_show", update(risk), now=T0)
    sender = deliverer(outbox, crm)
    sender.run_once(now=T0 + 1)
    sender.close()
    assert outbox.prune(delivered_before=T0 + 2) == 2
    remaining = outbox.deliveries("dg-01")
    assert [d.sequence for d in remaining] == [3]
    # the kept latest still stops an unchanged update, and a change continues the sequence
    assert not outbox.enqueue("dg-01", "c-1", "no_show", update(0.3)).created
    assert outbox.enqueue("dg-01", "c-1", "no_show", update(0.4)).sequence == 4


# ---------------------------------------------------------------------------------------------
# Per rooftop, and never an older model's score after a newer one's


def crm_update(version: str, *rooftops: str) -> dict[str, Any]:
    """An update as ``push_scores`` builds it: one instance per rooftop named."""
    instances = [{"instance_id": f"i-{r}", "rooftop_id": r, "risk": 0.5} for r in rooftops]
    return {"model_version": version, "instances": instances}


def test_updates_are_per_rooftop_listed_and_requeued_per_rooftop(outbox: Outbox) -> None:
    a = outbox.enqueue("dg-01", "c-1", "no_show", crm_update("7", "rt-01"), rooftop_id="rt-01")
    b = outbox.enqueue("dg-01", "c-1", "no_show", crm_update("7", "rt-04"), rooftop_id="rt-04")
    again = outbox.enqueue("dg-01", "c-1", "no_show", crm_update("7", "rt-01"), rooftop_id="rt-01")
    whole = outbox.enqueue("dg-01", "c-2", "no_show", crm_update("7", "rt-01", "rt-04"))
    # one sequence per customer and task across rooftops; unchanged is per rooftop
    assert [(r.sequence, r.created) for r in (a, b, again, whole)] == [
        (1, True), (2, True), (1, False), (1, True),
    ]  # fmt: skip
    [delivery] = outbox.deliveries("dg-01", rooftops={"rt-04"})
    assert (delivery.idempotency_key, delivery.rooftop_id) == (b.idempotency_key, "rt-04")
    assert delivery.payload["rooftop_id"] == "rt-04"  # the CRM is told the rooftop too
    assert [d.rooftop_id for d in outbox.deliveries("dg-01")] == ["rt-01", "rt-04", None]
    assert "rooftop_id" not in outbox.deliveries("dg-01")[2].payload
    with pytest.raises(ValueError, match="payload sets rooftop_id"):
        outbox.enqueue("dg-01", "c-3", "no_show", {"rooftop_id": "rt-02"}, rooftop_id="rt-01")
    with outbox._connections.get() as conn:  # park everything
        conn.execute("UPDATE outbox SET status = 'parked'")
    assert outbox.requeue("dg-01", rooftops={"rt-02"}) == 0
    assert outbox.requeue("dg-01", rooftops={"rt-04", "rt-02"}) == 1
    assert [d.rooftop_id for d in outbox.deliveries("dg-01", status="parked")] == ["rt-01", None]
    assert outbox.requeue("dg-01") == 2


def test_an_older_models_update_is_dropped_once_a_newer_one_is_queued(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cjm_ml.serving.outbox")

    def push(version: str, generation: int, rooftop: str = "rt-01") -> Any:
        update = crm_update(version, rooftop)
        return outbox.enqueue(
            "dg-01", "c-1", "no_show", update, rooftop_id=rooftop, generation=generation
        )

    # two processes, one still on generation 2 (version "2"), score the same customer in turn
    v2 = push("2", 2)
    v3 = push("3", 3)
    late_v2 = push("2", 2)
    late_v2_elsewhere = push("2", 2, rooftop="rt-04")  # the customer and task, any rooftop
    assert (v2.created, v3.created) == (True, True)
    for late in (late_v2, late_v2_elsewhere):
        assert (late.created, late.stale) == (False, True)
        assert (late.idempotency_key, late.sequence) == (v3.idempotency_key, 2)
    assert "scored by model generation 2" in caplog.text and "generation 3" in caplog.text
    assert [d.payload["model_version"] for d in outbox.deliveries("dg-01")] == ["2", "3"]
    # another task or customer is not held back; the same generation goes on as before
    assert outbox.enqueue("dg-01", "c-1", "lead_leakage", crm_update("2"), generation=2).created
    assert push("3b", 3).created
    # a discarded update was never sent: it does not hold older ones back
    outbox.enqueue("dg-01", "c-9", "no_show", crm_update("5"), generation=5)
    with outbox._connections.get() as conn:
        conn.execute("UPDATE outbox SET status = 'discarded' WHERE customer_id = 'c-9'")
    assert outbox.enqueue("dg-01", "c-9", "no_show", crm_update("4"), generation=4).created


def test_an_unchanged_update_of_newer_models_still_raises_the_bar(outbox: Outbox) -> None:
    first = outbox.enqueue("dg-01", "c-1", "no_show", crm_update("7"), generation=1)
    same = outbox.enqueue("dg-01", "c-1", "no_show", crm_update("7"), generation=3)
    assert first.created and not same.created and not same.stale
    # generation 2 would now overwrite what generation 3 confirmed: dropped
    assert outbox.enqueue("dg-01", "c-1", "no_show", crm_update("7b"), generation=2).stale


def test_prune_keeps_each_rooftops_latest_and_the_newest_generation(
    outbox: Outbox, crm: Receiver
) -> None:
    for version in ("1", "2"):
        for rooftop in ("rt-01", "rt-04"):
            outbox.enqueue("dg-01", "c-1", "no_show", crm_update(version, rooftop), now=T0,
                           rooftop_id=rooftop, generation=int(version))  # fmt: skip
    sender = deliverer(outbox, crm)
    sender.run_once(now=T0 + 1)
    sender.close()
    assert outbox.prune(delivered_before=T0 + 2) == 2
    assert [(d.rooftop_id, d.sequence) for d in outbox.deliveries("dg-01")] == [
        ("rt-01", 3), ("rt-04", 4),
    ]  # fmt: skip
    again = outbox.enqueue("dg-01", "c-1", "no_show", crm_update("2", "rt-04"),
                           rooftop_id="rt-04", generation=2)  # fmt: skip
    assert not again.created and not again.stale
    assert outbox.enqueue("dg-01", "c-1", "no_show", crm_update("1", "rt-04"),
                          rooftop_id="rt-04", generation=1).stale  # fmt: skip


def test_open_rooftops_are_where_the_crm_still_shows_instances(outbox: Outbox) -> None:
    def put(customer: str, rooftop: str | None, *at: str) -> None:
        outbox.enqueue("dg-01", customer, "no_show", crm_update("7", *at), rooftop_id=rooftop)

    put("c-1", "rt-01", "rt-01")
    put("c-1", "rt-04", "rt-04")
    put("c-1", "rt-04")  # rt-04's instance closed and the CRM was told
    put("c-2", None, "rt-01", "rt-02")  # a whole-customer update, as schema 1 stored them
    put("c-3", "rt-01")
    asked = ["c-1", "c-2", "c-3", "c-4"]
    assert outbox.open_rooftops("dg-01", "no_show", asked, {"rt-01", "rt-02", "rt-04"}) == {
        "c-1": {"rt-01"},
        "c-2": {"rt-01", "rt-02"},
    }
    assert outbox.open_rooftops("dg-01", "no_show", asked, {"rt-02"}) == {"c-2": {"rt-02"}}
    assert outbox.open_rooftops("dg-01", "lead_leakage", asked, {"rt-01"}) == {}
    put("c-2", "rt-02")  # a per-rooftop update after the whole-customer one
    assert outbox.open_rooftops("dg-01", "no_show", ["c-2"], {"rt-01", "rt-02"}) == {
        "c-2": {"rt-01"}
    }


#: The outbox table as schema 1 (cjm-ml before rooftops and generations) created it.
SCHEMA_1 = """
CREATE TABLE cjm_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL);
INSERT INTO cjm_schema VALUES ('outbox', 1);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    dealer_group_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    task TEXT NOT NULL,
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
CREATE INDEX outbox_open ON outbox (dealer_group_id, customer_id, id)
    WHERE status IN ('pending', 'in_flight', 'parked');
CREATE INDEX outbox_by_group ON outbox (dealer_group_id, status, id);
"""


def test_a_schema_1_outbox_is_upgraded_in_place_keeping_keys_and_bodies(
    tmp_path: Path, crm: Receiver
) -> None:
    path = tmp_path / "outbox.db"
    legacy = [  # customer, status, the rooftops of its instances
        ("c-1", "pending", ("rt-01",)),
        ("c-2", "parked", ("rt-01", "rt-02")),
        ("c-3", "delivered", ()),
    ]
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_1)
        for i, (customer, status, rooftops) in enumerate(legacy, start=1):
            body = {**crm_update("7", *rooftops), "dealer_group_id": "dg-01",
                    "customer_id": customer, "task": "no_show", "sequence": 1,
                    "idempotency_key": f"cjm-legacy-{i}"}  # fmt: skip
            conn.execute(
                "INSERT INTO outbox (idempotency_key, dealer_group_id, customer_id, task, "
                "sequence, content_hash, body, status, created_at, next_attempt_at) "
                "VALUES (?, 'dg-01', ?, 'no_show', 1, ?, ?, ?, ?, ?)",
                (f"cjm-legacy-{i}", customer, f"hash-{i}", canonical_json(body), status, T0, T0),
            )
    with sqlite3.connect(path) as conn:
        before = conn.execute("SELECT id, idempotency_key, body FROM outbox").fetchall()
    with Outbox(path) as box:
        listed = box.deliveries("dg-01")
        assert [(d.customer_id, d.rooftop_id) for d in listed] == [
            ("c-1", "rt-01"), ("c-2", None), ("c-3", None),
        ]  # fmt: skip
        assert [d.idempotency_key for d in box.deliveries("dg-01", rooftops={"rt-01"})] == [
            "cjm-legacy-1"
        ]
        # it goes on from there: sequences continue, generations start above the legacy 0
        nxt = box.enqueue("dg-01", "c-1", "no_show", crm_update("8", "rt-01"), now=T0,
                          rooftop_id="rt-01", generation=1)  # fmt: skip
        assert (nxt.created, nxt.sequence) == (True, 2)
        assert box.open_rooftops("dg-01", "no_show", ["c-2", "c-3"], {"rt-01", "rt-02"}) == {
            "c-2": {"rt-01", "rt-02"}
        }
        sender = deliverer(box, crm)
        sender.run_once(now=T0 + 1)
        sender.close()
    with Outbox(path) as box:  # opening it again changes nothing
        assert [d.rooftop_id for d in box.deliveries("dg-01")] == ["rt-01", None, None, "rt-01"]
    with sqlite3.connect(path) as conn:
        assert (
            conn.execute("SELECT id, idempotency_key, body FROM outbox WHERE id <= 3").fetchall()
            == before
        )
        assert conn.execute(
            "SELECT version FROM cjm_schema WHERE component = 'outbox'"
        ).fetchone() == (2,)
    # the legacy pending update went out with its stored key and bytes, then the new one
    assert crm.applied_keys() == ["cjm-legacy-1", nxt.idempotency_key]
    assert crm.requests[0].body == json.loads(before[0][2])


def test_push_never_queues_an_older_models_score_after_a_newer_ones(api: Api) -> None:
    service = api.client.app.state.service
    manager = service.tenants.authenticate(api.keys["manager"])
    customer = open_customer(api, "no_show")
    asked = [CustomerIn(customer_id=customer)]
    out = use.score_given(service, service.ready_models(), manager, "no_show", asked, api.now)
    [rooftop] = {i.rooftop_id for i in out.customers[0].instances}
    newer = out.model_copy(
        update={"model_version": "8", "model_generation": out.model_generation + 1}
    )
    assert use.push_scores(service, manager, out) == {"queued": 1, "stale": 0}
    assert use.push_scores(service, manager, newer) == {"queued": 1, "stale": 0}
    # a process still on the older models pushes its score of the customer after the reload
    assert use.push_scores(service, manager, out) == {"queued": 0, "stale": 1}

    def sent() -> list[Delivery]:
        return [d for d in service.outbox.deliveries("dg-01") if d.customer_id == customer]

    assert [(d.payload["model_version"], d.rooftop_id) for d in sent()] == [
        ("7", rooftop), ("8", rooftop),
    ]  # fmt: skip
    # the instance closes: the CRM is told, once, that nothing is open there any more
    closed = newer.model_copy(
        update={"customers": [CustomerScore(customer_id=customer, instances=[])]}
    )
    assert use.push_scores(service, manager, closed) == {"queued": 1, "stale": 0}
    assert use.push_scores(service, manager, closed) == {"queued": 0, "stale": 0}
    assert (sent()[-1].rooftop_id, sent()[-1].payload["instances"]) == (rooftop, [])
    # through the API: a customer with nothing open and nothing shown sends nothing
    quiet = {"customers": [{"customer_id": customer}], "as_of": api.now.isoformat(), "push": True}
    before = len(service.outbox.deliveries("dg-01", limit=1000))
    assert api.post("/v1/score/lead_leakage", quiet).status_code == 200
    assert len(service.outbox.deliveries("dg-01", limit=1000)) == before
