"""The ASGI factory and the layer promise behind it: serving never loads the simulator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cjm_ml.serving.app import create
from cjm_ml.serving.tenants import generate_api_key


@pytest.mark.parametrize("module", ["cjm_ml.serving.app", "cjm_ml.serving.api.main"])
def test_importing_the_api_loads_neither_the_simulator_nor_the_evaluation(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('cjm_ml.simulation', "
        "'cjm_ml.evaluation', 'cjm_ml.cli')))\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_factory_serves_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CJM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CJM_MODELS_DIR", str(tmp_path / "models"))
    key, entry = generate_api_key("dg01-crm")
    group = {"dealer_group_id": "dg-01", "rooftops": ["rt-01"], "api_keys": [entry.model_dump()]}
    (tmp_path / "tenants.json").write_text(json.dumps({"dealer_groups": [group]}))
    monkeypatch.setenv("CJM_TENANTS_FILE", str(tmp_path / "tenants.json"))
    with TestClient(create()) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "not ready"
        models = client.get("/v1/models", headers={"X-API-Key": key})
        assert models.status_code == 503  # no models trained in this data directory yet
