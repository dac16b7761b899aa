"""The model artifact is the train/serve contract: a model trained with other task parameters
is served with those parameters, not the embedded defaults."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from cjm_ml.config import Settings
from cjm_ml.features.pipeline import build_feature_table, open_feature_columns
from cjm_ml.params import TASKS, Task, TaskParams
from cjm_ml.serving.api.main import create_app
from cjm_ml.serving.store import SqliteEventStore
from cjm_ml.serving.tenants import generate_api_key
from cjm_ml.simulation import SimulationConfig, simulate
from cjm_ml.training.model import RiskModel, TrainingParams
from cjm_ml.training.split import time_split

#: The response standard the models are trained with (the embedded default is 15 minutes).
HOUR_STANDARD = TaskParams(response_sla_minutes=60)


@dataclass
class Served:
    client: TestClient
    key: str
    events: pd.DataFrame
    now: pd.Timestamp
    model: RiskModel


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("contract")
    group = simulate(SimulationConfig(customers=3000, seed=5))
    models: dict[Task, RiskModel] = {}
    for task in TASKS:
        table = build_feature_table(group.events, task, HOUR_STANDARD)
        split = time_split(table[table["label"].notna()])
        params = TrainingParams(min_child_samples=20)
        models[task] = RiskModel(task, params, HOUR_STANDARD).fit(split.train, split.valid)
        models[task].save(root / "models" / task)
    key, entry = generate_api_key("dg01-crm")
    tenants = {
        "dealer_groups": [
            {
                "dealer_group_id": "dg-01",
                "rooftops": [r.rooftop_id for r in group.rooftops],
                "api_keys": [entry.model_dump(exclude_none=True)],
            }
        ]
    }
    (root / "tenants.json").write_text(json.dumps(tenants))
    settings = Settings(
        data_dir=root / "data", models_dir=root / "models", tenants_file=root / "tenants.json"
    )
    with SqliteEventStore(settings.event_store_file) as store:
        store.append(group.events.reset_index(drop=True))
    now = pd.Timestamp(group.config.start) + pd.Timedelta(days=group.config.days - 20)
    with TestClient(create_app(settings, start_deliverer=False)) as client:
        yield Served(client, key, group.events, now, models["lead_leakage"])


def _sla_sensitive_leads(served: Served) -> pd.DataFrame:
    """Leads open at ``now`` whose features differ between the 60-minute standard and the
    embedded one (a first reply between 15 and 60 minutes)."""
    hour = pd.DataFrame(
        open_feature_columns(served.events, "lead_leakage", served.now, HOUR_STANDARD)
    )
    default = pd.DataFrame(open_feature_columns(served.events, "lead_leakage", served.now))
    assert hour["instance_id"].tolist() == default["instance_id"].tolist()
    differs = hour["responded_within_sla"].ne(default["responded_within_sla"]).to_numpy()
    hour["risk"] = served.model.predict_risk(hour)
    hour["default_risk"] = served.model.predict_risk(default)
    return hour[differs]


def test_the_api_builds_features_with_the_parameters_the_model_was_trained_with(
    served: Served,
) -> None:
    leads = _sla_sensitive_leads(served)
    assert len(leads) >= 3, "the simulated group should hold leads answered in 15-60 minutes"
    customers = leads["customer_id"].drop_duplicates().head(100).tolist()
    response = served.client.post(
        "/v1/score/lead_leakage",
        json={
            "customers": [{"customer_id": c} for c in customers],
            "as_of": served.now.isoformat(),
        },
        headers={"X-API-Key": served.key},
    )
    assert response.status_code == 200, response.text
    scored = {
        i["instance_id"]: i["risk"] for c in response.json()["customers"] for i in c["instances"]
    }
    expected = leads.set_index("instance_id")
    assert set(expected.index) <= set(scored)
    api_risk = np.array([scored[i] for i in expected.index])
    # exactly the risk (the API rounds to 4 places) of the features built with the 60-minute
    # standard ...
    assert api_risk.tolist() == np.round(expected["risk"].to_numpy(), 4).tolist()
    # ... which is not what the embedded 15-minute standard would have given
    assert api_risk.tolist() != np.round(expected["default_risk"].to_numpy(), 4).tolist()


def test_the_bundle_says_which_parameters_it_serves_with(served: Served, tmp_path: Path) -> None:
    folder = served.model.save(tmp_path / "lead_leakage")
    spec = json.loads((folder / "bundle.json").read_text())
    assert TaskParams.model_validate(spec["task_params"]) == HOUR_STANDARD
    assert spec["norms"]["*"]["first_response_minutes"] == 60.0  # "*": the pooled norms
