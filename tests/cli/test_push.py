"""``cjm push --wait``: keeps delivering through retry backoffs until nothing is pending (all
delivered or parked) or the wait runs out, then says what is left; exits 3 while deliveries are
still pending. Against a real CRM receiver on 127.0.0.1 that fails, refuses and recovers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from cjm_ml.cli.main import app
from cjm_ml.cli.serve import PENDING_EXIT_CODE
from cjm_ml.params import TASKS, Task
from cjm_ml.serving.outbox import DeliveryStatus, Outbox
from cjm_ml.training.model import RiskModel
from tests.serving.receiver import Receiver

SECRET = "dg01-webhook-secret-abcdefghij"


@pytest.fixture(scope="module")
def bundles(models: dict[Task, RiskModel], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's models saved as champion bundles."""
    folder = tmp_path_factory.mktemp("push") / "models"
    for task in TASKS:
        models[task].save(folder / task, {"model_name": f"m-{task}", "version": "1"})
    return folder


@pytest.fixture
def crm() -> Iterator[Receiver]:
    with Receiver(SECRET) as receiver:
        yield receiver


@pytest.fixture
def outbox(
    bundles: Path, crm: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Outbox]:
    """Settings for ``cjm push`` (an empty event store, so it queues nothing itself; retries
    after 0.3-0.6 s) and the outbox it delivers from."""
    tenants = {
        "dealer_groups": [
            {
                "dealer_group_id": "dg-01",
                "rooftops": ["rt-01"],
                "crm": {"url": crm.url, "secret": SECRET, "timeout_s": 5},
            }
        ]
    }
    (tmp_path / "tenants.json").write_text(json.dumps(tenants))
    for name, value in {
        "DATA_DIR": tmp_path / "data",
        "MODELS_DIR": bundles,
        "TENANTS_FILE": tmp_path / "tenants.json",
        "OUTBOX_BASE_DELAY_S": 0.6,
        "OUTBOX_MAX_ATTEMPTS": 5,
    }.items():
        monkeypatch.setenv(f"CJM_{name}", str(value))
    box = Outbox(tmp_path / "data" / "serving" / "outbox.db")
    yield box
    box.close()


def enqueue(outbox: Outbox, *customers: str) -> None:
    for customer in customers:
        outbox.enqueue("dg-01", customer, "no_show", {"risk": 0.5, "band": "high"})


def push(wait: float) -> tuple[Result, float]:
    started = time.monotonic()
    result = CliRunner().invoke(app, ["push", "--task", "no_show", "--wait", str(wait)])
    return result, time.monotonic() - started


def test_push_waits_through_retries_until_everything_is_delivered(
    outbox: Outbox, crm: Receiver
) -> None:
    enqueue(outbox, "c-1", "c-2", "c-3")
    crm.script("fail", "fail", "fail")  # each customer's first try fails, the retries succeed
    result, seconds = push(wait=30)
    assert result.exit_code == 0, result.output
    assert len(crm.applied) == 3 and len(crm.requests) == 6
    assert outbox.counts("dg-01")[DeliveryStatus.DELIVERED] == 3
    assert "retrying 3" in result.output and "all delivered" in result.output
    assert seconds < 15  # it left once nothing was pending, not at the end of the wait


def test_push_says_what_is_still_pending_when_the_wait_runs_out(
    outbox: Outbox, crm: Receiver
) -> None:
    enqueue(outbox, "c-1", "c-2")
    crm.set_mode("fail")
    result, seconds = push(wait=1.5)
    assert result.exit_code == PENDING_EXIT_CODE
    assert "2 still pending (retrying, next try in" in result.output
    assert 1.5 <= seconds < 10
    assert outbox.counts("dg-01")[DeliveryStatus.PENDING] == 2 and not crm.applied
    help_text = CliRunner().invoke(app, ["push", "--help"]).output
    assert f"Exits {PENDING_EXIT_CODE} when some" in " ".join(help_text.split())


def test_push_ends_once_the_rest_is_parked_and_names_what_it_holds_up(
    outbox: Outbox, crm: Receiver
) -> None:
    enqueue(outbox, "c-1", "c-2")
    for customer in ("c-1", "c-2"):  # a second update each, behind the first
        outbox.enqueue("dg-01", customer, "no_show", {"risk": 0.9, "band": "high"})
    # the CRM refuses the first update it gets (customers go out concurrently: either one):
    # that customer's is parked and its second held; the other's two are delivered
    crm.script("reject")
    result, seconds = push(wait=30)
    assert result.exit_code == PENDING_EXIT_CODE, result.output
    assert "1 held behind parked ones; 1 parked" in result.output
    assert seconds < 10  # nothing left that time alone would deliver
    refused = crm.requests[0].body["customer_id"]
    delivered = [b["customer_id"] for b in crm.applied]
    assert refused in ("c-1", "c-2") and delivered == [({"c-1", "c-2"} - {refused}).pop()] * 2
