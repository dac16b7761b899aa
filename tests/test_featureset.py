"""Feature sets: the registry's features then the declared ones, through the feature table, the
model artifact, serving and the explanations alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cjm_ml.artifact import ModelArtifact
from cjm_ml.explain.drivers import DriverExplainer, drivers_for
from cjm_ml.explain.render import feature_phrases
from cjm_ml.features.pipeline import (
    build_feature_table,
    feature_table_declared,
    feature_table_metadata,
    open_feature_columns,
)
from cjm_ml.featureset import (
    DeclaredFeature,
    FeatureSet,
    FeaturesFileError,
    Play,
    feature_set_of,
    load_features_file,
)
from cjm_ml.params import TaskParams
from cjm_ml.registry import features_for
from cjm_ml.simulation import SimulatedGroup
from cjm_ml.training.model import RiskModel
from cjm_ml.training.split import time_split

PLAY = {"action": "Offer a loaner", "channel": "phone", "urgency": "today", "owner": "BDC"}


def _declared(**kwargs: object) -> DeclaredFeature:
    base = {"name": "f", "label": "F", "event_type": "vehicle_delivery", "attribute": "x"}
    return DeclaredFeature.model_validate({**base, **kwargs})


def test_a_feature_set_is_the_registry_then_the_declared_features_of_its_task() -> None:
    mine = _declared(name="vehicle_age", take="years_since", tasks=["service_defection"])
    other = _declared(name="lead_score", tasks=["lead_leakage"])
    fs = FeatureSet("service_defection", (mine, other))
    registered = [f.name for f in features_for("service_defection")]
    assert fs.names == [*registered, "vehicle_age"]
    assert fs.declared == (mine,) and fs.declared_names == ["vehicle_age"]
    spec = fs.spec("vehicle_age")
    assert (spec.unit, spec.stage, spec.touchpoint, spec.actionable, spec.friction) == (
        "years",
        "delivery",
        "vehicle_delivery",
        False,
        None,
    )
    assert feature_set_of("service_defection") == FeatureSet("service_defection")
    assert feature_set_of(fs) is fs
    with pytest.raises(KeyError, match="service_defection: unknown feature 'lead_score'"):
        fs.spec("lead_score")
    # the bundle's form: plain data, back to the same set
    assert FeatureSet.of("service_defection", fs.dump()) == fs


@pytest.mark.parametrize(
    ("declared", "error"),
    [
        ((_declared(name="first_response_minutes"),), "name of a built-in feature"),
        ((_declared(name="dup"), _declared(name="dup")), "features.dup: declared twice"),
    ],
)
def test_declared_names_may_not_take_a_registered_one_or_repeat(
    declared: tuple[DeclaredFeature, ...], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        FeatureSet("no_show", declared)


def test_a_features_file_naming_a_built_in_feature_is_refused_by_key(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        '[features.prior_no_shows]\nlabel = "X"\nevent_type = "vehicle_delivery"\ntake = "count"\n'
    )
    with pytest.raises(FeaturesFileError, match=r"mine.toml: features.prior_no_shows: the name"):
        load_features_file(path)


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"name": "label"}, "'label' is a column of every feature table"),
        ({"actionable": True}, "an actionable feature needs its play"),
        ({"play": PLAY}, "a fix and a play belong to an actionable feature"),
        ({"tasks": []}, "must name one or more distinct tasks"),
        (
            {"kind": "category", "actionable": True, "play": PLAY, "fix": {"kind": "at_most"}},
            "a category's fix sets a value",
        ),
    ],
)
def test_a_declaration_that_cannot_work_is_refused(extra: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        _declared(**extra)


def test_an_actionable_declared_feature_is_a_friction_with_its_play_and_fix() -> None:
    loaner = _declared(
        name="no_loaner",
        label="No loaner offered",
        kind="flag",
        actionable=True,
        fix={"kind": "set", "value": 0},
        play=PLAY,
        tasks=["service_defection"],
    )
    fs = FeatureSet("service_defection", (loaner,))
    spec = fs.spec("no_loaner")
    assert (spec.unit, spec.friction, spec.fix.kind, spec.fix.value) == (
        "flag",
        "no_loaner",
        "set",
        0,
    )  # type: ignore[union-attr]
    friction = fs.friction("no_loaner")
    assert (friction.label, friction.stage, friction.touchpoint) == (
        "No loaner offered",
        "delivery",
        "vehicle_delivery",
    )
    assert fs.friction("no_confirmation").label  # the registry's frictions still resolve
    assert fs.plays() == {"no_loaner": Play.model_validate(PLAY)}
    driver = next(d for d in drivers_for(fs) if d.key == "no_loaner")
    assert (driver.kind, driver.label, driver.features) == (
        "friction",
        "No loaner offered",
        ("no_loaner",),
    )


def test_declared_values_read_in_dealer_terms() -> None:
    declared = (
        _declared(name="vehicle_age", label="Vehicle age", take="years_since"),
        _declared(name="warranty_left", label="Warranty end", take="days_until"),
        _declared(name="odometer", label="Odometer at delivery"),
        _declared(name="extended_warranty", label="Extended warranty", kind="flag"),
        _declared(name="model_line", label="Model line", kind="category"),
        _declared(name="visits_30d", label="Visits", attribute=None, take="count"),
    )
    fs = FeatureSet("service_defection", declared)
    table = pd.DataFrame(
        {
            "vehicle_age": [6.24, 1.0, np.nan],
            "warranty_left": [40.0, -200.0, 0.2],
            "odometer": [48213.0, 12.5, 3.0],
            "extended_warranty": [1.0, 0.0, np.nan],
            "model_line": ["compact_suv", "unknown", "sedan"],
            "visits_30d": [2.0, 0.0, 1.0],
        }
    )
    norms = {
        "vehicle_age": 3.0,
        "warranty_left": 100.0,
        "odometer": 15000.0,
        "extended_warranty": 0.25,
    }

    def said(name: str) -> list[str]:
        return feature_phrases(table, fs, name, norms).tolist()

    assert said("vehicle_age") == [
        "Vehicle age: 6.2 years; the median in the group is 3 years",
        "Vehicle age: 1 year; the median in the group is 3 years",
        "Vehicle age: not known",
    ]
    assert said("warranty_left") == [
        "Warranty end: in 40 days; the median in the group is in 100 days",
        "Warranty end: 200 days ago; the median in the group is in 100 days",
        "Warranty end: today; the median in the group is in 100 days",
    ]
    assert said("odometer")[0] == "Odometer at delivery: 48,213; the median in the group is 15,000"
    assert said("odometer")[1:] == [
        "Odometer at delivery: 12.5; the median in the group is 15,000",
        "Odometer at delivery: 3; the median in the group is 15,000",
    ]
    assert said("extended_warranty") == [
        "Extended warranty: yes; 25% of cases in the group have it",
        "Extended warranty: no; 25% of cases in the group have it",
        "Extended warranty: not known",
    ]
    assert said("model_line") == [
        "Model line: compact suv",
        "Model line: not known",
        "Model line: sedan",
    ]
    assert said("visits_30d") == ["Visits: 2 times", "Visits: none", "Visits: 1 time"]


#: Declared features over what the simulator's events carry: the delivered vehicle's
#: condition (a category), the days since the showroom visit, and texts in the last 30 days.
SIMULATED = (
    DeclaredFeature(
        name="delivered_condition", label="Delivered as", event_type="vehicle_delivery",
        attribute="condition", kind="category", tasks=("service_defection",),
    ),
    DeclaredFeature(
        name="days_since_visit", label="Days since the showroom visit",
        event_type="showroom_visit", take="days_since", tasks=("service_defection",),
    ),
    DeclaredFeature(
        name="texts_30d", label="Texts, last 30 days", event_type="sms_sent", take="count",
        window_days=30,
    ),
)  # fmt: skip


def test_declared_features_travel_from_the_table_to_the_bundle_serving_and_drivers(
    small_group: SimulatedGroup, tmp_path: Path
) -> None:
    task = "service_defection"
    events = small_group.events
    table = build_feature_table(events, task, declared=SIMULATED)
    names = ["delivered_condition", "days_since_visit", "texts_30d"]
    assert list(table.columns[-3:]) == names
    assert set(table["delivered_condition"]) <= {"new", "used", "unknown"}
    meta = feature_table_metadata(table, task, TaskParams())
    assert feature_table_declared(meta) == SIMULATED

    split = time_split(table)
    model = RiskModel(task, declared=SIMULATED).fit(split.train, split.valid)
    assert set(names) <= set(model.features)
    assert model.categories_["delivered_condition"] == ["new", "used"]
    loaded = ModelArtifact.load(model.save(tmp_path / "bundle"))
    assert loaded.feature_set == model.feature_set and loaded.features == model.features
    np.testing.assert_allclose(loaded.predict_risk(split.test), model.predict_risk(split.test))

    # serving: a customer's events known at the cutoff, scored "now" = the cutoff, give the
    # training row, declared features included, and the same risk
    known = events["recorded_ts"].fillna(events["ts"])
    for _, inst in split.test.sample(8, random_state=3).iterrows():
        mine = events[(events["customer_id"] == inst["customer_id"]) & (known < inst["cutoff_ts"])]
        columns = open_feature_columns(
            mine, task, inst["cutoff_ts"], declared=loaded.feature_set.declared
        )
        at = list(columns["instance_id"]).index(inst["instance_id"])
        for name in names:
            assert columns[name][at] == inst[name] or (
                pd.isna(columns[name][at]) and pd.isna(inst[name])
            )
        served = loaded.predict_risk({k: v[at : at + 1] for k, v in columns.items()})
        assert served[0] == pytest.approx(float(model.predict_risk(split.test.loc[[inst.name]])[0]))

    # drivers: declared features are context drivers, worded from their labels
    explainer = DriverExplainer(loaded)
    labels = {d.key: d.label for d in explainer.drivers}
    assert labels["days_since_visit"] == "Days since the showroom visit"
    out = explainer.explain(split.test)
    worded = out.drivers[out.drivers["driver"] == "days_since_visit"]
    assert len(worded) > 0
    assert worded["text"].str.startswith("Days since the showroom visit: ").all()
