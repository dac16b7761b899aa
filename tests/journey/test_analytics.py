"""Journey analytics: exact values on hand-made journeys, the planted slow BDC found on a
simulated group, and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cjm_ml.features.instances import NoInstancesError
from cjm_ml.features.timeline import MissingColumnsError
from cjm_ml.journey.analytics import (
    KPIS,
    journey_ends,
    journey_flows,
    post_sale_journey,
    rooftop_kpis,
    source_attribution,
    stage_funnel,
    stage_times,
    top_paths,
    transitions,
)
from cjm_ml.rules import GROUP, JourneyRules
from cjm_ml.simulation import SimulatedGroup

# ------------------------------------------------------------------------------ funnel


def test_stage_funnel_counts_customers_conversion_and_drop_off(
    funnel_journeys: pd.DataFrame,
) -> None:
    f = stage_funnel(funnel_journeys)
    group = f[f["rooftop_id"] == GROUP].set_index("stage")
    assert list(group.index) == [
        "research",
        "lead_intake",
        "response",
        "appointment",
        "showroom",
        "credit_fi",
        "delivery",
        "service",
        "csi",
    ]
    assert group["customers"].tolist() == [2, 3, 3, 1, 2, 1, 1, 2, 0]
    # the CRM task a minute after the lead is not a reply; the service owner's rescheduled
    # booking and its show count as service, not as a sales appointment
    assert group["from_previous"].tolist()[1:] == [2, 3, 1, 1, 1, 1, 1, 0]
    assert group["drop_off"].tolist()[1:] == [0, 0, 2, 0, 1, 0, 0, 2]
    np.testing.assert_allclose(
        group["conversion"].to_numpy()[1:], [1.0, 1.0, 1 / 3, 1.0, 0.5, 1.0, 1.0, 0.0]
    )
    np.testing.assert_allclose(group["drop_off_rate"].to_numpy()[1:], 1 - group["conversion"][1:])
    assert group["stage_label"].iloc[0] == "Online research"
    rt02 = f[f["rooftop_id"] == "rt-02"].set_index("stage")
    assert rt02["customers"].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 0]
    assert np.isnan(rt02.at["service", "conversion"])  # nobody delivered at rt-02
    assert rt02.at["csi", "drop_off"] == 1
    assert f["rooftop_id"].unique().tolist() == ["rt-01", "rt-02", GROUP]
    only_group = stage_funnel(funnel_journeys, by_rooftop=False)
    assert only_group["rooftop_id"].unique().tolist() == [GROUP]


def test_stage_times_are_median_and_p90_hours_between_first_arrivals(
    funnel_journeys: pd.DataFrame,
) -> None:
    t = stage_times(funnel_journeys, by_rooftop=False).set_index("to_stage")
    assert t["customers"].tolist() == [2, 3, 1, 1, 1, 1, 1, 0]
    # research -> lead: 1 h and 24 h; lead -> reply: 0.5, 0.5 and 2 h (linear p90)
    np.testing.assert_allclose(t.loc["lead_intake", ["median_hours", "p90_hours"]], [12.5, 21.7])
    np.testing.assert_allclose(t.loc["response", ["median_hours", "p90_hours"]], [0.5, 1.7])
    np.testing.assert_allclose(
        t["median_hours"].to_numpy()[2:7], [24.0, 48 + 10 / 60, 2.0, 24.0, 720.0]
    )
    assert np.isnan(t.at["csi", "median_hours"]) and np.isnan(t.at["csi", "p90_hours"])
    assert t.at["appointment", "from_stage"] == "response"


def test_journey_flows_follow_stages_in_journey_order_to_their_end(
    funnel_journeys: pd.DataFrame,
) -> None:
    flows = journey_flows(funnel_journeys, JourneyRules(quiet_after_days=20))
    got = set(flows.itertuples(index=False, name=None))
    assert got == {
        ("research", "lead_intake", 2),
        ("lead_intake", "response", 3),
        ("response", "appointment", 1),
        ("response", "showroom", 1),
        ("response", "went_quiet", 1),
        ("appointment", "showroom", 1),
        ("showroom", "credit_fi", 1),
        ("showroom", "went_quiet", 1),
        ("credit_fi", "delivery", 1),
        ("delivery", "service", 1),
        ("service", "still_active", 1),
        ("service", "went_quiet", 1),
    }
    # with the default 90 days nobody has gone quiet yet
    assert set(journey_flows(funnel_journeys)["target"]) >= {"still_active"}
    assert "went_quiet" not in set(journey_flows(funnel_journeys)["target"])


def test_journey_flows_run_around_a_stage_left_out(funnel_journeys: pd.DataFrame) -> None:
    flows = journey_flows(
        funnel_journeys, JourneyRules(quiet_after_days=20), leave_out_stages=("appointment",)
    )
    assert "appointment" not in set(flows["source"]) | set(flows["target"])
    got = flows.set_index(["source", "target"])["customers"]
    assert got[("response", "showroom")] == 2  # the buyer now goes straight to the showroom
    assert got.sum() == 7 + 3 + 3 + 1  # links per customer, ends included
    with pytest.raises(ValueError, match="unknown stage"):
        journey_flows(funnel_journeys, leave_out_stages=("lobby",))


# ------------------------------------------------------------------------------ touchpoints


def test_transitions_count_what_follows_each_touchpoint(trade_in_journeys: pd.DataFrame) -> None:
    t = transitions(trade_in_journeys)
    after_trade_in = t[t["from_event_type"] == "trade_in_tool"]
    # ties in catalogue order
    assert after_trade_in[["to_event_type", "count"]].values.tolist() == [
        ["outbound_call", 1],
        ["crm_task_created", 1],
    ]
    np.testing.assert_allclose(after_trade_in["probability"], [0.5, 0.5])
    assert after_trade_in["from_label"].iloc[0] == "Trade-in value tool submitted"
    assert after_trade_in["to_label"].tolist() == ["Outbound call", "CRM task created"]
    # repeats collapse (two VDP views in a row are one step), the preference record is skipped
    vdp = t[t["from_event_type"] == "vdp_view"]
    assert vdp[["to_event_type", "count", "probability"]].values.tolist() == [
        ["trade_in_tool", 1, 1.0]
    ]
    assert "contact_preferences_set" not in set(t["from_event_type"]) | set(t["to_event_type"])
    assert t["probability"].groupby(t["from_event_type"]).sum().round(12).eq(1).all()
    raw = transitions(trade_in_journeys, collapse_repeats=False)
    vdp_raw = raw[raw["from_event_type"] == "vdp_view"]
    assert vdp_raw[["to_event_type", "count"]].values.tolist() == [
        ["vdp_view", 1],
        ["trade_in_tool", 1],
    ]


def test_transitions_can_leave_out_the_crm_bookkeeping(trade_in_journeys: pd.DataFrame) -> None:
    t = transitions(trade_in_journeys, leave_out=("crm_task_created", "crm_task_completed"))
    after_trade_in = t[t["from_event_type"] == "trade_in_tool"]
    assert after_trade_in[["to_event_type", "count", "probability"]].values.tolist() == [
        ["outbound_call", 2, 1.0]
    ]
    with pytest.raises(ValueError, match="unknown event type"):
        transitions(trade_in_journeys, leave_out=("fax_sent",))


def test_top_paths_rank_the_order_customers_first_reach_stages(
    trade_in_journeys: pd.DataFrame,
) -> None:
    stages = top_paths(trade_in_journeys, n=3)
    assert stages["path"].tolist() == [
        ("research", "response"),
        ("delivery",),
        ("delivery", "research"),
    ]
    assert stages["customers"].tolist() == [2, 1, 1]
    np.testing.assert_allclose(stages["share"], [0.4, 0.2, 0.2])
    assert stages["rank"].tolist() == [1, 2, 3]
    assert stages["path_label"].iloc[0] == "Online research → Response and follow-up"
    touch = top_paths(trade_in_journeys, n=10, level="touchpoint", max_steps=2)
    assert touch.set_index("path")["customers"].to_dict() == {
        ("trade_in_tool", "outbound_call"): 1,
        ("vdp_view", "trade_in_tool"): 1,
        ("trade_in_tool",): 1,
        ("vehicle_delivery", "maintenance_reminder"): 2,
    }
    assert touch["path"].iloc[0] == ("vehicle_delivery", "maintenance_reminder")


def test_top_paths_refuse_bad_arguments(trade_in_journeys: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="n must be at least 1"):
        top_paths(trade_in_journeys, n=0)
    with pytest.raises(ValueError, match="unknown path level 'channel'"):
        top_paths(trade_in_journeys, level="channel")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most 11 steps"):
        top_paths(trade_in_journeys, level="touchpoint", max_steps=12)


def test_journey_ends_name_the_last_touchpoint_before_going_quiet(
    trade_in_journeys: pd.DataFrame,
) -> None:
    ends = journey_ends(trade_in_journeys)
    # data ends on day 200: c-4 is still active, the others went quiet 90+ days before
    assert ends[["segment", "event_type", "customers"]].values.tolist() == [
        ["owner", "maintenance_reminder", 1],
        ["shopper", "outbound_call", 2],
        ["shopper", "trade_in_tool", 1],
    ]
    np.testing.assert_allclose(ends["share"], [1.0, 2 / 3, 1 / 3])
    assert ends["label"].tolist()[1] == "Outbound call"
    per_rooftop = journey_ends(trade_in_journeys, by_rooftop=True)
    assert per_rooftop[["rooftop_id", "event_type", "customers"]].values.tolist() == [
        ["rt-01", "outbound_call", 2],
        ["rt-02", "maintenance_reminder", 1],
        ["rt-02", "trade_in_tool", 1],
        [GROUP, "maintenance_reminder", 1],
        [GROUP, "outbound_call", 2],
        [GROUP, "trade_in_tool", 1],
    ]


# ------------------------------------------------------------------------------ KPIs


def _kpi(table: pd.DataFrame, rooftop: str, kpi: str) -> pd.Series:
    row = table[(table["rooftop_id"] == rooftop) & (table["kpi"] == kpi)]
    assert len(row) == 1
    return row.iloc[0]


def test_rooftop_kpis_exact_values_and_flags(lead_journeys: pd.DataFrame) -> None:
    k = rooftop_kpis(lead_journeys, rules=JourneyRules(min_sample=1))
    expected = {  # (rt-01, rt-02, group) per KPI
        "first_response_minutes": (7.5, 60.0, 10.0),
        "responded_within_sla": (1.0, 0.0, 0.5),
        "lead_to_appointment": (1.0, 0.5, 0.75),
        "appointment_show_rate": (0.5, 0.0, 1 / 3),
        "lead_to_sale": (0.5, 0.0, 0.25),
        "first_service_return": (1.0, 0.0, 0.5),
        "csi_score": (9.0, 6.0, 7.5),
    }
    assert k["kpi"].unique().tolist() == [kpi.key for kpi in KPIS] == list(expected)
    for kpi, values in expected.items():
        for rooftop, value in zip(("rt-01", "rt-02", GROUP), values, strict=True):
            row = _kpi(k, rooftop, kpi)
            assert row["value"] == pytest.approx(value), (kpi, rooftop)
            assert row["group_standard"] == pytest.approx(values[2]), kpi
            assert row["difference"] == pytest.approx(value - values[2]), kpi
    samples = k[k["rooftop_id"] == "rt-02"].set_index("kpi")["sample"]
    # rt-02: one answered lead of two, two leads, one booking, two leads, one delivery, one CSI
    assert samples.tolist() == [1, 2, 2, 1, 2, 1, 1]
    assert k.loc[k["rooftop_id"] == "rt-02", "flagged"].all()
    assert not k.loc[k["rooftop_id"] != "rt-02", "flagged"].any()
    # the same figures on too few cases to trust: nothing flagged
    assert not rooftop_kpis(lead_journeys)["flagged"].any()


def test_kpi_margins_are_the_stated_ones(lead_journeys: pd.DataFrame) -> None:
    # rt-02 answers in 60 min against the group's 10: 6x and 50 min slower
    strict = JourneyRules(min_sample=1, response_ratio=7, rate_margin=0.6, csi_margin=2)
    flags = rooftop_kpis(lead_journeys, rules=strict).set_index(["rooftop_id", "kpi"])["flagged"]
    assert not flags["rt-02"].any()
    slow = JourneyRules(min_sample=1, response_ratio=5.9, response_extra_minutes=50)
    assert (
        rooftop_kpis(lead_journeys, rules=slow)
        .set_index(["rooftop_id", "kpi"])
        .at[("rt-02", "first_response_minutes"), "flagged"]
    )
    exact_margin = JourneyRules(min_sample=1, rate_margin=0.25)  # lead to sale 0.25 below
    assert (
        rooftop_kpis(lead_journeys, rules=exact_margin)
        .set_index(["rooftop_id", "kpi"])
        .at[("rt-02", "lead_to_sale"), "flagged"]
    )


def test_kpis_without_leads_or_deliveries_are_missing_not_errors(
    trade_in_journeys: pd.DataFrame,
) -> None:
    k = rooftop_kpis(trade_in_journeys)
    leads = k[k["kpi"] == "first_response_minutes"]
    assert leads["value"].isna().all() and (leads["sample"] == 0).all()
    assert not k["flagged"].any()


@pytest.mark.slow
def test_planted_slow_bdc_is_flagged_on_response_and_lead_to_appointment(
    small_group: SimulatedGroup,
) -> None:
    planted = {p.rooftop_id for p in small_group.planted if p.friction == "slow_first_response"}
    assert planted == {"rt-02"}
    k = rooftop_kpis(small_group.events)
    flagged = k[k["flagged"]]
    for kpi in ("first_response_minutes", "lead_to_appointment"):
        assert set(flagged.loc[flagged["kpi"] == kpi, "rooftop_id"]) == planted, kpi
    response = _kpi(k, "rt-02", "first_response_minutes")
    assert response["value"] > 3 * response["group_standard"]
    assert _kpi(k, "rt-02", "lead_to_appointment")["difference"] < -0.05


# ------------------------------------------------------------------------------ attribution


def test_source_attribution_follows_leads_to_shows_sales_and_first_service(
    lead_journeys: pd.DataFrame,
) -> None:
    a = source_attribution(lead_journeys)
    assert a["rooftop_id"].unique().tolist() == [GROUP]
    got = a.set_index("marketing_source")
    assert got.index.tolist() == ["google_paid_search", "facebook_ads", "unknown"]
    counts = ["leads", "appointments", "shows", "sales", "sales_due_service", "first_services"]
    # c-b's show is a service visit, not the show of its sales appointment
    assert got.loc["google_paid_search", counts].tolist() == [2, 2, 1, 1, 1, 1]
    assert got.loc["facebook_ads", counts].tolist() == [1, 1, 0, 0, 0, 0]
    assert got.loc["unknown", counts].tolist() == [1, 0, 0, 0, 0, 0]
    rates = ["appointment_rate", "show_rate", "sale_rate", "first_service_rate"]
    np.testing.assert_allclose(got.loc["google_paid_search", rates].astype(float), [1, 0.5, 0.5, 1])
    np.testing.assert_allclose(
        got.loc["facebook_ads", rates].astype(float), [1, 0, 0, np.nan], equal_nan=True
    )
    assert np.isnan(got.at["unknown", "show_rate"])
    per = source_attribution(lead_journeys, by_rooftop=True)
    assert per[["rooftop_id", "marketing_source", "leads"]].values.tolist() == [
        ["rt-01", "google_paid_search", 2],
        ["rt-02", "facebook_ads", 1],
        ["rt-02", "unknown", 1],
        [GROUP, "google_paid_search", 2],
        [GROUP, "facebook_ads", 1],
        [GROUP, "unknown", 1],
    ]


def test_leads_whose_sale_window_is_open_are_not_attributed(lead_journeys: pd.DataFrame) -> None:
    # data ends on day 240; a 300-day sale window has closed for no lead
    assert source_attribution(lead_journeys, rules=JourneyRules(sale_window_days=300)).empty


# ------------------------------------------------------------------------------ post-sale


def test_post_sale_journey_shares_per_step(lead_journeys: pd.DataFrame) -> None:
    p = post_sale_journey(lead_journeys)
    share = p.pivot(index="step", columns="rooftop_id", values="share").reindex(p["step"].unique())
    assert share.index.tolist() == [
        "delivery_education",
        "first_service_booked_at_delivery",
        "service_reminder",
        "service_appointment_set",
        "service_check_in",
        "mpi_sent",
        "mpi_approved",
        "vehicle_picked_up",
    ]
    assert share["rt-01"].tolist() == [1, 1, 1, 1, 1, 1, 0, 1]
    assert share["rt-02"].tolist() == [0, 0, 1, 0, 0, 0, 0, 0]
    assert share[GROUP].tolist() == [0.5, 0.5, 1, 0.5, 0.5, 0.5, 0, 0.5]
    assert (p["deliveries"] == np.where(p["rooftop_id"] == GROUP, 2, 1)).all()
    labels = p.drop_duplicates("step").set_index("step")["step_label"]
    assert labels["first_service_booked_at_delivery"] == "First service booked at delivery"
    assert labels["mpi_sent"] == "Multi-point inspection sent"


def test_post_sale_journey_needs_a_closed_delivery(funnel_journeys: pd.DataFrame) -> None:
    with pytest.raises(NoInstancesError, match="no delivery has a closed first-service window"):
        post_sale_journey(funnel_journeys)


# ------------------------------------------------------------------------------ input


def test_events_missing_columns_are_refused_by_name(funnel_journeys: pd.DataFrame) -> None:
    with pytest.raises(MissingColumnsError, match="missing column"):
        stage_funnel(funnel_journeys.drop(columns=["ts"]))


def test_row_order_changes_nothing(lead_journeys: pd.DataFrame) -> None:
    shuffled = lead_journeys.sample(frac=1, random_state=3)
    pd.testing.assert_frame_equal(rooftop_kpis(shuffled), rooftop_kpis(lead_journeys))
    pd.testing.assert_frame_equal(stage_funnel(shuffled), stage_funnel(lead_journeys))
    pd.testing.assert_frame_equal(transitions(shuffled), transitions(lead_journeys))
