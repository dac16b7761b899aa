"""The scoring API's shared fixture: two dealer groups in one store and one process.

dg-01 is the small simulated group (1,500 of its customers in the store) with a group
manager's key and rt-04's BDC key; dg-02 is a second group (rooftops rt-90 and rt-91) whose
200 customers are journeys of the same simulation under dg-02's ids and rooftops, 100 of them
sharing a customer id with a dg-01 customer (ids are only unique within a group).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from cjm_ml.config import Settings
from cjm_ml.features.instances import open_instances
from cjm_ml.params import TASKS, Task
from cjm_ml.serving.api.main import create_app
from cjm_ml.serving.store import SqliteEventStore
from cjm_ml.serving.tenants import generate_api_key, hash_api_key
from cjm_ml.simulation import SimulatedGroup
from cjm_ml.training.model import RiskModel

ADMIN = "cjm.ops.admin-secret-for-tests-only"


@dataclass
class Api:
    client: TestClient
    settings: Settings
    keys: dict[str, str]
    events: pd.DataFrame
    now: pd.Timestamp
    models: dict[Task, RiskModel]
    #: dg-02's events (customer ids partly shared with dg-01's)
    second: pd.DataFrame

    def get(self, url: str, key: str | None = "manager", **kw: Any) -> Any:
        return self.client.get(url, headers=self._h(key), **kw)

    def post(self, url: str, body: Any, key: str | None = "manager") -> Any:
        return self.client.post(url, json=body, headers=self._h(key))

    def _h(self, key: str | None) -> dict[str, str]:
        return {} if key is None else {"X-API-Key": self.keys.get(key, key)}


def new_event(**kw: Any) -> dict[str, Any]:
    return {
        "event_id": "x-1",
        "rooftop_id": "rt-04",
        "customer_id": "c-new",
        "ts": "2026-01-05T10:00:00Z",
        "event_type": "lead_form",
        **kw,
    }


@pytest.fixture(scope="module")
def api(
    small_group: SimulatedGroup,
    models: dict[Task, RiskModel],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("api")
    for task in TASKS:
        models[task].save(root / "models" / task, {"model_name": f"m-{task}", "version": "7"})
    keys, entries = {}, []
    for name, rooftops in (("manager", None), ("bdc", ["rt-04"])):
        keys[name], entry = generate_api_key(f"dg01-{name}", rooftops)
        entries.append(entry.model_dump(exclude_none=True))
    keys["other"], other = generate_api_key("dg02-crm")
    rooftop_ids = [r.rooftop_id for r in small_group.rooftops]
    tenants = {
        "dealer_groups": [
            {"dealer_group_id": "dg-01", "rooftops": rooftop_ids, "api_keys": entries},
            {
                "dealer_group_id": "dg-02",
                "rooftops": ["rt-90", "rt-91"],
                "api_keys": [other.model_dump(exclude_none=True)],
            },
        ]
    }
    (root / "tenants.json").write_text(json.dumps(tenants))
    settings = Settings(
        data_dir=root / "data",
        models_dir=root / "models",
        tenants_file=root / "tenants.json",
        admin_key_hash=hash_api_key(ADMIN),
    )
    # The store holds 1,500 customers' journeys of dg-01 and 200 of dg-02.
    everyone = small_group.events["customer_id"].drop_duplicates()
    customers = everyone.sample(1500, random_state=2)
    events = small_group.events[small_group.events["customer_id"].isin(customers)]
    second = _second_group(small_group.events, customers)
    with SqliteEventStore(settings.event_store_file) as store:
        store.append(events.reset_index(drop=True))
        store.append(second)
    now = pd.Timestamp(small_group.config.start) + pd.Timedelta(days=small_group.config.days - 20)
    with TestClient(create_app(settings, start_deliverer=False)) as client:
        yield Api(client, settings, keys, events, now, models, second)


def open_customer(api: Api, task: Task, rooftop: str | None = None) -> str:
    inst = open_instances(api.events, task, api.now)
    if rooftop is not None:
        inst = inst[inst["rooftop_id"] == rooftop]
    return str(inst["customer_id"].iloc[0])


def _second_group(events: pd.DataFrame, first: pd.Series) -> pd.DataFrame:
    """200 journeys as dg-02's: 100 customers whose ids dg-01 also has in the store and 100
    it has not; rt-01's events at rt-90, the rest at rt-91; event ids of their own."""
    others = events.loc[~events["customer_id"].isin(first), "customer_id"].drop_duplicates()
    chosen = pd.concat([first.head(100), others.head(100)])
    out = events[events["customer_id"].isin(chosen)].reset_index(drop=True).copy()
    out["dealer_group_id"] = "dg-02"
    out["rooftop_id"] = (out["rooftop_id"].astype(str) == "rt-01").map(
        {True: "rt-90", False: "rt-91"}
    )
    out["event_id"] = "dg02-" + out["event_id"].astype(str)
    return out
