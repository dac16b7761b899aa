"""The model artifact: what it carries, its one encoder, and the bundles it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cjm_ml.artifact import BUNDLE_FORMAT, POOLED_NORMS, BundleError, ModelArtifact
from cjm_ml.params import TaskParams
from cjm_ml.registry import features_for
from cjm_ml.training.model import RiskModel, TrainingParams

TASK = "no_show"


def _table(rows: int, seed: int, group: str = "dg-01") -> pd.DataFrame:
    """A synthetic no-show feature table of dealer group ``group``: random values for every
    registered feature, and a label that follows ``prior_no_shows`` and the rooftop."""
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    for spec in features_for(TASK):
        if spec.unit == "category":
            columns[spec.name] = pd.array(rng.choice(["a", "b", "c"], rows), dtype="string")
        else:
            columns[spec.name] = rng.integers(0, 4, rows).astype(float)
    table = pd.DataFrame(columns)
    table["dealer_group_id"] = pd.array([group] * rows, dtype="string")
    logit = table["prior_no_shows"] - 1.5 + (table["rooftop_id"] == "c").astype(float)
    table["label"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return table


@pytest.fixture(scope="module")
def model() -> RiskModel:
    params = TrainingParams(n_estimators=30, min_child_samples=20, num_leaves=4)
    train = pd.concat([_table(1000, 1), _table(500, 5, "dg-02"), _table(100, 6, "dg-03")])
    return RiskModel(TASK, params, TaskParams(response_sla_minutes=60)).fit(train, _table(500, 2))


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
    assert loaded.norms_ == model.norms_  # each group's comparison values, and the pooled ones
    assert set(loaded.norms_) == {"dg-01", "dg-02", POOLED_NORMS}  # dg-03: under the minimum
    assert spec["norms"] == model.norms_
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


def test_each_group_gets_its_own_norms_or_the_pooled_ones(model: RiskModel) -> None:
    """dg-01 and dg-02 have norms of their own; dg-03 (100 instances, under the minimum of
    200) and a group never seen get the pooled ones; ``None`` is the pooled set of a model of
    several groups."""
    pooled = model.norms_[POOLED_NORMS]
    assert model.norms_for("dg-01") == (model.norms_["dg-01"], True)
    assert model.norms_for("dg-02") == (model.norms_["dg-02"], True)
    assert model.norms_["dg-01"] != model.norms_["dg-02"] != pooled
    for group in ("dg-03", "dg-99", None, POOLED_NORMS):
        assert model.norms_for(group) == (pooled, False)
    assert ModelArtifact(TASK).norms_for("dg-01") == ({}, False)


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
        (lambda f: _edit(f, format=3), "bundle format 3, need 4"),
        (lambda f: _edit(f, norms=None), "norms must map dealer groups and '\\*' to values"),
        (lambda f: _edit(f, norms={"confirmation_sent": 0.6}), "norms must map dealer groups"),
        (lambda f: _edit(f, norms={"*": 0.6}), "the norms of '\\*' are not feature -> value"),
        (
            lambda f: _edit(f, norms={"*": {}, "dg-01": {"lead_type": 1.0}}),
            "the norms of 'dg-01' name unknown features \\['lead_type'\\]",
        ),
        (
            lambda f: _edit(f, norms={"*": {"confirmation_sent": float("nan")}}),
            "the norms of '\\*' are not all finite numbers",
        ),
        (lambda f: _edit(f, norms={"*": {"confirmation_sent": "x"}}), "not a valid bundle"),
        (lambda f: _edit(f, task_params={"response_sla_minutes": -1}), "not a valid bundle"),
        (lambda f: _edit(f, features=[]), "needs at least one feature"),
        (
            lambda f: _edit(f, features=[{"name": "coffee_temperature"}]),
            "do not fit this version's registry \\(no_show: unknown features "
            "\\['coffee_temperature'\\]\\)",
        ),
        (
            lambda f: _edit(f, features=_stored(f)[1:]),
            "the booster reads 23 features, the bundle 22",
        ),
    ],
)
def test_a_damaged_bundle_is_refused_by_name(
    model: RiskModel, tmp_path: Path, damage: object, message: str
) -> None:
    folder = model.save(tmp_path / TASK)
    damage(folder)  # type: ignore[operator]
    with pytest.raises(BundleError, match=message):
        ModelArtifact.load(folder)


def _stored(folder: Path) -> list[dict[str, object]]:
    features: list[dict[str, object]] = json.loads((folder / "bundle.json").read_text())["features"]
    return features


def _edit(folder: Path, **changes: object) -> None:
    spec = json.loads((folder / "bundle.json").read_text())
    spec.update(changes)
    (folder / "bundle.json").write_text(json.dumps(spec))


def _constant_table(rows: int, seed: int) -> pd.DataFrame:
    """``_table`` with ``confirmation_sent`` always 0 and ``appointment_lead_days`` always
    missing (``prior_no_shows``, which drives the label, varies)."""
    table = _table(rows, seed)
    return table.assign(confirmation_sent=0.0, appointment_lead_days=np.nan)


def test_a_model_reads_the_features_that_vary_and_its_bundle_carries_them(
    tmp_path: Path,
) -> None:
    params = TrainingParams(n_estimators=30, min_child_samples=20, num_leaves=4)
    fitted = RiskModel(TASK, params).fit(_constant_table(1000, 1), _constant_table(500, 2))
    registered = [f.name for f in features_for(TASK)]
    assert fitted.dropped_ == {
        "confirmation_sent": "constant (always 0)",
        "appointment_lead_days": "always missing",
    }
    assert fitted.features == [
        f for f in registered if f not in ("confirmation_sent", "appointment_lead_days")
    ]
    assert fitted.booster_.feature_name() == fitted.features
    assert all(set(values) <= set(fitted.features) for values in fitted.norms_.values())
    folder = fitted.save(tmp_path / TASK)
    spec = json.loads((folder / "bundle.json").read_text())
    assert [f["name"] for f in spec["features"]] == fitted.features
    loaded = ModelArtifact.load(folder)
    assert loaded.features == fitted.features
    table = _table(50, 3)  # every registered feature: the dropped ones are simply not read
    assert np.array_equal(loaded.predict_risk(table), fitted.predict_risk(table))
    assert np.array_equal(
        loaded.predict_risk(table.drop(columns=["confirmation_sent"])), fitted.predict_risk(table)
    )


def test_a_format_4_bundle_of_every_registered_feature_still_loads(
    model: RiskModel, tmp_path: Path
) -> None:
    assert model.features == [f.name for f in features_for(TASK)]
    folder = model.save(tmp_path / TASK)
    assert json.loads((folder / "bundle.json").read_text())["format"] == 4 == BUNDLE_FORMAT
    assert ModelArtifact.load(folder).features == model.features


def test_an_artifact_refuses_features_the_registry_lacks() -> None:
    with pytest.raises(ValueError, match=r"no_show: unknown features \['lead_type'\]"):
        ModelArtifact(TASK, features=["prior_no_shows", "lead_type"])
    with pytest.raises(ValueError, match=r"no_show: repeated features \['prior_no_shows'\]"):
        ModelArtifact(TASK, features=["prior_no_shows", "prior_no_shows"])
    assert ModelArtifact(TASK, features=["prior_no_shows"]).features == ["prior_no_shows"]
