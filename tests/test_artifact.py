"""The model artifact: what it carries, its one encoder, and the bundles it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cjm_ml.artifact import BUNDLE_FORMAT, BundleError, ModelArtifact
from cjm_ml.params import TaskParams
from cjm_ml.registry import features_for
from cjm_ml.training.model import RiskModel, TrainingParams

TASK = "no_show"


def _table(rows: int, seed: int) -> pd.DataFrame:
    """A synthetic no-show feature table: random values for every registered feature, and a
    label that follows ``prior_no_shows`` and the rooftop."""
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    for spec in features_for(TASK):
        if spec.unit == "category":
            columns[spec.name] = pd.array(rng.choice(["a", "b", "c"], rows), dtype="string")
        else:
            columns[spec.name] = rng.integers(0, 4, rows).astype(float)
    table = pd.DataFrame(columns)
    logit = table["prior_no_shows"] - 1.5 + (table["rooftop_id"] == "c").astype(float)
    table["label"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return table


@pytest.fixture(scope="module")
def model() -> RiskModel:
    params = TrainingParams(n_estimators=30, min_child_samples=20, num_leaves=4)
    return RiskModel(TASK, params, TaskParams(response_sla_minutes=60)).fit(
        _table(1500, 1), _table(500, 2)
    )


def test_a_bundle_carries_the_whole_contract(model: RiskModel, tmp_path: Path) -> None:
    folder = model.save(tmp_path / TASK, metadata={"version": "4"})
    spec = json.loads((folder / "bundle.json").read_text())
    assert spec["format"] == BUNDLE_FORMAT
    assert spec["task_params"]["response_sla_minutes"] == 60
    assert [f["name"] for f in spec["features"]] == model.features
    assert spec["hyperparameters"]["num_leaves"] == 4
    loaded = ModelArtifact.load(folder)
    assert type(loaded) is ModelArtifact
    assert loaded.task_params == TaskParams(response_sla_minutes=60)
    assert (
        loaded.categories_
        == model.categories_
        == {name: ["a", "b", "c"] for name in model.categories_}
    )
    assert loaded.calibration_ == model.calibration_ and loaded.bands_ == model.bands_
    assert loaded.norms_ == model.norms_ and loaded.norms_  # the group's comparison values
    assert loaded.metadata_ == {"version": "4"} and loaded.identity == ("cjm-no-show", "4")
    table = _table(200, 3)
    assert np.array_equal(loaded.predict_risk(table), model.predict_risk(table))


def test_one_encoder_for_tables_columns_and_single_rows(model: RiskModel) -> None:
    table = _table(3, 4)
    table.loc[0, "rooftop_id"] = "rt-unseen"
    table.loc[1, "marketing_source"] = pd.NA
    x = model.encode(table)
    j = model.features.index("rooftop_id")
    assert np.isnan(x[0, j])
    assert x[2, j] == model.level_codes("rooftop_id")[table.loc[2, "rooftop_id"]]
    assert np.isnan(x[1, model.features.index("marketing_source")])
    assert model.level_codes("rooftop_id") == {"a": 0.0, "b": 1.0, "c": 2.0}
    rows = np.vstack([model.encode_row(r) for r in table.to_dict("records")])
    assert np.array_equal(rows, x, equal_nan=True)
    columns = {c: table[c].to_numpy() for c in table.columns}
    assert np.array_equal(model.encode(columns), x, equal_nan=True)
    with pytest.raises(ValueError, match="feature table lacks prior_no_shows"):
        model.encode(table.drop(columns="prior_no_shows"))
    with pytest.raises(ValueError, match=r"features must be numbers: prior_no_shows \("):
        model.encode(table.assign(prior_no_shows="two"))
    with pytest.raises(ValueError, match="feature 'prior_no_shows' must be a number, got 'x'"):
        model.encode_row({**table.iloc[0].to_dict(), "prior_no_shows": "x"})


def test_calibration_and_bands_are_the_artifact_s_own(model: RiskModel) -> None:
    slope, intercept = model.calibration_
    raw = np.array([-1.0, 0.0, 2.0])
    assert np.allclose(model.calibrate(raw), 1 / (1 + np.exp(-(slope * raw + intercept))))
    medium, high = model.bands_["medium"], model.bands_["high"]
    assert list(model.band(np.array([medium - 1e-9, medium, high]))) == ["low", "medium", "high"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "model.txt").unlink(), "no model.txt"),
        (lambda f: (f / "bundle.json").unlink(), "no bundle.json"),
        (lambda f: (f / "model.txt").write_text("garbage\n"), "checksum differs"),
        (
            lambda f: (f / "model.txt").write_text((f / "model.txt").read_text()[:-3000]),
            "checksum differs",
        ),
        (lambda f: (f / "bundle.json").write_text("{not json"), "unreadable"),
        (lambda f: _edit(f, format=2), "bundle format 2, need 3"),
        (lambda f: _edit(f, norms=None), "not a valid bundle"),
        (lambda f: _edit(f, task_params={"response_sla_minutes": -1}), "not a valid bundle"),
        (lambda f: _edit(f, features=[]), "features differ from this version's registry"),
    ],
)
def test_a_damaged_bundle_is_refused_by_name(
    model: RiskModel, tmp_path: Path, damage: object, message: str
) -> None:
    folder = model.save(tmp_path / TASK)
    damage(folder)  # type: ignore[operator]
    with pytest.raises(BundleError, match=message):
        ModelArtifact.load(folder)


def _edit(folder: Path, **changes: object) -> None:
    spec = json.loads((folder / "bundle.json").read_text())
    spec.update(changes)
    (folder / "bundle.json").write_text(json.dumps(spec))
