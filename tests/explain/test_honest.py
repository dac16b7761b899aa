"""Honest drivers: nothing listed that does nothing for the instance, no fix that does not
help, one action once, and nothing named that the model does not read (a dataset with only
bookings, confirmations and appointment outcomes, plus two declared attributes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cjm_ml.explain import plots
from cjm_ml.explain.drivers import (
    MIN_DRIVER_RISK,
    MIN_FIX_GAIN,
    NO_FIX,
    DriverExplainer,
    InstanceExplanation,
    drivers_for,
)
from cjm_ml.explain.playbook import load_playbook
from cjm_ml.explain.report import format_instance
from cjm_ml.explain.rollup import rollup
from cjm_ml.features.pipeline import build_feature_table
from cjm_ml.featureset import DeclaredFeature, FeatureSet
from cjm_ml.params import TASKS, Task
from cjm_ml.rules import GROUP
from cjm_ml.simulation import SimulatedGroup
from cjm_ml.training.model import constant_features
from cjm_ml.training.norms import group_norms
from cjm_ml.training.run import train_task

#: The touchpoints of a dealer that sends only bookings, confirmations and appointment
#: outcomes, and the contact preferences that make its customers.
BOOKINGS_ONLY = (
    "appointment_set",
    "service_appointment_set",
    "appointment_rescheduled",
    "appointment_confirmation_sent",
    "appointment_showed",
    "appointment_no_show",
    "appointment_cancelled",
    "contact_preferences_set",
)


@pytest.mark.parametrize("task", TASKS)
def test_no_driver_that_does_nothing_and_no_fix_that_does_not_help(
    task: Task, tables: dict[Task, pd.DataFrame], explainers: dict[Task, DriverExplainer]
) -> None:
    ex, table = explainers[task], tables[task].head(800)
    out = ex.explain(table)
    d = out.drivers
    assert (d["risk_points"].abs() >= MIN_DRIVER_RISK).all()
    offered = d[d["what_if_risk"].notna()]
    assert (offered["what_if_risk"] <= offered["risk"] - MIN_FIX_GAIN).all()
    plays = load_playbook()
    actions = offered["driver"].map(lambda k: plays[k].action)
    assert not actions.groupby(offered["instance_id"]).apply(lambda a: a.duplicated().any()).any()
    inst = out.instances.dropna(subset=["action"])
    assert (inst["what_if_risk"] <= inst["risk"] - MIN_FIX_GAIN).all()
    for one in ex.explain_each(table.head(100)):
        assert all(abs(x.risk_points) >= MIN_DRIVER_RISK for x in one.up + one.down)
        if one.action is not None:
            assert one.action.what_if_risk <= one.action.risk - MIN_FIX_GAIN


def test_an_action_shared_by_two_frictions_is_offered_once_where_it_helps_most(
    tables: dict[Task, pd.DataFrame], explainers: dict[Task, DriverExplainer]
) -> None:
    """With a playbook that answers two frictions with one action, each instance gets that
    action's what-if once: on the friction whose removal lowers its risk the most."""
    ex = explainers["no_show"]
    table = tables["no_show"].head(3000)
    own = ex.explain(table, top=len(ex.drivers)).drivers
    offered = own[own["what_if_risk"].notna()]
    pairs = offered.groupby("instance_id")["driver"].agg(lambda g: tuple(sorted(g)))
    pair = pairs[pairs.map(len) == 2].value_counts().index[0]  # the commonest pair of fixes
    twice = offered[offered["instance_id"].isin(pairs[pairs == pair].index)]
    assert len(twice) >= 4, "the case needs instances where both fixes help"
    playbook = load_playbook()
    playbook[pair[1]] = playbook[pair[0]]
    shared = DriverExplainer(ex.model, ex.norms, playbook=playbook)
    got = shared.explain(table, top=len(ex.drivers)).drivers
    got = got[got["driver"].isin(pair) & got["what_if_risk"].notna()]
    assert not got["instance_id"].duplicated().any()
    best = twice.loc[twice.groupby("instance_id")["what_if_risk"].idxmin()]
    kept = got.set_index("instance_id").loc[best["instance_id"]]
    assert kept["driver"].tolist() == best["driver"].tolist()
    np.testing.assert_array_equal(kept["what_if_risk"], best["what_if_risk"])


def test_no_fix_is_said_plainly() -> None:
    assert NO_FIX == "No fix here would lower this risk by 1 point or more"
    nothing = InstanceExplanation(
        task="no_show", risk=0.61, base_risk=0.2, raw_score=0.4, base_value=-1.0, up=[], down=[],
        action=None,
    )  # fmt: skip
    assert format_instance(nothing, "i-1", "rt-01").splitlines() == [
        "Instance i-1 at rt-01: risk 61% (the model's average 20%)",
        "  No fix here would lower this risk by 1 point or more.",
    ]


