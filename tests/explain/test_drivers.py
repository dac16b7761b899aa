"""Drivers: values in dealer terms, sentences for every feature, additivity, agreement with the
shap package, the one-row hot path against the batch, what-ifs, actions and the playbook."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import shap
from scipy.special import logit

from cjm_ml.explain.drivers import MIN_FIX_GAIN, DriverExplainer, drivers_for
from cjm_ml.explain.playbook import load_playbook
from cjm_ml.params import TASKS, Task
from cjm_ml.training.model import RiskModel

#: Raw feature names (those that are not plain English words like "rescheduled").


@pytest.mark.parametrize("task", TASKS)
def test_base_value_plus_contributions_is_the_raw_score(
    task: Task, tables: dict[Task, pd.DataFrame], explainers: dict[Task, DriverExplainer]
) -> None:
    ex, table = explainers[task], tables[task].head(400)
    contrib = ex.contributions(ex.encode(table))
    np.testing.assert_allclose(contrib.sum(axis=1), ex.model.predict_raw(table), atol=1e-9)
    grouped, risk = ex.driver_matrix(ex.encode(table))
    slope, intercept = ex.model.calibration_
    base = slope * contrib[:, -1] + intercept
    np.testing.assert_allclose(base + grouped.sum(axis=1), logit(risk), atol=1e-9)
    np.testing.assert_allclose(risk, ex.model.predict_risk(table), atol=1e-12)
    one = ex.explain_row(table.iloc[0].to_dict())
    assert one.raw_score == pytest.approx(ex.model.predict_raw(table.head(1))[0], abs=1e-9)
    assert one.base_value == pytest.approx(contrib[0, -1], abs=1e-12)


def test_contributions_agree_with_the_shap_package(
    tables: dict[Task, pd.DataFrame], explainers: dict[Task, DriverExplainer]
) -> None:
    ex, table = explainers["no_show"], tables["no_show"].head(300)
    explanation = shap.TreeExplainer(ex.model.booster_)(ex.encode(table))
    ours = ex.contributions(ex.encode(table))
    np.testing.assert_allclose(explanation.values, ours[:, :-1], atol=1e-12)
    np.testing.assert_allclose(explanation.base_values, ours[:, -1], atol=1e-12)


def test_native_contributions_are_shaps_own_tree_shap(tables: dict[Task, pd.DataFrame]) -> None:
    """On a model shap can parse itself (numeric splits only), shap's own TreeSHAP algorithm
    gives LightGBM's native contributions."""
    table = tables["lead_leakage"]
    numeric = ["first_response_minutes", "vdp_views_7d", "prior_leads", "distance_to_rooftop_km"]
    x = table[numeric].to_numpy(dtype=float)
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 7, "verbose": -1, "seed": 1},
        lgb.Dataset(x, table["label"].fillna(0).to_numpy()),
        num_boost_round=30,
    )
    explainer = shap.TreeExplainer(booster)
    explainer.model.model_type = "internal"  # use shap's own algorithm, not LightGBM's
    np.testing.assert_allclose(
        explainer.shap_values(x[:300]), booster.predict(x[:300], pred_contrib=True)[:, :-1],
        atol=1e-6,
    )  # fmt: skip


def test_one_row_without_pandas_matches_the_batch(
    tables: dict[Task, pd.DataFrame], explainers: dict[Task, DriverExplainer]
) -> None:
    ex = explainers["lead_leakage"]
    table = tables["lead_leakage"].sample(40, random_state=3).reset_index(drop=True)
    table.loc[0, "marketing_source"] = "tiktok_ads"  # a level the model never saw
    batch = ex.explain(table)
    each = ex.explain_each(table)
    np.testing.assert_array_equal(
        np.vstack([ex.encode_row(r) for r in table.to_dict("records")]), ex.encode(table)
    )
    assert np.isnan(ex.encode_row(table.iloc[0].to_dict())[0, ex.index["marketing_source"]])
    for i, row in enumerate(table.to_dict("records")):
        one = ex.explain_row(row)
        assert [d.sentence for d in each[i].up + each[i].down] == [
            d.sentence for d in one.up + one.down
        ]
        assert each[i].action == one.action
        np.testing.assert_allclose(
            [d.contribution for d in each[i].up + each[i].down],
            [d.contribution for d in one.up + one.down],
            atol=1e-12,
        )
        listed = batch.drivers[batch.drivers["instance_id"] == row["instance_id"]]
        assert [d.sentence for d in one.up + one.down] == listed["sentence"].tolist()
        np.testing.assert_allclose(
            [d.contribution for d in one.up + one.down], listed["contribution"], atol=1e-12
        )
        inst = batch.instances.iloc[i]
        assert one.risk == pytest.approx(inst["risk"], abs=1e-12)
        if one.action is None:
            assert pd.isna(inst["action_friction"])
        else:
            assert one.action.friction == inst["action_friction"]
            assert one.action.what_if_risk == pytest.approx(inst["what_if_risk"], abs=1e-12)


def test_a_bad_row_is_refused_by_feature(explainers: dict[Task, DriverExplainer]) -> None:
    ex = explainers["service_defection"]
    row = {f: 0.0 for f in ex.features}
    row.pop("open_recall")
    with pytest.raises(ValueError, match="instance lacks feature 'open_recall'"):
        ex.encode_row(row)
    with pytest.raises(ValueError, match="feature 'sales_csi_score' must be a number, got 'ok'"):
        ex.encode_row({**row, "open_recall": 0.0, "sales_csi_score": "ok"})


