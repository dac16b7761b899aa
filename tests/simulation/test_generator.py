"""The simulated dealer group: deterministic, consistent journeys, realistic rates, truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cjm_ml.cli.main import app
from cjm_ml.events import validate_events
from cjm_ml.simulation import SimulatedGroup, SimulationConfig, simulate
from cjm_ml.simulation.rooftops import default_rooftops
from cjm_ml.simulation.summary import outcome_rates

LEADS = ["lead_form", "lead_call", "lead_chat", "lead_third_party"]


def _attr(events: pd.DataFrame, key: str) -> pd.Series:
    return events["attributes"].str.extract(f'"{key}": "([^"]+)"')[0]


def test_same_seed_same_group_and_other_seed_differs() -> None:
    config = SimulationConfig(rooftops=3, customers=800, seed=5)
    a, b = simulate(config), simulate(config)
    pd.testing.assert_frame_equal(a.events, b.events)
    for task in a.truth:
        pd.testing.assert_frame_equal(a.truth[task], b.truth[task])
    c = simulate(config.model_copy(update={"seed": 6}))
    assert not a.events["ts"].equals(c.events["ts"])


def test_events_pass_the_event_model(small_group: SimulatedGroup) -> None:
    raw = small_group.events.astype({"ts": "string"}).assign(
        ts=lambda d: d["ts"].str.replace(" ", "T")
    )
    typed, violations = validate_events(raw.sample(frac=0.2, random_state=1), "sim")
    assert violations == []
    assert typed["event_id"].is_unique


def test_no_response_before_its_lead(small_group: SimulatedGroup) -> None:
    ev = small_group.events
    first_lead = ev[ev["event_type"].isin(LEADS)].groupby("customer_id")["ts"].min()
    outreach = ev[ev["event_type"].isin(["outbound_call", "sms_sent", "email_sent"])]
    first_outreach = outreach.groupby("customer_id")["ts"].min()
    joined = pd.concat([first_lead, first_outreach], axis=1, keys=["lead", "reply"]).dropna()
    assert len(joined) > 5_000
    assert (joined["reply"] >= joined["lead"]).all()
    # every customer contacted by the BDC had a lead first
    assert first_outreach.index.isin(first_lead.index).all()


def test_no_delivery_before_a_sale(small_group: SimulatedGroup) -> None:
    ev = small_group.events
    deliveries = ev[ev["event_type"] == "vehicle_delivery"]
    for step in ("showroom_visit", "fi_session"):
        before = ev[ev["event_type"] == step].groupby("customer_id")["ts"].min()
        at = before.reindex(deliveries["customer_id"]).to_numpy()
        assert (at <= deliveries["ts"].to_numpy()).all(), step


def test_appointment_and_repair_order_outcomes_follow_their_start(
    small_group: SimulatedGroup,
) -> None:
    ev = small_group.events.assign(appointment_id=lambda d: _attr(d, "appointment_id"))
    booked = ev[
        ev["event_type"].isin(
            ["appointment_set", "service_appointment_set", "appointment_rescheduled"]
        )
    ].set_index("appointment_id")["ts"]
    assert booked.index.is_unique
    for outcome in ("appointment_showed", "appointment_no_show", "appointment_cancelled"):
        o = ev[ev["event_type"] == outcome]
        assert (o["ts"].to_numpy() > booked.reindex(o["appointment_id"]).to_numpy()).all()
    ro = ev.assign(ro_id=lambda d: _attr(d, "ro_id"))
    opened = ro[ro["event_type"] == "repair_order_opened"].set_index("ro_id")["ts"]
    closed = ro[ro["event_type"] == "repair_order_closed"].set_index("ro_id")["ts"]
    assert (closed > opened.reindex(closed.index)).all()


def test_base_rates_fall_in_the_published_ranges(small_group: SimulatedGroup) -> None:
    group = outcome_rates(small_group.truth).loc["group"]
    assert 0.30 <= group["lead_leakage_rate"] <= 0.50
    assert 0.50 <= group["sales_show_rate"] <= 0.70
    assert 0.30 <= group["defection_rate"] <= 0.50


def test_slow_response_rooftop_leaks_measurably_more(small_group: SimulatedGroup) -> None:
    slow = [p.rooftop_id for p in small_group.planted if p.friction == "slow_first_response"]
    assert slow == ["rt-02"] * 3
    truth = small_group.truth["lead_leakage"].dropna(subset=["label"])
    is_slow = truth["rooftop_id"] == "rt-02"
    p1, n1 = truth.loc[is_slow, "label"].mean(), is_slow.sum()
    p0, n0 = truth.loc[~is_slow, "label"].mean(), (~is_slow).sum()
    pooled = (p1 * n1 + p0 * n0) / (n1 + n0)
    z = (p1 - p0) / np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    assert p1 - p0 > 0.07 and z > 5
    # and the data itself shows the slower replies
    ev = small_group.events
    leads = ev[ev["event_type"].isin(LEADS)].groupby("customer_id").first()
    reply = ev[ev["event_type"].isin(["outbound_call", "sms_sent", "email_sent"])]
    first_reply = reply.groupby("customer_id")["ts"].min()
    minutes = (first_reply.reindex(leads.index) - leads["ts"]).dt.total_seconds() / 60
    by_rooftop = minutes.groupby(leads["rooftop_id"].astype(str)).median()
    assert by_rooftop["rt-02"] > 3 * by_rooftop.drop("rt-02").max()


def test_truth_is_calibrated_and_joins_the_events(small_group: SimulatedGroup) -> None:
    ev = small_group.events
    for task, truth in small_group.truth.items():
        known = truth.dropna(subset=["label"])
        # the label rate agrees with the probabilities: within 3 standard errors
        p = known["true_prob"]
        bound = 3 * float(np.sqrt((p * (1 - p)).sum())) / len(p)
        assert abs(p.mean() - known["label"].mean()) < bound, task
        assert truth["instance_id"].is_unique
        assert truth["true_prob"].between(0, 1).all()
    leads = set(ev.loc[ev["event_type"].isin(LEADS), "event_id"])
    assert set(small_group.truth["lead_leakage"]["instance_id"]) <= leads
    deliveries = set(ev.loc[ev["event_type"] == "vehicle_delivery", "event_id"])
    assert set(small_group.truth["service_defection"]["instance_id"]) <= deliveries
    appointments = set(_attr(ev, "appointment_id").dropna())
    assert set(small_group.truth["no_show"]["instance_id"]) <= appointments


def _booked_within(ev: pd.DataFrame, hours: float) -> pd.DataFrame:
    """Per lead (by event id): its kind, and the channel of a sales appointment the customer
    set within ``hours`` after it (missing when none)."""
    leads = ev[ev["event_type"].isin(LEADS)][["event_id", "customer_id", "ts", "event_type"]]
    booked = ev[ev["event_type"] == "appointment_set"][["customer_id", "ts", "channel"]]
    pairs = leads.merge(booked, on="customer_id", suffixes=("", "_booked"))
    soon = pairs[
        (pairs["ts_booked"] > pairs["ts"])
        & (pairs["ts_booked"] <= pairs["ts"] + pd.Timedelta(hours=hours))
    ].drop_duplicates("event_id")
    out = leads.set_index("event_id")["event_type"].astype(str).to_frame("kind")
    out["channel"] = soon.set_index("event_id")["channel"].astype(str).reindex(out.index)
    return out.assign(booked=lambda d: d["channel"].notna())


def test_phone_ups_and_chats_often_book_during_the_first_contact(
    small_group: SimulatedGroup,
) -> None:
    ev = small_group.events
    share = _booked_within(ev, 2).groupby("kind")["booked"].mean()
    assert 0.25 <= share["lead_call"] <= 0.35
    assert 0.10 <= share["lead_chat"] <= 0.20
    # forms and third-party leads never book within two hours (no live contact)
    assert share["lead_form"] == share["lead_third_party"] == 0
    # within minutes of the lead: by phone during the call, online during the chat
    soon = _booked_within(ev, 20 / 60)
    assert soon.groupby("kind")["booked"].mean().equals(share)
    channels = soon.dropna(subset=["channel"]).groupby("kind")["channel"].unique()
    assert {k: list(v) for k, v in channels.items()} == {
        "lead_call": ["phone"], "lead_chat": ["web"]
    }  # fmt: skip


def test_the_crm_closes_junk_dark_and_sold_leads(small_group: SimulatedGroup) -> None:
    ev = small_group.events
    closed = ev[ev["event_type"] == "lead_closed"].assign(status=lambda d: _attr(d, "status"))
    assert (closed["channel"] == "crm").all()
    by_status = closed["status"].value_counts()
    leads = int(ev["event_type"].isin(LEADS).sum())
    assert set(by_status.index) == {
        "sold", "lost_other_dealer", "no_contact", "bad_lead", "duplicate"
    }  # fmt: skip
    # junk: a few percent of leads; sold: one closure per delivery, at the delivery
    junk = by_status["bad_lead"] + by_status["duplicate"]
    assert 0.02 * leads < junk < 0.06 * leads
    deliveries = ev[ev["event_type"] == "vehicle_delivery"]
    sold = closed[closed["status"] == "sold"]
    assert sorted(zip(sold["customer_id"], sold["ts"], strict=True)) == sorted(
        zip(deliveries["customer_id"], deliveries["ts"], strict=True)
    )
    # a lead closed as lost to another dealer is a leaked lead in the truth
    latest = pd.merge_asof(
        closed.sort_values("ts")[["customer_id", "ts", "status"]],
        ev[ev["event_type"].isin(LEADS)].sort_values("ts")[["customer_id", "ts", "event_id"]]
        .rename(columns={"ts": "lead_ts"}),
        left_on="ts", right_on="lead_ts", by="customer_id",
    )  # fmt: skip
    truth = small_group.truth["lead_leakage"].set_index("instance_id")
    lost = latest.loc[latest["status"] == "lost_other_dealer", "event_id"]
    assert truth.loc[lost, "label"].dropna().eq(1).all()
    assert len(lost) > 0.2 * (by_status.sum() - by_status["sold"])


def test_planted_frictions_raise_the_true_risk_where_they_apply(
    small_group: SimulatedGroup,
) -> None:
    defection = small_group.truth["service_defection"]
    not_booked = defection["friction_first_service_not_booked"] > 0
    assert (
        defection.loc[not_booked, "true_prob"].mean()
        > defection.loc[~not_booked, "true_prob"].mean() + 0.12
    )
    assert "first_service_not_booked" in defection.loc[not_booked, "planted_frictions"].iloc[0]
    no_show = small_group.truth["no_show"]
    rt04 = no_show[(no_show["rooftop_id"] == "rt-04") & (no_show["appointment_kind"] == "sales")]
    others = no_show[(no_show["rooftop_id"] != "rt-04") & (no_show["appointment_kind"] == "sales")]
    assert rt04["friction_no_confirmation"].mean() > 3 * others["friction_no_confirmation"].mean()


def test_confirmations_are_confounded_with_lead_time(small_group: SimulatedGroup) -> None:
    ns = small_group.truth["no_show"]
    sales = ns[(ns["appointment_kind"] == "sales") & (ns["rooftop_id"] != "rt-04")]
    lead_days = (sales["scheduled_ts"] - sales["booked_ts"]).dt.total_seconds() / 86_400
    # among bookings made early enough for a confirmation to count (a day or more ahead)
    early = sales[sales["cutoff_ts"] > sales["booked_ts"]]
    far = lead_days[early.index] >= 3
    confirmed = early["friction_no_confirmation"] == 0
    assert confirmed[far].mean() > confirmed[~far].mean() + 0.3


def test_what_if_fixing_the_slow_rooftop_lowers_its_leakage() -> None:
    base = SimulationConfig(rooftops=4, customers=6_000, seed=3)
    fixed = base.model_copy(
        update={"fixes": (("rt-02", ("response_median_minutes", "no_response_rate")),)}
    )
    before, after = simulate(base), simulate(fixed)

    def rate(g: SimulatedGroup) -> float:
        t = g.truth["lead_leakage"]
        return float(t.loc[t["rooftop_id"] == "rt-02", "true_prob"].mean())

    assert rate(after) < rate(before) - 0.05
    assert {p.setting for p in after.planted if p.task == "lead_leakage"} == {
        "follow_up_attempts",
        "trade_credit_follow_up_rate",
    }


def test_at_least_two_rooftops_deviate_from_three_up() -> None:
    for n in (3, 6, 10):
        _, planted = default_rooftops(n, seed=1)
        assert len({p.rooftop_id for p in planted}) >= 2
    with pytest.raises(ValueError, match="at least 2 rooftops"):
        default_rooftops(1, seed=1)


def test_cli_simulate_writes_events_truth_and_rooftops(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--rooftops",
            "3",
            "--customers",
            "400",
            "--seed",
            "2",
            "--out",
            str(tmp_path),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "events.parquet",
        "rooftops.json",
        "truth_lead_leakage.parquet",
        "truth_no_show.parquet",
        "truth_service_defection.parquet",
    ]
    meta = json.loads((tmp_path / "rooftops.json").read_text())
    assert [r["rooftop_id"] for r in meta["rooftops"]] == ["rt-01", "rt-02", "rt-03"]
    assert meta["planted_deviations"][0]["friction"] == "slow_first_response"
    assert "planted: rt-02 slow_first_response" in result.output


def test_cli_simulate_refuses_an_unknown_fix(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--customers",
            "50",
            "--out",
            str(tmp_path),
            "--fix",
            "rt-09:response_median_minutes",
        ],
    )
    assert result.exit_code == 2
    assert "unknown rooftop 'rt-09'" in result.output