def test_a_rollup_leaves_out_drivers_that_touch_no_case() -> None:
    conf, dist, kept = "no_confirmation", "distance_to_rooftop_km", "prior_no_shows"
    rows = [
        # rooftop, instance, driver, contribution, risk points, present, fix gain
        ("A", "i1", conf, 0.4, 0.08, True, 0.05),
        ("A", "i1", dist, 0.0, 0.0, True, 0.0),  # a constant feature: never a split
        ("A", "i1", kept, 0.001, 0.0001, True, 0.0),  # under MIN_DRIVER_RISK
        ("B", "i2", conf, 0.3, 0.06, False, 0.0),  # absent there
        ("B", "i2", dist, 0.0, 0.0, True, 0.0),
        ("B", "i2", kept, 0.2, 0.04, True, 0.0),
    ]
    cols = ["rooftop_id", "instance_id", "driver", "contribution", "risk_points", "present"]
    roll = rollup(
        pd.DataFrame(rows, columns=[*cols, "fix_gain"]), drivers_for("no_show"), "no_show"
    )
    assert sorted(zip(roll["rooftop_id"], roll["driver"], roll["rank"], strict=True)) == [
        ("A", conf, 1),
        ("B", kept, 1),
        (GROUP, conf, 1),
        (GROUP, kept, 2),
    ]
    assert (roll["instances"] > 0).all()
    # The group standard still counts the rooftop a driver touched no case of (as 0).
    assert roll.loc[roll["rooftop_id"] == "A", "excess"].tolist() == pytest.approx([0.04])


#: Two declared attributes of the contact preferences (an age band that varies, a loyalty
#: flag every customer has) and one of a touchpoint the dataset does not have.
DECLARED = (
    DeclaredFeature(
        name="age_band", label="Age band", event_type="contact_preferences_set",
        attribute="age_band", kind="category",
    ),
    DeclaredFeature(
        name="loyalty_member", label="Loyalty member", event_type="contact_preferences_set",
        attribute="loyalty_member", kind="flag",
    ),
    DeclaredFeature(
        name="vehicle_age", label="Vehicle age", event_type="vehicle_delivery",
        attribute="model_year", take="years_since",
    ),
)  # fmt: skip


@pytest.fixture(scope="module")
def bookings_only(small_group: SimulatedGroup) -> pd.DataFrame:
    """The no-show table of the small group's events, kept to ``BOOKINGS_ONLY``, with the
    ``DECLARED`` features (the contact preferences carry an age band and a loyalty flag)."""
    events = small_group.events
    events = events[events["event_type"].isin(BOOKINGS_ONLY)].copy()
    prefs = events["event_type"] == "contact_preferences_set"
    bands = np.array(["18-34", "35-54", "55+"])[
        pd.util.hash_array(events.loc[prefs, "customer_id"].to_numpy(dtype=str)) % 3
    ]
    events.loc[prefs, "attributes"] = [
        json.dumps({"age_band": band, "loyalty_member": "Y"}) for band in bands
    ]
    return build_feature_table(events, "no_show", declared=DECLARED)


def test_a_dataset_of_bookings_only_names_nothing_absent_or_constant(
    bookings_only: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = bookings_only
    report = train_task(table, "no_show")
    model = report.model
    assert model is not None and report.refusal is None
    feature_set = FeatureSet("no_show", DECLARED)
    constant = constant_features(table, feature_set)
    assert {"vdp_views_7d", "online_booking_abandons", "loyalty_member", "vehicle_age"} <= set(
        constant
    )
    assert set(constant) <= set(report.dropped)
    assert not set(report.dropped) & set(model.features)
    assert "age_band" in model.features and model.categories_["age_band"] == [
        "18-34",
        "35-54",
        "55+",
    ]
    ex = DriverExplainer(model, group_norms(table, feature_set))
    registered = {d.label for d in drivers_for(feature_set)}
    assert {"Loyalty member", "Vehicle age", "Age band"} <= registered
    read = {d.label for d in ex.drivers}
    gone = registered - read
    assert gone, "the model should read fewer drivers than the registry has"
    # Drivers: only the model's, each moving its instance's risk.
    out = ex.explain(table)
    assert set(out.drivers["label"]) <= read
    assert (out.drivers["risk_points"].abs() >= MIN_DRIVER_RISK).all()
    sentences = " ".join(out.drivers["sentence"])
    assert not [label for label in gone if label in sentences]
    assert "loyalty" not in sentences.lower() and "vehicle age" not in sentences.lower()
    # Roll-ups: only the model's drivers, each touching cases.
    roll = rollup(ex.driver_contributions(table), ex.drivers, "no_show")
    assert set(roll["label"]) <= read and (roll["instances"] > 0).all()
    # The beeswarm: labels of drivers the model reads and that move a drawn risk.
    drawn: list[Any] = []
    real = plots.shap.plots.beeswarm
    monkeypatch.setattr(
        plots.shap.plots,
        "beeswarm",
        lambda values, **kw: drawn.append(values) or real(values, **kw),
    )
    plots.write_beeswarm(ex, table, tmp_path / "beeswarm.png", sample=1500)
    (values,) = drawn
    labels = list(values.feature_names)
    assert labels and set(labels) <= read
    assert (np.abs(values.values) > 0).any(axis=0).all()
