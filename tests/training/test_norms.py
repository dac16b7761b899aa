"""The norms the sentences quote: each dealer group's own, pooled ones for a group with too
little data, and the training parameter that says how little is too little."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cjm_ml.artifact import POOLED_NORMS
from cjm_ml.explain.drivers import DriverExplainer
from cjm_ml.explain.report import explainer_for
from cjm_ml.params import TASKS, Task
from cjm_ml.training.config import NormsParams, TrainingConfig, load_training_config
from cjm_ml.training.model import RiskModel, TrainingParams
from cjm_ml.training.norms import MIN_GROUP_INSTANCES, group_norms, norms_by_group
from cjm_ml.training.run import train_task


def _table(groups: list[str]) -> pd.DataFrame:
    """No-show norm columns for one row per entry of ``groups`` (dg-01's rows first)."""
    n = len(groups)
    return pd.DataFrame(
        {
            "dealer_group_id": pd.array(groups, dtype="string"),
            "appointment_lead_days": [1.0, 3.0, 8.0, 20.0, 40.0][:n],
            "confirmation_sent": [1.0, 1.0, 0.0, 0.0, None][:n],
            "reminder_channel_matches_preference": [1.0, 0.0, 1.0, 1.0, 1.0][:n],
            "distance_to_rooftop_km": [10.0, 12.0, 14.0, 50.0, 60.0][:n],
            "days_since_last_contact": [2.0, 2.0, 5.0, 9.0, 9.0][:n],
        }
    )


def test_each_group_big_enough_gets_its_own_norms_the_others_the_pooled_ones() -> None:
    table = _table(["dg-01", "dg-01", "dg-01", "dg-02", "dg-02"])
    got = norms_by_group(table, "no_show", min_instances=3)
    assert set(got) == {POOLED_NORMS, "dg-01"}  # dg-02: 2 instances, under 3
    assert got["dg-01"] == {
        "appointment_lead_days": 3.0,
        "confirmation_sent": pytest.approx(2 / 3),
        "reminder_channel_matches_preference": pytest.approx(2 / 3),
        "distance_to_rooftop_km": 12.0,
        "days_since_last_contact": 2.0,
    }
    assert got[POOLED_NORMS] == group_norms(table, "no_show")
    assert got[POOLED_NORMS]["confirmation_sent"] == 0.5  # the unknown left out
    both = norms_by_group(table, "no_show", min_instances=2)
    assert both["dg-02"]["distance_to_rooftop_km"] == 55.0
    assert both["dg-02"]["confirmation_sent"] == 0.0


def test_a_table_of_one_group_quotes_that_group_whatever_its_size() -> None:
    got = norms_by_group(_table(["dg-07", "dg-07"]), "no_show")
    assert set(got) == {POOLED_NORMS, "dg-07"}
    assert got["dg-07"] == got[POOLED_NORMS]


def test_norms_by_group_refuses_tables_without_groups_and_bad_minimums() -> None:
    table = _table(["dg-01", "dg-02"])
    with pytest.raises(ValueError, match="no_show: the table lacks dealer_group_id"):
        norms_by_group(table.drop(columns="dealer_group_id"), "no_show")
    with pytest.raises(ValueError, match="no_show: 1 rows have no dealer_group_id"):
        norms_by_group(table.assign(dealer_group_id=["dg-01", None]), "no_show")
    with pytest.raises(ValueError, match="'\\*' is the pooled norms' key, not a group id"):
        norms_by_group(table.assign(dealer_group_id=["dg-01", "*"]), "no_show")
    with pytest.raises(ValueError, match="min_instances must be at least 1, got 0"):
        norms_by_group(table, "no_show", min_instances=0)
    with pytest.raises(ValueError, match="the table lacks confirmation_sent"):
        norms_by_group(table.drop(columns="confirmation_sent"), "no_show")


def test_the_minimum_is_a_training_parameter(tmp_path: Path) -> None:
    assert load_training_config().norms == NormsParams(min_group_instances=200)
    assert MIN_GROUP_INSTANCES == 200
    path = tmp_path / "params.toml"
    path.write_text("[norms]\nmin_group_instances = 50\n")
    assert load_training_config(path).norms.min_group_instances == 50
    for text, message in (
        ("[norms]\nmin_group_instances = 0\n", "min_group_instances"),
        ("[norms]\nmin_instances = 50\n", "min_instances"),
    ):
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_training_config(path)


@pytest.fixture(scope="module")
def three_groups(tables: dict[Task, pd.DataFrame]) -> tuple[pd.DataFrame, RiskModel]:
    """The small group's no-show instances as three groups: rt-02's as dg-02, rt-01's as
    dg-03 (which confirms every appointment it knows of), and a no-show model trained on
    them under a minimum set just above dg-02's size (dg-02 quotes the pooled norms)."""
    table = tables["no_show"].copy()
    rooftop = table["rooftop_id"].astype("string")
    group = rooftop.map({"rt-02": "dg-02", "rt-01": "dg-03"}).fillna("dg-01")
    table["dealer_group_id"] = group.astype("string")
    dg03 = (group == "dg-03").to_numpy()
    table.loc[dg03, "confirmation_sent"] = table.loc[dg03, "confirmation_sent"].where(
        table.loc[dg03, "confirmation_sent"].isna(), 1.0
    )
    sizes = table.loc[table["label"].notna(), "dealer_group_id"].value_counts()
    minimum = int(sizes["dg-02"]) + 1
    assert sizes["dg-03"] >= minimum
    config = TrainingConfig(
        lightgbm={t: TrainingParams(n_estimators=20) for t in TASKS},
        norms=NormsParams(min_group_instances=minimum),
    )
    return table, train_task(table, "no_show", config).model


def test_training_quotes_each_group_and_says_across_groups_under_the_minimum(
    three_groups: tuple[pd.DataFrame, RiskModel],
) -> None:
    table, model = three_groups
    assert set(model.norms_) == {POOLED_NORMS, "dg-01", "dg-03"}
    assert model.norms_["dg-03"]["confirmation_sent"] == 1.0
    labelled = table[table["label"].notna()]
    assert model.norms_["dg-01"] == group_norms(
        labelled[labelled["dealer_group_id"] == "dg-01"], "no_show"
    )
    assert model.norms_[POOLED_NORMS] == group_norms(labelled, "no_show")
    row = {"confirmation_sent": 0.0, "confirmation_channel": "none", "appointment_lead_days": 9.0}
    texts = {
        g: _confirmation(DriverExplainer(model, group=g), row) for g in ("dg-01", "dg-02", "dg-03")
    }
    pooled = round(model.norms_[POOLED_NORMS]["confirmation_sent"] * 100)
    own = round(model.norms_["dg-01"]["confirmation_sent"] * 100)
    assert pooled != own
    assert texts == {
        "dg-01": f"No confirmation sent for an appointment booked 9 days ahead; {own}% of "
        "appointments in the group are confirmed",
        "dg-02": f"No confirmation sent for an appointment booked 9 days ahead; {pooled}% of "
        "appointments across groups are confirmed",
        "dg-03": "No confirmation sent for an appointment booked 9 days ahead; 100% of "
        "appointments in the group are confirmed",
    }


def test_cjm_explain_quotes_the_norms_of_the_rows_it_explains(
    three_groups: tuple[pd.DataFrame, RiskModel],
    tables: dict[Task, pd.DataFrame],
    models: dict[Task, RiskModel],
) -> None:
    """``explainer_for`` (``cjm explain``'s): a group's own rows of the table, or every row
    "across groups" where the model quotes pooled norms; a table and model of one group (the
    demo) quote exactly the whole table's norms, as before norms were per group."""
    table, model = three_groups
    groups = table["dealer_group_id"]
    dg03 = explainer_for(model, table, "dg-03")
    assert not dg03.pooled and dg03.group == "dg-03"
    assert dg03.norms == group_norms(table[groups == "dg-03"], "no_show")
    for group in ("dg-02", None):
        pooled = explainer_for(model, table, group)
        assert pooled.pooled and pooled.norms == group_norms(table, "no_show")
    one = explainer_for(models["no_show"], tables["no_show"], None)
    assert not one.pooled and one.group == "dg-01"
    assert one.norms == group_norms(tables["no_show"], "no_show")


def _confirmation(explainer: DriverExplainer, row: dict[str, object]) -> str:
    """How the explainer words the confirmation feature of one instance (``row``)."""

    def source(name: str, at: np.ndarray) -> np.ndarray:
        return np.array([row[name]], dtype=object if name == "confirmation_channel" else float)

    return str(explainer.renderer.phrase("confirmation_sent", np.arange(1), source, True)[0])
