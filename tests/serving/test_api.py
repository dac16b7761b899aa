"""The scoring API (`cjm_ml.serving.api`) through TestClient: every endpoint, the auth matrix,
errors, reload; the service's batched scoring (`Service.score_jobs`)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cjm_ml.features.build import BUILDERS
from cjm_ml.features.instances import open_instances
from cjm_ml.params import TASKS
from cjm_ml.serving.api.main import create_app
from cjm_ml.serving.schemas import MAX_EVENTS, ScoreOut
from cjm_ml.serving.server import settings_env
from cjm_ml.serving.service import ScoreJob
from cjm_ml.training.model import RiskModel
from tests.serving.conftest import ADMIN, Api, new_event, open_customer


def test_health_readiness_and_models(api: Api) -> None:
    assert api.get("/healthz", key=None).json() == {"status": "ok"}
    assert api.get("/readyz", key=None).json() == {"status": "ready", "models": 3}
    listed = api.get("/v1/models").json()
    assert [m["task"] for m in listed] == list(TASKS)
    assert {(m["model_name"], m["version"]) for m in listed} == {(f"m-{t}", "7") for t in TASKS}


def test_not_ready_without_models(tmp_path: Path, api: Api) -> None:
    settings = api.settings.model_copy(
        update={"models_dir": tmp_path / "none", "data_dir": tmp_path / "data"}
    )
    with TestClient(create_app(settings, start_deliverer=False)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "not ready"
        assert "lead_leakage: " in ready.json()["reason"]
        refused = client.get("/v1/models", headers={"X-API-Key": api.keys["manager"]})
        assert refused.status_code == 503


@pytest.mark.parametrize(
    ("key", "status", "message"),
    [
        (None, 401, "missing API key (X-API-Key header)"),
        ("cjm.dg01-manager.wrong", 401, "invalid API key"),
        ("garbage", 401, "invalid API key"),
        ("manager", 200, None),
        ("bdc", 200, None),
    ],
)
def test_auth_matrix(api: Api, key: str | None, status: int, message: str | None) -> None:
    response = api.get("/v1/models", key=key)
    assert response.status_code == status
    if message is not None:
        assert response.json() == {"detail": message}
        assert response.headers["www-authenticate"] == "ApiKey"


def test_events_are_appended_once_and_scoped_to_the_key(api: Api) -> None:
    body = {
        "events": [new_event(event_id="ev-a"), new_event(event_id="ev-b", ts="2026-01-05T11:00Z")]
    }
    assert api.post("/v1/events", body, key="bdc").json() == {"inserted": 2, "duplicates": 0}
    assert api.post("/v1/events", body, key="bdc").json() == {"inserted": 0, "duplicates": 2}
    changed = {"events": [new_event(event_id="ev-a", event_type="lead_chat")]}
    conflict = api.post("/v1/events", changed, key="bdc")
    assert conflict.status_code == 409
    assert conflict.json()["detail"][0]["loc"] == ["body", "events", 0, "event_id"]
    # the rt-04 BDC key may not write another rooftop; dg-02's key may not write dg-01
    other_rooftop = api.post(
        "/v1/events", {"events": [new_event(event_id="ev-c", rooftop_id="rt-01")]}, key="bdc"
    )
    assert other_rooftop.status_code == 403
    assert "rt-01" in other_rooftop.json()["detail"][0]["msg"]
    other_group = api.post(
        "/v1/events", {"events": [new_event(event_id="ev-d", dealer_group_id="dg-01")]}, key="other"
    )
    assert other_group.status_code == 403


@pytest.mark.parametrize(
    ("change", "loc", "fragment"),
    [
        ({"ts": "2026-01-05T10:00:00"}, ["body", "events", 0, "ts"], "timezone"),
        ({"event_type": "teleport"}, ["body", "events", 0, "event_type"], "lead_form"),
        ({"value": "lots"}, ["body", "events", 0, "value"], "number"),
        ({"attributes": [1, 2]}, ["body", "events", 0, "attributes"], "dictionary"),
        ({"customer_id": ""}, ["body", "events", 0, "customer_id"], "at least 1"),
        ({"colour": "red"}, ["body", "events", 0, "colour"], "Extra inputs"),
    ],
)
def test_bad_events_get_field_level_422(
    api: Api, change: dict[str, Any], loc: list[Any], fragment: str
) -> None:
    response = api.post("/v1/events", {"events": [new_event(**change)]})
    assert response.status_code == 422
    problem = response.json()["detail"][0]
    assert problem["loc"] == loc and fragment in problem["msg"]


def test_empty_and_oversized_batches_are_refused(api: Api) -> None:
    empty = api.post("/v1/events", {"events": []})
    assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "events"]
    many = [new_event(event_id=f"big-{i}") for i in range(MAX_EVENTS + 1)]
    too_many = api.post("/v1/events", {"events": many})
    assert too_many.status_code == 422
    assert f"at most {MAX_EVENTS}" in too_many.json()["detail"][0]["msg"]
    huge = api.client.post(
        "/v1/events",
        content=b"{" + b" " * (17 * 1024 * 1024) + b"}",
        headers={"X-API-Key": api.keys["manager"], "content-type": "application/json"},
    )
    assert huge.status_code == 413


def test_score_by_id_matches_the_training_features_at_now(api: Api) -> None:
    customer = open_customer(api, "no_show")
    body = {"customers": [{"customer_id": customer}], "as_of": api.now.isoformat()}
    response = api.post("/v1/score/no_show", body)
    assert response.status_code == 200, response.text
    out = response.json()
    assert (out["model_name"], out["model_version"]) == ("m-no_show", "7")
    assert pd.Timestamp(out["cutoff"]) == api.now
    [scored] = out["customers"]
    mine = api.events[api.events["customer_id"] == customer]
    expected_inst = open_instances(mine, "no_show", api.now)
    features = BUILDERS["no_show"](mine[mine["ts"] < api.now], expected_inst)
    expected = api.models["no_show"].predict_risk(features)
    got = {i["instance_id"]: i["risk"] for i in scored["instances"]}
    assert got == dict(zip(expected_inst["instance_id"], np.round(expected, 4), strict=True))
    first = scored["instances"][0]
    assert first["band"] in {"high", "medium", "low"}
    assert first["drivers_up"] and all(d["sentence"] for d in first["drivers_up"])
    assert all(0 <= w["risk"] <= 1 for w in first["what_if"])


def test_score_inline_events_equals_score_by_id(api: Api) -> None:
    customer = open_customer(api, "lead_leakage")
    mine = api.events[api.events["customer_id"] == customer]
    inline = [
        {
            "event_id": r.event_id,
            "rooftop_id": r.rooftop_id,
            "customer_id": r.customer_id,
            "ts": r.ts.isoformat(),
            "event_type": r.event_type,
            **({"channel": r.channel} if pd.notna(r.channel) else {}),
            **({"source": r.source} if pd.notna(r.source) else {}),
            **({"vehicle_id": r.vehicle_id} if pd.notna(r.vehicle_id) else {}),
            **({"value": r.value} if pd.notna(r.value) else {}),
            **({"attributes": json.loads(r.attributes)} if pd.notna(r.attributes) else {}),
        }
        for r in mine.itertuples()
    ]
    as_of = api.now.isoformat()
    by_id = api.post(
        "/v1/score/lead_leakage", {"customers": [{"customer_id": customer}], "as_of": as_of}
    )
    given = api.post(
        "/v1/score/lead_leakage",
        {"customers": [{"customer_id": customer, "events": inline}], "as_of": as_of},
    )
    assert by_id.status_code == given.status_code == 200, given.text
    assert by_id.json() == given.json()
    wrong = api.post(
        "/v1/score/lead_leakage",
        {"customers": [{"customer_id": "someone-else", "events": inline}], "as_of": as_of},
    )
    assert wrong.status_code == 422
    assert wrong.json()["detail"][0]["loc"][-1] == "customer_id"


def test_score_refuses_other_groups_unknown_customers_and_tasks(api: Api) -> None:
    customer = open_customer(api, "no_show")
    # another group's customer is, to dg-02's key, as unknown as one held nowhere
    other = api.post("/v1/score/no_show", {"customers": [{"customer_id": customer}]}, key="other")
    assert other.status_code == 404
    assert other.json()["detail"] == [
        {"loc": ["body", "customers", customer], "msg": "no events stored", "type": "value_error"}
    ]
    unknown = api.post("/v1/score/no_show", {"customers": [{"customer_id": "c-nobody"}]})
    assert unknown.status_code == 404
    bad_task = api.post("/v1/score/churn", {"customers": [{"customer_id": customer}]})
    assert bad_task.status_code == 422 and bad_task.json()["detail"][0]["loc"] == ["path", "task"]
    naive = api.post(
        "/v1/score/no_show", {"customers": [{"customer_id": customer}], "as_of": "2026-01-01T00:00"}
    )
    assert naive.status_code == 422 and naive.json()["detail"][0]["loc"] == ["body", "as_of"]
    none = api.post("/v1/score/no_show", {"customers": []})
    assert none.status_code == 422


def test_call_list_is_ranked_scoped_and_filterable(api: Api) -> None:
    as_of = api.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    full = api.get(f"/v1/queues/no_show?as_of={as_of}&limit=50").json()
    risks = [i["risk"] for i in full["items"]]
    assert risks == sorted(risks, reverse=True) and len(risks) > 5
    expected = open_instances(api.events, "no_show", api.now)
    assert len(full["items"]) == min(50, len(expected))
    bdc = api.get(f"/v1/queues/no_show?as_of={as_of}&limit=5000", key="bdc").json()["items"]
    assert bdc and {i["rooftop_id"] for i in bdc} == {"rt-04"}
    assert len(bdc) == (expected["rooftop_id"] == "rt-04").sum()
    day = (api.now + pd.Timedelta(days=1)).floor("D")
    tomorrow = api.get(
        "/v1/queues/no_show",
        params={
            "as_of": as_of,
            "date_from": day.isoformat(),
            "date_to": (day + pd.Timedelta(days=1)).isoformat(),
            "limit": 5000,
        },
    ).json()["items"]
    assert all(
        day <= pd.Timestamp(i["scheduled_ts"]) < day + pd.Timedelta(days=1) for i in tomorrow
    )
    csv = api.get(f"/v1/queues/no_show?as_of={as_of}&limit=3&format=csv")
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0] == (
        "customer_id,instance_id,rooftop_id,anchor_ts,scheduled_ts,risk,band,top_driver,action"
    )
    assert len(lines) == 4
    assert (
        api.get(f"/v1/queues/no_show?rooftop_id=rt-01&as_of={as_of}", key="bdc").status_code == 403
    )
    assert api.get("/v1/queues/no_show?as_of=2026-01-01T00:00:00").status_code == 422
    assert api.get("/v1/queues/no_show?format=xml").status_code == 422


def test_push_queues_changed_risks_in_the_outbox(api: Api) -> None:
    customer = open_customer(api, "service_defection")
    body = {"customers": [{"customer_id": customer}], "as_of": api.now.isoformat(), "push": True}
    assert api.post("/v1/score/service_defection", body).status_code == 200
    assert api.post("/v1/score/service_defection", body).status_code == 200  # unchanged
    queued = api.get("/v1/outbox").json()
    mine = [d for d in queued if d["customer_id"] == customer]
    assert len(mine) == 1
    payload = mine[0]["payload"]
    assert payload["task"] == "service_defection" and payload["model_version"] == "7"
    assert payload["instances"][0]["drivers"] and mine[0]["idempotency_key"]
    assert api.get("/v1/outbox", key="other").json() == []


def test_reload_swaps_models_without_dropping_requests(api: Api) -> None:
    assert api.post("/v1/admin/reload-models", {}, key="manager").status_code == 401
    customer = open_customer(api, "no_show")
    body = {"customers": [{"customer_id": customer}], "as_of": api.now.isoformat()}
    failures: list[int] = []

    def hammer() -> None:
        for _ in range(15):
            status = api.post("/v1/score/no_show", body).status_code
            if status != 200:
                failures.append(status)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    for version in ("8", "9", "10"):
        model = RiskModel.load(api.settings.models_dir / "no_show")
        model.save(api.settings.models_dir / "no_show", {**model.metadata_, "version": version})
        reloaded = api.post("/v1/admin/reload-models", {}, key=ADMIN)
        assert reloaded.status_code == 200
    for t in threads:
        t.join()
    assert failures == []
    assert api.post("/v1/score/no_show", body).json()["model_version"] == "10"


def test_requests_scored_together_get_what_each_gets_alone(api: Api) -> None:
    service = api.client.app.state.service
    manager, bdc, other = (service.tenants.authenticate(api.keys[k]) for k in api.keys)
    a, c = open_customer(api, "no_show"), open_customer(api, "no_show", "rt-04")
    b = open_customer(api, "lead_leakage")
    later = api.now + pd.Timedelta(days=3)
    jobs = [
        ScoreJob("no_show", manager, (a, c), api.now),
        ScoreJob("lead_leakage", manager, (b,), api.now),
        ScoreJob("no_show", bdc, (c,), later),
        ScoreJob("no_show", other, (a,), api.now),  # another group's customer
        ScoreJob("no_show", manager, (a, "c-nobody"), api.now),
    ]
    together = service.score_jobs(jobs)
    alone = [service.score_jobs([job])[0] for job in jobs]
    for batched, single in zip(together[:3], alone[:3], strict=True):
        assert isinstance(batched, ScoreOut) and isinstance(single, ScoreOut)
        assert batched.model_dump() == single.model_dump()
    assert [o.cutoff for o in together[:3]] == [api.now, api.now, later]  # type: ignore[union-attr]
    assert [(e.status_code, e.detail) for e in together[3:]] == [  # type: ignore[union-attr]
        (404, [{"loc": ["body", "customers", a], "msg": "no events stored",
                "type": "value_error"}]),
        (404, [{"loc": ["body", "customers", "c-nobody"], "msg": "no events stored",
                "type": "value_error"}]),
    ]  # fmt: skip
    http = api.post(
        "/v1/score/no_show",
        {"customers": [{"customer_id": a}, {"customer_id": c}], "as_of": api.now.isoformat()},
    )
    assert http.json() == together[0].model_dump(mode="json")  # type: ignore[union-attr]


def test_concurrent_requests_each_get_their_own_answer(api: Api) -> None:
    open_now = open_instances(api.events, "no_show", api.now)
    customers = open_now["customer_id"].drop_duplicates().head(12).tolist()

    def body(customer: str) -> dict[str, Any]:
        return {"customers": [{"customer_id": customer}], "as_of": api.now.isoformat()}

    alone = {c: api.post("/v1/score/no_show", body(c)).json() for c in customers}
    answers: dict[str, Any] = {}
    start = threading.Barrier(len(customers))

    def ask(customer: str) -> None:
        start.wait(timeout=30)
        answers[customer] = api.post("/v1/score/no_show", body(customer)).json()

    threads = [threading.Thread(target=ask, args=(c,)) for c in customers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert answers == alone


def test_cjm_serve_answers_over_http_and_stops_every_worker(api: Api) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, **settings_env(api.settings), "CJM_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "cjm_ml.cli", "serve", "--host", "127.0.0.1"]
    server = subprocess.Popen([*command, "--port", str(port), "--workers", "2"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.3)
        else:
            pytest.fail("cjm serve did not become ready")
        workers = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        assert len(workers) == 1  # the second worker; this process is the first
        customer = open_customer(api, "no_show")
        body = {"customers": [{"customer_id": customer}], "as_of": api.now.isoformat()}
        headers = {"X-API-Key": api.keys["manager"]}
        served = httpx.post(f"{base}/v1/score/no_show", json=body, headers=headers, timeout=30)
        assert served.json() == api.post("/v1/score/no_show", body).json()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        for pid in workers:  # none is left behind, still holding the port
            assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid)
    finally:
        if server.poll() is None:
            server.kill()


def _state(pid: str) -> str:
    with contextlib.suppress(FileNotFoundError):
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    return "gone"


def test_the_journey_page_is_served_per_key_and_rooftop(api: Api) -> None:
    page = api.get("/journey")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Customer journey map" in page.text and "rt-01" in page.text
    # a browser passes the key in the query; the rt-04 BDC sees rt-04 only
    bdc = api.client.get("/journey", params={"api_key": api.keys["bdc"]})
    assert bdc.status_code == 200 and "rt-04" in bdc.text and "rt-01" not in bdc.text
    assert api.get("/journey?rooftop_id=rt-01", key="bdc").status_code == 403
    assert api.get("/journey", key=None).status_code == 401
    other = api.get("/journey", key="other")  # dg-02's own page: its rooftops, not dg-01's
    assert other.status_code == 200 and "rt-91" in other.text and "rt-01" not in other.text


#: What a JSON number can be that a finite float cannot: Python's JSON reader takes NaN and
#: +-Infinity, and reads 1e400 as Infinity (the issue's 500s).
NON_FINITE = ("NaN", "Infinity", "-Infinity", "1e400")


def _with_non_finite(data: st.DataObject, body: Any) -> str:
    """``body`` as JSON text with one value in it (any, the whole body included) replaced
    by one of ``NON_FINITE``."""
    paths: list[tuple[Any, ...]] = [()]
    pending: list[tuple[Any, tuple[Any, ...]]] = [(body, ())]
    while pending:
        node, path = pending.pop()
        for key, child in _children(node):
            paths.append((*path, key))
            pending.append((child, (*path, key)))
    path = data.draw(st.sampled_from(paths))
    marker = "@non-finite@"
    if not path:
        body = marker
    else:
        parent = body
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = marker
    return json.dumps(body).replace(json.dumps(marker), data.draw(st.sampled_from(NON_FINITE)))


def _children(node: Any) -> list[tuple[Any, Any]]:
    """A JSON node's (key or index, child) pairs; none for a scalar."""
    if isinstance(node, dict):
        return list(node.items())
    return list(enumerate(node)) if isinstance(node, list) else []


