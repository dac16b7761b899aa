"""Drivers: values in dealer terms, sentences for every feature, additivity, agreement with the
shap package, the one-row hot path against the batch, what-ifs, actions and the playbook."""

from __future__ import annotations

import json
import re
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import shap
from scipy.special import logit

from cjm_ml.explain.drivers import DriverExplainer, drivers_for, feature_phrases, load_playbook
from cjm_ml.explain.drivers import format_standard, format_values, recommended_action
from cjm_ml.registry import FEATURES, FRICTION_SPECS, feature_spec, features_for
from cjm_ml.params import TASKS, Task
from cjm_ml.training.model import RiskModel


def _fmt(name: str, values: list[object]) -> list[str]:
    return list(format_values(feature_spec(name), np.array(values, dtype=object)))


def test_values_read_in_dealer_terms() -> None:
    assert _fmt("first_response_minutes", [0.4, 12, 60, 190, 3000]) == [
        "under a minute",
        "12 min",
        "1 h",
        "3 h 10 min",
        "2 days",
    ]
    assert _fmt("appointment_lead_days", [0.01, 0.3, 0.99, 1.2, 9.4]) == [
        "under an hour",
        "7 h",
        "1 day",
        "1 day",
        "9 days",
    ]
    assert _fmt("distance_to_rooftop_km", [0.5, 48.4]) == ["under 1 km", "48 km"]
    assert _fmt("texts_sent", [1.0, 3.0]) == ["1 text", "3 texts"]
    assert _fmt("marketing_source", ["referral", "google_paid_search", "tiktok_ads"]) == [
        "a referral",
        "Google paid search",
        "tiktok ads",
    ]
    assert _fmt("sales_csi_score", [7.0, 8.5]) == ["7", "8.5"]
    assert _fmt("used_vehicle", [1.0, 0.0]) == ["yes", "no"]
    assert format_standard(feature_spec("confirmation_sent"), 0.6) == "60%"
    assert format_standard(feature_spec("first_response_minutes"), 15) == "15 min"
    assert format_standard(feature_spec("distance_to_rooftop_km"), 14.2) == "14 km"


def _phrases(task: Task, feature: str, rows: list[dict[str, object]], **norms: float) -> list[str]:
    return feature_phrases(pd.DataFrame(rows), task, feature, norms).tolist()


def test_sentences_compare_with_the_group_standard() -> None:
    assert _phrases(
        "lead_leakage",
        "first_response_minutes",
        [
            {"first_response_minutes": 190.0, "responded_before_cutoff": 1.0},
            {"first_response_minutes": 120.0, "responded_before_cutoff": 0.0},
        ],
    ) == [
        "First reply took 3 h 10 min; the group standard is 15 min",
        "No reply yet after 2 h; the group standard is 15 min",
    ]
    assert _phrases(
        "lead_leakage",
        "responded_within_sla",
        [
            {
                "responded_within_sla": 0.0,
                "responded_before_cutoff": 1.0,
                "first_response_minutes": 40,
            }
        ],
    ) == ["First reply took 40 min, beyond the group standard of 15 min"]
    rows = [
        {"confirmation_sent": 0.0, "confirmation_channel": "none", "appointment_lead_days": 9.0},
        {"confirmation_sent": 1.0, "confirmation_channel": "sms", "appointment_lead_days": 0.5},
    ]
    assert _phrases("no_show", "confirmation_sent", rows, confirmation_sent=0.6) == [
        "No confirmation sent for an appointment booked 9 days ahead; "
        "the group confirms 60% of appointments",
        "Confirmation sent by text for an appointment booked 12 h ahead; "
        "the group confirms 60% of appointments",
    ]
    rows = [{"first_service_booked_at_delivery": 0.0}, {"first_service_booked_at_delivery": None}]
    assert _phrases(
        "service_defection", "first_service_booked_at_delivery", rows,
        first_service_booked_at_delivery=0.7,
    ) == [
        "First service not booked at delivery; the group books 70% at delivery",
        "First service booking unknown",
    ]  # fmt: skip
    rows = [{"vehicle_on_hold": 0.0, "specific_vehicle": 0.0}]
    assert _phrases("no_show", "vehicle_on_hold", rows) == ["No specific vehicle to hold"]


#: Raw feature names (those that are not plain English words like "rescheduled").
_FEATURE_NAME = re.compile("|".join(f.name for f in FEATURES if "_" in f.name))