@pytest.mark.parametrize("task", TASKS)
def test_batch_lists_the_strongest_drivers_each_way(
    task: Task, tables: dict[Task, pd.DataFrame], explainers: dict[Task, DriverExplainer]
) -> None:
    ex, table = explainers[task], tables[task].head(500)
    out = ex.explain(table, top=3, bottom=2)
    d = out.drivers
    up, down = d[d["direction"] == "up"], d[d["direction"] == "down"]
    assert (up["contribution"] > 0).all() and (down["contribution"] < 0).all()
    assert (up["risk_points"] > 0).all() and (down["risk_points"] < 0).all()
    assert up.groupby("instance_id").size().max() <= 3
    assert down.groupby("instance_id").size().max() <= 2
    assert (up.groupby("instance_id")["share"].sum() <= 1 + 1e-9).all()
    for _, g in d.groupby(["instance_id", "direction"]):
        assert g["rank"].tolist() == list(range(1, len(g) + 1))
        assert (np.diff(g["contribution"].abs().to_numpy()) <= 1e-12).all()
    # What-ifs only for frictions pushing up; context never has one.
    assert d.loc[d["kind"] == "context", "what_if_risk"].isna().all()
    assert d.loc[d["direction"] == "down", "what_if_risk"].isna().all()
    assert set(d["label"]) <= {x.label for x in drivers_for(task)}
    assert len(out.instances) == len(table)


def test_what_if_sets_the_friction_to_its_fix(
    tables: dict[Task, pd.DataFrame], explainers: dict[Task, DriverExplainer]
) -> None:
    ex, table = explainers["no_show"], tables["no_show"].head(2000)
    x = ex.encode(table)
    unconfirmed = (table["confirmation_sent"] == 0).to_numpy()
    fixed = table.assign(confirmation_sent=1.0, confirmation_channel="sms")
    np.testing.assert_allclose(
        ex.what_if(x, "no_confirmation")[unconfirmed],
        ex.model.predict_risk(fixed)[unconfirmed],
        atol=1e-12,
    )
    by_text = (table["confirmation_channel"] == "sms").to_numpy()
    assert not ex.present(x, "no_confirmation")[by_text].any()
    assert ex.present(x, "no_confirmation")[unconfirmed].all()
    no_vehicle = (table["specific_vehicle"] == 0).to_numpy()
    assert not ex.present(x, "no_vehicle_hold")[no_vehicle].any()
    with pytest.raises(KeyError, match="'distance' is not one of the task's frictions"):
        ex.what_if(x, "distance")


def test_removing_a_slow_first_reply_lowers_the_risk(
    tables: dict[Task, pd.DataFrame], explainers: dict[Task, DriverExplainer]
) -> None:
    ex, table = explainers["lead_leakage"], tables["lead_leakage"]
    waiting = table[table["responded_before_cutoff"] == 0]
    x = ex.encode(waiting)
    fixed = ex.fixed(x, "slow_first_response")
    assert (fixed[:, ex.index["first_response_minutes"]] == 15).all()
    assert (fixed[:, ex.index["responded_within_sla"]] == 1).all()
    assert ex.what_if(x, "slow_first_response").mean() < ex.risk(x).mean() - 0.1


def test_the_action_is_for_the_strongest_friction_present_whose_fix_helps(
    tables: dict[Task, pd.DataFrame], explainers: dict[Task, DriverExplainer]
) -> None:
    """The fix to try: the friction present and pushing hardest among those whose what-if
    lowers the risk by MIN_FIX_GAIN or more; no fix where none would."""
    ex, table = explainers["service_defection"], tables["service_defection"].head(600)
    out = ex.explain(table).instances
    long = ex.driver_contributions(table)
    kinds = {d.key: d.kind for d in ex.drivers}
    pushing = long[
        long["present"]
        & (long["contribution"] > 0)
        & (long["driver"].map(kinds) == "friction")
        & (long["fix_gain"] >= MIN_FIX_GAIN)
    ]
    expected = pushing.loc[pushing.groupby("instance_id")["contribution"].idxmax()]
    got = out.set_index("instance_id")["action_friction"]
    assert got.dropna().to_dict() == expected.set_index("instance_id")["driver"].to_dict()
    playbook = load_playbook()
    for _, row in out.dropna(subset=["action_friction"]).head(20).iterrows():
        assert row["action"] == playbook[row["action_friction"]].action
        assert row["what_if_risk"] <= row["risk"] - MIN_FIX_GAIN and row["risk"] <= 1
    helped = long[long["fix_gain"] >= MIN_FIX_GAIN]["instance_id"]
    assert out.loc[~out["instance_id"].isin(helped), "action"].isna().all()


def test_a_bundle_round_trip_explains_the_same(
    tmp_path: Path, models: dict[Task, RiskModel], tables: dict[Task, pd.DataFrame]
) -> None:
    model = RiskModel.load(models["no_show"].save(tmp_path / "no_show"))
    row = tables["no_show"].iloc[7].to_dict()
    a = DriverExplainer(models["no_show"]).explain_row(row)
    b = DriverExplainer(model).explain_row(row)
    assert a == b