def test_no_input_gets_a_server_error(api: Api) -> None:
    """Schemathesis generates requests for every operation of the OpenAPI spec (valid and
    not), sent with each kind of key (group, rooftop, another group's, none), some with a
    NaN, Infinity or 1e400 put anywhere in the body or a query value; none may get a 5xx,
    and every answer's status is one the spec documents for the operation. (Last in this
    module: schemathesis runs the app's lifespan again, which closes the shared service on
    its way out.)"""
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    keys = (api.keys["manager"], api.keys["bdc"], api.keys["other"], None)

    @given(data=st.data())
    @settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
    def run(data: st.DataObject) -> None:
        operation = data.draw(st.sampled_from(operations))
        case = data.draw(operation.as_strategy())
        key = data.draw(st.sampled_from(keys))
        headers = {} if key is None else {"X-API-Key": key}
        if isinstance(case.body, dict | list) and data.draw(st.booleans()):
            response = api.client.request(
                case.method,
                case.formatted_path,
                params=case.query,
                content=_with_non_finite(data, case.body).encode(),
                headers={**headers, "content-type": "application/json"},
            )
        else:
            if case.query and data.draw(st.booleans()):
                name = data.draw(st.sampled_from(sorted(case.query)))
                case.query[name] = data.draw(st.sampled_from(NON_FINITE))
            response = case.call(headers=headers)
        documented = {int(c) for c in operation.responses.status_codes if c.isdigit()}
        label = (case.method, case.formatted_path, response.status_code, response.text[:300])
        assert response.status_code < 500, label
        assert response.status_code in documented, (*label, sorted(documented))

    run()


def test_an_event_recorded_late_counts_from_when_it_was_recorded(api: Api) -> None:
    lead = new_event(event_id="late-1", customer_id="c-late", ts="2026-01-05T10:00:00Z")
    call = new_event(
        event_id="late-2", customer_id="c-late", ts="2026-01-05T10:05:00Z",
        event_type="outbound_call", channel="phone", value=90.0,
    )  # fmt: skip

    def risk(*events: dict[str, Any]) -> float:
        body = {
            "customers": [{"customer_id": "c-late", "events": list(events)}],
            "as_of": "2026-01-05T10:45:00Z",
        }
        response = api.post("/v1/score/lead_leakage", body)
        assert response.status_code == 200, response.text
        return float(response.json()["customers"][0]["instances"][0]["risk"])

    logged_late = {**call, "recorded_ts": "2026-01-05T11:30:00Z"}
    assert risk(lead, logged_late) == risk(lead)  # not known at 10:45
    assert risk(lead, call) != risk(lead)
    early = api.post("/v1/events", {"events": [{**call, "recorded_ts": "2026-01-05T10:00:00Z"}]})
    assert early.status_code == 422, early.text
    assert "recorded" in json.dumps(early.json()["detail"])
