"""Tenant boundaries through the API: a rooftop key sees only its rooftops' instances and
CRM deliveries, whatever events it wrote, and another group's key cannot tell which customer
ids exist (issue 13, items 1-4)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from cjm_ml.features.instances import open_instances
from cjm_ml.params import Task
from cjm_ml.serving.service import ScoreJob
from tests.serving.conftest import Api, new_event


def score(api: Api, task: Task, customers: list[dict[str, Any]], key: str, **kw: Any) -> Any:
    body = {"customers": customers, "as_of": api.now.isoformat(), **kw}
    return api.post(f"/v1/score/{task}", body, key=key)


def by_id(*customers: str) -> list[dict[str, Any]]:
    return [{"customer_id": c} for c in customers]


def rooftops_scored(response: Any) -> set[str]:
    assert response.status_code == 200, response.text
    return {i["rooftop_id"] for c in response.json()["customers"] for i in c["instances"]}


def only_at(api: Api, task: Task, rooftop: str, skip: int = 0) -> str:
    """A dg-01 customer with an instance of ``task`` open at ``rooftop`` and every event there."""
    seen = api.events.groupby("customer_id", observed=True)["rooftop_id"].agg(
        lambda s: frozenset(s.astype(str))
    )
    inst = open_instances(api.events, task, api.now)
    inst = inst[inst["rooftop_id"] == rooftop]
    ids = [c for c in inst["customer_id"].astype(str).unique() if seen[c] == {rooftop}]
    return ids[skip]


def inline_lead(customer: str, event_id: str) -> dict[str, Any]:
    return {"customer_id": customer, "events": [new_event(event_id=event_id, customer_id=customer)]}


def test_a_rooftop_key_cannot_widen_its_access_by_writing_an_event(api: Api) -> None:
    customer = only_at(api, "no_show", "rt-01")
    refused = score(api, "no_show", by_id(customer), "bdc")
    assert refused.status_code == 403
    assert refused.json()["detail"] == [
        {
            "loc": ["body", "customers", customer],
            "msg": "not a customer of this key's rooftops",
            "type": "value_error",
        }
    ]
    ts = (api.now - pd.Timedelta(days=1)).isoformat()
    event = new_event(event_id="widen-1", customer_id=customer, ts=ts)
    assert api.post("/v1/events", {"events": [event]}, key="bdc").status_code == 200
    # the key may now ask for the customer, but sees nothing of rt-01: no appointment there
    widened = score(api, "no_show", by_id(customer), "bdc")
    assert widened.json()["customers"] == [{"customer_id": customer, "instances": []}]
    # nor when the request also carries a customer inline (the other scoring path)
    mixed = score(api, "no_show", [*by_id(customer), inline_lead("c-inline", "in-1")], "bdc")
    assert rooftops_scored(mixed) == set()
    assert rooftops_scored(score(api, "no_show", by_id(customer), "manager")) == {"rt-01"}


def test_a_customer_of_several_rooftops_shows_a_rooftop_key_only_its_instances(
    api: Api,
) -> None:
    customer = only_at(api, "lead_leakage", "rt-03")
    ts = (api.now - pd.Timedelta(hours=2)).isoformat()
    event = new_event(event_id="two-rooftops-1", customer_id=customer, ts=ts)
    assert api.post("/v1/events", {"events": [event]}).status_code == 200  # the group's key
    assert rooftops_scored(score(api, "lead_leakage", by_id(customer), "manager")) == {
        "rt-03",
        "rt-04",
    }
    assert rooftops_scored(score(api, "lead_leakage", by_id(customer), "bdc")) == {"rt-04"}
    mixed = [*by_id(customer), inline_lead("c-inline-2", "in-2")]
    assert rooftops_scored(score(api, "lead_leakage", mixed, "bdc")) == {"rt-04"}


def test_keys_of_one_group_scored_in_one_batch_each_see_their_own_rooftops(api: Api) -> None:
    customer = only_at(api, "lead_leakage", "rt-03", skip=1)
    ts = (api.now - pd.Timedelta(hours=3)).isoformat()
    event = new_event(event_id="two-rooftops-2", customer_id=customer, ts=ts)
    assert api.post("/v1/events", {"events": [event]}).status_code == 200
    service = api.client.app.state.service
    manager, bdc = (service.tenants.authenticate(api.keys[k]) for k in ("manager", "bdc"))
    jobs = [ScoreJob("lead_leakage", p, (customer,), api.now) for p in (manager, bdc)]
    together = service.score_jobs(jobs)
    alone = [service.score_jobs([job])[0] for job in jobs]
    assert [o.model_dump() for o in together] == [o.model_dump() for o in alone]
    shown = [{i.rooftop_id for i in o.customers[0].instances} for o in together]
    assert shown == [{"rt-03", "rt-04"}, {"rt-04"}]


def test_the_outbox_of_a_rooftop_key_is_its_rooftops_deliveries(api: Api) -> None:
    elsewhere = only_at(api, "service_defection", "rt-01")
    ours = only_at(api, "service_defection", "rt-04")
    assert score(api, "service_defection", by_id(elsewhere), "manager", push=True).is_success
    assert score(api, "service_defection", by_id(ours), "bdc", push=True).is_success

    def listed(key: str) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for d in api.get("/v1/outbox?limit=1000", key=key).json():
            out.setdefault(d["customer_id"], []).append(d)
        return out

    group, rooftop = listed("manager"), listed("bdc")
    assert {elsewhere, ours} <= set(group)
    assert ours in rooftop and elsewhere not in rooftop
    for delivery in (d for ds in rooftop.values() for d in ds):
        assert delivery["rooftop_id"] == "rt-04"
        assert delivery["payload"]["rooftop_id"] == "rt-04"
        assert {i["rooftop_id"] for i in delivery["payload"]["instances"]} <= {"rt-04"}
    assert [d["rooftop_id"] for d in group[elsewhere]] == ["rt-01"]

    # dg-01 has no CRM webhook here, so a delivery run parks everything queued
    api.client.app.state.service.deliverer.run_once()
    parked = {
        d["id"]: d["rooftop_id"] for d in api.get("/v1/outbox?status=parked&limit=1000").json()
    }
    at_rt04 = sum(r == "rt-04" for r in parked.values())
    assert 0 < at_rt04 < len(parked)
    assert api.post("/v1/outbox/requeue", {}, key="bdc").json() == {"requeued": at_rt04}
    still = api.get("/v1/outbox?status=parked&limit=1000").json()
    assert {d["rooftop_id"] for d in still} == set(parked.values()) - {"rt-04"}
    assert api.post("/v1/outbox/requeue", {}, key="other").json() == {"requeued": 0}
    assert api.post("/v1/outbox/requeue", {}).json() == {"requeued": len(still)}


def _not_dg02(api: Api, task: Task, skip: int) -> str:
    theirs = set(api.second["customer_id"].astype(str))
    inst = open_instances(api.events, task, api.now)
    return [c for c in inst["customer_id"].astype(str).unique() if c not in theirs][skip]


@pytest.mark.parametrize("inline", [False, True])
def test_another_groups_key_cannot_tell_an_id_held_elsewhere_from_one_held_nowhere(
    api: Api, inline: bool
) -> None:
    held = _not_dg02(api, "no_show", skip=int(inline))  # the probe below makes it dg-02's
    extra = [inline_lead("c-inline-3", "in-3")] if inline else []

    def refusal(customer: str) -> tuple[int, Any]:
        response = score(api, "no_show", [*by_id(customer), *extra], "other")
        detail = response.json()["detail"]
        return response.status_code, [{**d, "loc": d["loc"][:2]} for d in detail]

    exists = refusal(held)
    nowhere = refusal("c-held-nowhere")
    assert (
        exists
        == nowhere
        == (
            404,
            [{"loc": ["body", "customers"], "msg": "no events stored", "type": "value_error"}],
        )
    )
    # the id itself is the loc's last part, the one the caller sent
    last = score(api, "no_show", [*by_id(held), *extra], "other").json()["detail"][0]["loc"]
    assert last == ["body", "customers", held]
    # appending an event under that id is the same for dg-02 as for any new id: its own customer
    for i, customer in enumerate((held, "c-held-nowhere-2")):
        event = new_event(event_id=f"dg02-probe-{inline}-{i}", rooftop_id="rt-90")
        appended = api.post("/v1/events", {"events": [{**event, "customer_id": customer}]}, "other")
        assert appended.json() == {"inserted": 1, "duplicates": 0}


def test_within_its_group_a_rooftop_key_keeps_its_403(api: Api) -> None:
    customer = only_at(api, "no_show", "rt-02")
    refused = score(api, "no_show", by_id(customer), "bdc")
    assert refused.status_code == 403
    assert refused.json()["detail"][0]["msg"] == "not a customer of this key's rooftops"
    nowhere = score(api, "no_show", by_id("c-held-nowhere-3"), "bdc")
    assert nowhere.status_code == 404