@pytest.mark.parametrize("task", TASKS)
def test_every_registered_feature_reads_cleanly(
    task: Task, tables: dict[Task, pd.DataFrame], explainers: dict[Task, DriverExplainer]
) -> None:
    """Real rows of the small group, plus each feature missing and at zero in turn: no raw
    feature names, no NaN, no placeholders, no underscores, a capital letter first."""
    sample = tables[task].sample(200, random_state=1).reset_index(drop=True)
    variants = [sample]
    for f in features_for(task):
        missing = sample.copy()
        missing[f.name] = "unknown" if f.unit == "category" else np.nan
        variants.append(missing)
        if f.unit != "category":
            variants.append(sample.assign(**{f.name: 0.0}))
    rows = pd.concat(variants, ignore_index=True)
    for f in features_for(task):
        for text in feature_phrases(rows, task, f.name, explainers[task].norms):
            assert isinstance(text, str) and text, f.name
            assert text[0].isupper() or text[0].isdigit(), (f.name, text)
            assert not _FEATURE_NAME.search(text), (f.name, text)
            assert not re.search(r"\b(nan|none|inf)\b", text, re.IGNORECASE), (f.name, text)
            for bad in ("{", "}", "_", "<NA>"):
                assert bad not in text, (f.name, text)


def test_feature_phrases_refuses_unknown_feature_and_missing_column() -> None:
    with pytest.raises(KeyError, match="no_show has no feature 'lead_type'"):
        feature_phrases(pd.DataFrame({"x": [1]}), "no_show", "lead_type")
    with pytest.raises(ValueError, match="lacks appointment_lead_days, which the wording"):
        feature_phrases(pd.DataFrame({"confirmation_sent": [0.0]}), "no_show", "confirmation_sent")


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
    explanation = shap.TreeExplainer(ex.model.booster_)(ex.model.matrix(table))
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


def test_the_action_is_for_the_strongest_friction_present(
    tables: dict[Task, pd.DataFrame], explainers: dict[Task, DriverExplainer]
) -> None:
    ex, table = explainers["service_defection"], tables["service_defection"].head(600)
    out = ex.explain(table).instances
    long = ex.driver_contributions(table)
    kinds = {d.key: d.kind for d in ex.drivers}
    pushing = long[
        long["present"] & (long["contribution"] > 0) & (long["driver"].map(kinds) == "friction")
    ]
    expected = pushing.loc[pushing.groupby("instance_id")["contribution"].idxmax()]
    got = out.set_index("instance_id")["action_friction"]
    assert got.dropna().to_dict() == expected.set_index("instance_id")["driver"].to_dict()
    playbook = load_playbook()
    for _, row in out.dropna(subset=["action_friction"]).head(20).iterrows():
        assert row["action"] == playbook[row["action_friction"]].action
        assert row["what_if_risk"] <= 1 and row["risk"] <= 1


def test_playbook_covers_every_friction() -> None:
    playbook = load_playbook()
    assert set(playbook) == {f.name for f in FRICTION_SPECS}
    play = recommended_action("no_confirmation", playbook)
    assert (play.channel, play.urgency, play.owner) == ("sms", "now", "BDC")
    with pytest.raises(KeyError, match="no play for friction 'no_coffee'"):
        recommended_action("no_coffee", playbook)


def _write(path: Path, plays: dict[str, object]) -> Path:
    path.write_text(json.dumps(plays))
    return path


def test_a_bad_playbook_file_is_refused_by_friction_and_field(tmp_path: Path) -> None:
    good = {k: v.model_dump() for k, v in load_playbook().items()}
    path = _write(tmp_path / "p.json", {**good, "no_coffee": good["open_recall"]})
    with pytest.raises(ValueError, match=r"p.json: unknown friction 'no_coffee'"):
        load_playbook(path)
    bad = {**good, "open_recall": {**good["open_recall"], "urgency": "someday"}}
    with pytest.raises(ValueError, match=r"friction 'open_recall': urgency: Input should be"):
        load_playbook(_write(tmp_path / "p.json", bad))
    del good["no_confirmation"]
    with pytest.raises(ValueError, match="no play for friction\\(s\\) no_confirmation"):
        load_playbook(_write(tmp_path / "p.json", good))
    (tmp_path / "p.json").write_text("{nope")
    with pytest.raises(ValueError, match=r"p\.json: not valid JSON"):
        load_playbook(tmp_path / "p.json")


def test_a_bundle_round_trip_explains_the_same(
    tmp_path: Path, models: dict[Task, RiskModel], tables: dict[Task, pd.DataFrame]
) -> None:
    model = RiskModel.load(models["no_show"].save(tmp_path / "no_show"))
    row = tables["no_show"].iloc[7].to_dict()
    a = DriverExplainer(models["no_show"]).explain_row(row)
    b = DriverExplainer(model).explain_row(row)
    assert a == b
